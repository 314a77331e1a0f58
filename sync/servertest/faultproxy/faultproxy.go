// Package faultproxy is a TCP proxy for tests that stands between a client
// and a real server (Dovecot, an SMTP server, the reference platform) and
// misbehaves on demand: it goes silent with the connections open (Freeze),
// cuts a connection after a given number of bytes (CutAfter, to cut in the
// middle of a literal or an upload), lets bytes through slowly (Trickle),
// delays them (Latency) or refuses new connections (Refuse).
//
// It forwards bytes only; TLS passes through untouched, so a client that
// dials the proxy's address must accept the server's certificate for
// 127.0.0.1 (the test servers' certificates name it).
//
// Shopify's toxiproxy is served as a Go module, but its "timeout" toxic drops
// the bytes it holds (nothing can be thawed), its bandwidth is counted in
// KB/s, and it runs under an API server with metrics: this small proxy does
// what the tests need and nothing else.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Direction is one way bytes flow through the proxy.
type Direction int

const (
	// Upstream is from the client (who dialed the proxy) to the server.
	Upstream Direction = iota
	// Downstream is from the server to the client.
	Downstream
)

// String returns "upstream" or "downstream".
func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// chunkSize is the most a direction reads at once; queued chunks per
// direction bound what the proxy holds while frozen or delaying.
const (
	chunkSize = 32 << 10
	queued    = 4
)

// dialTimeout bounds the dial to the target, so a test whose target does
// not answer fails instead of hanging the proxy's cleanup.
const dialTimeout = 10 * time.Second

// Proxy forwards every TCP connection made to Addr to the target, with the
// faults currently set. The zero faults forward bytes as they come. Its
// methods are safe for concurrent use; a fault set applies to every
// connection, open or future, from the moment the setter returns (a write
// already under way finishes).
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // cancelled by Close: ends dials and waits
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu       sync.Mutex
	change   chan struct{} // closed and replaced on every change; see Wait
	closed   bool
	frozen   bool
	refuse   bool
	latency  time.Duration
	rate     int // bytes per second per direction and connection; 0 = unlimited
	cuts     [2]*cut
	links    map[*link]struct{}
	accepted int
	refused  int
	bytes    [2]int64
}

// cut is an armed CutAfter: the connection carrying byte left of its
// direction is closed right after that byte.
type cut struct {
	left int64
	done chan struct{}
}

// link is one client connection and its connection to the target.
type link struct {
	client, server net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

// Start starts a proxy to target (host:port) on 127.0.0.1 and a free port.
// It is closed when the test ends (see Close). It fails the test when it
// cannot listen; a target that cannot be reached only closes each client
// connection, as a dead server behind a live address would.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target, ln: ln, ctx: ctx, cancel: cancel,
		change: make(chan struct{}),
		links:  map[*link]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the address clients dial instead of the target: 127.0.0.1
// and the proxy's port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close stops listening, closes every connection and returns once every
// goroutine of the proxy has ended. It is idempotent; Start registers it as
// a test cleanup.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	links := p.takeLinksLocked()
	p.changedLocked()
	p.mu.Unlock()
	p.cancel()
	_ = p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
}

// Freeze stops forwarding in both directions on every connection, open or
// new, while keeping them open: to both sides the other one has gone
// silent. Bytes that arrive meanwhile are held (a few chunks, then TCP's
// flow control pushes back), not dropped: Thaw delivers them in order.
func (p *Proxy) Freeze() { p.set(func() { p.frozen = true }) }

// Thaw undoes Freeze: held bytes flow on.
func (p *Proxy) Thaw() { p.set(func() { p.frozen = false }) }

// Refuse makes the proxy close every new connection as soon as it is
// accepted (on) or forward them again (off). Open connections are not
// touched.
func (p *Proxy) Refuse(on bool) { p.set(func() { p.refuse = on }) }

// Latency delays every chunk of bytes by d after it was read, in both
// directions, without lowering the throughput. 0 removes the delay.
func (p *Proxy) Latency(d time.Duration) { p.set(func() { p.latency = max(d, 0) }) }

// Trickle limits each direction of each connection to about bytesPerSecond,
// sending at least one byte at a time (in pieces of a tenth of the rate).
// 0 or less removes the limit.
func (p *Proxy) Trickle(bytesPerSecond int) { p.set(func() { p.rate = max(bytesPerSecond, 0) }) }

// CutAfter arms a cut: after n more bytes have been forwarded in direction
// dir (counted over all connections), the connection that carried the n-th
// byte is closed at once, in both directions, right after that byte; the
// client sees exactly those bytes, then EOF. n = 0 cuts the next connection
// that has a byte to forward in dir, before it. The cut fires once; the
// returned channel is closed when it has. A new CutAfter in the same
// direction replaces an armed one (whose channel is then never closed);
// n < 0 disarms it.
func (p *Proxy) CutAfter(dir Direction, n int64) <-chan struct{} {
	c := &cut{left: n, done: make(chan struct{})}
	p.set(func() {
		if n < 0 {
			p.cuts[dir] = nil
			return
		}
		p.cuts[dir] = c
	})
	return c.done
}

// CloseAll closes every open connection, as a network drop would (each
// side sees its connection end); the proxy keeps accepting new ones.
func (p *Proxy) CloseAll() {
	p.mu.Lock()
	links := p.takeLinksLocked()
	p.changedLocked()
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Accepted returns how many connections the proxy has accepted and
// forwarded so far (refused ones are not counted).
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Refused returns how many connections were closed at once because of
// Refuse.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Open returns how many forwarded connections are open now (both the
// client's and the target's side).
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Bytes returns how many bytes the proxy has forwarded in dir so far, over
// all connections.
func (p *Proxy) Bytes(dir Direction) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes[dir]
}

// Wait blocks until cond returns true, ctx is done (ctx.Err()) or the proxy
// is closed with cond still false. Cond is evaluated at once and after
// every change the accessors report (a connection accepted, refused or
// closed, bytes forwarded, a fault set), with no lock held, so it may call
// them.
func (p *Proxy) Wait(ctx context.Context, cond func() bool) error {
	for {
		p.mu.Lock()
		ch, closed := p.change, p.closed
		p.mu.Unlock()
		if cond() {
			return nil
		}
		if closed {
			return errors.New("faultproxy: closed")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Proxy) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	p.changedLocked()
}

// changedLocked wakes Wait and the frozen writers. Call with mu held.
func (p *Proxy) changedLocked() {
	close(p.change)
	p.change = make(chan struct{})
}

func (p *Proxy) takeLinksLocked() []*link {
	out := make([]*link, 0, len(p.links))
	for l := range p.links {
		out = append(out, l)
		delete(p.links, l)
	}
	return out
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return // closed
		}
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			_ = c.Close()
			return
		case p.refuse:
			p.refused++
			p.changedLocked()
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.accepted++
		p.changedLocked()
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

// serve dials the target for one client connection and forwards both ways.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.changedLocked()
	p.mu.Unlock()

	var halves sync.WaitGroup
	halves.Add(2)
	go p.pipe(l, Upstream, client, server, &halves)
	go p.pipe(l, Downstream, server, client, &halves)
	halves.Wait()
	l.close()
	p.mu.Lock()
	if _, ok := p.links[l]; ok {
		delete(p.links, l)
		p.changedLocked()
	}
	p.mu.Unlock()
}

type chunk struct {
	data []byte
	at   time.Time // when it was read
}

// pipe forwards one direction of a link: a reader fills a short queue, the
// writer applies the faults. When src ends cleanly the end is passed on
// (half-close) once everything read was written; any error closes the link.
func (p *Proxy) pipe(l *link, dir Direction, src, dst net.Conn, halves *sync.WaitGroup) {
	defer halves.Done()
	q := make(chan chunk, queued)
	readErr := make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(q)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{data: buf[:n], at: time.Now()}:
				case <-l.done:
					readErr <- net.ErrClosed
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()

	for c := range q {
		if !p.forward(l, dir, dst, c) {
			l.close()
			for range q { // let the reader end
			}
			return
		}
	}
	if err := <-readErr; !errors.Is(err, io.EOF) {
		l.close()
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// forward writes one chunk to dst under the current faults. It reports
// false when the link must close (a cut, a write error, the link closed).
func (p *Proxy) forward(l *link, dir Direction, dst net.Conn, c chunk) bool {
	if !p.sleepUntil(l, c.at.Add(p.currentLatency())) {
		return false
	}
	data := c.data
	for len(data) > 0 {
		p.mu.Lock()
		// Checked under the lock that takes the piece: once Freeze has
		// returned, no piece starts.
		if p.frozen {
			ch := p.change
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-l.done:
				return false
			}
		}
		rate := p.rate
		piece := data
		if rate > 0 {
			piece = data[:min(len(data), max(1, rate/10))]
		}
		cutHere := false
		if ct := p.cuts[dir]; ct != nil {
			if ct.left <= int64(len(piece)) {
				piece = piece[:ct.left]
				cutHere = true
				p.cuts[dir] = nil
				close(ct.done)
			} else {
				ct.left -= int64(len(piece))
			}
		}
		p.bytes[dir] += int64(len(piece))
		p.changedLocked()
		p.mu.Unlock()

		if len(piece) > 0 {
			if _, err := dst.Write(piece); err != nil {
				return false
			}
		}
		if cutHere {
			// A FIN after the last byte, so the peer reads every byte
			// before the end even if closing sends a reset.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return false
		}
		data = data[len(piece):]
		if rate > 0 && !p.sleepUntil(l, time.Now().Add(time.Duration(len(piece))*time.Second/time.Duration(rate))) {
			return false
		}
	}
	return true
}

func (p *Proxy) currentLatency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

// sleepUntil waits until t; false when the link closed meanwhile.
func (p *Proxy) sleepUntil(l *link, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-l.done:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-l.done:
		return false
	}
}

// String describes the proxy for logs: "faultproxy 127.0.0.1:p -> target".
func (p *Proxy) String() string { return fmt.Sprintf("faultproxy %s -> %s", p.Addr(), p.target) }
