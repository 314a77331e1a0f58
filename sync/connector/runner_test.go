package connector

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// waitStatus waits until cond holds for the Runner's Status.
func waitStatus(t *testing.T, r *Runner, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		st := r.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runUntilEnd runs r (KeepTrying) until the test ends.
func runUntilEnd(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(hangGuard):
			t.Errorf("Run did not return within %v", hangGuard)
		}
	})
}

// TestRunnerSupervisesSetup: with KeepTrying, one Run covers the whole
// first start: it says why nothing runs (typed: not paired, then no
// account), and pairing and adding the mailbox start the engine without
// another Run; the account then relays.
func TestRunnerSupervisesSetup(t *testing.T) {
	rig := testrig.New(t, testrig.Options{Unpaired: true})
	r, err := Open(rig.Home, Options{KeepTrying: true, RetryEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runUntilEnd(t, r)
	waitStatus(t, r, "not paired", func(st Status) bool { return !st.Running && errors.Is(st.Stopped, ErrNotPaired) })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Pair(ctx, PairOptions{URL: rig.Platform.URL(), Code: rig.Platform.NewPairingCode(), CAFile: rig.Platform.CAFile}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, r, "no account", func(st Status) bool {
		return st.Paired && !st.Running && errors.Is(st.Stopped, engine.ErrNoAccount)
	})

	imapSrv, _ := config.ParseServer(rig.IMAPAddr(), config.SecurityTLS, 993)
	smtpSrv, _ := config.ParseServer(rig.SMTPAddr(), config.SecurityStartTLS, 587)
	acct := config.Account{Email: rig.Email, IMAP: imapSrv, SMTP: smtpSrv,
		Pins: []trust.Pin{{Server: imapSrv.Addr(), Fingerprint: rig.Dovecot.Fingerprint}, {Server: smtpSrv.Addr(), Fingerprint: rig.Dovecot.Fingerprint}}}
	if _, err := r.AddAccount(ctx, acct, rig.Password); err != nil {
		t.Fatal(err)
	}
	rig.Append(t, "INBOX", []byte("From: a@client.test\r\nTo: alice@acme.test\r\nSubject: hi\r\n\r\nhello\r\n"), time.Now())
	waitStatus(t, r, "relaying", func(st Status) bool {
		return st.Running && st.Stopped == nil && len(st.Engine.Accounts) == 1 && st.Engine.Accounts[0].State == engine.UpToDate && st.Engine.Accounts[0].Relayed == 1
	})
}

// folderPasses returns each folder's last sync, by role.
func folderPasses(st Status) map[string]time.Time {
	m := map[string]time.Time{}
	for _, a := range st.Engine.Accounts {
		for _, f := range a.Folders {
			m[f.Role] = f.LastSync
		}
	}
	return m
}

// TestSyncNowKeepsTheEngine is the "Sync now three times": each
// click makes both folders run a pass (IDLE is renewed and polling done
// only once an hour, so nothing else would), on the same engine and the
// sessions already open: Dovecot counts no new login.
func TestSyncNowKeepsTheEngine(t *testing.T) {
	rig := testrig.New(t, testrig.Options{})
	r, err := Open(rig.Home, Options{KeepTrying: true, Tweak: func(o *engine.Options) {
		o.IdleRefresh, o.PollInterval = time.Hour, time.Hour
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runUntilEnd(t, r)
	st := waitStatus(t, r, "up to date", func(st Status) bool {
		p := folderPasses(st)
		return st.Running && len(p) == 2 && !p["inbox"].IsZero() && !p["sent"].IsZero()
	})
	eng := r.Engine()
	logins := rig.Dovecot.Logins(t, rig.Email)
	if logins != 2 {
		t.Fatalf("%d logins for the first start, want 2 (INBOX and Sent)", logins)
	}
	last := folderPasses(st)
	for i := range 3 {
		r.SyncNow()
		st = waitStatus(t, r, fmt.Sprintf("a pass after Sync now %d", i+1), func(st Status) bool {
			p := folderPasses(st)
			return p["inbox"].After(last["inbox"]) && p["sent"].After(last["sent"])
		})
		last = folderPasses(st)
	}
	if r.Engine() != eng {
		t.Fatal("Sync now built a new engine")
	}
	if n := rig.Dovecot.Logins(t, rig.Email); n != logins {
		t.Fatalf("Sync now three times: %d logins, want still %d", n, logins)
	}
}
