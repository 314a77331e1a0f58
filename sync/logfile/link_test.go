//go:build unix

package logfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDoesNotFollowLinks: a log file that is a link to another file is
// refused and that file is left as it was; so is a FIFO, which would
// block every write.
func TestDoesNotFollowLinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(target, []byte("precious data\n"), 0o600)
	if err := os.Symlink(target, filepath.Join(dir, "inboxrelay.log")); err != nil {
		t.Fatal(err)
	}
	if w, err := Open(dir, "inboxrelay.log", 1<<20, 2); err == nil || !strings.Contains(err.Error(), "is a link to another file") {
		if w != nil {
			w.Write([]byte("a log line\n"))
			w.Close()
		}
		t.Fatalf("Open through a link: %v; want refused", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious data\n" {
		t.Fatalf("the link's target now holds %q", b)
	}

	fifo := filepath.Join(dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, "fifo.log", 1<<20, 2); err == nil {
		t.Fatal("a FIFO was opened as the log")
	}
}
