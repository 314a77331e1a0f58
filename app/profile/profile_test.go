package profile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfilesWritten: with the variable set, a run leaves a CPU profile,
// a heap profile, the goroutines and the memory metrics in the directory
// (it is created); without it, nothing is written.
func TestProfilesWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	t.Setenv(Env, dir)
	stop := Start()
	var sink []byte
	for i := 0; i < 1000; i++ {
		sink = append(sink, bytes.Repeat([]byte{byte(i)}, 100)...)
	}
	_ = sink
	stop()
	for _, name := range []string{"cpu.pprof", "heap.pprof", "goroutines.txt", "metrics.txt"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (%v bytes)", name, err, fi)
		}
	}
	m, _ := os.ReadFile(filepath.Join(dir, "metrics.txt"))
	if !strings.Contains(string(m), "/gc/heap/live:bytes ") {
		t.Errorf("metrics.txt lacks the live heap:\n%s", m)
	}

	t.Setenv(Env, "")
	cwd := t.TempDir()
	t.Chdir(cwd)
	Start()()
	if left, _ := os.ReadDir(cwd); len(left) != 0 {
		t.Errorf("without %s, a run wrote %v", Env, left)
	}
}
