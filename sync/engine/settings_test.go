package engine

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

// failHeartbeats makes the platform answer its next n heartbeats 503.
func (r *rig) failHeartbeats(n int) {
	var left atomic.Int64
	left.Store(int64(n))
	r.platform.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, "/v1/heartbeat") || left.Add(-1) < 0 {
			return false
		}
		http.Error(w, "the platform is restarting", http.StatusServiceUnavailable)
		return true
	})
}

// fromDomain is a message from someone at domain to the account.
func fromDomain(i int, domain string, date time.Time) []byte {
	return []byte(fmt.Sprintf("From: Someone %d <someone%d@%s>\r\nTo: Alice <alice@acme.test>\r\nSubject: %d\r\n"+
		"Date: %s\r\nMessage-ID: <%d@%s>\r\n\r\nHello %d\r\n", i, i, domain, i, date.Format(time.RFC1123Z), i, domain, i))
}

// seedDomains appends n messages to INBOX, every fifth from
// sales.corp.example and the others from elsewhere.test, and returns those
// inside corp.example by their key: what relay_domains = corp.example lets
// through.
func (r *rig) seedDomains(t *testing.T, n int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	now := time.Now()
	for i := 0; i < n; i++ {
		domain := "elsewhere.test"
		if i%5 == 0 {
			domain = "sales.corp.example"
		}
		msg := fromDomain(i, domain, now)
		r.dovecot.Append(t, r.email, "INBOX", msg, now)
		if domain != "elsewhere.test" {
			want[keyOf(msg)] = msg
		}
	}
	return want
}

// TestRelayDomainsWhenFirstHeartbeatsFail: the platform allows only
// corp.example, and its first two heartbeats answer 503. Nothing outside
// corp.example leaves the machine: relaying waits for the platform's
// settings, then applies them.
func TestRelayDomainsWhenFirstHeartbeatsFail(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"corp.example"}})
	r.failHeartbeats(2)
	want := r.seedDomains(t, 20)
	e := r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	waitSnapshot(t, e, "20 messages relayed or skipped", func(s Snapshot) bool {
		return len(s.Accounts) == 1 && s.Accounts[0].Relayed+s.Accounts[0].Skipped == 20
	})
	r.checkStored(want, inboxOnly(want))
	if n := len(r.platform.Heartbeats()); n < 1 {
		t.Fatalf("%d heartbeats recorded", n)
	}
}

// TestNothingRelayedBeforeSettings: while no heartbeat has ever succeeded
// (just paired), a one-shot sync relays nothing and says why.
func TestNothingRelayedBeforeSettings(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.failHeartbeats(1000)
	r.appendMsg("INBOX", 1, 1000, time.Now())
	err := r.syncOnce()
	if err == nil || !strings.Contains(err.Error(), "settings are not known") {
		t.Fatalf("sync with every heartbeat failing = %v, want nothing relayed until the settings are known", err)
	}
	if n := r.platform.Uploads(); n != 0 {
		t.Fatalf("%d uploads before the platform's settings were known", n)
	}
}

// TestStoredSettingsWhenHeartbeatFails: once a heartbeat brought the
// settings, they are stored, and a later run whose heartbeats fail relays
// under them.
func TestStoredSettingsWhenHeartbeatFails(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"corp.example"}})
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.failHeartbeats(1000)
	keep := fromDomain(1, "corp.example", time.Now())
	r.dovecot.Append(t, r.email, "INBOX", keep, time.Now())
	r.dovecot.Append(t, r.email, "INBOX", fromDomain(2, "elsewhere.test", time.Now()), time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(keep): keep}, map[string]string{keyOf(keep): "inbox"})
}

// TestPlatformBackfillWhenFirstHeartbeatsFail: the platform widens the
// backfill to 90 days and its first two heartbeats fail: the window the
// platform asked for applies all the same, in the session already open.
func TestPlatformBackfillWhenFirstHeartbeatsFail(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	days := 90
	r.platform.SetSettings(refplatform.Settings{BackfillDays: &days})
	r.failHeartbeats(2)
	old := r.appendMsg("INBOX", 1, 1000, time.Now().AddDate(0, 0, -60))
	recent := r.appendMsg("INBOX", 2, 1000, time.Now())
	r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	r.waitStored(2, 30*time.Second)
	r.checkStored(map[string][]byte{keyOf(old): old, keyOf(recent): recent}, map[string]string{keyOf(old): "inbox", keyOf(recent): "inbox"})
}

// TestSettingChangeAppliesInSession: a wider backfill_days from the
// platform applies from the next pass of the IMAP session already open,
// without a reconnection.
func TestSettingChangeAppliesInSession(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	old := r.appendMsg("INBOX", 1, 1000, time.Now().AddDate(0, 0, -60))
	recent := r.appendMsg("INBOX", 2, 1000, time.Now())
	r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	r.waitStored(1, 30*time.Second)
	waitState(t, r, "up to date")
	logins := r.dovecot.Logins(t, r.email)
	days := 90
	r.platform.SetSettings(refplatform.Settings{BackfillDays: &days})
	r.waitStored(2, 30*time.Second)
	r.checkStored(map[string][]byte{keyOf(old): old, keyOf(recent): recent}, map[string]string{keyOf(old): "inbox", keyOf(recent): "inbox"})
	if n := r.dovecot.Logins(t, r.email); n != logins {
		t.Errorf("%d logins after the change, want none: it waited for a new session", n-logins)
	}
}

// TestAbsentSettingReturnsToLocal: a setting the platform's answer leaves
// out returns to the local value: relay_domains lifted, a message from
// anywhere is relayed again.
func TestAbsentSettingReturnsToLocal(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"corp.example"}})
	r.start(func(o *Options) { o.HeartbeatEvery = 50 * time.Millisecond })
	waitState(t, r, "up to date")
	r.platform.SetSettings(refplatform.Settings{})
	// The answer to the second heartbeat from now was read before the
	// third was sent.
	seen := len(r.platform.Heartbeats())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return len(r.platform.Heartbeats()) >= seen+3 }); err != nil {
		t.Fatal(err)
	}
	msg := fromDomain(1, "elsewhere.test", time.Now())
	r.dovecot.Append(t, r.email, "INBOX", msg, time.Now())
	r.waitStored(1, 30*time.Second)
}

// TestUnchangedHeartbeatKeepsLoginBackoff: with a wrong password the
// folders wait out the full back-off; heartbeats that bring the same
// settings again and again do not cut it short (each would retry the
// login on both connections: account lock-outs).
func TestUnchangedHeartbeatKeepsLoginBackoff(t *testing.T) {
	r := newFaultRig(t, dovecottest.Options{})
	days := 30
	r.platform.SetSettings(refplatform.Settings{BackfillDays: &days, RelayDomains: []string{"corp.example"}})
	if err := r.kc.Set(keychain.AccountKey(r.email), "wrong password"); err != nil {
		t.Fatal(err)
	}
	e := r.start(func(o *Options) {
		o.HeartbeatEvery = 20 * time.Millisecond
		o.Backoff.Max = time.Hour
	})
	waitSnapshot(t, e, "needs login", func(s Snapshot) bool { return s.Accounts[0].State == NeedsLogin })
	seen := len(r.platform.Heartbeats())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return len(r.platform.Heartbeats()) >= seen+20 }); err != nil {
		t.Fatal(err)
	}
	if n := r.IMAPProxy.Accepted(); n > 2 {
		t.Fatalf("%d connections to the IMAP server over 20 heartbeats with the same settings: the back-off was cut short", n)
	}
}

// TestLateRefusalOfOldToken: a request made with the old token is refused
// (401) after the device was paired again: relaying goes on with the new
// token.
func TestLateRefusalOfOldToken(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	oldToken := r.token
	held := make(chan struct{})
	release := make(chan struct{})
	polled := make(chan struct{}) // a poll with the new token after the refusal of the old
	var newToken atomic.Value
	var holdOnce, pollOnce gosync.Once
	r.platform.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, "/v1/outbox") {
			return false
		}
		if tok, _ := newToken.Load().(string); tok != "" && req.Header.Get("Authorization") == "Bearer "+tok {
			select {
			case <-release:
				pollOnce.Do(func() { close(polled) })
			default:
			}
			return false
		}
		if req.Header.Get("Authorization") != "Bearer "+oldToken {
			return false
		}
		holdOnce.Do(func() { close(held) })
		select {
		case <-release:
		case <-req.Context().Done():
		}
		http.Error(w, "unknown device", http.StatusUnauthorized)
		return true
	})
	e := r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	<-held
	_, tok := r.Platform.Pair(t)
	newToken.Store(tok)
	if err := r.kc.Set(keychain.DeviceTokenKey, tok); err != nil {
		t.Fatal(err)
	}
	if err := e.SetToken(tok); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case <-polled:
	case <-time.After(30 * time.Second):
		t.Fatalf("the outbox stopped after a refusal of the old token; platform %v", e.Snapshot().Platform)
	}
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.waitStored(1, 20*time.Second)
	if s := e.Snapshot(); s.Platform.State == PlatformNeedsPairing {
		t.Fatalf("platform %v after a refusal of the old token", s.Platform)
	}
}

// TestSuccessEndsRefusal: the platform refused the token once (a 401 by
// mistake); the next request it answers with the same token ends the
// block, and relaying resumes without pairing again.
func TestSuccessEndsRefusal(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.platform.FailNext(1, http.StatusUnauthorized, 0)
	e := r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	r.waitStored(1, 20*time.Second)
	if s := e.Snapshot(); s.Platform.State != PlatformOK {
		t.Fatalf("platform %v after a success", s.Platform)
	}
}

// TestSetTokenRaces: SetToken while the engine runs and its status is
// read (go test -race finds what is unguarded).
func TestSetTokenRaces(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	e := r.start(func(o *Options) { o.HeartbeatEvery = 10 * time.Millisecond })
	var wg gosync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := e.SetToken(r.token); err != nil {
					t.Error(err)
				}
				e.Snapshot()
			}
		}()
	}
	wg.Wait()
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.waitStored(1, 20*time.Second)
}

// crowdedMessage is a message to n recipients each in a domain of its own
// (more than imapsync keeps of one message), then to one address in each
// of last.
func crowdedMessage(i, n int, last []string, date time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Someone <someone%d@elsewhere.test>\r\nTo: ", i)
	for d := 0; d < n; d++ {
		fmt.Fprintf(&b, "u%d@d%d.crowd.test,\r\n ", d, d)
	}
	for j, domain := range last {
		if j > 0 {
			b.WriteString(",\r\n ")
		}
		fmt.Fprintf(&b, "boss%d@%s", j, domain)
	}
	fmt.Fprintf(&b, "\r\nSubject: crowd %d\r\nDate: %s\r\nMessage-ID: <crowd-%d@elsewhere.test>\r\n\r\nHello %d\r\n", i, date.Format(time.RFC1123Z), i, i)
	return []byte(b.String())
}

// TestRelayDomainsCrowdedMessages: relay_domains holds for messages with
// more domains than the connector keeps of one message: one whose only
// address in corp.example comes last is relayed, one with none is not.
func TestRelayDomainsCrowdedMessages(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"corp.example"}})
	now := time.Now()
	inside := crowdedMessage(1, imapsync.MaxDomains+50, []string{"sales.corp.example"}, now)
	outside := crowdedMessage(2, imapsync.MaxDomains+50, []string{"elsewhere.test"}, now)
	r.dovecot.Append(t, r.email, "INBOX", inside, now)
	r.dovecot.Append(t, r.email, "INBOX", outside, now)
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(inside): inside}, map[string]string{keyOf(inside): "inbox"})
}

// TestRelayDomainsChangeWhileCrowdedMessageWaits: relay_domains changes
// from a.example to b.example while a message with more domains than the
// connector keeps (among them one in each, last) waits for the platform.
// The domain kept for the old setting says nothing of the new one: the
// message is looked at again, not skipped, and relayed.
func TestRelayDomainsChangeWhileCrowdedMessageWaits(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"a.example"}})
	now := time.Now()
	msg := crowdedMessage(1, imapsync.MaxDomains+50, []string{"a.example", "b.example"}, now)
	r.dovecot.Append(t, r.email, "INBOX", msg, now)
	r.platform.FailNext(1_000_000, 503, 0)
	r.start(func(o *Options) { o.HeartbeatEvery = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return r.platform.Uploads() >= 1 }); err != nil {
		t.Fatalf("no upload tried: %v", err)
	}
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"b.example"}})
	// The answer to the second heartbeat from now was read before the
	// third was sent.
	seen := len(r.platform.Heartbeats())
	if err := r.platform.Wait(ctx, func() bool { return len(r.platform.Heartbeats()) >= seen+3 }); err != nil {
		t.Fatal(err)
	}
	r.platform.FailNext(0, 503, 0)
	r.waitStored(1, 30*time.Second)
	r.checkStored(map[string][]byte{keyOf(msg): msg}, map[string]string{keyOf(msg): "inbox"})
}
