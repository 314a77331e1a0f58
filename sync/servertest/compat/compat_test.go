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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/cyrustest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
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
	p, err := refplatform.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, p.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := relay.New(relay.Options{BaseURL: p.URL(), CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, token, err = c.Pair(context.Background(), p.NewPairingCode(), relay.Device{Name: "compat", OS: "linux", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return p, caFile, token
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
	home, err := config.OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	imapSrv, _ := config.ParseServer(m.imaps, config.SecurityTLS, 993)
	cfg := &config.Config{
		Platform: config.Platform{URL: p.URL(), CAFile: caFile},
		Accounts: []config.Account{{Email: m.user, Username: m.login, IMAP: imapSrv, SMTP: imapSrv, BackfillDays: 30,
			TrustFingerprints: []string{m.fingerprint}, MinTLS: m.minTLS}},
	}
	st, err := state.Open(home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := engine.New(engine.Options{
		Home: home, Config: cfg, Store: st, Secrets: secrets{keychain.AccountKey(m.user): m.pass}, Once: !cont,
		Platform:    relay.Options{BaseURL: p.URL(), CAFile: caFile, Token: token},
		Log:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:     backoff.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		GiveUpAfter: 10 * time.Second, PollInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if !cont {
		if err := e.Run(ctx); err != nil {
			t.Fatalf("sync --once: %v", err)
		}
	} else {
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("engine: %v", err)
			}
		}()
		if err := p.Wait(ctx, func() bool { return len(p.Messages()) >= 3 }); err != nil {
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

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func dovecotBox(t *testing.T, o dovecottest.Options, sent string) mailbox {
	d := dovecottest.Start(t, o)
	m := mailbox{imaps: d.IMAPS, fingerprint: d.Fingerprint, user: "alice@acme.test", pass: "correct horse battery", sent: sent}
	d.AddUser(t, m.user, m.pass)
	m.append = func(t *testing.T, folder string, msg []byte, date time.Time) { d.Append(t, m.user, folder, msg, date) }
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
	return m
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
		// A server that closes every connection 400 ms after it opened.
		{"closes-early", func(t *testing.T) mailbox {
			return hostileBox(t, hostile.IMAPOptions{CloseAfter: 400 * time.Millisecond})
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) { relayAll(t, tc.box(t), tc.cont) })
	}
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
	pol, err := trust.NewPolicy(acct.MinTLS, acct.TrustFingerprints, nil)
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
// a message naming --min-tls, and accepted once the account opts in.
func TestLegacyTLSRefusedUnlessOptedIn(t *testing.T) {
	s := hostile.StartIMAP(t, hostile.IMAPOptions{MinTLS: tls.VersionTLS10, MaxTLS: tls.VersionTLS10})
	_, err := dial(t, account(t, s.Addr, config.SecurityTLS, "", s.Cert.Fingerprint), s.Password)
	if err == nil || !strings.Contains(err.Error(), "--min-tls") || !strings.Contains(err.Error(), "TLS version older") {
		t.Fatalf("dial a TLS 1.0 server with the default minimum: %v, want a refusal naming --min-tls", err)
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
