package smtpsend

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// MaxReply is the most a server may send in answer to one command (a
// greeting, an EHLO list, a refusal): go-smtp bounds each line to 2000
// bytes, not their number.
const MaxReply = 1 << 20

// ReplyTooLongError means the server sent more than MaxReply bytes in one
// answer: it is broken or hostile, and the connection is dropped.
type ReplyTooLongError struct{ Server string }

// Error names the server and the bound it passed.
func (e *ReplyTooLongError) Error() string {
	return fmt.Sprintf("%s sent more than %d KiB in one answer, more than any mail server needs: the connection was dropped", e.Server, MaxReply>>10)
}

// deadlineConn is the TCP connection under TLS and go-smtp. It puts a
// deadline on every read and write, whatever go-smtp sets:
//   - a deadline go-smtp sets (a command's answer, the answer to the
//     message's end) is kept, but never further away than maxWait;
//   - a read or write go-smtp left without one (the message body above
//     all) fails when no byte moves for stall: a slow server may take as
//     long as it needs, a silent one is noticed;
//
// and it bounds the bytes read between two writes to MaxReply. It records
// whether a write failed, which tells "the end of the message never left"
// from "it left and the answer did not come".
type deadlineConn struct {
	net.Conn
	server string
	stall  time.Duration

	mu        sync.Mutex
	maxWait   time.Duration // bound on the deadlines go-smtp sets
	rd, wd    time.Time     // the deadlines go-smtp set (zero: none)
	replied   int           // bytes read since the last write
	writeFail bool          // a write failed since the last clearWriteFail
}

func newDeadlineConn(c net.Conn, server string, stall, maxWait time.Duration) *deadlineConn {
	return &deadlineConn{Conn: c, server: server, stall: stall, maxWait: maxWait}
}

func (c *deadlineConn) capped(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if limit := time.Now().Add(c.maxWait); t.After(limit) {
		return limit
	}
	return t
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd, c.wd = c.capped(t), c.capped(t)
	return nil
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = c.capped(t)
	return nil
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd = c.capped(t)
	return nil
}

// setMaxWait changes the bound on go-smtp's deadlines.
func (c *deadlineConn) setMaxWait(d time.Duration) {
	c.mu.Lock()
	c.maxWait = d
	c.mu.Unlock()
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	d := c.rd
	if d.IsZero() {
		d = time.Now().Add(c.stall)
	}
	room := MaxReply - c.replied
	c.mu.Unlock()
	if room <= 0 {
		return 0, &ReplyTooLongError{Server: c.server}
	}
	if len(p) > room {
		p = p[:room]
	}
	c.Conn.SetReadDeadline(d)
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.replied += n
	c.mu.Unlock()
	return n, err
}

// Write writes in pieces, each with its own deadline: a big write keeps
// going as long as the server keeps reading.
func (c *deadlineConn) Write(p []byte) (int, error) {
	const piece = 64 << 10
	done := 0
	for done < len(p) {
		c.mu.Lock()
		d := time.Now().Add(c.stall)
		if !c.wd.IsZero() && c.wd.Before(d) {
			d = c.wd
		}
		c.mu.Unlock()
		c.Conn.SetWriteDeadline(d)
		n, err := c.Conn.Write(p[done:min(len(p), done+piece)])
		done += n
		if err != nil {
			c.mu.Lock()
			c.writeFail = true
			c.mu.Unlock()
			return done, err
		}
	}
	c.mu.Lock()
	c.replied = 0
	c.mu.Unlock()
	return done, nil
}

// clearWriteFail forgets earlier write failures; writeFailed tells whether
// one happened since.
func (c *deadlineConn) clearWriteFail() {
	c.mu.Lock()
	c.writeFail = false
	c.mu.Unlock()
}

func (c *deadlineConn) writeFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeFail
}
