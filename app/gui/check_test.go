package gui

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/demo/mailserver"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

const sampleEmail, samplePassword = "alice@acme.test", "correct horse battery"

// sampleServer starts the demo's IMAP and SMTP servers (implicit TLS,
// self-signed certificate) for one user.
func sampleServer(t *testing.T) *mailserver.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m, err := mailserver.Start(ctx, mailserver.Options{Email: sampleEmail, Password: samplePassword, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// sampleAccount is the account of m as setup builds it: security left
// "Automatic".
func sampleAccount(t *testing.T, m *mailserver.Server) config.Account {
	t.Helper()
	imap, err := config.ParseServer(m.IMAPAddr(), "", 993)
	if err != nil {
		t.Fatal(err)
	}
	smtp, err := config.ParseServer(m.SMTPAddr(), "", 465)
	if err != nil {
		t.Fatal(err)
	}
	return config.Account{Email: sampleEmail, IMAP: imap, SMTP: smtp}
}

// progressLog records what "Test connection" showed, safe from any
// goroutine.
type progressLog struct {
	mu    sync.Mutex
	lists [][]Step
}

func (p *progressLog) add(s []Step) { p.mu.Lock(); p.lists = append(p.lists, s); p.mu.Unlock() }

// sawRunning reports whether title was ever shown running.
func (p *progressLog) sawRunning(title string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lists {
		for _, s := range l {
			if s.Title == title && s.State == StepRunning {
				return true
			}
		}
	}
	return false
}

func (p *progressLog) last() []Step {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lists[len(p.lists)-1]
}

func stepNamed(t *testing.T, steps []Step, title string) Step {
	t.Helper()
	for _, s := range steps {
		if s.Title == title {
			return s
		}
	}
	t.Fatalf("no step %q in %+v", title, steps)
	return Step{}
}

func runCheck(t *testing.T, acct config.Account, pw string) (config.Account, error, *progressLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := &progressLog{}
	got, err := checkAccount(ctx, acct, pw, p.add, doctor.Run)
	if len(p.lists) == 0 || len(p.lists[0]) != len(checkSteps) {
		t.Fatalf("the first list shown is not every step pending: %+v", p.lists)
	}
	for _, s := range p.lists[0] {
		if s.State != StepPending {
			t.Fatalf("first list: %+v", p.lists[0])
		}
	}
	for _, l := range p.lists {
		for _, s := range l {
			if strings.Contains(s.Detail, "--") || strings.Contains(s.Detail, pw) {
				t.Fatalf("step %q speaks of the command line or shows the password: %q", s.Title, s.Detail)
			}
		}
	}
	return got, err, p
}

// TestCheckAccountRunsTheDoctor: "Test connection" against real IMAP and
// SMTP servers is the connection doctor's steps, shown live and named for
// people; the automatic security is found out; an untrusted certificate
// ends in the *trust.UntrustedError setup asks about, carrying the
// server's real fingerprint, and once pinned every step passes.
func TestCheckAccountRunsTheDoctor(t *testing.T) {
	m := sampleServer(t)
	acct := sampleAccount(t, m)

	got, err, p := runCheck(t, acct, samplePassword)
	var ue *trust.UntrustedError
	if !errors.As(err, &ue) {
		t.Fatalf("err %v, want a *trust.UntrustedError", err)
	}
	if ue.Fingerprint != m.Fingerprint() || ue.Host != "127.0.0.1" {
		t.Fatalf("untrusted %s %s, want 127.0.0.1 %s", ue.Host, ue.Fingerprint, m.Fingerprint())
	}
	if got.IMAP.Security != config.SecurityTLS || got.SMTP.Security != config.SecurityTLS {
		t.Fatalf("security %q/%q, want both found to be TLS", got.IMAP.Security, got.SMTP.Security)
	}
	last := p.last()
	tlsStep := stepNamed(t, last, "Incoming mail: TLS")
	if tlsStep.State != StepFailed || !strings.Contains(tlsStep.Detail, "not signed by an authority") ||
		!strings.Contains(tlsStep.Detail, "question that follows") {
		t.Fatalf("TLS step %+v", tlsStep)
	}
	if s := stepNamed(t, last, "Incoming mail: Login"); s.State != StepSkipped {
		t.Fatalf("login after a failed TLS step: %+v", s)
	}
	if s := stepNamed(t, last, "Incoming mail: Connection"); s.State != StepPassed || !strings.HasPrefix(s.Detail, "Port ") {
		t.Fatalf("connection step %+v", s)
	}
	if !p.sawRunning("Incoming mail: TLS") {
		t.Fatal("the TLS step was never shown running")
	}

	// A pin is for one server: the outgoing server, with the same
	// certificate, asks for its own.
	acct.Pins = []trust.Pin{ue.Pin()}
	_, err, _ = runCheck(t, acct, samplePassword)
	if !errors.As(err, &ue) || ue.Server != acct.SMTP.Addr() || ue.Fingerprint != m.Fingerprint() {
		t.Fatalf("with the IMAP server pinned: %v; want the SMTP server's certificate to need trust", err)
	}
	acct.Pins = append(acct.Pins, ue.Pin())
	got, err, p = runCheck(t, acct, samplePassword)
	if err != nil {
		t.Fatalf("with the certificate pinned: %v", err)
	}
	for _, s := range p.last() {
		if s.State != StepPassed {
			t.Fatalf("step %+v did not pass", s)
		}
	}
	if s := stepNamed(t, p.last(), "Incoming mail: Login"); s.Detail != "Logged in as "+sampleEmail+"." {
		t.Fatalf("login detail %q", s.Detail)
	}
	if got.IMAP.Security != config.SecurityTLS {
		t.Fatalf("returned security %q", got.IMAP.Security)
	}
}

// TestCheckAccountFailures: each failure is the step that failed, in the
// window's words, and no untrusted-certificate question when the
// certificate is not the problem.
func TestCheckAccountFailures(t *testing.T) {
	m := sampleServer(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	pinned := sampleAccount(t, m)
	pinned.Pins = []trust.Pin{{Server: pinned.IMAP.Addr(), Fingerprint: m.Fingerprint()}, {Server: pinned.SMTP.Addr(), Fingerprint: m.Fingerprint()}}
	wrongPort := pinned
	wrongPort.IMAP, _ = config.ParseServer(closedAddr, "", 993)

	for _, c := range []struct {
		name, pw string
		acct     config.Account
		step     string
		detail   string
	}{
		{"wrong password", "wrong", pinned, "Incoming mail: Login", "Check the password, and the login name if it is not the e-mail address"},
		{"closed port", samplePassword, wrongPort, "Incoming mail: Connection", "refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err, p := runCheck(t, c.acct, c.pw)
			var ue *trust.UntrustedError
			if err == nil || errors.As(err, &ue) || !strings.HasPrefix(err.Error(), c.step+": ") {
				t.Fatalf("err %v, want the failure of %q", err, c.step)
			}
			s := stepNamed(t, p.last(), c.step)
			if s.State != StepFailed || !strings.Contains(s.Detail, c.detail) {
				t.Fatalf("step %+v, want failed with %q", s, c.detail)
			}
		})
	}
}

// TestSetupTestsWithTheDoctor walks "Test connection" in the setup window
// against real servers: the doctor's steps appear, the untrusted
// certificate's real fingerprint is asked about, and once trusted the
// test passes and the account is stored with that pin and the security
// found.
func TestSetupTestsWithTheDoctor(t *testing.T) {
	m := sampleServer(t)
	b := newFake(Status{Paired: true, PlatformURL: "https://p.example"})
	b.findErr = errors.New("not found")
	b.checkWith = func(ctx context.Context, acct config.Account, pw string, progress func([]Step)) (config.Account, error) {
		return checkAccount(ctx, acct, pw, progress, doctor.Run)
	}
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	serial(func() {
		u.setup.email.SetText(sampleEmail)
		u.setup.password.SetText(samplePassword)
		u.setup.imap.SetText(m.IMAPAddr())
		u.setup.smtp.SetText(m.SMTPAddr())
	})
	tap(button(t, w, "Test connection"))
	fp := groupFingerprint(m.Fingerprint())[:11]
	waitFor(t, "the trust question", func() bool { return hasText(w, fp) })
	if !hasText(w, "Incoming mail: TLS") || !hasText(w, "not signed by an authority") {
		t.Fatal("the failed TLS step is not shown")
	}
	tap(button(t, w, "Trust it"))
	// The outgoing server asks for its own decision.
	waitFor(t, "the trust question for the outgoing server", func() bool { return hasText(w, "Outgoing mail: TLS") && hasText(w, fp) })
	tap(button(t, w, "Trust it"))
	add := button(t, w, "Add mailbox")
	waitFor(t, "the test to pass", func() bool { return !add.Disabled() })
	if !hasText(w, "Outgoing mail: Login") || !hasText(w, "Logged in as "+sampleEmail+".") {
		t.Fatal("the passed steps are not shown")
	}
	tap(add)
	var added []config.Account
	waitFor(t, "the account", func() bool { b.with(func() { added = b.added }); return len(added) == 1 })
	if len(added[0].Pins) != 2 || added[0].Pins[0].Fingerprint != m.Fingerprint() || added[0].Pins[0].Server != added[0].IMAP.Addr() ||
		added[0].Pins[1].Server != added[0].SMTP.Addr() ||
		added[0].IMAP.Security != config.SecurityTLS || added[0].SMTP.Security != config.SecurityTLS {
		t.Fatalf("stored %+v", added[0])
	}
}
