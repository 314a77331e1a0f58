package autoconfig

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestInDomain(t *testing.T) {
	for _, tc := range []struct {
		host, domain string
		in           bool
	}{
		{"acme.test", "acme.test", true},
		{"mail.acme.test", "acme.test", true},
		{"Mail.EU.Acme.Test.", "acme.test.", true},
		{"evilacme.test", "acme.test", false},
		{"acme.test.evil.test", "acme.test", false},
		{"mail.evil.test", "acme.test", false},
		{"", "acme.test", false},
		{"acme.test", "", false},
	} {
		if got := InDomain(tc.host, tc.domain); got != tc.in {
			t.Errorf("InDomain(%q, %q) = %v, want %v", tc.host, tc.domain, got, tc.in)
		}
	}
}

// TestSRVOutsideTheDomainIsMarked: DNS (unauthenticated) names servers of
// another domain for acme.test: the result says which, so they can be
// shown and confirmed before the password goes there (RFC 6186 §6); a
// subdomain is the domain's own.
func TestSRVOutsideTheDomainIsMarked(t *testing.T) {
	res := dnsServer(t, map[string][]dnsmessage.SRVResource{
		"_imaps._tcp.acme.test.":        {{Port: 993, Target: name("mail.eu.acme.test.")}},
		"_submissions._tcp.acme.test.":  {{Port: 465, Target: name("smtp.evilacme.test.")}},
		"_imaps._tcp.other.test.":       {{Port: 993, Target: name("imap.attacker.test.")}},
		"_submissions._tcp.other.test.": {{Port: 465, Target: name("imap.attacker.test.")}},
	})
	f := &Finder{Resolver: res, AutoconfigURLs: noAutoconfig, Timeout: 3 * time.Second}
	r, err := f.Find(context.Background(), "alice@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Outside, []string{"smtp.evilacme.test"}) {
		t.Fatalf("Outside = %q, want only the SMTP server", r.Outside)
	}
	r, err = f.Find(context.Background(), "bob@other.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Outside, []string{"imap.attacker.test"}) {
		t.Fatalf("Outside = %q, want the one foreign host once", r.Outside)
	}
}

// TestAutoconfigRedirectRefused: the document's server redirects to
// http:// and to another path: neither is followed, and the error says so.
func TestAutoconfigRedirectRefused(t *testing.T) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var plainConns atomic.Int32
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			plainConns.Add(1)
			c.Close()
		}
	}()
	var otherAsked atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, "http://"+plain.Addr().String()+"/config-v1.1.xml", http.StatusFound)
		case "/to-other":
			http.Redirect(w, r, "/other", http.StatusMovedPermanently)
		default:
			otherAsked.Add(1)
			w.Write([]byte(sampleXML))
		}
	}))
	defer srv.Close()
	for _, path := range []string{"/to-http", "/to-other"} {
		f := &Finder{HTTP: srv.Client(), AutoconfigURLs: func(string, string) []string { return []string{srv.URL + path} }}
		_, err := f.autoconfig(context.Background(), "acme.test", "alice@acme.test")
		if err == nil || !strings.Contains(err.Error(), "redirect") || !strings.Contains(err.Error(), "never followed") {
			t.Fatalf("%s: %v; want a refused redirect", path, err)
		}
	}
	if plainConns.Load() != 0 || otherAsked.Load() != 0 {
		t.Fatalf("a redirect was followed: %d plain connections, %d other requests", plainConns.Load(), otherAsked.Load())
	}
	if srv.Client().CheckRedirect != nil {
		t.Fatal("Find changed the caller's HTTP client")
	}
}

// TestAutoconfigDocumentBounded: a 64 MiB document is refused after
// MaxDocument bytes, with a small, bounded allocation.
func TestAutoconfigDocumentBounded(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<?xml version="1.0"?><clientConfig><emailProvider><domain>`)
		chunk := []byte(strings.Repeat("a", 64<<10))
		for i := 0; i < 1024 && r.Context().Err() == nil; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	f := &Finder{HTTP: srv.Client(), AutoconfigURLs: func(string, string) []string { return []string{srv.URL} }}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := f.autoconfig(context.Background(), "acme.test", "alice@acme.test")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errDocumentTooLong) {
		t.Fatalf("got %v, want the document refused as too long", err)
	}
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("a 64 MiB autoconfig document: %v; allocated %.1f MiB in all", err, float64(grew)/(1<<20))
	if grew > 32<<20 {
		t.Fatalf("allocated %d MiB reading a 64 MiB document; want a small bound", grew>>20)
	}
}
