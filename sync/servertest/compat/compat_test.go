// Package compat runs the engine end to end against every IMAP server the
// test machine can run: each must relay INBOX and Sent the same way.
package compat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/couriertest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/cyrustest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/servertest/smtpsink"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// mailbox is one server under test, as the matrix needs it.
type mailbox struct {
	imaps       string // implicit-TLS host:port
	fingerprint string // of its certificate, pinned by the account
	user, pass  string
	login       string // when not the e-mail address
	sent        string // the Sent folder's name on this server
	minTLS      string
	append      func(t *testing.T, folder string, msg []byte, date time.Time)

	// The SMTP side, for replies; empty smtp: the server has none.
	smtp      string
	smtpSec   config.Security
	smtpPin   string // the SMTP certificate's fingerprint, when not the IMAP one
	delivered func() []delivery
}

// delivery is one message the SMTP side accepted.
type delivery struct {
	from string
	to   []string
	data []byte
}

// account returns the engine's configuration of m's account.
func (m mailbox) account(t *testing.T) config.Account {
	t.Helper()
	imapSrv, err := config.ParseServer(m.imaps, config.SecurityTLS, 993)
	if err != nil {
		t.Fatal(err)
	}
	a := config.Account{Email: m.user, Username: m.login, IMAP: imapSrv, SMTP: imapSrv,
		TrustFingerprints: []string{m.fingerprint}, MinTLS: m.minTLS}
	if m.smtp != "" {
		if a.SMTP, err = config.ParseServer(m.smtp, m.smtpSec, 465); err != nil {
			t.Fatal(err)
		}
		if m.smtpPin != "" {
			a.TrustFingerprints = append(a.TrustFingerprints, m.smtpPin)
		}
	}
	return a
}

// secrets is the engine's password source for one account.
type secrets map[string]string

func (s secrets) Get(key string) (string, error) {
	if v, ok := s[key]; ok {
		return v, nil
	}
	return "", keychain.ErrNotFound
}

func message(i int, date time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Customer %d <customer%d@client.test>\r\nTo: Alice <alice@acme.test>\r\n", i, i)
	fmt.Fprintf(&b, "Subject: Compat %d\r\nDate: %s\r\nMessage-ID: <compat-%d@client.test>\r\n\r\nBody of %d.\r\n", i, date.Format(time.RFC1123Z), i, i)
	return b.Bytes()
}

func key(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// platform starts the reference platform and pairs a device.
func platform(t *testing.T) (p *refplatform.Platform, caFile, token string) {
	t.Helper()
	tp := testrig.StartPlatform(t)
	_, token = tp.Pair(t)
	return tp.Platform, tp.CAFile, token
}

// relayAll puts two messages in INBOX and one in Sent, runs the engine
// (once, or continuously when cont) and checks that the platform got the
// three, each with its role and folder name.
func relayAll(t *testing.T, m mailbox, cont bool) {
	t.Helper()
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	in1, in2, out := message(1, now), message(2, now), message(3, now)
	m.append(t, "INBOX", in1, now)
	m.append(t, "INBOX", in2, now)
	m.append(t, m.sent, out, now)

	p, caFile, token := platform(t)
	run := runner(t, m, p, caFile, token)
	if !cont {
		if err := run(true, nil); err != nil {
			t.Fatalf("sync --once: %v", err)
		}
	} else {
		if err := run(false, func() bool { return len(p.Messages()) >= 3 }); err != nil {
			t.Fatalf("the platform holds %d messages, want 3: %v", len(p.Messages()), err)
		}
	}
	want := map[string][2]string{key(in1): {"inbox", "INBOX"}, key(in2): {"inbox", "INBOX"}, key(out): {"sent", m.sent}}
	got := p.Messages()
	if len(got) != 3 {
		t.Fatalf("the platform holds %d messages, want 3", len(got))
	}
	for _, msg := range got {
		w, ok := want[msg.Key]
		if !ok || msg.Mailbox != w[0] || msg.Folder != w[1] {
			t.Errorf("stored %s as %s in %q, want %v", msg.Key[:8], msg.Mailbox, msg.Folder, w)
		}
	}
	if r := p.Rejections(); len(r) > 0 {
		t.Errorf("the platform refused requests: %v", r)
	}
}

// runner returns a function that runs an engine for m's account on a home
// kept between its calls: once (sync --once) or, when !once, continuously
// until done holds.
func runner(t *testing.T, m mailbox, p *refplatform.Platform, caFile, token string) func(once bool, done func() bool) error {
	t.Helper()
	home, err := config.OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Platform: config.Platform{URL: p.URL(), CAFile: caFile}, Accounts: []config.Account{m.account(t)}}
	return func(once bool, done func() bool) error {
		st, err := state.Open(home.StatePath())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		e, err := engine.New(engine.Options{
			Home: home, Config: cfg, Store: st, Secrets: secrets{keychain.AccountKey(m.user): m.pass}, Once: once,
			Platform:    relay.Options{BaseURL: p.URL(), CAFile: caFile, Token: token},
			Log:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Backoff:     backoff.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
			GiveUpAfter: 10 * time.Second, PollInterval: 200 * time.Millisecond,
			// None of these servers files sent mail itself.
			FiledWait: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if once {
			return e.Run(ctx)
		}
		stopped := make(chan error, 1)
		go func() { stopped <- e.Run(ctx) }()
		werr := p.Wait(ctx, done)
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("engine: %v", err)
		}
		return werr
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func dovecotBox(t *testing.T, o dovecottest.Options, sent string) mailbox {
	d := dovecottest.Start(t, o)
	m := mailbox{imaps: d.IMAPS, fingerprint: d.Fingerprint, user: "alice@acme.test", pass: "correct horse battery", sent: sent,
		// Dovecot's own submission service (STARTTLS, the IMAP certificate),
		// relaying to the harness's go-smtp sink.
		smtp: d.Submission, smtpSec: config.SecurityStartTLS}
	d.AddUser(t, m.user, m.pass)
	m.append = func(t *testing.T, folder string, msg []byte, date time.Time) { d.Append(t, m.user, folder, msg, date) }
	m.delivered = func() []delivery {
		var out []delivery
		for _, x := range d.Delivered() {
			out = append(out, delivery{x.From, x.To, x.Data})
		}
		return out
	}
	return m
}

// withSink gives m a go-smtp submission server that takes m's login and
// password: Cyrus's and Courier's Debian packages have no SMTP server, so
// this stands in for the MTA next to them.
func withSink(t *testing.T, m mailbox) mailbox {
	login := m.login
	if login == "" {
		login = m.user
	}
	k := smtpsink.Start(t, login, m.pass)
	m.smtp, m.smtpSec, m.smtpPin = k.Addr, config.SecurityTLS, k.Fingerprint
	m.delivered = func() []delivery {
		var out []delivery
		for _, x := range k.Delivered() {
			out = append(out, delivery{x.From, x.To, x.Data})
		}
		return out
	}
	return m
}

func hostileBox(t *testing.T, o hostile.IMAPOptions) mailbox {
	s := hostile.StartIMAP(t, o)
	return mailbox{imaps: s.Addr, fingerprint: s.Cert.Fingerprint, user: s.User, pass: s.Password, sent: s.SentName,
		append: func(t *testing.T, folder string, msg []byte, date time.Time) { s.Append(t, folder, msg, date) }}
}

func cyrusBox(t *testing.T) mailbox {
	s := cyrustest.Start(t)
	m := mailbox{imaps: s.IMAPS, fingerprint: s.Fingerprint, user: "alice@acme.test", login: "alice", pass: "correct horse battery", sent: "Sent"}
	s.AddUser(t, m.login, m.pass)
	m.append = func(t *testing.T, folder string, msg []byte, date time.Time) {
		s.Append(t, m.login, m.pass, folder, msg, date)
	}
	return withSink(t, m)
}

// courierBox is Courier-IMAP: folders under "INBOX." with "." as
// delimiter, no SPECIAL-USE, a login without the domain.
func courierBox(t *testing.T) mailbox {
	s := couriertest.Start(t)
	m := mailbox{imaps: s.IMAPS, fingerprint: s.Fingerprint, user: "alice@acme.test", login: "alice", pass: "correct horse battery", sent: "INBOX.Sent"}
	s.AddUser(t, m.login, m.pass)
	m.append = func(t *testing.T, folder string, msg []byte, date time.Time) {
		s.Append(t, m.login, m.pass, folder, msg, date)
	}
	return withSink(t, m)
}

// TestMatrix relays INBOX and Sent from each server the same way.
func TestMatrix(t *testing.T) {
	for _, tc := range []struct {
		name string
		box  func(t *testing.T) mailbox
		cont bool
	}{
		{"dovecot", func(t *testing.T) mailbox { return dovecotBox(t, dovecottest.Options{}, "Sent") }, false},
		// Courier's layout on Dovecot: everything under "INBOX." with "."
		// as delimiter, no SPECIAL-USE, no IDLE.
		{"dovecot-inbox-dot-no-idle", func(t *testing.T) mailbox {
			return dovecotBox(t, dovecottest.Options{Namespace: "INBOX.", NoSpecialUse: true, NoIDLE: true}, "INBOX.Sent")
		}, true},
		// go-imap's minimal server: IMAP4rev1 only (no SPECIAL-USE, UIDPLUS,
		// NAMESPACE), Sent with a non-ASCII name in modified UTF-7.
		{"minimal-utf7-sent", func(t *testing.T) mailbox {
			return hostileBox(t, hostile.IMAPOptions{SentName: "Éléments envoyés"})
		}, false},
		{"tls10-opted-in", func(t *testing.T) mailbox {
			m := hostileBox(t, hostile.IMAPOptions{MinTLS: tls.VersionTLS10, MaxTLS: tls.VersionTLS10})
			m.minTLS = "1.0"
			return m
		}, false},
		{"cyrus", cyrusBox, false},
		{"courier", courierBox, false},
		// A server that closes every connection 400 ms after it opened.
		{"closes-early", func(t *testing.T) mailbox {
			return hostileBox(t, hostile.IMAPOptions{CloseAfter: 400 * time.Millisecond})
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) { relayAll(t, tc.box(t), tc.cont) })
	}
}

// TestReply sends a reply written in the platform through each real
// server's SMTP side and checks, after one engine pass, that it was
// delivered once, filed once in that server's Sent (found by Message-ID),
// reported sent with its Sent UID, and relayed from Sent to the platform;
// a second pass changes none of it.
func TestReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		box  func(t *testing.T) mailbox
	}{
		{"dovecot", func(t *testing.T) mailbox { return dovecotBox(t, dovecottest.Options{}, "Sent") }},
		{"cyrus", cyrusBox},
		{"courier", courierBox},
	} {
		t.Run(tc.name, func(t *testing.T) { replyEndToEnd(t, tc.box(t)) })
	}
}

func replyEndToEnd(t *testing.T, m mailbox) {
	const customer = "customer@client.test"
	p, caFile, token := platform(t)
	// As a CSM writes it: no Message-ID, no Date, bare LF.
	raw := []byte("From: Alice <" + m.user + ">\nTo: " + customer + "\nSubject: Re: Renewal\n\nThanks, we will renew.\n")
	id := p.Enqueue(refplatform.OutboxItem{Account: m.user, Raw: raw, From: m.user, To: []string{customer}})
	run := runner(t, m, p, caFile, token)
	if err := run(true, nil); err != nil {
		t.Fatalf("sync --once: %v", err)
	}

	res := p.Results()[id]
	if len(res) != 1 || res[0].State != "sent" || res[0].SMTPCode/100 != 2 || res[0].SentUID == 0 || res[0].MessageID == "" {
		t.Fatalf("results %+v, want one sent with a 2xx code, the Sent UID and the Message-ID", res)
	}
	dl := m.delivered()
	if len(dl) != 1 || dl[0].from != m.user || len(dl[0].to) != 1 || dl[0].to[0] != customer {
		t.Fatalf("delivered %+v, want one message from %s to %s", dl, m.user, customer)
	}
	copies := sentCopies(t, m, res[0].MessageID)
	if len(copies) != 1 {
		t.Fatalf("%d copies in %s with Message-ID %s, want 1", len(copies), m.sent, res[0].MessageID)
	}
	if copies[0].uid != res[0].SentUID {
		t.Fatalf("the copy in %s has UID %d, the result says %d", m.sent, copies[0].uid, res[0].SentUID)
	}
	if !bytes.HasSuffix(dl[0].data, copies[0].body) || !bytes.Contains(copies[0].body, []byte("Thanks, we will renew.\r\n")) {
		t.Fatalf("the copy in Sent is not the message delivered:\n%q\n%q", copies[0].body, dl[0].data)
	}
	relayed := func() bool {
		for _, msg := range p.Messages() {
			if msg.Key == key(copies[0].body) && msg.Mailbox == "sent" && msg.Folder == m.sent && msg.UID == res[0].SentUID {
				return true
			}
		}
		return false
	}
	if !relayed() {
		t.Fatalf("the copy in %s (UID %d) was not relayed to the platform as sent mail: %+v", m.sent, res[0].SentUID, p.Messages())
	}

	if err := run(true, nil); err != nil {
		t.Fatalf("second sync --once: %v", err)
	}
	if len(m.delivered()) != 1 || len(p.Results()[id]) != 1 || len(sentCopies(t, m, res[0].MessageID)) != 1 || len(p.Messages()) != 1 {
		t.Fatal("the second pass sent, reported, filed or relayed again")
	}
	if r := p.Rejections(); len(r) > 0 {
		t.Errorf("the platform refused requests: %v", r)
	}
}

type sentCopy struct {
	uid  uint32
	body []byte
}

// sentCopies logs in to m over its pinned TLS and returns the messages in
// its Sent folder whose Message-ID is id, read without changing a flag.
func sentCopies(t *testing.T, m mailbox, id string) []sentCopy {
	t.Helper()
	login := m.login
	if login == "" {
		login = m.user
	}
	c, err := imapclient.DialTLS(m.imaps, &imapclient.Options{TLSConfig: &tls.Config{
		InsecureSkipVerify: true, // verified below: pinned, as the account does
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || trust.Fingerprint(cs.PeerCertificates[0]) != m.fingerprint {
				return errors.New("not the pinned certificate")
			}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(login, m.pass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := c.Select(m.sent, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("examine %s: %v", m.sent, err)
	}
	d, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
	if err != nil {
		t.Fatalf("search %s: %v", m.sent, err)
	}
	var out []sentCopy
	if uids := d.AllUIDs(); len(uids) > 0 {
		msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for _, msg := range msgs {
			for _, b := range msg.BodySection {
				out = append(out, sentCopy{uint32(msg.UID), b.Bytes})
			}
		}
	}
	c.Logout().Wait()
	return out
}

func account(t *testing.T, addr string, sec config.Security, minTLS, pin string) config.Account {
	s, err := config.ParseServer(addr, sec, 993)
	if err != nil {
		t.Fatal(err)
	}
	return config.Account{Email: "alice@acme.test", IMAP: s, MinTLS: minTLS, TrustFingerprints: []string{pin}}
}

func dial(t *testing.T, acct config.Account, pw string) (*imapsync.Conn, error) {
	t.Helper()
	pol, err := trust.NewPolicy(acct.MinTLS, acct.TrustPins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := imapsync.Dial(ctx, acct, pw, pol)
	if c != nil {
		c.Close()
	}
	return c, err
}

// TestLegacyTLSRefusedUnlessOptedIn: a TLS 1.0-only server is refused with
// trust.ErrTLSTooOld (the front ends add how to opt in), and accepted once
// the account opts in.
func TestLegacyTLSRefusedUnlessOptedIn(t *testing.T) {
	s := hostile.StartIMAP(t, hostile.IMAPOptions{MinTLS: tls.VersionTLS10, MaxTLS: tls.VersionTLS10})
	_, err := dial(t, account(t, s.Addr, config.SecurityTLS, "", s.Cert.Fingerprint), s.Password)
	if !errors.Is(err, trust.ErrTLSTooOld) {
		t.Fatalf("dial a TLS 1.0 server with the default minimum: %v, want trust.ErrTLSTooOld", err)
	}
	if _, err := dial(t, account(t, s.Addr, config.SecurityTLS, "1.0", s.Cert.Fingerprint), s.Password); err != nil {
		t.Fatalf("dial with --min-tls 1.0: %v", err)
	}
}

// TestHostileStartTLSRefused: the engine's own dialer refuses each
// STARTTLS attack before any password is sent, and says why.
func TestHostileStartTLSRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode hostile.StartTLSMode
		want string
	}{
		{"stripped", hostile.Strip, "refused STARTTLS"},
		{"injected", hostile.Inject, "unencrypted data after agreeing to STARTTLS"},
		{"preauth", hostile.Preauth, "PREAUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := hostile.NewCert(t, hostile.CertOptions{})
			addr := hostile.StartTLSServer(t, tc.mode, cert)
			_, err := dial(t, account(t, addr, config.SecurityStartTLS, "", cert.Fingerprint), "secret-password")
			if err == nil {
				t.Fatal("the connection was accepted")
			}
			var ae *imapsync.AuthError
			if errors.As(err, &ae) {
				t.Fatalf("a login was attempted: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
