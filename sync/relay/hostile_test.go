package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

// plainListener counts the connections made to a plain-HTTP port.
func plainListener(t *testing.T) (addr string, conns *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int32{}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), conns
}

// calls are every request the client makes, by name.
func calls(c *relay.Client) map[string]func(ctx context.Context) error {
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	return map[string]func(ctx context.Context) error{
		"pair": func(ctx context.Context) error {
			_, _, err := c.Pair(ctx, "CODE-1", relay.Device{Name: "d", OS: "linux", Version: "t"})
			return err
		},
		"upload": func(ctx context.Context) error {
			return c.Upload(ctx, relay.Message{Account: "a@x.test", Mailbox: "inbox", Folder: "INBOX", UID: 1, UIDValidity: 1,
				InternalDate: time.Now(), Key: fmt.Sprintf("%x", msg), Size: int64(len(msg)),
				Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(msg)), nil }})
		},
		"check": func(ctx context.Context) error {
			_, _, err := c.Check(ctx, []string{"ab"})
			return err
		},
		"heartbeat": func(ctx context.Context) error {
			_, err := c.Heartbeat(ctx, relay.Heartbeat{Version: "t", OS: "linux"})
			return err
		},
		"outbox": func(ctx context.Context) error {
			items, err := c.Outbox(ctx, relay.OutboxOptions{Dir: os.TempDir()}) // nothing is written unless an item is taken
			if len(items) > 0 {
				return fmt.Errorf("%d outbox items taken from a redirect", len(items))
			}
			return err
		},
		"result": func(ctx context.Context) error {
			return c.ReportResult(ctx, "ob_1", relay.OutboxResult{State: "sent"})
		},
	}
}

// TestRedirectsAreRefused: a platform that redirects every request, to
// http:// on the same host, to https:// on another host name, or to itself:
// no request follows it (the device token goes nowhere), outbox items are
// never taken from it, and each call fails saying so; an upload is only
// postponed.
func TestRedirectsAreRefused(t *testing.T) {
	p := testrig.StartPlatform(t)
	_, token := p.Pair(t)
	plainAddr, plainConns := plainListener(t)
	u, _ := url.Parse(p.URL())
	_, port, _ := net.SplitHostPort(u.Host)
	targets := map[string]string{
		"to http":         "http://" + plainAddr + "/connector/v1/heartbeat?token=x",
		"to another host": "https://localhost:" + port + "/connector/v1/heartbeat",
		"to itself":       p.URL() + "/v1/heartbeat",
	}
	for name, target := range targets {
		for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			t.Run(fmt.Sprintf("%s/%d", name, status), func(t *testing.T) {
				var redirected atomic.Int32 // requests that reached the platform: one per call unless one is followed
				p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
					redirected.Add(1)
					w.Header().Set("Location", target)
					w.WriteHeader(status)
					io.WriteString(w, `{"items":[{"id":"evil","account":"a@x.test","raw":"U3ViamVjdDogeA0KDQp4DQo=","envelope":{"from":"a@x.test","to":["b@x.test"]}}]}`)
					return true
				})
				t.Cleanup(func() { p.Intercept(nil) })
				c, err := relay.New(relay.Options{BaseURL: p.URL(), CAFile: p.CAFile, Token: token})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for what, call := range calls(c) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					before := redirected.Load()
					err := call(ctx)
					cancel()
					var re *relay.RedirectError
					if !errors.As(err, &re) || re.Status != status || !strings.Contains(err.Error(), "never follows") {
						t.Fatalf("%s: %v; want a RedirectError for HTTP %d", what, err, status)
					}
					if strings.Contains(err.Error(), "token=") {
						t.Errorf("%s: the error shows the Location's query: %v", what, err)
					}
					var te *relay.TemporaryError
					if isTemp := errors.As(err, &te); isTemp == (what == "pair") {
						t.Errorf("%s: temporary %v; want temporary for everything but pairing", what, isTemp)
					}
					if n := redirected.Load() - before; n != 1 {
						t.Errorf("%s: %d requests reached the platform, want 1 (the redirect followed?)", what, n)
					}
				}
				if n := plainConns.Load(); n != 0 {
					t.Fatalf("%d connections to the http:// target: a redirect was followed", n)
				}
			})
		}
	}
}

// heapGrowth runs f and returns how many bytes it allocated in all (not a
// peak, an upper bound of one: the sum of every allocation).
func heapGrowth(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// endless writes an endless JSON string value after prefix.
func endless(w http.ResponseWriter, r *http.Request, status int, prefix string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, prefix)
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for i := 0; i < 1024 && r.Context().Err() == nil; i++ { // up to 64 MiB
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// TestAnswersAreBounded: a platform that answers with 64 MiB (of JSON, of
// an error text, of headers): each call fails saying the answer is too
// long, having allocated a small bounded amount.
func TestAnswersAreBounded(t *testing.T) {
	p := testrig.StartPlatform(t)
	_, token := p.Pair(t)
	for _, tc := range []struct {
		call   string
		status int
		prefix string
		want   string
	}{
		{"heartbeat", 200, `{"settings":{"relay_domains":["`, "longer than"},
		{"check", 200, `{"missing":["`, "longer than"},
		{"pair", 201, `{"token":"`, "no token"},
		{"upload", 422, `{"error":"`, "rejected it for good"},
		{"result", 400, `{"error":"`, "rejected it for good"},
		{"heartbeat", 200, "HEADER", "header"},
	} {
		t.Run(tc.call+"/"+tc.prefix, func(t *testing.T) {
			p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				if tc.prefix == "HEADER" {
					w.Header().Set("X-Huge", strings.Repeat("h", 1<<20))
					w.WriteHeader(200)
					return true
				}
				endless(w, r, tc.status, tc.prefix)
				return true
			})
			t.Cleanup(func() { p.Intercept(nil) })
			c, err := relay.New(relay.Options{BaseURL: p.URL(), CAFile: p.CAFile, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var callErr error
			grew := heapGrowth(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				callErr = calls(c)[tc.call](ctx)
			})
			if callErr == nil || !strings.Contains(callErr.Error(), tc.want) {
				t.Fatalf("%s: %v; want an error saying %q", tc.call, callErr, tc.want)
			}
			t.Logf("%s against a 64 MiB answer: %v; allocated %.1f MiB in all", tc.call, callErr, float64(grew)/(1<<20))
			if grew > 16<<20 {
				t.Fatalf("%s allocated %d MiB against a 64 MiB answer; want a small bound", tc.call, grew>>20)
			}
		})
	}
}

// TestPlatformEchoingTheTokenDoesNotLeakIt: an error answer quoting the
// device token (whole, or cut at the end of what is read) never puts it
// into the error, which reaches status.json and the log.
func TestPlatformEchoingTheTokenDoesNotLeakIt(t *testing.T) {
	p := testrig.StartPlatform(t)
	_, token := p.Pair(t)
	for _, pad := range []int{0, 512 - len(`{"error":"`) - len(token)/2} {
		p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(422)
			fmt.Fprintf(w, `{"error":"%sbad Authorization: %s"}`, strings.Repeat(" ", max(pad-len("bad Authorization: "), 0)), r.Header.Get("Authorization"))
			return true
		})
		c, _ := relay.New(relay.Options{BaseURL: p.URL(), CAFile: p.CAFile, Token: token})
		err := calls(c)["upload"](context.Background())
		c.Close()
		var rej *relay.RejectedError
		if !errors.As(err, &rej) {
			t.Fatalf("pad %d: %v; want rejected", pad, err)
		}
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), token[:12]) {
			t.Fatalf("pad %d: the error holds the token: %v", pad, err)
		}
	}
	p.Intercept(nil)
}
