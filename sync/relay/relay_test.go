package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"
)

// uploadServer is an HTTPS server offering HTTP/2, as a platform does,
// that answers every upload 201 and notes how it came.
type uploadServer struct {
	srv *httptest.Server
	ca  string

	mu      gosync.Mutex
	conns   map[string]bool // remote addresses seen
	protos  map[int]int     // ProtoMajor → requests
	headers []http.Header
	bodies  [][]byte
}

func startUploadServer(t *testing.T) *uploadServer {
	t.Helper()
	u := &uploadServer{conns: map[string]bool{}, protos: map[int]int{}}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		u.mu.Lock()
		u.conns[r.RemoteAddr] = true
		u.protos[r.ProtoMajor]++
		u.headers = append(u.headers, r.Header.Clone())
		u.bodies = append(u.bodies, body)
		u.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	u.srv.EnableHTTP2 = true
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	u.ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(u.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return u
}

func message(i int) (Message, []byte) {
	body := []byte(fmt.Sprintf("From: a@b.test\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i))
	sum := sha256.Sum256(body)
	return Message{
		Account: "alice@acme.test", Mailbox: "inbox", Folder: "Boîte/reçue", UID: uint32(i + 1), UIDValidity: 42,
		InternalDate: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), Flags: []string{`\Seen`, `$Label1`},
		Key: hex.EncodeToString(sum[:]), Size: int64(len(body)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}, body
}

// TestUploadsShareOneHTTP2Connection sends many uploads at once and checks
// they all went over HTTP/2 on a single connection, each with the headers
// and body the relay API asks for.
func TestUploadsShareOneHTTP2Connection(t *testing.T) {
	u := startUploadServer(t)
	c, err := New(Options{BaseURL: u.srv.URL + "/connector", CAFile: u.ca, Token: "tok-123"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One upload first: concurrent first requests may each dial before
	// HTTP/2 is known to be spoken.
	m, _ := message(0)
	if err := c.Upload(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg gosync.WaitGroup
	errs := make([]error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := message(i)
			errs[i-1] = c.Upload(context.Background(), m)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.conns) != 1 || u.protos[2] != n+1 {
		t.Fatalf("%d connections, requests by HTTP version %v; want 1 connection, %d HTTP/2 requests", len(u.conns), u.protos, n+1)
	}
	for i, h := range u.headers {
		uid := h.Get("Relay-UID")
		var idx int
		fmt.Sscan(uid, &idx)
		m, body := message(idx - 1)
		want := map[string]string{
			"Content-Type":        "message/rfc822",
			"Authorization":       "Bearer tok-123",
			"User-Agent":          UserAgent(),
			"Idempotency-Key":     m.Key,
			"Relay-Account":       "alice@acme.test",
			"Relay-Mailbox":       "inbox",
			"Relay-Folder":        "Bo%C3%AEte%2Fre%C3%A7ue",
			"Relay-UIDValidity":   "42",
			"Relay-Internal-Date": "2026-03-04T05:06:07Z",
			"Relay-Flags":         `\Seen $Label1`,
		}
		for k, v := range want {
			if got := h.Values(k); len(got) != 1 || got[0] != v {
				t.Fatalf("request %d: %s is %q, want %q", i, k, got, v)
			}
		}
		if h.Get("Content-Encoding") != "" {
			t.Fatalf("request %d: a small body was sent with Content-Encoding %q", i, h.Get("Content-Encoding"))
		}
		if !bytes.Equal(u.bodies[i], body) {
			t.Fatalf("request %d: body %q, want %q", i, u.bodies[i], body)
		}
	}
}
