package instance

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestShowReachesTheFirstInstance fails when a second launch cannot make
// the first one show its window, when Show succeeds with nobody
// listening, or when a stale socket blocks a new instance.
func TestShowReachesTheFirstInstance(t *testing.T) {
	dir := t.TempDir()
	if err := Show(dir); err == nil {
		t.Fatal("Show succeeded with no instance running")
	}
	// A dead instance's socket file must not stop the next one.
	if err := os.WriteFile(filepath.Join(dir, SocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shown := make(chan struct{}, 2)
	if err := Listen(ctx, dir, func() { shown <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := Show(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-shown:
	case <-time.After(5 * time.Second):
		t.Fatal("the first instance was not asked to show its window")
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for Show(dir) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Show still succeeds after the instance stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
