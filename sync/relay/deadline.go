package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultSilence is how long the platform may go without taking a byte of
// a request or sending a byte of its answer before the request is dropped
// (and, for what is retried, retried).
const DefaultSilence = 60 * time.Second

// errSilent is the cause of a request dropped by its watchdog.
var errSilent = errors.New("the platform stopped answering")

// SilenceError is the Err of a TemporaryError for a request the platform
// stopped answering, or stopped taking the body of.
type SilenceError struct {
	After time.Duration
}

// Error says how long the platform went without a byte.
func (e *SilenceError) Error() string {
	return fmt.Sprintf("the platform stopped answering: nothing for %v", e.After)
}

// Once a request's body is all handed to the operating system, up to
// inFlight of its bytes (a socket's send buffer, as Linux sizes it at
// most by default) may still be on their way, at drainRate at the worst
// (256 kbit/s): the platform cannot answer before it has them all, so the
// answer is allowed that long on top of the silence. A platform that takes
// a big message whole and never answers is noticed after at most
// 60 s + 128 s.
const (
	drainRate = 32 << 10 // bytes per second
	inFlight  = 4 << 20
)

// watchdog drops one request when the platform goes silent: a deadline
// that follows the bytes, so a 200 MiB upload may take as long as it
// takes while the platform keeps taking it, and a platform that stops
// taking it, or never answers, is noticed after one silence. The answer
// is allowed, on top, the time the last bytes may take to leave the
// machine's buffers, and a long poll's wait (the outbox's ?wait=).
type watchdog struct {
	silence, wait time.Duration
	cancel        context.CancelCauseFunc
	sent          int64 // bytes of the body handed to the transport

	mu    sync.Mutex
	timer *time.Timer
	done  bool
}

// watch returns ctx with a watchdog for one request, whose answer the
// platform may hold back for wait (a long poll's; 0 for any other).
func (c *Client) watch(ctx context.Context, wait time.Duration, hasBody bool) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{silence: c.silence, wait: max(wait, 0), cancel: cancel}
	first := w.silence
	if !hasBody {
		first += w.wait // the answer is all there is to wait for
	}
	w.timer = time.AfterFunc(first, func() { cancel(errSilent) })
	return ctx, w
}

// kick pushes the deadline d ahead.
func (w *watchdog) kick(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.timer.Reset(d)
	}
}

// stop ends the watch and releases the request's context.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.done = true
	w.timer.Stop()
	w.mu.Unlock()
	w.cancel(context.Canceled)
}

// fired reports whether the watchdog dropped the request of ctx.
func fired(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errSilent) }

// sending is a request body that kicks the watchdog as the transport takes
// it, and allows the answer its wait once it is all sent. err keeps the
// body's own failure (not io.EOF): the request then failed on this
// computer.
type sending struct {
	r   io.Reader
	w   *watchdog
	mu  sync.Mutex
	err error
}

// failed returns the body's own failure, if it had one. The transport may
// still be reading the body when Do returns: safe for concurrent use.
func (s *sending) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *sending) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.w.sent += int64(n)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}
	if err == io.EOF {
		buffered := time.Duration(min(s.w.sent, inFlight)) * time.Second / drainRate
		s.w.kick(s.w.silence + buffered + s.w.wait)
	} else {
		s.w.kick(s.w.silence)
	}
	return n, err
}

// answer is a response body that kicks the watchdog as bytes come, and
// ends the watch when closed.
type answer struct {
	io.ReadCloser
	w *watchdog
}

func (a *answer) Read(p []byte) (int, error) {
	n, err := a.ReadCloser.Read(p)
	a.w.kick(a.w.silence)
	return n, err
}

func (a *answer) Close() error {
	err := a.ReadCloser.Close()
	a.w.stop()
	return err
}
