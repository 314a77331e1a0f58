package dovecottest

// StartedGroups returns the process group of every Dovecot master this test
// binary started, for TestMain to check that none outlives the tests.
func StartedGroups() []int {
	startedGroups.Lock()
	defer startedGroups.Unlock()
	return append([]int(nil), startedGroups.ids...)
}
