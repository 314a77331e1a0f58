package bench

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

// Platform is the reference platform served over HTTPS with HTTP/2 on
// loopback, as a platform on the same machine. It can take Delay longer to
// answer each upload (a slower platform), and it notes when each upload
// was answered, for the new-mail latency.
type Platform struct {
	Ref    *refplatform.Platform
	URL    string // base URL of the API
	CAFile string // the PEM a client must trust

	delay  time.Duration
	srv    *httptest.Server
	stored atomic.Int64 // uploads answered 201

	mu       sync.Mutex
	answered map[string]time.Time // Idempotency-Key → when answered 201; nil unless tracked
}

// StartPlatform starts a fresh platform keeping its bodies in dir. Every
// upload is answered no sooner than delay after it began. With track, the
// time of each 201 is kept (see StoredAt).
func StartPlatform(dir string, delay time.Duration, track bool) (*Platform, error) {
	ref, err := refplatform.New(filepath.Join(dir, "messages"))
	if err != nil {
		return nil, err
	}
	p := &Platform{Ref: ref, delay: delay}
	if track {
		p.answered = map[string]time.Time{}
	}
	inner := ref.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != refplatform.Prefix+"/v1/messages" {
			inner.ServeHTTP(w, r)
			return
		}
		inner.ServeHTTP(&answerWriter{ResponseWriter: w, p: p, key: r.Header.Get("Idempotency-Key"), until: time.Now().Add(delay)}, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	p.srv = srv
	p.URL = srv.URL + refplatform.Prefix
	p.CAFile = filepath.Join(dir, "platform-ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p.CAFile, caPEM, 0o600); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// answerWriter holds the answer back until its time, and notes a 201.
type answerWriter struct {
	http.ResponseWriter
	p     *Platform
	key   string
	until time.Time
	wrote bool
}

func (a *answerWriter) WriteHeader(code int) {
	if !a.wrote {
		a.wrote = true
		if d := time.Until(a.until); d > 0 {
			time.Sleep(d)
		}
		if code == http.StatusCreated {
			a.p.stored.Add(1)
			if a.p.answered != nil {
				a.p.mu.Lock()
				a.p.answered[a.key] = time.Now()
				a.p.mu.Unlock()
			}
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answerWriter) Write(b []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

// Pair pairs a new device and returns the relay options it uses.
func (p *Platform) Pair(ctx context.Context) (relay.Options, error) {
	o := relay.Options{BaseURL: p.URL, CAFile: p.CAFile}
	c, err := relay.New(o)
	if err != nil {
		return o, err
	}
	defer c.Close()
	_, o.Token, err = c.Pair(ctx, p.Ref.NewPairingCode(), relay.Device{Name: "bench", OS: "linux", Version: "bench"})
	return o, err
}

// Stored returns how many uploads were answered 201 (stored).
func (p *Platform) Stored() int { return int(p.stored.Load()) }

// StoredAt returns when the upload with this key was answered 201.
func (p *Platform) StoredAt(key string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.answered[key]
	return t, ok
}

// Close stops the server and the platform.
func (p *Platform) Close() {
	if p.srv != nil {
		p.srv.Close()
	}
	p.Ref.Close()
}
