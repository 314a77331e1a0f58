package imapsync

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// DefaultSilence is how long the server may stay silent while the
// connector waits for it (a greeting, an answer, the next bytes of a
// message) before the connection is dropped.
const DefaultSilence = 60 * time.Second

// watch is the TCP connection under TLS and go-imap, with deadlines that
// follow the work rather than the clock: while the connector waits for the
// server (a step is awaited), the server must send a byte at least every
// silence, so a 100 MiB literal may take many minutes as long as its bytes
// keep coming, and a frozen server is noticed after one silence. While
// nothing is awaited (IDLE, a poll's sleep, the engine busy with uploads),
// reading has no deadline. Every write must progress within silence.
//
// go-imap sets deadlines of its own (30 s for a response, 5 min for a
// whole literal, none between responses); the watch owns the deadlines, so
// it ignores them. Safe for concurrent use: go-imap's reader goroutine
// reads while the owner arms and disarms.
type watch struct {
	net.Conn
	silence time.Duration
	now     func() time.Time

	mu    sync.Mutex
	what  string // the step awaited, "" when none
	fired string // the step during which the server fell silent, "" if none
	dead  error  // the timeout every read and write returns once it fell silent
}

func newWatch(c net.Conn, silence time.Duration) *watch {
	if silence <= 0 {
		silence = DefaultSilence
	}
	// The greeting and the TLS handshake are awaited from the start.
	w := &watch{Conn: c, silence: silence, now: time.Now, what: "waiting for the greeting"}
	c.SetReadDeadline(w.now().Add(silence))
	return w
}

// await arms the watch for a step (named for a person: "reading message
// UID 42") and returns the function that ends the step, giving the watch
// back to the step around it, if any (steps nest: FindMessageID opens a
// folder).
func (w *watch) await(what string) (done func()) {
	w.mu.Lock()
	prev := w.what
	w.arm(what)
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.arm(prev)
		w.mu.Unlock()
	}
}

// rest disarms the watch: nothing is awaited from the server.
func (w *watch) rest() {
	w.mu.Lock()
	w.arm("")
	w.mu.Unlock()
}

// arm awaits what ("" for nothing); w.mu is held.
func (w *watch) arm(what string) {
	w.what = what
	if what == "" {
		w.Conn.SetReadDeadline(time.Time{})
	} else {
		w.Conn.SetReadDeadline(w.now().Add(w.silence))
	}
}

// silent returns the step during which the server fell silent, if it did.
func (w *watch) silent() (step string, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired, w.fired != ""
}

func (w *watch) Read(p []byte) (int, error) {
	w.mu.Lock()
	if w.dead != nil {
		// Once silent, always: go-imap's decoder reads on after an error,
		// and crypto/tls lets a timed-out read be tried again, each time
		// for a whole silence.
		err := w.dead
		w.mu.Unlock()
		return 0, err
	}
	if w.what != "" {
		w.Conn.SetReadDeadline(w.now().Add(w.silence))
	}
	w.mu.Unlock()
	n, err := w.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.mu.Lock()
		if w.what != "" && w.fired == "" {
			w.fired, w.dead = w.what, err
		}
		w.mu.Unlock()
	}
	return n, err
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	dead := w.dead
	w.mu.Unlock()
	if dead != nil {
		return 0, dead
	}
	w.Conn.SetWriteDeadline(w.now().Add(w.silence))
	n, err := w.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.mu.Lock()
		if w.fired == "" {
			w.fired, w.dead = "sending to the server", err
			if w.what != "" {
				w.fired = w.what
			}
		}
		w.mu.Unlock()
	}
	return n, err
}

// SetDeadline, SetReadDeadline and SetWriteDeadline are ignored: the watch
// owns the deadlines (see watch).
func (w *watch) SetDeadline(time.Time) error      { return nil }
func (w *watch) SetReadDeadline(time.Time) error  { return nil }
func (w *watch) SetWriteDeadline(time.Time) error { return nil }
