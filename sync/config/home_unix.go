//go:build unix

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkHome makes sure the home is the user's own and private: owned by
// the user running Inbox Relay (else it is refused), not readable or
// writable by others (else it is made so), and holding nothing that
// another user put there (else it is refused): another user could read
// the settings and the state, or change the platform the messages go to.
func checkHome(dir string) error {
	fi, err := os.Stat(dir) // a home may be a link to a folder of the user's
	if err != nil {
		return fmt.Errorf("home %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the home %s is not a folder: give a folder with --home or INBOXRELAY_HOME", dir)
	}
	me := os.Geteuid()
	if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != me {
		return fmt.Errorf("the home folder %s belongs to another user (uid %d), who could read or change Inbox Relay's settings and state: use a folder of your own with --home or INBOXRELAY_HOME", dir, uid)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("the home folder %s can be read or written by other users (mode %o) and could not be made private (%v): run chmod 700 %s", dir, perm, err, dir)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("home %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if uid := int(st.Sys().(*syscall.Stat_t).Uid); uid != me {
			return fmt.Errorf("%s, in Inbox Relay's home, belongs to another user (uid %d), who may have put it there to change what Inbox Relay does: remove it, or use another --home", p, uid)
		}
	}
	return nil
}
