package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

func TestMain(m *testing.M) { testrig.Main(m) }

// rig is a real Dovecot, the reference platform over TLS, a real keychain
// and a paired home with one account, for one test: the shared
// testrig.Rig under the names these tests use.
type rig struct {
	*testrig.Rig
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
	return wrapRig(t, testrig.New(t, testrig.Options{Dovecot: opts}))
}

// newFaultRig is newRig with fault proxies in front of IMAP, SMTP and the
// platform (r.IMAPProxy, r.SMTPProxy, r.PlatformProxy); the config and the
// engine's platform client go through them.
func newFaultRig(t testing.TB, opts dovecottest.Options) *rig {
	t.Helper()
	return wrapRig(t, testrig.New(t, testrig.Options{Dovecot: opts, FaultProxies: true}))
}

func wrapRig(t testing.TB, tr *testrig.Rig) *rig {
	// Some tests point IMAP or SMTP at a proxy of their own: trust
	// Dovecot's certificate wherever it is dialed (the account-wide form
	// pins had before they were per server; the engine still honours it).
	tr.Config.Accounts[0].TrustFingerprints = []string{tr.Dovecot.Fingerprint}
	return &rig{
		Rig: tr, t: t, dovecot: tr.Dovecot, platform: tr.Platform.Platform, home: tr.Home, cfg: tr.Config,
		kc: tr.Keychain, token: tr.Token, caFile: tr.Platform.CAFile, email: tr.Email, password: tr.Password,
	}
}

// relayOptions is the engine's platform client: through the platform proxy
// of a fault rig, with the token the test holds now (it may re-pair).
func (r *rig) relayOptions() relay.Options {
	return relay.Options{BaseURL: r.PlatformURL(), CAFile: r.caFile, Token: r.token}
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
		Platform: r.relayOptions(),
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
		Platform:  r.relayOptions(),
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
