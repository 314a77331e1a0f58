package connector

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

// idleHome is a paired home with one account whose servers and platform
// are a closed port: its engine runs without reaching anything.
func idleHome(t *testing.T) config.Home {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	home, err := config.OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := config.ParseServer(closed, config.SecurityTLS, 993)
	cfg := &config.Config{Platform: config.Platform{URL: "https://" + closed},
		Accounts: []config.Account{{Email: "alice@acme.test", IMAP: srv, SMTP: srv}}}
	if err := home.Save(cfg); err != nil {
		t.Fatal(err)
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Set(keychain.DeviceTokenKey, "token"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Delete(keychain.DeviceTokenKey) })
	return home
}

// hangGuard bounds the waits of these tests for something that must
// happen: only a hang reaches it, never a slow machine.
const hangGuard = 2 * time.Minute

func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("no signal for %s", what)
	}
}

// drain empties ch once the engine has been quiet for a moment.
func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// TestRunnerSubscribeAcrossRebuilds: a subscription taken before Run hears
// the engine start, its changes, and, after Reload built a new engine,
// that engine's changes too; then the engine's stop.
func TestRunnerSubscribeAcrossRebuilds(t *testing.T) {
	r, err := Open(idleHome(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ch, unsubscribe := r.Subscribe()
	defer unsubscribe()
	other, unsubscribeOther := r.Subscribe()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	await(t, ch, "the engine's start")
	first := r.Engine()
	drain(ch)
	r.SetPaused(engine.PausedByUser, true)
	await(t, ch, "Pause")
	await(t, other, "Pause, second subscriber")
	unsubscribeOther()

	r.Reload()
	deadline := time.Now().Add(hangGuard)
	for r.Engine() == first {
		if time.Now().After(deadline) {
			t.Fatal("Reload built no new engine")
		}
		time.Sleep(10 * time.Millisecond)
	}
	drain(ch)
	drain(other)
	r.SetPaused(engine.PausedByUser, false) // the new engine's Resume
	await(t, ch, "the rebuilt engine's Resume")
	select {
	case <-other:
		t.Fatal("an ended subscription was signalled")
	case <-time.After(100 * time.Millisecond):
	}

	drain(ch)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	await(t, ch, "the engine's stop")
}
