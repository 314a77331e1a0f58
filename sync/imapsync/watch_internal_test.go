package imapsync

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestSilenceIsFinal: once the server fell silent, every later read fails
// at once with the same timeout. go-imap's decoder reads on after an
// error, and crypto/tls lets a timed-out read be tried again: each of those
// reads must not wait a whole silence again (four of them made a 60 s
// silence a 4-minute one against a frozen Dovecot).
func TestSilenceIsFinal(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	w := newWatch(client, 50*time.Millisecond)
	defer w.Close()
	w.await("reading messages")
	if _, err := w.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read from a silent peer = %v, want a timeout", err)
	}
	// A read that waited a silence again would now wait an hour.
	w.mu.Lock()
	w.silence = time.Hour
	w.mu.Unlock()
	done := make(chan error, 1)
	go func() { _, err := w.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after the silence = %v, want the same timeout", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a read after the silence waited again")
	}
	if _, err := w.Write([]byte("a")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after the silence = %v, want the timeout", err)
	}
	if step, ok := w.silent(); !ok || step != "reading messages" {
		t.Fatalf("silent() = %q, %v", step, ok)
	}
}

// TestRestingReadsWait: while nothing is awaited (IDLE, between commands),
// a quiet server is not silent: the read waits for as long as it takes.
func TestRestingReadsWait(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	w := newWatch(client, 20*time.Millisecond)
	defer w.Close()
	w.rest()
	got := make(chan error, 1)
	go func() { _, err := w.Read(make([]byte, 1)); got <- err }()
	time.Sleep(200 * time.Millisecond) // ten silences, during which nothing may fail
	if _, err := server.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("a read while resting failed: %v", err)
	}
}
