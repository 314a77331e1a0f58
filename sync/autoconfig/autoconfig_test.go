package autoconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
)

// dnsServer is hostile.StartDNS with the records given as dnsmessage
// SRV resources.
func dnsServer(t *testing.T, records map[string][]dnsmessage.SRVResource) *net.Resolver {
	t.Helper()
	recs := map[string][]hostile.SRV{}
	for k, rs := range records {
		for _, r := range rs {
			recs[k] = append(recs[k], hostile.SRV{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: r.Target.String()})
		}
	}
	return hostile.StartDNS(t, recs)
}

func name(s string) dnsmessage.Name { return dnsmessage.MustNewName(s) }

// noAutoconfig makes the XML step fail fast without the network.
func noAutoconfig(string, string) []string { return nil }

func TestFindKnownProvider(t *testing.T) {
	f := &Finder{AutoconfigURLs: noAutoconfig}
	r, err := f.Find(context.Background(), "someone@GMail.com")
	if err != nil {
		t.Fatal(err)
	}
	if r.IMAP.Addr() != "imap.gmail.com:993" || r.SMTP.Addr() != "smtp.gmail.com:465" || r.Source != "known provider" {
		t.Fatalf("got %+v", r)
	}
}

// TestFindSRV checks RFC 6186 selection against a real DNS server: the
// implicit-TLS service wins over STARTTLS, the lowest priority then the
// highest weight wins, and "." (service not offered) is skipped.
func TestFindSRV(t *testing.T) {
	res := dnsServer(t, map[string][]dnsmessage.SRVResource{
		"_imaps._tcp.acme.test.": {
			{Priority: 20, Weight: 0, Port: 993, Target: name("backup.acme.test.")},
			{Priority: 10, Weight: 1, Port: 993, Target: name("light.acme.test.")},
			{Priority: 10, Weight: 5, Port: 993, Target: name("mail.acme.test.")},
		},
		"_imap._tcp.acme.test.":        {{Priority: 0, Port: 143, Target: name("plain.acme.test.")}},
		"_submissions._tcp.acme.test.": {{Priority: 0, Port: 0, Target: name(".")}},
		"_submission._tcp.acme.test.":  {{Priority: 0, Port: 587, Target: name("smtp.acme.test.")}},
	})
	f := &Finder{Resolver: res, AutoconfigURLs: noAutoconfig, Timeout: 3 * time.Second}
	r, err := f.Find(context.Background(), "alice@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	want := Result{IMAP: config.Server{Host: "mail.acme.test", Port: 993, Security: config.SecurityTLS},
		SMTP: config.Server{Host: "smtp.acme.test", Port: 587, Security: config.SecurityStartTLS}, Source: "DNS SRV"}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v, want %+v", r, want)
	}

	// A domain without records is not found (and the XML step has nowhere
	// to look).
	if _, err := f.Find(context.Background(), "bob@nothing.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nothing.test: got %v, want ErrNotFound", err)
	}
}

const sampleXML = `<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="acme.test">
    <domain>acme.test</domain>
    <incomingServer type="pop3"><hostname>pop.acme.test</hostname><port>995</port><socketType>SSL</socketType></incomingServer>
    <incomingServer type="imap"><hostname>imap-plain.acme.test</hostname><port>143</port><socketType>plain</socketType></incomingServer>
    <incomingServer type="imap"><hostname>imap.acme.test</hostname><port>993</port><socketType>SSL</socketType><username>%EMAILLOCALPART%</username></incomingServer>
    <outgoingServer type="smtp"><hostname>smtp.acme.test</hostname><port>587</port><socketType>STARTTLS</socketType></outgoingServer>
  </emailProvider>
</clientConfig>`

// TestFindAutoconfigXML serves config-v1.1.xml over HTTPS from a local
// server after a first URL that fails, and checks that POP3 and plaintext
// servers are skipped and the username placeholder is expanded.
func TestFindAutoconfigXML(t *testing.T) {
	var asked []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		if r.URL.Path != "/.well-known/autoconfig/mail/config-v1.1.xml" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(sampleXML))
	}))
	defer srv.Close()
	res := dnsServer(t, nil)
	f := &Finder{Resolver: res, HTTP: srv.Client(), AutoconfigURLs: func(domain, email string) []string {
		return []string{srv.URL + "/mail/config-v1.1.xml", srv.URL + "/.well-known/autoconfig/mail/config-v1.1.xml"}
	}}
	r, err := f.Find(context.Background(), "alice@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	want := Result{IMAP: config.Server{Host: "imap.acme.test", Port: 993, Security: config.SecurityTLS},
		SMTP: config.Server{Host: "smtp.acme.test", Port: 587, Security: config.SecurityStartTLS}, Username: "alice", Source: "autoconfig"}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if len(asked) != 2 {
		t.Fatalf("asked %v, want both URLs in order", asked)
	}
}

// TestProbe tells a server that greets first (STARTTLS) from one that waits
// for a TLS hello.
func TestProbe(t *testing.T) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"))
			defer c.Close()
		}
	}()
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.TLS = &tls.Config{}
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	ctx := context.Background()
	if sec, err := Probe(ctx, plain.Addr().String(), time.Second); err != nil || sec != config.SecurityStartTLS {
		t.Fatalf("greeting server: %q, %v; want starttls", sec, err)
	}
	if sec, err := Probe(ctx, tlsSrv.Listener.Addr().String(), 300*time.Millisecond); err != nil || sec != config.SecurityTLS {
		t.Fatalf("TLS server: %q, %v; want tls", sec, err)
	}
}
