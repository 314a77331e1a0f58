package engine

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

type noSecrets struct{}

func (noSecrets) Get(string) (string, error) { return "pw", nil }

// idleEngine is an engine whose servers and platform are a closed port:
// it runs without reaching anything.
func idleEngine(t *testing.T) *Engine {
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
	st, err := state.Open(home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, _ := config.ParseServer(closed, config.SecurityTLS, 993)
	e, err := New(Options{Home: home, Store: st, Secrets: noSecrets{},
		Config:   &config.Config{Accounts: []config.Account{{Email: "alice@acme.test", IMAP: srv, SMTP: srv}}},
		Platform: relay.Options{BaseURL: "https://" + closed, Token: "token"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(2 * time.Second):
		return false
	}
}

func quiet(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	case <-time.After(50 * time.Millisecond):
		return true
	}
}

// TestSubscribeSignalsEverySubscriber: a change (Pause, Resume) signals
// each subscriber; changes while a signal is pending merge into it without
// blocking the engine; after unsubscribing, a channel stays quiet while
// the others still hear.
func TestSubscribeSignalsEverySubscriber(t *testing.T) {
	e := idleEngine(t)
	a, unsubA := e.Subscribe()
	b, unsubB := e.Subscribe()
	defer unsubB()

	e.Pause()
	if !signalled(a) || !signalled(b) {
		t.Fatal("Pause did not signal both subscribers")
	}
	if !quiet(a) {
		t.Fatal("one change gave two signals")
	}
	e.Resume()
	e.Pause() // a is already signalled: this one merges, nothing blocks
	if !signalled(a) || !quiet(a) || !signalled(b) {
		t.Fatal("two changes did not leave exactly one pending signal")
	}
	if !e.Snapshot().Paused {
		t.Fatal("the snapshot after the signal is not paused")
	}

	unsubA()
	unsubA() // twice is fine
	e.Resume()
	if !quiet(a) {
		t.Fatal("an ended subscription was signalled")
	}
	if !signalled(b) {
		t.Fatal("the other subscriber missed Resume")
	}
}

// TestSubscribeConcurrent subscribes and unsubscribes while the engine
// changes (for -race), and the status writer, a subscriber itself, keeps
// status.json current.
func TestSubscribeConcurrent(t *testing.T) {
	e := idleEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch, unsub := e.Subscribe()
				select {
				case <-ch:
				default:
				}
				unsub()
			}
		}()
	}
	for i := 0; i < 200; i++ {
		e.Pause()
		e.Resume()
	}
	close(stop)
	wg.Wait()

	e.Pause()
	paused := func() bool {
		var s Snapshot
		b, err := os.ReadFile(e.o.Home.StatusPath())
		return err == nil && json.Unmarshal(b, &s) == nil && s.Paused && s.Running
	}
	deadline := time.Now().Add(5 * time.Second)
	for !paused() {
		if time.Now().After(deadline) {
			t.Fatal("status.json does not say paused: the status writer missed the change")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
