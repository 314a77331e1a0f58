package state

import (
	gosync "sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// committer group-commits small writes (the checkpoint marks, one per
// relayed message) without bbolt's Batch timer: one goroutine commits
// whatever writes are waiting, in one transaction (one pair of fsyncs), as
// soon as the previous commit is done. A lone write (new mail) waits for
// nothing; writes that arrive during a commit share the next one. When
// several write at once (a backfill), the goroutine gives the others a
// moment (gather) to join before it commits: each commit rewrites the
// pages it touches, so on a fast disk many small commits cost more CPU
// than the waits they save.
type committer struct {
	db *bolt.DB

	mu      gosync.Mutex
	queue   []*write
	started bool
	closed  bool
	wake    chan struct{} // buffer of one
	stopped chan struct{} // closed when the goroutine returned
}

// write is one do call waiting for its commit.
type write struct {
	fn   func(*bolt.Tx) error
	done chan error // buffer of one
}

func newCommitter(db *bolt.DB) *committer {
	return &committer{db: db, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// do runs fn in a read-write transaction shared with other concurrent
// calls and returns once that transaction is committed, with fn's error
// or the commit's. As with bbolt's Batch, fn may run more than once (when
// a write of the same transaction fails, each is run again alone), so it
// must only act on the database; an error from fn fails only its caller.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return bolt.ErrDatabaseNotOpen
	}
	c.queue = append(c.queue, w)
	if !c.started {
		c.started = true
		go c.run()
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return <-w.done
}

// gather is how long a commit waits for more writes when several are
// coming in at once; maxBatch ends the wait early.
const (
	gather   = time.Millisecond
	maxBatch = 256
)

func (c *committer) run() {
	defer close(c.stopped)
	busy := false // the last commit held more than one write
	for range c.wake {
		for {
			batch, closed := c.take(nil)
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			if (busy || len(batch) > 1) && len(batch) < maxBatch && !closed {
				time.Sleep(gather)
				batch, _ = c.take(batch)
			}
			busy = len(batch) > 1
			c.commit(batch)
		}
	}
}

// take appends the queued writes to batch and empties the queue.
func (c *committer) take(batch []*write) ([]*write, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	batch = append(batch, c.queue...)
	c.queue = nil
	return batch, c.closed
}

// commit runs batch in one transaction. Should it fail, each write is run
// again alone, so that one failing write fails only its own caller.
func (c *committer) commit(batch []*write) {
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, w := range batch {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, w := range batch {
			w.done <- err
		}
		return
	}
	for _, w := range batch {
		w.done <- c.db.Update(w.fn)
	}
}

// close commits what is queued and stops the goroutine. Later calls to do
// fail.
func (c *committer) close() {
	c.mu.Lock()
	already, started := c.closed, c.started
	c.closed = true
	c.mu.Unlock()
	if already || !started {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.stopped
}
