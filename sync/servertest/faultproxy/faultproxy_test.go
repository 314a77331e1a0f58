package faultproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// guard bounds every wait in these tests: it only stops a broken proxy from
// hanging the run, it is never what a test measures.
const guard = 10 * time.Second

// target is a TCP server whose accepted connections the test drives.
type target struct {
	ln    net.Listener
	conns chan net.Conn
}

func startTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, conns: make(chan net.Conn, 16)}
	var mu sync.Mutex
	var all []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			all = append(all, c)
			mu.Unlock()
			tg.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range all {
			c.Close()
		}
		mu.Unlock()
	})
	return tg
}

// next returns the target's side of the next connection the proxy made.
func (tg *target) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-tg.conns:
		return c
	case <-time.After(guard):
		t.Fatal("the proxy did not connect to the target")
		return nil
	}
}

// pair dials the proxy and returns the client's and the target's side.
func pair(t *testing.T, p *Proxy, tg *target) (client, server net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client, tg.next(t)
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(guard))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// readToEOF reads until the connection ends and returns what came.
func readToEOF(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(guard))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("read to the end: %v (after %d bytes)", err, len(b))
	}
	return b
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// silent fails unless nothing arrives on c for a while. A broken proxy
// fails it; a working one can never.
func silent(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, %v; want nothing", what, n, err)
	}
}

func waitFor(t *testing.T, p *Proxy, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := p.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestForwardsBothWaysAndHalfCloses(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	client, server := pair(t, p, tg)
	waitFor(t, p, "one open connection", func() bool { return p.Open() == 1 })

	if _, err := client.Write([]byte("a1 LOGIN\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, server, 10); string(got) != "a1 LOGIN\r\n" {
		t.Fatalf("the target got %q", got)
	}
	big := random(3 << 20)
	go server.Write(big)
	if got := readN(t, client, len(big)); !bytes.Equal(got, big) {
		t.Fatal("the client got other bytes than the target sent")
	}
	if p.Bytes(Upstream) != 10 || p.Bytes(Downstream) != int64(len(big)) {
		t.Fatalf("Bytes: up %d, down %d; want 10, %d", p.Bytes(Upstream), p.Bytes(Downstream), len(big))
	}

	// The client's end of writing reaches the target; the target can still answer.
	client.(*net.TCPConn).CloseWrite()
	if rest := readToEOF(t, server); len(rest) != 0 {
		t.Fatalf("the target read %d more bytes before EOF", len(rest))
	}
	server.Write([]byte("* BYE\r\n"))
	server.Close()
	if got := readToEOF(t, client); string(got) != "* BYE\r\n" {
		t.Fatalf("after half-close the client got %q", got)
	}
	waitFor(t, p, "no open connection", func() bool { return p.Open() == 0 })
	if p.Accepted() != 1 {
		t.Fatalf("Accepted = %d, want 1", p.Accepted())
	}
}

func TestFreezeHoldsBytesUntilThaw(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	client, server := pair(t, p, tg)

	p.Freeze()
	server.Write([]byte("* OK greeting\r\n"))
	client.Write([]byte("a1 NOOP\r\n"))
	silent(t, client, "downstream while frozen")
	silent(t, server, "upstream while frozen")
	if p.Open() != 1 {
		t.Fatalf("Open = %d while frozen, want 1: the connection must stay open", p.Open())
	}
	if p.Bytes(Upstream) != 0 || p.Bytes(Downstream) != 0 {
		t.Fatalf("forwarded %d up, %d down while frozen", p.Bytes(Upstream), p.Bytes(Downstream))
	}

	// A connection made while frozen is accepted and connected, and silent.
	client2, server2 := pair(t, p, tg)
	server2.Write([]byte("* OK second\r\n"))
	silent(t, client2, "a new connection while frozen")

	p.Thaw()
	if got := readN(t, client, 15); string(got) != "* OK greeting\r\n" {
		t.Fatalf("after Thaw the client got %q", got)
	}
	if got := readN(t, server, 9); string(got) != "a1 NOOP\r\n" {
		t.Fatalf("after Thaw the target got %q", got)
	}
	if got := readN(t, client2, 13); string(got) != "* OK second\r\n" {
		t.Fatalf("after Thaw the second client got %q", got)
	}
}

// TestFreezeMidStream freezes while a large transfer runs: the bytes held
// are delivered whole and in order after Thaw.
func TestFreezeMidStream(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	client, server := pair(t, p, tg)
	big := random(8 << 20)
	go server.Write(big)
	head := readN(t, client, 1<<20)
	p.Freeze()
	// Bytes counts a piece when it is taken, so what it says once Freeze
	// has returned is all that may still arrive.
	before := p.Bytes(Downstream)
	rest := make([]byte, 0, len(big))
	rest = append(rest, head...)
	for int64(len(rest)) < before {
		rest = append(rest, readN(t, client, int(before)-len(rest))...)
	}
	silent(t, client, "the rest of the transfer while frozen")
	if p.Bytes(Downstream) != before {
		t.Fatalf("forwarded %d bytes after Freeze", p.Bytes(Downstream)-before)
	}
	p.Thaw()
	rest = append(rest, readN(t, client, len(big)-len(rest))...)
	if !bytes.Equal(rest, big) {
		t.Fatal("bytes held while frozen came out different")
	}
}

func TestCutAfter(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())

	t.Run("downstream mid-literal", func(t *testing.T) {
		client, server := pair(t, p, tg)
		server.Write([]byte("* OK\r\n"))
		readN(t, client, 6) // bytes before the cut is armed do not count
		cut := p.CutAfter(Downstream, 1000)
		body := random(5000)
		go server.Write(append([]byte("* 1 FETCH (BODY[] {5000}\r\n"), body...))
		got := readToEOF(t, client)
		want := append([]byte("* 1 FETCH (BODY[] {5000}\r\n"), body...)[:1000]
		if !bytes.Equal(got, want) {
			t.Fatalf("the client got %d bytes before the end, want exactly the first 1000", len(got))
		}
		select {
		case <-cut:
		default:
			t.Fatal("the cut's channel is not closed after the cut")
		}
		// The target's side ends too.
		if rest := readToEOF(t, server); len(rest) != 0 {
			t.Fatalf("the target read %d bytes", len(rest))
		}
		waitFor(t, p, "the cut connection to be gone", func() bool { return p.Open() == 0 })
	})

	t.Run("fires once", func(t *testing.T) {
		client, server := pair(t, p, tg)
		msg := random(4000)
		go server.Write(msg)
		if got := readN(t, client, len(msg)); !bytes.Equal(got, msg) {
			t.Fatal("a connection after the cut did not get its bytes")
		}
	})

	t.Run("upstream at zero", func(t *testing.T) {
		client, server := pair(t, p, tg)
		cut := p.CutAfter(Upstream, 0)
		client.Write([]byte("a1 APPEND INBOX {10}\r\n"))
		if got := readToEOF(t, server); len(got) != 0 {
			t.Fatalf("the target got %q, want nothing", got)
		}
		<-cut
		if got := readToEOF(t, client); len(got) != 0 {
			t.Fatalf("the client got %q", got)
		}
	})

	t.Run("disarmed", func(t *testing.T) {
		p.CutAfter(Downstream, 10)
		p.CutAfter(Downstream, -1)
		client, server := pair(t, p, tg)
		go server.Write(random(100))
		readN(t, client, 100)
	})
}

func TestTrickle(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	client, server := pair(t, p, tg)
	p.Trickle(1000) // pieces of 100 bytes, 100 ms apart
	msg := random(400)
	began := time.Now()
	go server.Write(msg)
	got := readN(t, client, len(msg))
	// A lower bound only: three pauses come before the last piece.
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Fatalf("400 bytes at 1000 B/s arrived in %v", took)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("trickled bytes differ")
	}
	p.Trickle(0)
	big := random(4 << 20)
	go server.Write(big)
	if got := readN(t, client, len(big)); !bytes.Equal(got, big) {
		t.Fatal("bytes after Trickle(0) differ")
	}
}

func TestLatency(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	client, server := pair(t, p, tg)
	p.Latency(400 * time.Millisecond)
	began := time.Now()
	client.Write([]byte("ping"))
	if got := readN(t, server, 4); string(got) != "ping" {
		t.Fatalf("the target got %q", got)
	}
	server.Write([]byte("pong"))
	if got := readN(t, client, 4); string(got) != "pong" {
		t.Fatalf("the client got %q", got)
	}
	if took := time.Since(began); took < 800*time.Millisecond {
		t.Fatalf("a round trip with 400 ms each way took %v", took)
	}
}

func TestRefuse(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	p.Refuse(true)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readToEOF(t, c); len(got) != 0 {
		t.Fatalf("a refused client got %q", got)
	}
	waitFor(t, p, "one refusal", func() bool { return p.Refused() == 1 })
	if p.Accepted() != 0 {
		t.Fatalf("Accepted = %d, want 0", p.Accepted())
	}
	select {
	case <-tg.conns:
		t.Fatal("the proxy connected to the target for a refused client")
	default:
	}

	p.Refuse(false)
	client, server := pair(t, p, tg)
	server.Write([]byte("hi"))
	if got := readN(t, client, 2); string(got) != "hi" {
		t.Fatalf("got %q after Refuse(false)", got)
	}
	if p.Accepted() != 1 {
		t.Fatalf("Accepted = %d, want 1", p.Accepted())
	}
}

func TestUnreachableTargetClosesTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := Start(t, dead)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readToEOF(t, c); len(got) != 0 {
		t.Fatalf("got %q", got)
	}
}

func TestCloseAll(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	c1, s1 := pair(t, p, tg)
	c2, s2 := pair(t, p, tg)
	waitFor(t, p, "two open connections", func() bool { return p.Open() == 2 })
	p.Freeze() // even frozen connections are closed
	p.CloseAll()
	for i, c := range []net.Conn{c1, c2, s1, s2} {
		if got := readToEOF(t, c); len(got) != 0 {
			t.Fatalf("side %d got %q", i, got)
		}
	}
	if p.Open() != 0 {
		t.Fatalf("Open = %d after CloseAll", p.Open())
	}
	p.Thaw()
	c3, s3 := pair(t, p, tg)
	s3.Write([]byte("ok"))
	if got := readN(t, c3, 2); string(got) != "ok" {
		t.Fatalf("after CloseAll a new connection got %q", got)
	}
}

// TestCloseEndsEveryGoroutine closes a proxy with frozen, delayed and
// trickling connections in flight and checks that no goroutine of it is left.
func TestCloseEndsEveryGoroutine(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	var servers []net.Conn
	for range 3 {
		c, s := pair(t, p, tg)
		servers = append(servers, s)
		go c.Write(random(1 << 20))
		go s.Write(random(1 << 20))
	}
	p.Latency(time.Hour)
	p.Trickle(1)
	p.Freeze()
	p.CutAfter(Downstream, 1<<40)
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(guard):
		t.Fatal("Close did not return")
	}
	for _, s := range servers {
		readToEOF(t, s) // the target's side ends
	}
	deadline := time.Now().Add(guard)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "faultproxy.(*Proxy)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of the proxy left after Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
	p.Close() // idempotent
}

// TestConcurrentFaults changes every fault while connections carry bytes;
// with -race it checks the proxy's locking, and the bytes still arrive whole.
func TestConcurrentFaults(t *testing.T) {
	tg := startTarget(t)
	p := Start(t, tg.ln.Addr().String())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Freeze()
			p.Latency(time.Duration(i%3) * time.Millisecond)
			p.Trickle(0)
			p.Thaw()
			_ = p.Open() + p.Accepted() + int(p.Bytes(Upstream))
			time.Sleep(time.Millisecond)
		}
	}()
	for range 4 {
		client, server := pair(t, p, tg)
		msg := random(256 << 10)
		go server.Write(msg)
		if got := readN(t, client, len(msg)); !bytes.Equal(got, msg) {
			t.Fatal("bytes differ under changing faults")
		}
	}
	close(stop)
	wg.Wait()
	p.Thaw()
}

func TestDirectionString(t *testing.T) {
	if Upstream.String() != "upstream" || Downstream.String() != "downstream" || Direction(7).String() != "Direction(7)" {
		t.Fatal(Upstream.String(), Downstream.String(), Direction(7).String())
	}
}
