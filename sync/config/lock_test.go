package config

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLookingDoesNotStopAStart: `inboxrelay status` (Running) looking at
// the lock over and over while the engine starts (Lock) never makes the
// start fail, and looking writes nothing into the lock file.
func TestLookingDoesNotStopAStart(t *testing.T) {
	h, err := OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The lock file exists, as after any earlier run.
	unlock, err := h.Lock()
	if err != nil {
		t.Fatal(err)
	}
	unlock()

	stop := make(chan struct{})
	var looks atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h.Running()
				looks.Add(1)
			}
		}()
	}
	for i := range 200 {
		unlock, err := h.Lock()
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("start %d failed while status looked at the lock: %v", i, err)
		}
		if !h.Running() {
			t.Errorf("start %d: Running is false while the lock is held", i)
		}
		b, _ := os.ReadFile(h.LockPath())
		if want := []byte(strconv.Itoa(os.Getpid()) + "\n"); string(b) != string(want) {
			t.Errorf("start %d: lock file holds %q, want the holder's pid %q", i, b, want)
		}
		unlock()
	}
	close(stop)
	wg.Wait()
	if looks.Load() == 0 {
		t.Fatal("nobody looked at the lock: the test proved nothing")
	}
}

// TestSecondInstanceStillRefused: the grace Lock gives a moment's look does
// not let a second holder in.
func TestSecondInstanceStillRefused(t *testing.T) {
	h, err := OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := h.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := h.Lock(); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Lock = %v, want ErrRunning", err)
	}
}

// TestRunningWithoutLockFile: a home that never ran has no lock file and is
// not running; looking does not create the file.
func TestRunningWithoutLockFile(t *testing.T) {
	h, err := OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if h.Running() {
		t.Error("Running is true in a home that never ran")
	}
	if _, err := os.Stat(h.LockPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("looking created the lock file: %v", err)
	}
}
