package relay_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/faultproxy"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

// viaProxy returns a client of the paired device that reaches the platform
// through a fault proxy, with a short silence.
func viaProxy(t *testing.T, silence time.Duration) (*relay.Client, *faultproxy.Proxy, *testrig.Platform) {
	t.Helper()
	p := testrig.StartPlatform(t)
	_, token := p.Pair(t)
	u, err := url.Parse(p.URL())
	if err != nil {
		t.Fatal(err)
	}
	fp := faultproxy.Start(t, u.Host)
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(fp.Port()))
	c, err := relay.New(relay.Options{BaseURL: u.String(), CAFile: p.CAFile, Token: token, Silence: silence})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, fp, p
}

// within runs fn and fails the test if it does not return in a minute: a
// guard against a hang, not a measure of speed.
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the call hung")
		return nil
	}
}

func message(size int) (relay.Message, []byte) {
	body := bytes.Repeat([]byte("a line of a message that goes on and on\r\n"), size/41+1)[:size]
	sum := sha256.Sum256(body)
	return relay.Message{
		Account: "alice@acme.test", Mailbox: "inbox", Folder: "INBOX", UID: 1, UIDValidity: 1,
		InternalDate: time.Now(), Key: hex.EncodeToString(sum[:]), Size: int64(size),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}, body
}

// TestSilentPlatformIsNoticed: a platform that stops answering fails each
// call after the silence with a temporary error that says so, for the
// heartbeat, the upload, the check and the outbox's long poll alike:
// whether its connection froze (nothing taken, nothing sent), or it took
// the request whole and never answered.
func TestSilentPlatformIsNoticed(t *testing.T) {
	calls := func(uploadSize int) map[string]func(c *relay.Client) error {
		return map[string]func(c *relay.Client) error{
			"heartbeat": func(c *relay.Client) error {
				_, err := c.Heartbeat(t.Context(), relay.Heartbeat{Version: "test", OS: "linux", Accounts: []relay.AccountHeartbeat{}})
				return err
			},
			"upload": func(c *relay.Client) error { m, _ := message(uploadSize); return c.Upload(t.Context(), m) },
			"check": func(c *relay.Client) error {
				_, _, err := c.Check(t.Context(), []string{strings.Repeat("a", 64)})
				return err
			},
			"outbox": func(c *relay.Client) error {
				_, err := c.Outbox(t.Context(), relay.OutboxOptions{Wait: time.Second, Dir: t.TempDir()})
				return err
			},
		}
	}
	check := func(t *testing.T, name string, err error) {
		t.Helper()
		var te *relay.TemporaryError
		var se *relay.SilenceError
		if !errors.As(err, &te) || !errors.As(err, &se) || !strings.Contains(err.Error(), "stopped answering") {
			t.Fatalf("%s = %v, want a temporary error saying the platform stopped answering", name, err)
		}
	}
	// 64 MiB: more than the buffers between the client and a frozen
	// platform hold.
	for name, call := range calls(64 << 20) {
		t.Run("connection frozen/"+name, func(t *testing.T) {
			c, fp, _ := viaProxy(t, 300*time.Millisecond)
			fp.Freeze()
			check(t, name, within(t, func() error { return call(c) }))
		})
	}
	// 16 KiB: taken whole, a message has the time its last bytes may need
	// to arrive on top of the silence (minutes for a big one).
	for name, call := range calls(16 << 10) {
		t.Run("request held/"+name, func(t *testing.T) {
			c, _, p := viaProxy(t, 300*time.Millisecond)
			p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
				return true
			})
			check(t, name, within(t, func() error { return call(c) }))
		})
	}
}

// TestSlowUploadKeepsGoing: an upload that takes many silences because the
// platform takes it slowly, but steadily, is stored: the deadline follows
// the bytes. The long poll, which the platform answers only after its
// wait, is not cut short either.
func TestSlowUploadKeepsGoing(t *testing.T) {
	c, fp, p := viaProxy(t, 2*time.Second)
	m, _ := message(300 << 10)
	fp.Trickle(50 << 10) // six seconds, three silences; bytes every tenth of a second
	if err := within(t, func() error { return c.Upload(t.Context(), m) }); err != nil {
		t.Fatalf("a slow but steady upload failed: %v", err)
	}
	if _, ok := p.Message(m.Key); !ok {
		t.Fatal("the platform does not hold the message")
	}
	fp.Trickle(0)
	if _, err := within2(t, func() ([]relay.OutboxItem, error) {
		return c.Outbox(t.Context(), relay.OutboxOptions{Wait: 5 * time.Second, Dir: t.TempDir()})
	}); err != nil {
		t.Fatalf("a long poll longer than the silence failed: %v", err)
	}
}

func within2[T any](t *testing.T, fn func() (T, error)) (T, error) {
	t.Helper()
	var v T
	err := within(t, func() error { var err error; v, err = fn(); return err })
	return v, err
}
