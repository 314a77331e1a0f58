package engine

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// BenchmarkBackfill measures relaying a backfill of small messages from
// Dovecot to the reference platform, both over TLS on loopback.
func BenchmarkBackfill(b *testing.B) {
	const n = 200
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := newRig(b, dovecottest.Options{})
		for j := 0; j < n; j++ {
			r.appendMsg("INBOX", j, 4000, time.Now())
		}
		b.StartTimer()
		if err := r.syncOnce(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := len(r.platform.Messages()); got != n {
			b.Fatalf("%d stored, want %d", got, n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkBigMessageMemory relays a 30 MiB message and reports how much
// the heap grew meanwhile, against the maxGrowth target: big messages
// stream through the spool, memory does not grow with their size.
// Benchmarks measure; they do not fail on a number.
func BenchmarkBigMessageMemory(b *testing.B) {
	const size = 30 << 20
	const maxGrowth = 16 << 20
	var worst uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := newRig(b, dovecottest.Options{})
		r.appendMsg("INBOX", i, size, time.Now()) // the test's copy is garbage from here on
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peak atomic.Uint64
		ctx, cancel := context.WithCancel(context.Background())
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for ctx.Err() == nil {
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		b.StartTimer()
		err := r.syncOnce()
		b.StopTimer()
		cancel()
		<-sampled
		if err != nil {
			b.Fatal(err)
		}
		if got := r.platform.Messages(); len(got) != 1 || got[0].Size != int64(len(testMessage(i, size, time.Time{}))) {
			b.Fatalf("the big message was not stored whole")
		}
		growth := uint64(0)
		if p := peak.Load(); p > base {
			growth = p - base
		}
		worst = max(worst, growth)
		b.StartTimer()
	}
	b.ReportMetric(float64(worst)/(1<<20), "peak-heap-growth-MiB")
	b.SetBytes(size)
	if worst > maxGrowth {
		b.Logf("relaying a %d MiB message grew the heap by %.1f MiB, over the %d MiB target", size>>20, float64(worst)/(1<<20), maxGrowth>>20)
	}
}

// BenchmarkIdleLatency measures the time from a message's arrival in
// INBOX to its storage on the platform, with IDLE; the target is under a
// second (Dovecot itself waits about half a second before notifying). It
// reports, never fails on a time; sync/servertest/bench measures the delay
// from the server's EXISTS instead.
func BenchmarkIdleLatency(b *testing.B) {
	r := newRig(b, dovecottest.Options{})
	r.start(func(o *Options) { o.PollInterval, o.IdleRefresh = time.Hour, time.Hour })
	waitState(b, r, "up to date")
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r.appendMsg("INBOX", i, 1500, time.Now())
		r.waitStored(i+1, 30*time.Second)
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
	if worst > time.Second {
		b.Logf("a new message took %v to reach the platform, over the 1 s target", worst)
	}
}
