package doctor_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/proxytest"
)

// behindGates starts a Dovecot reachable only from one address: its IMAPS
// and submission ports each get a Gate admitting only from. The account
// names the servers "localhost" (the certificate's name), so only the
// proxy resolves them.
func behindGates(t *testing.T, from net.IP) (config.Account, *x509.CertPool) {
	t.Helper()
	d := dovecottest.Start(t, dovecottest.Options{})
	d.AddUser(t, email, password)
	imap := proxytest.StartGate(t, "127.0.0.1", d.IMAPS, from)
	smtp := proxytest.StartGate(t, "127.0.0.1", d.Submission, from)
	acct := config.Account{
		Email: email,
		IMAP:  config.Server{Host: "localhost", Port: portOf(t, imap.Addr), Security: config.SecurityTLS},
		SMTP:  config.Server{Host: "localhost", Port: portOf(t, smtp.Addr), Security: config.SecurityStartTLS},
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(d.CAPEM)
	return acct, roots
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}

// runVia runs the doctor through route r. No step here is meant to time
// out: the step timeout is a hang guard, generous for a loaded machine.
func runVia(t *testing.T, r netdial.Route, acct config.Account, roots *x509.CertPool) *doctor.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := doctor.Run(netdial.WithRoute(ctx, r), doctor.Options{Account: acct, Password: password, Roots: roots, StepTimeout: 30 * time.Second})
	b, _ := json.Marshal(rep)
	t.Logf("report: %s", b)
	return rep
}

func proxyOf(t *testing.T, raw, source string) *netdial.Proxy {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &netdial.Proxy{URL: u, Source: source}
}

// Without the proxy the servers are out of reach: what the tests below
// prove depends on it.
func TestGatedServersRefuseDirectConnections(t *testing.T) {
	acct, roots := behindGates(t, proxytest.FromHTTP)
	rep := runVia(t, netdial.Route{}, acct, roots)
	if rep.Status != doctor.Fail {
		t.Fatalf("a direct connection passed the gates: %s", rep.Status)
	}
	if s, _ := rep.Failed(); s.Target != doctor.TargetIMAP {
		t.Fatalf("first failure %s/%s, want an IMAP step", s.Target, s.ID)
	}
}

func TestDoctorThroughCONNECTProxy(t *testing.T) {
	acct, roots := behindGates(t, proxytest.FromHTTP)
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	rep := runVia(t, netdial.Route{Proxy: proxyOf(t, p.URL, "the policy /etc/inboxrelay/policy.toml")}, acct, roots)
	if rep.Status == doctor.Fail {
		s, _ := rep.Failed()
		t.Fatalf("through the proxy: %s/%s failed: %s", s.Target, s.ID, s.Summary)
	}
	for _, target := range []string{doctor.TargetIMAP, doctor.TargetSMTP} {
		dns, _ := rep.Find(target, doctor.StepDNS)
		tcp, _ := rep.Find(target, doctor.StepTCP)
		login, _ := rep.Find(target, doctor.StepLogin)
		if !strings.Contains(dns.Summary, "looked up by the proxy") || !strings.Contains(dns.Fact("proxy"), p.Addr) {
			t.Errorf("%s dns step does not name the proxy: %+v", target, dns)
		}
		if !strings.Contains(tcp.Fact("proxy"), p.URL) || !strings.Contains(tcp.Fact("proxy"), "from the policy /etc/inboxrelay/policy.toml") {
			t.Errorf("%s tcp step does not name the proxy and its source: %+v", target, tcp)
		}
		if login.Status != doctor.OK {
			t.Errorf("%s login %s: %s", target, login.Status, login.Summary)
		}
	}
	// Every step names the proxy.
	for _, s := range rep.Steps {
		if s.Target != doctor.TargetPlatform && !strings.Contains(s.Fact("proxy"), p.URL) {
			t.Errorf("%s/%s does not name the proxy: %v", s.Target, s.ID, s.Facts)
		}
	}
	if n := len(p.Tunnels()); n < 2 {
		t.Fatalf("the proxy carried %d tunnels: %v", n, p.Tunnels())
	}
}

func TestDoctorThroughSOCKS5Proxy(t *testing.T) {
	acct, roots := behindGates(t, proxytest.FromSOCKS)
	s := proxytest.StartSOCKS(t)
	rep := runVia(t, netdial.Route{Proxy: proxyOf(t, s.URL, "your settings")}, acct, roots)
	if rep.Status == doctor.Fail {
		f, _ := rep.Failed()
		t.Fatalf("through SOCKS5: %s/%s failed: %s", f.Target, f.ID, f.Summary)
	}
	if folders, _ := rep.Find(doctor.TargetIMAP, doctor.StepFolders); folders.Status != doctor.OK {
		t.Fatalf("folders through SOCKS5: %+v", folders)
	}
}

func TestDoctorNamesAProxyThatWantsALogin(t *testing.T) {
	acct, roots := behindGates(t, proxytest.FromHTTP)
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{User: "bob", Password: "proxy-pw-77"})
	rep := runVia(t, netdial.Route{Proxy: proxyOf(t, p.URL, "HTTPS_PROXY")}, acct, roots)
	s := wantFail(t, rep, doctor.TargetIMAP, doctor.StepTCP, doctor.CauseProxyRefused, "login", "407")
	if !strings.Contains(s.Summary, p.Addr) {
		t.Errorf("the failure does not name the proxy: %s", s.Summary)
	}
}

func TestDoctorNamesAProxyItCannotReach(t *testing.T) {
	acct, roots := behindGates(t, proxytest.FromHTTP)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	rep := runVia(t, netdial.Route{Proxy: proxyOf(t, "http://"+dead, "GNOME's proxy settings")}, acct, roots)
	s := wantFail(t, rep, doctor.TargetIMAP, doctor.StepTCP, doctor.CauseProxyFailed, "proxy")
	if !strings.Contains(s.Summary, "cannot reach the proxy") || !strings.Contains(s.Summary, "GNOME") {
		t.Errorf("summary %q", s.Summary)
	}
}
