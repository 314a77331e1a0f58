// Package backoff computes exponential delays with jitter for retries.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: attempt n waits between half and all of
// min(Max, Base·2ⁿ), so that many clients failing together do not retry
// together. The zero Rand uses math/rand/v2; tests inject their own.
type Policy struct {
	Base time.Duration
	Max  time.Duration
	Rand func() float64 // in [0, 1)
}

// Default is the policy for mail server and platform retries: from one
// second up to the five-minute cap.
var Default = Policy{Base: time.Second, Max: 5 * time.Minute}

// Delay returns the wait before retry number attempt (0 for the first).
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Base
	for i := 0; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	if d > p.Max {
		d = p.Max
	}
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx.Err() in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
