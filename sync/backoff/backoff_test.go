package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Base: time.Second, Max: 5 * time.Minute}
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, 500 * time.Millisecond},
		{0, 0.999999, time.Second},
		{1, 0, time.Second},
		{3, 0.5, 6 * time.Second},
		{8, 0, 128 * time.Second},
		{9, 0, 150 * time.Second}, // capped at 5 min, half of it
		{60, 0.999999, 5 * time.Minute},
	} {
		p.Rand = func() float64 { return tc.r }
		got := p.Delay(tc.attempt)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("Delay(%d) with rand %v = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
