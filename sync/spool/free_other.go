//go:build !unix

package spool

// freeSpace is not known here: only the budget bounds the spool.
func freeSpace(string) (int64, bool) { return 0, false }
