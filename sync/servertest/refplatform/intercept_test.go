package refplatform_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// isHeartbeat reports whether r is a heartbeat.
func isHeartbeat(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/v1/heartbeat") }

// TestInterceptHeartbeat503 makes the first two heartbeats fail with 503,
// as an overloaded platform would; everything else is served as usual, and
// the intercepted requests leave no trace in the platform's records.
func TestInterceptHeartbeat503(t *testing.T) {
	e := start(t)
	var failed atomic.Int32
	e.p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isHeartbeat(r) || failed.Load() == 2 {
			return false
		}
		failed.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return true
	})
	token, _ := e.pair() // not a heartbeat: served
	for i := range 2 {
		if r := e.postJSON("/v1/heartbeat", token, heartbeat); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
			t.Fatalf("heartbeat %d: %d %s, want 503 with Retry-After", i+1, r.status, r.body)
		}
	}
	if n := len(e.p.Heartbeats()); n != 0 {
		t.Fatalf("%d heartbeats recorded while intercepted", n)
	}
	if r := e.postJSON("/v1/heartbeat", token, heartbeat); r.status != http.StatusOK {
		t.Fatalf("third heartbeat: %d %s, want 200", r.status, r.body)
	}
	if n := len(e.p.Heartbeats()); n != 1 {
		t.Fatalf("%d heartbeats recorded, want 1", n)
	}
	e.noRejections()

	e.p.Intercept(nil)
	failed.Store(0) // the hook is gone: nothing fails any more
	if r := e.postJSON("/v1/heartbeat", token, heartbeat); r.status != http.StatusOK {
		t.Fatalf("heartbeat after Intercept(nil): %d", r.status)
	}
}

// TestInterceptHoldThen401 holds a heartbeat until the test releases it,
// then answers 401: the "late 401" of a request made with an old token.
func TestInterceptHoldThen401(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	arrived, release := make(chan struct{}), make(chan struct{})
	e.p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isHeartbeat(r) {
			return false
		}
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
			return true
		}
		http.Error(w, "token revoked", http.StatusUnauthorized)
		return true
	})
	got := make(chan response, 1)
	go func() { got <- e.postJSON("/v1/heartbeat", token, heartbeat) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat never reached the hook")
	}
	select {
	case r := <-got:
		t.Fatalf("a held request was answered: %d", r.status)
	default:
	}
	close(release)
	select {
	case r := <-got:
		if r.status != http.StatusUnauthorized {
			t.Fatalf("after release: %d %s, want 401", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after release")
	}
	if len(e.p.Heartbeats()) != 0 || len(e.p.Rejections()) != 0 {
		t.Fatal("an intercepted request was recorded")
	}
}

// TestInterceptRedirect answers with 307 to plain HTTP and to another host.
func TestInterceptRedirect(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	for _, target := range []string{"http://127.0.0.1:1/connector/v1/heartbeat", "https://elsewhere.example/connector/v1/heartbeat"} {
		e.p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if !isHeartbeat(r) {
				return false
			}
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
			return true
		})
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(e.p.CAPEM())
		c := &http.Client{
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       time.Minute,
		}
		h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token}}
		r := e.doWith(c, http.MethodPost, "/v1/heartbeat", h, strings.NewReader(heartbeat))
		if r.status != http.StatusTemporaryRedirect || r.header.Get("Location") != target {
			t.Fatalf("%d to %q, want 307 to %q", r.status, r.header.Get("Location"), target)
		}
	}
	if len(e.p.Heartbeats()) != 0 {
		t.Fatal("a redirected heartbeat was recorded")
	}
}

// TestInterceptSlow holds an upload, then lets the platform serve it: it
// is stored as usual once released.
func TestInterceptSlow(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	arrived, release := make(chan struct{}), make(chan struct{})
	e.p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/v1/messages") {
			close(arrived)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return false
	})
	body := message(1)
	got := make(chan response, 1)
	go func() { got <- e.upload(uploadHeader(token, body), body) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload never reached the hook")
	}
	select {
	case r := <-got:
		t.Fatalf("a held upload was answered: %d", r.status)
	default:
	}
	if len(e.p.Messages()) != 0 || e.p.Uploads() != 0 {
		t.Fatal("a held upload reached the platform")
	}
	close(release)
	if r := <-got; r.status != http.StatusCreated {
		t.Fatalf("released upload: %d %s, want 201", r.status, r.body)
	}
	if len(e.p.Messages()) != 1 || e.p.Uploads() != 1 {
		t.Fatalf("%d stored, %d uploads after release; want 1 and 1", len(e.p.Messages()), e.p.Uploads())
	}
	e.noRejections()
}
