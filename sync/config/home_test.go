//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// otherUID is a user other than the one running the test, to own files
// with; the test is skipped when it cannot chown (not root).
func otherUID(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	return 65534 // nobody
}

// TestHomeOthersCanReadIsMadePrivate: an existing home with mode 0777
// (as a careless install or umask leaves it) is made 0700.
func TestHomeOthersCanReadIsMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777) // whatever the umask
	if _, err := OpenHome(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("home mode %o after OpenHome, want 0700", fi.Mode().Perm())
	}
}

// TestHomeOfAnotherUserIsRefused: a home that belongs to another user, or
// holds a file another user put there, is refused with what to do.
func TestHomeOfAnotherUserIsRefused(t *testing.T) {
	uid := otherUID(t)
	theirs := filepath.Join(t.TempDir(), "theirs")
	os.Mkdir(theirs, 0o700)
	if err := os.Chown(theirs, uid, uid); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenHome(theirs); err == nil || !strings.Contains(err.Error(), "belongs to another user (uid 65534)") || !strings.Contains(err.Error(), "--home") {
		t.Fatalf("a home of another user: %v; want refused, saying what to do", err)
	}

	mine := filepath.Join(t.TempDir(), "mine")
	os.Mkdir(mine, 0o777)
	planted := filepath.Join(mine, "config.json")
	os.WriteFile(planted, []byte(`{"platform":{"url":"https://evil.test"}}`), 0o644)
	if err := os.Lchown(planted, uid, uid); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenHome(mine); err == nil || !strings.Contains(err.Error(), planted+", in Inbox Relay's home, belongs to another user") {
		t.Fatalf("a file planted by another user: %v; want refused, naming it", err)
	}
}

// TestLockDoesNotFollowLinks: a lock file that is a link to another file
// (planted while the home was open to others) is refused, and the file it
// points to is neither truncated nor written.
func TestLockDoesNotFollowLinks(t *testing.T) {
	h, err := OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(target, []byte("precious data\n"), 0o600)
	if err := os.Symlink(target, h.LockPath()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Lock(); err == nil || !strings.Contains(err.Error(), "is a link to another file") {
		t.Fatalf("Lock through a link: %v; want refused", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious data\n" {
		t.Fatalf("the link's target now holds %q", b)
	}
	os.Remove(h.LockPath())
	if err := syscall.Mkfifo(h.LockPath(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Lock(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Lock on a FIFO: %v; want refused", err)
	}
}
