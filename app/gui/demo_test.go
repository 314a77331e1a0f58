//go:build linux

package gui

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain/keyringtest"
	"github.com/inboxrelay/inboxrelay/sync/demo"
	"github.com/inboxrelay/inboxrelay/sync/engine"
)

// TestDemoSession: "Try the demo" gives a backend on a paired throw-away
// home with the sample mailbox, whose engine runs, signals its changes and
// relays; closing it stops the engine and removes the home.
func TestDemoSession(t *testing.T) {
	stop, err := keyringtest.Start()
	if err != nil {
		t.Fatalf("a private keychain: %v (make test installs dbus and gnome-keyring)", err)
	}
	t.Cleanup(stop)
	d, err := startDemo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.close()
		}
	})
	home := d.backend.r.Home().Dir
	changes, unsubscribe := d.backend.Subscribe()
	defer unsubscribe()
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("the demo's backend signalled no change while its engine started")
	}
	st := d.backend.Status()
	if !st.Paired || len(st.Accounts) != 1 || st.Accounts[0].Email != demo.Email || !strings.HasSuffix(st.DeviceName, " (demo)") {
		t.Fatalf("demo status %+v", st)
	}
	// Until the sample mailbox is relayed: stopping the engine in the
	// middle of a batch panics (sync/engine folder.go relayGroup calls
	// wg.Done for jobs it never added), a bug outside this package.
	deadline := time.Now().Add(time.Minute)
	for {
		st = d.backend.Status()
		if st.Running && len(st.Engine.Accounts) == 1 && st.Engine.Accounts[0].Relayed > 0 &&
			st.Engine.Accounts[0].State == engine.UpToDate && st.Engine.Accounts[0].Backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not relay its mailbox within a minute: %+v", st.Engine)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.close()
	closed = true
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Fatalf("the demo home %s is still there: %v", home, err)
	}
}
