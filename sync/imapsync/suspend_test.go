package imapsync

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestSuspendNoticed(t *testing.T) {
	var jumped atomic.Bool
	start := time.Now()
	sc := suspendClock{every: 5 * time.Millisecond, wall: func() time.Time {
		if jumped.Load() {
			return start.Add(2 * time.Minute).Round(0) // the lid was closed for two minutes
		}
		return time.Now().Round(0)
	}}
	done := make(chan error, 1)
	go func() { done <- sc.watch(context.Background(), nil, nil, nil, nil) }()
	select {
	case err := <-done:
		t.Fatalf("returned %v before any suspend", err)
	case <-time.After(50 * time.Millisecond):
	}
	jumped.Store(true)
	select {
	case err := <-done:
		if err != ErrSlept {
			t.Fatalf("after a suspend: %v, want ErrSlept", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a two-minute jump of the wall clock went unnoticed")
	}
}
