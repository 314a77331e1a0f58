package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/keychain/keyringtest"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

func TestMain(m *testing.M) {
	stop, err := keyringtest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start a private keychain:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// rig is a real Dovecot, the reference platform over TLS, a real keychain
// and a paired home with one account, for one test.
type rig struct {
	t        testing.TB
	dovecot  *dovecottest.Server
	platform *refplatform.Platform
	home     config.Home
	cfg      *config.Config
	kc       *keychain.Store
	token    string
	caFile   string
	email    string
	password string
}

func newRig(t testing.TB, opts dovecottest.Options) *rig {
	t.Helper()
	r := &rig{t: t, email: "alice@acme.test", password: "correct horse battery"}
	r.dovecot = dovecottest.Start(t, opts)
	r.dovecot.AddUser(t, r.email, r.password)

	p, err := refplatform.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r.platform = p
	r.caFile = filepath.Join(t.TempDir(), "platform-ca.pem")
	if err := os.WriteFile(r.caFile, p.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	if r.home, err = config.OpenHome(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if r.kc, err = keychain.New(r.home.Dir); err != nil {
		t.Fatal(err)
	}
	c, err := relay.New(relay.Options{BaseURL: p.URL(), CAFile: r.caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, r.token, err = c.Pair(context.Background(), p.NewPairingCode(), relay.Device{Name: "test", OS: "linux", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := r.kc.Set(keychain.AccountKey(r.email), r.password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.kc.Delete(keychain.AccountKey(r.email)) })
	imapSrv, _ := config.ParseServer(r.dovecot.IMAPS, config.SecurityTLS, 993)
	smtpSrv, _ := config.ParseServer(r.dovecot.Submission, config.SecurityStartTLS, 587)
	r.cfg = &config.Config{
		Platform: config.Platform{URL: p.URL(), CAFile: r.caFile},
		Accounts: []config.Account{{
			Email: r.email, IMAP: imapSrv, SMTP: smtpSrv, BackfillDays: 30,
			TrustFingerprints: []string{r.dovecot.Fingerprint},
		}},
	}
	return r
}

// engine returns an engine on the rig's home with fast test timings; the
// state database is closed at cleanup.
func (r *rig) engine(once bool, tweak ...func(*Options)) *Engine {
	r.t.Helper()
	st, err := state.Open(r.home.StatePath())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	o := Options{
		Home: r.home, Config: r.cfg, Store: st, Secrets: r.kc, Once: once,
		Platform: relay.Options{BaseURL: r.platform.URL(), CAFile: r.caFile, Token: r.token},
		Log:      slog.New(slog.NewTextHandler(testWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:  backoff.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}
	if once {
		o.GiveUpAfter = 10 * time.Second
	}
	for _, f := range tweak {
		f(&o)
	}
	e, err := New(o)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// syncOnce runs one pass and closes the state database again.
func (r *rig) syncOnce(tweak ...func(*Options)) error {
	r.t.Helper()
	st, err := state.Open(r.home.StatePath())
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	o := Options{
		Home: r.home, Config: r.cfg, Store: st, Secrets: r.kc, Once: true, GiveUpAfter: 10 * time.Second,
		Platform:  relay.Options{BaseURL: r.platform.URL(), CAFile: r.caFile, Token: r.token},
		Log:       slog.New(slog.NewTextHandler(testWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:   backoff.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		FiledWait: 50 * time.Millisecond, OutboxWait: time.Second,
	}
	for _, f := range tweak {
		f(&o)
	}
	e, err := New(o)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return e.Run(ctx)
}

// start runs a continuous engine until the test ends.
func (r *rig) start(tweak ...func(*Options)) *Engine {
	r.t.Helper()
	e := r.engine(false, tweak...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				r.t.Errorf("engine stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			r.t.Errorf("engine did not stop within 10 s")
		}
	})
	return e
}

// waitStored waits until the platform holds n messages.
func (r *rig) waitStored(n int, within time.Duration) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return len(r.platform.Messages()) >= n }); err != nil {
		r.t.Fatalf("the platform holds %d messages, want %d: %v", len(r.platform.Messages()), n, err)
	}
}

// appendMsg puts a message in a folder and returns its bytes.
func (r *rig) appendMsg(folder string, i int, size int, date time.Time) []byte {
	r.t.Helper()
	msg := testMessage(i, size, date)
	r.dovecot.Append(r.t, r.email, folder, msg, date)
	return msg
}

// testMessage builds a message of about size bytes; i makes it unique.
func testMessage(i, size int, date time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Customer %d <customer%d@client.test>\r\nTo: Alice <alice@acme.test>\r\n", i, i)
	fmt.Fprintf(&b, "Subject: Message %d\r\nDate: %s\r\nMessage-ID: <msg-%d@client.test>\r\n", i, date.Format(time.RFC1123Z), i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := fmt.Sprintf("Line of message %d, with some words to make it longer than it needs to be.\r\n", i)
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// stored returns the platform's copy of the message with this body.
func (r *rig) storedBody(m refplatform.Message) []byte {
	r.t.Helper()
	f, err := m.Open()
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
