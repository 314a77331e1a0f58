package connector

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// waitPaused waits until the Runner's set of reasons and the running
// engine's snapshot both say want.
func waitPaused(t *testing.T, r *Runner, want engine.PauseReason, what string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		st := r.Status()
		if st.Running && st.Paused == want && st.Engine.Paused == (want != 0) && st.Engine.PausedFor == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: paused for %q (engine: paused %v for %q), want %q", what, st.Paused, st.Engine.Paused, st.Engine.PausedFor, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPauseReasonsHaveOwners: pausing is a set of reasons, each set and
// cleared by its own owner. The user pauses; the network becomes metered
// (the Runner's own watch, with pause_on_metered on); it stops being
// metered: relaying stays paused, for the user. And the other way round:
// a metered pause outlives the user's pause and resume. The engine is
// the same one throughout.
func TestPauseReasonsHaveOwners(t *testing.T) {
	var metered atomic.Bool
	r, err := Open(idleHome(t), Options{Metered: func() (bool, bool) { return metered.Load(), true }, MeteredEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetUserSettings(settings.Values{PauseOnMetered: settings.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitPaused(t, r, 0, "start")
	eng := r.Engine()

	r.SetPaused(engine.PausedByUser, true)
	waitPaused(t, r, engine.PausedByUser, "the user paused")
	metered.Store(true)
	r.checkMetered()
	waitPaused(t, r, engine.PausedByUser|engine.PausedOnMetered, "metered on")
	metered.Store(false)
	r.checkMetered()
	waitPaused(t, r, engine.PausedByUser, "metered off: still paused for the user")

	metered.Store(true)
	r.checkMetered()
	r.SetPaused(engine.PausedByUser, false)
	waitPaused(t, r, engine.PausedOnMetered, "the user resumed on a metered network")

	// The setting is the watch's input: turning it off drops the reason
	// at once (the watch is told, not only at its next look).
	if err := r.SetUserSettings(settings.Values{PauseOnMetered: settings.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	waitPaused(t, r, 0, "pause_on_metered turned off")
	if r.Engine() != eng {
		t.Fatal("pausing and resuming rebuilt the engine")
	}
}

// TestPauseSurvivesRebuild: the reasons are the Runner's, so an engine
// built after Reload starts paused for the same reasons.
func TestPauseSurvivesRebuild(t *testing.T) {
	r, err := Open(idleHome(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitPaused(t, r, 0, "start")
	first := r.Engine()
	r.SetPaused(engine.PausedByUser, true)
	waitPaused(t, r, engine.PausedByUser, "paused")
	r.Reload()
	deadline := time.Now().Add(hangGuard)
	for r.Engine() == first {
		if time.Now().After(deadline) {
			t.Fatal("Reload built no new engine")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitPaused(t, r, engine.PausedByUser, "the rebuilt engine")
}
