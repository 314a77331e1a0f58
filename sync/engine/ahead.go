package engine

import (
	"context"
	gosync "sync"
)

// aheadBytes is Options.Ahead's default: the bytes of message bodies the
// engine holds between their download and the end of their upload, in
// memory or in spool files, all folders together.
const aheadBytes = 16 << 20

// bodyBudget counts the bytes of the bodies fetched and not yet uploaded
// (or dropped). A fetch takes its group's announced size first and waits
// while that would pass the limit; a group larger than the limit goes
// alone, once nothing else is held. Safe for concurrent use.
type bodyBudget struct {
	limit int64
	turn  chan struct{} // buffer of one: the one acquire waiting for room; the others queue behind it

	mu      gosync.Mutex
	used    int64
	waiting bool
	freed   chan struct{} // closed by a release while waiting
}

func newBodyBudget(limit int64) *bodyBudget {
	return &bodyBudget{limit: limit, turn: make(chan struct{}, 1), freed: make(chan struct{})}
}

// acquire takes n bytes, waiting until they fit (or nothing else is held),
// in turn with the other callers, or until ctx ends.
func (b *bodyBudget) acquire(ctx context.Context, n int64) error {
	select {
	case b.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-b.turn }()
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.waiting = false
			b.mu.Unlock()
			return nil
		}
		b.waiting = true
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take adds n bytes (less when n is negative) without waiting: a body came
// bigger or smaller than announced.
func (b *bodyBudget) take(n int64) {
	if n < 0 {
		b.release(-n)
		return
	}
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// release gives n bytes back.
func (b *bodyBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.waiting {
		close(b.freed)
		b.freed = make(chan struct{})
		b.waiting = false
	}
	b.mu.Unlock()
}

// held returns the bytes held now.
func (b *bodyBudget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// feeder hands one pass's jobs to the upload workers in the order they
// were fetched, so that the folder fetches the next group while these
// wait for a worker. What it holds is bounded by the body budget, taken
// before each fetch.
type feeder struct {
	e *Engine
	t *tracker

	mu     gosync.Mutex
	queue  []*job
	closed bool
	more   chan struct{} // buffer of one
	done   chan struct{} // closed when run returned
}

// newFeeder starts a feeder whose jobs are counted in t. When ctx ends,
// the jobs not yet handed over are dropped: their bodies freed, their
// messages left pending.
func (e *Engine) newFeeder(ctx context.Context, t *tracker) *feeder {
	fd := &feeder{e: e, t: t, more: make(chan struct{}, 1), done: make(chan struct{})}
	go fd.run(ctx)
	return fd
}

// push queues j; j.done is called once it was uploaded or failed, and not
// at all when the feeder drops it.
func (fd *feeder) push(j *job) {
	fd.t.wg.Add(1)
	inner := j.done
	j.done = func(err error) { inner(err); fd.t.wg.Done() }
	fd.mu.Lock()
	if len(fd.queue) == 0 {
		// A worker already waiting takes it at once, without the feeder's
		// goroutine in between.
		select {
		case fd.e.jobs <- j:
			fd.mu.Unlock()
			return
		default:
		}
	}
	fd.queue = append(fd.queue, j)
	fd.mu.Unlock()
	select {
	case fd.more <- struct{}{}:
	default:
	}
}

// close waits until every queued job was handed over or dropped. No push
// may follow.
func (fd *feeder) close() {
	fd.mu.Lock()
	fd.closed = true
	fd.mu.Unlock()
	select {
	case fd.more <- struct{}{}:
	default:
	}
	<-fd.done
}

func (fd *feeder) run(ctx context.Context) {
	defer close(fd.done)
	for {
		fd.mu.Lock()
		// The head stays queued while it is handed over, so that push never
		// passes it.
		var j *job
		if len(fd.queue) > 0 {
			j = fd.queue[0]
		}
		closed := fd.closed
		fd.mu.Unlock()
		if j == nil {
			if closed {
				return
			}
			select {
			case <-fd.more:
			case <-ctx.Done():
				// Nothing queued; wait for close or more, dropping what comes.
				<-fd.more
			}
			continue
		}
		handed := false
		if ctx.Err() == nil {
			select {
			case fd.e.jobs <- j:
				handed = true
			case <-ctx.Done():
			}
		}
		fd.mu.Lock()
		fd.queue[0] = nil
		fd.queue = fd.queue[1:]
		fd.mu.Unlock()
		if !handed {
			fd.e.discard(j)
			fd.t.wg.Done()
		}
	}
}
