package doctor_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

// paired starts the reference platform and pairs a device with it.
func paired(t *testing.T) (*refplatform.Platform, string, string) {
	t.Helper()
	p := testrig.StartPlatform(t)
	_, token := p.Pair(t)
	return p.Platform, p.CAFile, token
}

// connectProxy is an HTTP CONNECT proxy on loopback. With inspect set it
// terminates TLS itself with a certificate of its own CA and opens its own
// TLS connection to the target, as a TLS-inspecting proxy does.
func connectProxy(t *testing.T, inspect *hostile.Cert) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		var down net.Conn = client
		if inspect != nil {
			down = tls.Server(client, &tls.Config{Certificates: []tls.Certificate{inspect.TLS}})
			up = tls.Client(up, &tls.Config{InsecureSkipVerify: true}) // test proxy: it inspects, the client must notice
		}
		wg.Add(2)
		go func() { defer wg.Done(); io.Copy(up, down); up.Close() }()
		go func() { defer wg.Done(); io.Copy(down, up); down.Close() }()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "http://" + l.Addr().String()
}

func checkPlatform(t *testing.T, pc *doctor.PlatformCheck) *doctor.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := doctor.Run(ctx, doctor.Options{Account: config.Account{Email: email}, Platform: pc, StepTimeout: 3 * time.Second})
	for _, s := range rep.Steps {
		t.Logf("%s/%s %s %s %v %s", s.Target, s.ID, s.Status, s.Cause, s.Facts, s.Summary)
		if pc.Token != "" && strings.Contains(s.Summary+s.Advice+s.Server, pc.Token) {
			t.Fatalf("the report holds the token")
		}
		for _, f := range s.Facts {
			if pc.Token != "" && strings.Contains(f.Value, pc.Token) {
				t.Fatalf("the report holds the token")
			}
		}
	}
	return rep
}

func TestPlatformPaired(t *testing.T) {
	p, caFile, token := paired(t)
	for _, proxy := range []string{"", connectProxy(t, nil)} {
		rep := checkPlatform(t, &doctor.PlatformCheck{Platform: config.Platform{URL: p.URL(), CAFile: caFile, Proxy: proxy}, Token: token})
		if rep.Status != doctor.OK {
			f, _ := rep.Failed()
			t.Fatalf("proxy %q: status %s: %s", proxy, rep.Status, f.Summary)
		}
		dns, _ := rep.Find(doctor.TargetPlatform, doctor.StepDNS)
		if proxy != "" && !strings.Contains(dns.Fact("proxy"), strings.TrimPrefix(proxy, "http://")) {
			t.Errorf("proxy fact %q, want %s", dns.Fact("proxy"), proxy)
		}
		if s, _ := rep.Find(doctor.TargetPlatform, doctor.StepPairing); s.Status != doctor.OK {
			t.Errorf("pairing %s", s.Status)
		}
	}
}

func TestPlatformRevoked(t *testing.T) {
	p, caFile, token := paired(t)
	p.RevokeAll()
	rep := checkPlatform(t, &doctor.PlatformCheck{Platform: config.Platform{URL: p.URL(), CAFile: caFile}, Token: token})
	wantFail(t, rep, doctor.TargetPlatform, doctor.StepPairing, doctor.CausePlatformRefused, "pair again")
}

func TestPlatformBehindInspectingProxy(t *testing.T) {
	p, caFile, token := paired(t)
	inspector := hostile.NewCert(t, hostile.CertOptions{Issuer: "Acme Corp Inspection CA", Names: []string{"localhost"}})
	proxy := connectProxy(t, inspector)
	rep := checkPlatform(t, &doctor.PlatformCheck{Platform: config.Platform{URL: p.URL(), CAFile: caFile, Proxy: proxy}, Token: token})
	s := wantFail(t, rep, doctor.TargetPlatform, doctor.StepTLS, doctor.CauseTLSInspection, "TLS-inspecting proxy", "Acme Corp Inspection CA", "--ca-file")
	if s.Fact("issuer without the proxy") == "" {
		t.Errorf("facts %v: want the direct issuer for comparison", s.Facts)
	}

	// Trusting the proxy's CA (as IT would ask) makes it work, with a warning.
	both := filepath.Join(t.TempDir(), "both.pem")
	pemBytes, _ := os.ReadFile(caFile)
	os.WriteFile(both, append(pemBytes, inspector.CAPEM...), 0o600)
	rep = checkPlatform(t, &doctor.PlatformCheck{Platform: config.Platform{URL: p.URL(), CAFile: both, Proxy: proxy}, Token: token})
	tlsStep, _ := rep.Find(doctor.TargetPlatform, doctor.StepTLS)
	if tlsStep.Status != doctor.Warn || tlsStep.Cause != doctor.CauseTLSInspection {
		t.Fatalf("TLS step %s %s, want an inspection warning", tlsStep.Status, tlsStep.Cause)
	}
}
