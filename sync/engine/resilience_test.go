package engine

import (
	"context"
	"io"
	"net"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// freezer is a TCP proxy whose existing connections can be frozen: bytes
// stop flowing both ways while the sockets stay open, as when a peer
// vanishes without a FIN (a laptop leaving the network, a NAT timeout).
type freezer struct {
	ln     net.Listener
	target string
	mu     gosync.Mutex
	conns  []net.Conn
	frozen chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			frozen := f.frozen
			f.mu.Unlock()
			go f.pipe(c, up, frozen)
			go f.pipe(up, c, frozen)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn, frozen chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			<-make(chan struct{}) // swallow everything, answer nothing, forever
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// freeze freezes the connections open now; later ones flow normally.
func (f *freezer) freeze() {
	f.mu.Lock()
	close(f.frozen)
	f.frozen = make(chan struct{})
	f.mu.Unlock()
}

func (f *freezer) addr() (string, int) {
	a := f.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestWatchdogReconnectsAfterSilentDeath(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	fz := newFreezer(t, r.dovecot.IMAPS)
	host, port := fz.addr()
	r.cfg.Accounts[0].IMAP.Host, r.cfg.Accounts[0].IMAP.Port = host, port
	r.start(func(o *Options) {
		o.IdleRefresh, o.Watchdog, o.PollInterval = 300*time.Millisecond, 300*time.Millisecond, time.Hour
	})
	waitState(t, r, "up to date")
	fz.freeze()
	// Only a connection opened after the freeze can see this message.
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.waitStored(1, 15*time.Second)
}

func TestHeartbeatReportsAccounts(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	waitState(t, r, "up to date")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, hb := range r.platform.Heartbeats() {
			if len(hb.Accounts) == 1 && hb.Accounts[0].Email == r.email && hb.Accounts[0].State == "idle" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no heartbeat reported %s as idle: %+v", r.email, r.platform.Heartbeats())
}

func TestPlatformWidensBackfill(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	old := r.appendMsg("INBOX", 1, 1000, time.Now().AddDate(0, 0, -60))
	recent := r.appendMsg("INBOX", 2, 1000, time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if got := r.platform.Messages(); len(got) != 1 || got[0].Key != keyOf(recent) {
		t.Fatalf("with a 30-day window, stored %d messages, want only the recent one", len(got))
	}
	days := 90
	r.platform.SetSettings(refplatform.Settings{BackfillDays: &days})
	if err := r.syncOnce(); err != nil { // the heartbeat at start brings the setting
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(old): old, keyOf(recent): recent}, map[string]string{keyOf(old): "inbox", keyOf(recent): "inbox"})
	if n := r.platform.Uploads(); n != 2 {
		t.Errorf("%d uploads, want 2: the recent message was uploaded again", n)
	}
}

func TestStartTLSAccount(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	host, port, _ := net.SplitHostPort(r.dovecot.IMAP)
	p, _ := strconv.Atoi(port)
	r.cfg.Accounts[0].IMAP.Host, r.cfg.Accounts[0].IMAP.Port, r.cfg.Accounts[0].IMAP.Security = host, p, "starttls"
	msg := r.appendMsg("INBOX", 1, 1000, time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(msg): msg}, map[string]string{keyOf(msg): "inbox"})
}

// TestStopMidBatch stops the engine while a batch is still being handed to
// the upload workers (all of them busy retrying a 503): it must stop
// cleanly, and the next run relays everything.
func TestStopMidBatch(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	for i := 0; i < 30; i++ {
		r.appendMsg("INBOX", i, 1000, time.Now())
	}
	r.platform.FailNext(1_000_000, 503, 0)
	e := r.engine(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for r.platform.Uploads() < 8 { // every worker is retrying; the folder waits to hand over more
		if time.Now().After(deadline) {
			t.Fatalf("only %d uploads tried", r.platform.Uploads())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not stop")
	}
	e.o.Store.Close()
	r.platform.FailNext(0, 503, 0)
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.waitStored(30, time.Second)
}

// TestBackfillFollowsTheSettingsPrecedence: the engine takes the backfill
// window from sync/settings: the user's 7 days keep a 20-day-old message
// back; the platform's 90 days win over the user's; IT's locked 7 days win
// over the platform's, so a message older than that is still not relayed.
func TestBackfillFollowsTheSettingsPrecedence(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.cfg.Settings.BackfillDays = settings.Int(7)
	older := r.appendMsg("INBOX", 1, 1000, time.Now().AddDate(0, 0, -20))
	oldest := r.appendMsg("INBOX", 2, 1000, time.Now().AddDate(0, 0, -60))
	lockSeven := func(o *Options) { o.Policy.Locked.BackfillDays = settings.Int(7) }
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.platform.Messages()); n != 0 {
		t.Fatalf("with the user's 7-day window, %d messages stored, want none", n)
	}
	days := 90
	r.platform.SetSettings(refplatform.Settings{BackfillDays: &days})
	if err := r.syncOnce(lockSeven); err != nil {
		t.Fatal(err)
	}
	if n := len(r.platform.Messages()); n != 0 {
		t.Fatalf("with IT's locked 7-day window over the platform's 90, %d messages stored, want none", n)
	}
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(older): older, keyOf(oldest): oldest}, map[string]string{keyOf(older): "inbox", keyOf(oldest): "inbox"})
}
