package doctor_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

const (
	email    = "alice@acme.test"
	password = "correct horse battery"
)

func server(t *testing.T, addr string, sec config.Security) config.Server {
	t.Helper()
	s, err := config.ParseServer(addr, sec, 993)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run checks the IMAP server at addr (and SMTP at smtpAddr when set).
func run(t *testing.T, acct config.Account, pw string, roots *x509.CertPool) *doctor.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var progress []doctor.Step
	rep := doctor.Run(ctx, doctor.Options{
		Account: acct, Password: pw, Roots: roots, StepTimeout: 2 * time.Second,
		Progress: func(s doctor.Step) { progress = append(progress, s) },
	})
	// Progress saw each step start and end, in the report's order.
	var ended []doctor.Step
	for _, s := range progress {
		if s.Status != doctor.Running {
			ended = append(ended, s)
		}
	}
	if len(ended) != len(rep.Steps) {
		t.Fatalf("progress reported %d finished steps, the report has %d", len(ended), len(rep.Steps))
	}
	for i := range ended {
		if ended[i].Target != rep.Steps[i].Target || ended[i].ID != rep.Steps[i].ID || ended[i].Status != rep.Steps[i].Status {
			t.Fatalf("progress step %d is %s/%s %s, report has %s/%s %s", i, ended[i].Target, ended[i].ID, ended[i].Status,
				rep.Steps[i].Target, rep.Steps[i].ID, rep.Steps[i].Status)
		}
	}
	b, _ := json.Marshal(rep)
	if strings.Contains(string(b), pw) {
		t.Fatalf("the report holds the password: %s", b)
	}
	t.Logf("report: %s", b)
	return rep
}

// wantFail asserts that the first failure is target/step with cause, that
// its advice holds each of words, and that every later step of the target
// was skipped.
func wantFail(t *testing.T, rep *doctor.Report, target, step, cause string, words ...string) doctor.Step {
	t.Helper()
	s, ok := rep.Failed()
	if !ok {
		t.Fatalf("no step failed; want %s/%s %s", target, step, cause)
	}
	if s.Target != target || s.ID != step || s.Cause != cause {
		t.Fatalf("first failure is %s/%s %s (%s), want %s/%s %s", s.Target, s.ID, s.Cause, s.Summary, target, step, cause)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(s.Advice+" "+s.Summary), strings.ToLower(w)) {
			t.Errorf("failure says %q / %q, want it to mention %q", s.Summary, s.Advice, w)
		}
	}
	if s.Advice == "" || strings.Count(strings.TrimSuffix(s.Advice, "."), ". ") > 0 {
		t.Errorf("advice %q is not one sentence", s.Advice)
	}
	after := false
	for _, x := range rep.Steps {
		if x.Target != target {
			continue
		}
		if after && x.Status != doctor.Skipped {
			t.Errorf("step %s/%s after the failure is %s, want skipped", x.Target, x.ID, x.Status)
		}
		if x.ID == step {
			after = true
		}
	}
	if rep.Status != doctor.Fail {
		t.Errorf("report status %s, want fail", rep.Status)
	}
	return s
}

func imapOnly(addr string, sec config.Security, t *testing.T) config.Account {
	return config.Account{Email: email, IMAP: server(t, addr, sec)}
}

func TestClosedPort(t *testing.T) {
	addr := hostile.ClosedPort(t)
	rep := run(t, imapOnly(addr, config.SecurityTLS, t), password, nil)
	wantFail(t, rep, doctor.TargetIMAP, doctor.StepTCP, doctor.CauseTCPRefused, "nothing listens", "port number")
	if s, _ := rep.Find(doctor.TargetIMAP, doctor.StepDNS); s.Status != doctor.OK {
		t.Errorf("dns step %s, want ok", s.Status)
	}
}

func TestDroppedPackets(t *testing.T) {
	addr := hostile.DroppingPort(t)
	_, port, _ := strings.Cut(addr, ":")
	rep := run(t, imapOnly(addr, config.SecurityTLS, t), password, nil)
	wantFail(t, rep, doctor.TargetIMAP, doctor.StepTCP, doctor.CauseTCPTimeout,
		"A firewall on your network is probably dropping connections to port "+port)
}

func TestSelfSignedThenPinned(t *testing.T) {
	cert := hostile.NewCert(t, hostile.CertOptions{SelfSigned: true})
	srv := hostile.StartIMAP(t, hostile.IMAPOptions{Cert: cert})
	acct := imapOnly(srv.Addr, config.SecurityTLS, t)
	rep := run(t, acct, srv.Password, x509.NewCertPool())
	s := wantFail(t, rep, doctor.TargetIMAP, doctor.StepTLS, doctor.CauseTLSUntrusted, "--trust-fingerprint "+srv.Addr+"="+cert.Fingerprint)
	if s.Fact("sha256 fingerprint") != cert.Fingerprint {
		t.Errorf("fingerprint fact %q, want %s", s.Fact("sha256 fingerprint"), cert.Fingerprint)
	}

	// Pinned as the advice says, every step passes, on a server without
	// IDLE, SPECIAL-USE or UIDPLUS.
	acct.Pins = []trust.Pin{{Server: srv.Addr, Fingerprint: cert.Fingerprint}}
	rep = run(t, acct, srv.Password, x509.NewCertPool())
	if f, ok := rep.Failed(); ok {
		t.Fatalf("pinned: %s/%s failed: %s", f.Target, f.ID, f.Summary)
	}
	tlsStep, _ := rep.Find(doctor.TargetIMAP, doctor.StepTLS)
	if tlsStep.Fact("trusted by") != "the certificate pinned for this server (its name, issuer and dates are not checked)" {
		t.Errorf("trusted by %q", tlsStep.Fact("trusted by"))
	}
	login, _ := rep.Find(doctor.TargetIMAP, doctor.StepLogin)
	if !strings.HasPrefix(login.Fact("UIDPLUS"), "no") || !strings.HasPrefix(login.Fact("SPECIAL-USE"), "no") {
		t.Errorf("login facts %v: want UIDPLUS and SPECIAL-USE reported missing", login.Facts)
	}
	folders, _ := rep.Find(doctor.TargetIMAP, doctor.StepFolders)
	if folders.Fact("Sent") != "Sent" || !strings.Contains(folders.Fact("Sent found"), "by its name") {
		t.Errorf("folders facts %v: want Sent found by its name", folders.Facts)
	}
}

func TestExpiredCertificate(t *testing.T) {
	cert := hostile.NewCert(t, hostile.CertOptions{Expired: true})
	srv := hostile.StartIMAP(t, hostile.IMAPOptions{Cert: cert})
	rep := run(t, imapOnly(srv.Addr, config.SecurityTLS, t), srv.Password, cert.Pool)
	wantFail(t, rep, doctor.TargetIMAP, doctor.StepTLS, doctor.CauseTLSExpired, "expired on", "renew")

	// A pin does not check dates: pinned, it is trusted, and the doctor
	// warns that it expired.
	acct := imapOnly(srv.Addr, config.SecurityTLS, t)
	acct.Pins = []trust.Pin{{Server: srv.Addr, Fingerprint: cert.Fingerprint}}
	rep = run(t, acct, srv.Password, cert.Pool)
	if f, ok := rep.Failed(); ok {
		t.Fatalf("pinned expired certificate: %s/%s failed: %s", f.Target, f.ID, f.Summary)
	}
	if s, _ := rep.Find(doctor.TargetIMAP, doctor.StepTLS); s.Status != doctor.Warn || s.Cause != doctor.CauseTLSExpired ||
		!strings.Contains(s.Summary, "pinned certificate expired on") || !strings.Contains(s.Fact("valid"), "to ") {
		t.Fatalf("TLS step %+v; want a warning that the pinned certificate expired, with its dates", s)
	}
}

func TestNameMismatch(t *testing.T) {
	cert := hostile.NewCert(t, hostile.CertOptions{Names: []string{"mail.elsewhere.test"}})
	srv := hostile.StartIMAP(t, hostile.IMAPOptions{Cert: cert})
	_, port, _ := strings.Cut(srv.Addr, ":")
	rep := run(t, imapOnly("localhost:"+port, config.SecurityTLS, t), srv.Password, cert.Pool)
	wantFail(t, rep, doctor.TargetIMAP, doctor.StepTLS, doctor.CauseTLSNameMismatch, "mail.elsewhere.test")
}

func TestTLS10Only(t *testing.T) {
	srv := hostile.StartIMAP(t, hostile.IMAPOptions{MinTLS: tls.VersionTLS10, MaxTLS: tls.VersionTLS10})
	acct := imapOnly(srv.Addr, config.SecurityTLS, t)
	rep := run(t, acct, srv.Password, srv.Cert.Pool)
	s := wantFail(t, rep, doctor.TargetIMAP, doctor.StepTLS, doctor.CauseTLSOldVersion, "TLS 1.0", "--min-tls 1.0", "known weaknesses")
	if s.Fact("server offers") != "TLS 1.0" {
		t.Errorf("server offers %q, want TLS 1.0", s.Fact("server offers"))
	}

	// Opted in: everything works, and the TLS step warns.
	acct.MinTLS = "1.0"
	rep = run(t, acct, srv.Password, srv.Cert.Pool)
	if f, ok := rep.Failed(); ok {
		t.Fatalf("with --min-tls 1.0: %s/%s failed: %s", f.Target, f.ID, f.Summary)
	}
	tlsStep, _ := rep.Find(doctor.TargetIMAP, doctor.StepTLS)
	if tlsStep.Status != doctor.Warn || tlsStep.Cause != doctor.CauseTLSOldVersion || tlsStep.Fact("version") != "TLS 1.0" {
		t.Errorf("TLS step %s %s version %q, want a TLS 1.0 warning", tlsStep.Status, tlsStep.Cause, tlsStep.Fact("version"))
	}
	if rep.Status != doctor.Warn {
		t.Errorf("report status %s, want warn", rep.Status)
	}
}

func TestHostileStartTLS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  hostile.StartTLSMode
		cause string
		words []string
	}{
		{"stripped", hostile.Strip, doctor.CauseStartTLSMissing, []string{"993", "removing it"}},
		{"injected", hostile.Inject, doctor.CauseStartTLSInjection, []string{"injecting"}},
		{"preauth", hostile.Preauth, doctor.CausePreauthPlaintext, []string{"PREAUTH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := hostile.NewCert(t, hostile.CertOptions{})
			addr := hostile.StartTLSServer(t, tc.mode, cert)
			rep := run(t, imapOnly(addr, config.SecurityStartTLS, t), password, cert.Pool)
			wantFail(t, rep, doctor.TargetIMAP, doctor.StepTLS, tc.cause, tc.words...)
		})
	}
}

// dovecot starts a private Dovecot with the test user.
func dovecot(t *testing.T) *dovecottest.Server {
	t.Helper()
	d := dovecottest.Start(t, dovecottest.Options{})
	d.AddUser(t, email, password)
	return d
}

func roots(t *testing.T, pemBytes []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no CA")
	}
	return p
}

func TestDovecotAllSteps(t *testing.T) {
	d := dovecot(t)
	for _, tc := range []struct {
		name string
		acct config.Account
	}{
		{"tls", config.Account{Email: email, IMAP: server(t, d.IMAPS, config.SecurityTLS), SMTP: server(t, d.Submission, config.SecurityStartTLS)}},
		{"starttls", config.Account{Email: email, IMAP: server(t, d.IMAP, config.SecurityStartTLS), SMTP: server(t, d.Submission, config.SecurityStartTLS)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, tc.acct, password, roots(t, d.CAPEM))
			if rep.Status != doctor.OK {
				f, _ := rep.Failed()
				t.Fatalf("status %s; failure %s/%s: %s", rep.Status, f.Target, f.ID, f.Summary)
			}
			want := []string{"imap/dns", "imap/tcp", "imap/tls", "imap/greeting", "imap/login", "imap/folders",
				"smtp/dns", "smtp/tcp", "smtp/tls", "smtp/greeting", "smtp/login"}
			var got []string
			for _, s := range rep.Steps {
				got = append(got, s.Target+"/"+s.ID)
				if s.Duration <= 0 {
					t.Errorf("%s/%s has no measured time", s.Target, s.ID)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("steps %v, want %v", got, want)
			}
			g, _ := rep.Find(doctor.TargetIMAP, doctor.StepGreeting)
			if !strings.HasPrefix(g.Fact("software"), "Dovecot") {
				t.Errorf("software %q, want Dovecot", g.Fact("software"))
			}
			f, _ := rep.Find(doctor.TargetIMAP, doctor.StepFolders)
			if f.Fact("Sent") != "Sent" || f.Fact("Sent found") != `SPECIAL-USE \Sent` {
				t.Errorf("folders %v", f.Facts)
			}
			sg, _ := rep.Find(doctor.TargetSMTP, doctor.StepGreeting)
			if !strings.Contains(sg.Fact("auth mechanisms"), "PLAIN") {
				t.Errorf("smtp auth mechanisms %q", sg.Fact("auth mechanisms"))
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	d := dovecot(t)
	acct := config.Account{Email: email, IMAP: server(t, d.IMAPS, config.SecurityTLS), SMTP: server(t, d.Submission, config.SecurityStartTLS)}
	rep := run(t, acct, "wrong-password-123", roots(t, d.CAPEM))
	wantFail(t, rep, doctor.TargetIMAP, doctor.StepLogin, doctor.CauseLoginCredentials, email, "enter the password again")
	s, _ := rep.Find(doctor.TargetSMTP, doctor.StepLogin)
	if s.Status != doctor.Fail || s.Cause != doctor.CauseLoginCredentials {
		t.Errorf("smtp login %s %s (%s), want wrong credentials", s.Status, s.Cause, s.Summary)
	}
}
