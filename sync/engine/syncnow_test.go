package engine

import (
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// folderSyncs returns each folder's last sync, by role.
func folderSyncs(e *Engine) map[string]time.Time {
	m := map[string]time.Time{}
	for _, a := range e.Snapshot().Accounts {
		for _, f := range a.Folders {
			m[f.Role] = f.LastSync
		}
	}
	return m
}

// waitPassAfter waits until every folder finished a pass after the times
// in before.
func waitPassAfter(t *testing.T, e *Engine, before map[string]time.Time, what string) map[string]time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := folderSyncs(e)
		done := len(now) == 2
		for role, at := range now {
			if !at.After(before[role]) {
				done = false
			}
		}
		if done {
			return now
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no pass of every folder after %v (now %v)", what, before, now)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSyncNowWakesTheOpenSessions: with IDLE renewed and polling only
// once an hour, nothing but SyncNow makes a folder look again; each
// SyncNow interrupts the IDLE and runs a pass on the session already
// open, on Dovecot with and without IDLE.
func TestSyncNowWakesTheOpenSessions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts dovecottest.Options
	}{{"idle", dovecottest.Options{}}, {"polling", dovecottest.Options{NoIDLE: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts)
			e := r.start(func(o *Options) { o.PollInterval, o.IdleRefresh = time.Hour, time.Hour })
			waitState(t, r, "up to date")
			last := waitPassAfter(t, e, nil, "the first pass")
			if tc.opts.NoIDLE {
				// Without IDLE nothing tells the engine of new mail: only
				// SyncNow brings this message before the hourly poll.
				r.appendMsg("INBOX", 1, 800, time.Now())
			}
			for i := range 3 {
				e.SyncNow()
				last = waitPassAfter(t, e, last, "SyncNow "+string(rune('1'+i)))
			}
			if tc.opts.NoIDLE {
				r.waitStored(1, 10*time.Second)
			}
		})
	}
}

// TestSyncNowCutsTheOutboxBackoff: the outbox's poll failed (the platform
// refused connections) and waits out an hour of backoff; once the platform
// is back, SyncNow makes it poll at once, and the reply queued meanwhile is
// sent and reported.
func TestSyncNowCutsTheOutboxBackoff(t *testing.T) {
	r := newFaultRig(t, dovecottest.Options{})
	r.PlatformProxy.Refuse(true)
	e := r.start(func(o *Options) {
		o.Backoff = backoff.Policy{Base: time.Hour, Max: time.Hour}
		o.OutboxWait = time.Second
		o.FiledWait = 50 * time.Millisecond
	})
	deadline := time.Now().Add(20 * time.Second)
	for e.Snapshot().Platform.State != PlatformUnreachable {
		if time.Now().After(deadline) {
			t.Fatalf("the platform never became unreachable: %+v", e.Snapshot().Platform)
		}
		time.Sleep(10 * time.Millisecond)
	}
	id := r.enqueue(reply(1))
	r.PlatformProxy.Refuse(false)
	e.SyncNow()
	deadline = time.Now().Add(30 * time.Second)
	for len(r.result(id)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the reply was not sent after SyncNow (platform %+v)", e.Snapshot().Platform)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := r.result(id); res[0].State != "sent" {
		t.Fatalf("result %+v", res)
	}
	if st := e.Snapshot().Platform.State; st != PlatformOK {
		t.Fatalf("platform %v after SyncNow, want ok: the heartbeat was not tried again", st)
	}
}
