package imapsync_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/faultproxy"
	"github.com/inboxrelay/inboxrelay/sync/spool"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// viaProxy is an account of d reached through p.
func viaProxy(d *dovecottest.Server, p *faultproxy.Proxy, email string) config.Account {
	srv, _ := config.ParseServer(p.Addr(), config.SecurityTLS, 993)
	return config.Account{Email: email, IMAP: srv, TrustFingerprints: []string{d.Fingerprint}}
}

// dialVia connects to d through p with the given silence.
func dialVia(t *testing.T, d *dovecottest.Server, p *faultproxy.Proxy, email, pass string, silence time.Duration) *imapsync.Conn {
	t.Helper()
	acct := viaProxy(d, p, email)
	pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := imapsync.DialWith(t.Context(), acct, pass, pol, imapsync.DialOptions{Silence: silence})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
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

// TestSilentServerIsNoticed: a server that stops answering in the middle
// of any step (here each of them in turn) is noticed after the silence,
// with an error that says it went silent and while doing what, never
// "cannot reach".
func TestSilentServerIsNoticed(t *testing.T) {
	d := dovecottest.Start(t, dovecottest.Options{})
	const email, pass = "alice@acme.test", "correct horse battery"
	d.AddUser(t, email, pass)
	for i := 0; i < 3; i++ {
		d.Append(t, email, "INBOX", []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i)), time.Now())
	}
	sp := &spool.Spool{Dir: t.TempDir()}
	steps := []struct {
		name, op string
		call     func(c *imapsync.Conn) error
	}{
		{"examine", `opening "INBOX"`, func(c *imapsync.Conn) error { _, err := c.Examine("INBOX"); return err }},
		{"search", "searching the folder", func(c *imapsync.Conn) error { _, err := c.Search(0, time.Time{}, 0, 3); return err }},
		{"fetch meta", "reading the facts of message UID 1", func(c *imapsync.Conn) error { _, err := c.FetchMeta([]uint32{1, 2, 3}, nil); return err }},
		{"fetch facts", "reading the facts of message UID 1", func(c *imapsync.Conn) error { _, err := c.FetchFacts([]uint32{1, 2, 3}); return err }},
		{"fetch bodies", "reading message UID 1", func(c *imapsync.Conn) error {
			return c.FetchBodies([]uint32{1, 2, 3}, sp, func(uint32, *spool.Body) error { return nil })
		}},
		{"noop", "asking for news (NOOP)", func(c *imapsync.Conn) error { return c.Noop() }},
		{"idle", "starting IDLE", func(c *imapsync.Conn) error { return c.Wait(t.Context(), nil, time.Hour, time.Hour, time.Hour) }},
		{"find sent", "listing the folders", func(c *imapsync.Conn) error { _, err := c.FindSent(); return err }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			p := faultproxy.Start(t, d.IMAPS)
			// Generous: the steps before the freeze must not fall silent
			// on a loaded machine.
			c := dialVia(t, d, p, email, pass, 2*time.Second)
			if s.name != "examine" && s.name != "find sent" {
				if _, err := c.Examine("INBOX"); err != nil {
					t.Fatal(err)
				}
			}
			p.Freeze()
			err := within(t, func() error { return s.call(c) })
			var ne *imapsync.NetError
			if !errors.As(err, &ne) || ne.Kind != imapsync.Silent || ne.Op != s.op {
				t.Fatalf("%s with the server frozen = %v (%#v), want a silence while %s", s.name, err, ne, s.op)
			}
			t.Log(err)
		})
	}
	t.Run("greeting", func(t *testing.T) {
		p := faultproxy.Start(t, d.IMAPS)
		p.Freeze()
		acct := viaProxy(d, p, email)
		pol, _ := trust.NewPolicy("", acct.TrustPins(), nil)
		err := within(t, func() error {
			c, err := imapsync.DialWith(t.Context(), acct, pass, pol, imapsync.DialOptions{Silence: 300 * time.Millisecond})
			if err == nil {
				c.Close()
			}
			return err
		})
		var ne *imapsync.NetError
		if !errors.As(err, &ne) || ne.Kind != imapsync.Silent {
			t.Fatalf("dial with the server frozen = %v, want a silence", err)
		}
		t.Log(err)
	})
}

// TestSlowLiteralKeepsGoing: a message that takes many silences to arrive,
// because its bytes trickle, is read whole: the deadline follows the bytes.
func TestSlowLiteralKeepsGoing(t *testing.T) {
	d := dovecottest.Start(t, dovecottest.Options{})
	const email, pass = "alice@acme.test", "correct horse battery"
	d.AddUser(t, email, pass)
	var msg bytes.Buffer
	msg.WriteString("Subject: big\r\n\r\n")
	for msg.Len() < 300<<10 {
		msg.WriteString("a line of a message that arrives slowly, a few KiB at a time\r\n")
	}
	uid := d.Append(t, email, "INBOX", msg.Bytes(), time.Now())
	p := faultproxy.Start(t, d.IMAPS)
	c := dialVia(t, d, p, email, pass, 2*time.Second)
	if _, err := c.Examine("INBOX"); err != nil {
		t.Fatal(err)
	}
	// 300 KiB at 50 KiB/s: six seconds, three silences; the bytes come
	// every tenth of a second, far within one.
	p.Trickle(50 << 10)
	var got *spool.Body
	sp := &spool.Spool{Dir: t.TempDir(), Threshold: 10 << 20}
	err := within(t, func() error {
		return c.FetchBodies([]uint32{uid}, sp, func(_ uint32, b *spool.Body) error { got = b; return nil })
	})
	if err != nil {
		t.Fatalf("a slow but steady message failed: %v", err)
	}
	if got == nil || got.Size != int64(msg.Len()) {
		t.Fatalf("got %v, want the whole message of %d bytes", got, msg.Len())
	}
}
