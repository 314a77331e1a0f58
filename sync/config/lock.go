package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrRunning means another process holds the home's lock.
var ErrRunning = errors.New("Inbox Relay is already running with this home")

// Lock takes the home's lock, held by the one process that runs the engine,
// until unlock is called or the process ends (the OS releases it even after
// kill -9). It fails with an error wrapping ErrRunning, naming the holder's
// pid, when another process has it.
func (h Home) Lock() (unlock func(), err error) {
	// The lock file is truncated and written: never through a link,
	// which could make it someone else's file (O_NOFOLLOW), and only a
	// regular file.
	linkErr := fmt.Errorf("the lock file %s is a link to another file, which Inbox Relay would overwrite: remove the link", h.LockPath())
	if isLink(h.LockPath()) {
		return nil, linkErr
	}
	f, err := os.OpenFile(h.LockPath(), os.O_RDWR|os.O_CREATE|noFollow, 0o600)
	if err != nil {
		if isLink(h.LockPath()) { // made a link meanwhile
			return nil, linkErr
		}
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("the lock file %s is not a regular file: remove it", h.LockPath())
	}
	if err := lockPatiently(f); err != nil {
		b, _ := os.ReadFile(h.LockPath())
		f.Close()
		if pid := strings.TrimSpace(string(b)); pid != "" {
			return nil, fmt.Errorf("%w (pid %s): stop it first", ErrRunning, pid)
		}
		return nil, fmt.Errorf("%w: stop it first", ErrRunning)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		f.Truncate(0)
		unlockFile(f)
		f.Close()
	}, nil
}

// lockGrace is how long Lock waits for a lock held by someone else before
// it reports ErrRunning: Running (`inboxrelay status`, a second launch)
// holds the lock for a moment to look, and an engine starting in that
// moment must not give up. A real second instance is reported after it.
const lockGrace = time.Second

// lockPatiently takes f's lock, retrying while it is held for up to
// lockGrace.
func lockPatiently(f *os.File) error {
	deadline := time.Now().Add(lockGrace)
	for {
		err := lockFile(f)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Running reports whether some process holds the home's lock. It looks
// without writing anything and holds the lock for a moment only when it
// is free; Lock waits out such a moment (lockGrace), so calling Running
// while an engine starts never stops that engine.
func (h Home) Running() bool {
	if isLink(h.LockPath()) {
		return false
	}
	f, err := os.OpenFile(h.LockPath(), os.O_RDONLY|noFollow, 0)
	if err != nil {
		return false // no lock file: nothing ever ran here
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return true
	}
	unlockFile(f)
	return false
}
