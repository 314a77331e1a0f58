package refplatform_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

func TestTLS(t *testing.T) {
	e := start(t)
	u, err := url.Parse(e.p.URL())
	if err != nil || u.Scheme != "https" || u.Path != "/connector" || u.Hostname() != "127.0.0.1" {
		t.Fatalf("URL() = %q, want https://127.0.0.1:PORT/connector", e.p.URL())
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.p.CAPEM())

	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: roots, ServerName: name})
			if err != nil {
				t.Fatalf("handshake as %s: %v", name, err)
			}
			conn.Close()
		})
	}
	t.Run("other name", func(t *testing.T) {
		if conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: roots, ServerName: "example.com"}); err == nil {
			conn.Close()
			t.Fatal("handshake as example.com succeeded")
		}
	})
	t.Run("system roots only", func(t *testing.T) {
		if conn, err := tls.Dial("tcp", u.Host, &tls.Config{ServerName: "localhost"}); err == nil {
			conn.Close()
			t.Fatal("handshake without the CA succeeded")
		}
	})
	t.Run("TLS 1.1", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11}
		if conn, err := tls.Dial("tcp", u.Host, cfg); err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 accepted")
		}
	})
	t.Run("CA is ECDSA", func(t *testing.T) {
		blk, _ := pem.Decode(e.p.CAPEM())
		if blk == nil || blk.Type != "CERTIFICATE" {
			t.Fatalf("CAPEM() = %q, want a CERTIFICATE block", e.p.CAPEM())
		}
		certs, err := x509.ParseCertificates(blk.Bytes)
		if err != nil || len(certs) != 1 || !certs[0].IsCA || certs[0].PublicKeyAlgorithm != x509.ECDSA {
			t.Fatalf("CAPEM: %v %+v", err, certs)
		}
	})
}

func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	p, err := refplatform.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("[::1]:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := &env{t: t, p: p, client: newClient(t, p, false)}
	if u, _ := url.Parse(p.URL()); u.Hostname() != "::1" {
		t.Fatalf("URL() = %s, want host ::1", p.URL())
	}
	e.pair()
}

func TestHTTP2(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	h2 := newClient(t, e.p, true)
	body := message(1)
	req, err := http.NewRequest(http.MethodPost, e.p.URL()+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = uploadHeader(token, body)
	req.Header.Set("User-Agent", userAgent)
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusCreated {
		t.Fatalf("%s %d, want HTTP/2 201", resp.Proto, resp.StatusCode)
	}
}

func TestStartTwice(t *testing.T) {
	e := start(t)
	if err := e.p.Start("127.0.0.1:0"); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestCloseEndsLongPolls(t *testing.T) {
	p, err := refplatform.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(""); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, p: p, client: newClient(t, p, false)}
	token, _ := e.pair()
	statuses := make(chan int, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, p.URL()+"/v1/outbox?wait=60", nil)
			req.Header.Set("User-Agent", userAgent)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := e.client.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	waitParked(t, p, 2)

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for range 2 {
		if s := <-statuses; s != http.StatusNoContent {
			t.Errorf("long poll ended with %d, want 204", s)
		}
	}
	if p.Parked() != 0 {
		t.Errorf("%d long polls still parked after Close", p.Parked())
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Start(""); !errors.Is(err, refplatform.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := p.Wait(context.Background(), func() bool { return false }); !errors.Is(err, refplatform.ErrClosed) {
		t.Errorf("Wait after Close: %v, want ErrClosed", err)
	}
	if n := len(p.Devices()); n != 1 {
		t.Errorf("Devices() after Close: %d, want 1", n)
	}
}

// Handler works on a server of the caller's, and refuses requests once the
// platform is closed.
func TestHandler(t *testing.T) {
	p, err := refplatform.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+refplatform.Prefix+"/v1/pair", bytes.NewReader([]byte(`{}`)))
		req.Header.Set("User-Agent", userAgent)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(); s != http.StatusBadRequest {
		t.Fatalf("open: status %d, want 400", s)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if s := post(); s != http.StatusServiceUnavailable {
		t.Fatalf("closed: status %d, want 503", s)
	}
}

func TestWait(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	body := message(1)
	go func() {
		// Plain client call: e.do would call t.Fatal off the test goroutine.
		req, _ := http.NewRequest(http.MethodPost, e.p.URL()+"/v1/messages", bytes.NewReader(body))
		req.Header = uploadHeader(token, body)
		req.Header.Set("User-Agent", userAgent)
		if resp, err := e.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	e.waitFor("the message", func() bool { return len(e.p.Messages()) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.p.Wait(ctx, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a condition never met: %v, want DeadlineExceeded", err)
	}
}

// Concurrent uploads of one key store one copy.
func TestConcurrentDuplicates(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	body := message(5000)
	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.p.URL()+"/v1/messages", bytes.NewReader(body))
			req.Header = uploadHeader(token, body)
			req.Header.Set("User-Agent", userAgent)
			resp, err := e.client.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusOK] != 7 {
		t.Errorf("statuses %v, want one 201 and seven 200", count)
	}
	if got := dirFiles(t, e.dir); len(got) != 1 {
		t.Errorf("files in dir: %v, want one", got)
	}
}

// A 30 MiB upload is streamed to disk: stored byte for byte, without the
// platform allocating anything like its size.
func TestLargeUploadStreams(t *testing.T) {
	for _, proto := range []struct {
		name string
		h2   bool
	}{{"HTTP/1.1", false}, {"HTTP/2", true}} {
		t.Run(proto.name, func(t *testing.T) {
			const size = 30 << 20
			e := start(t)
			token, _ := e.pair()
			client := newClient(t, e.p, proto.h2)
			seed := [32]byte{1, 2, 3}
			gen := func() io.Reader { return io.LimitReader(rand.NewChaCha8(seed), size) }
			h := sha256.New()
			if _, err := io.Copy(h, gen()); err != nil {
				t.Fatal(err)
			}
			key := hex.EncodeToString(h.Sum(nil))

			req, err := http.NewRequest(http.MethodPost, e.p.URL()+"/v1/messages", gen())
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = size
			req.Header = uploadHeader(token, nil)
			req.Header.Set("Idempotency-Key", key)
			req.Header.Set("User-Agent", userAgent)

			peak := watchHeap(t)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			growth := peak()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d, want 201", resp.StatusCode)
			}
			// Client and server together: a body held in memory, even
			// briefly, would grow the heap by at least its 30 MiB.
			t.Logf("heap grew by at most %d KiB during the upload", growth>>10)
			if growth > 16<<20 {
				t.Errorf("heap grew by %d MiB during a %d MiB upload", growth>>20, size>>20)
			}

			m, ok := e.p.Message(key)
			if !ok || m.Size != size {
				t.Fatalf("Message(%s) = %+v, %v", key, m, ok)
			}
			f, err := m.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := sameBytes(f, gen()); err != nil {
				t.Fatalf("stored body: %v", err)
			}
		})
	}
}

// watchHeap samples the heap every millisecond from now on; the function it
// returns stops sampling and returns the largest growth seen.
func watchHeap(t *testing.T) (stop func() uint64) {
	t.Helper()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	var peak uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, read())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		if peak < base {
			return 0
		}
		return peak - base
	}
}

// sameBytes reports where a and b first differ, if they do.
func sameBytes(a, b io.Reader) error {
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return fmt.Errorf("contents differ in the %d bytes from offset %d", len(bufA), off)
		}
		off += int64(na)
		endA := errA == io.EOF || errA == io.ErrUnexpectedEOF
		endB := errB == io.EOF || errB == io.ErrUnexpectedEOF
		switch {
		case endA && endB:
			return nil
		case endA != endB:
			return errors.New("lengths differ")
		case errA != nil:
			return errA
		case errB != nil:
			return errB
		}
	}
}
