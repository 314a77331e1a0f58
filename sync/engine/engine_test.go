package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

func keyOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkStored fails unless the platform holds exactly want, byte for byte,
// each once, with the right headers.
func (r *rig) checkStored(want map[string][]byte, mailbox map[string]string) {
	r.t.Helper()
	got := r.platform.Messages()
	if len(got) != len(want) {
		r.t.Fatalf("the platform holds %d messages, want %d", len(got), len(want))
	}
	for _, m := range got {
		body, ok := want[m.Key]
		if !ok {
			r.t.Fatalf("the platform holds an unexpected message %s (UID %d)", m.Key, m.UID)
		}
		if b := r.storedBody(m); !bytes.Equal(b, body) {
			r.t.Fatalf("UID %d: stored body differs from the server's (%d vs %d bytes)", m.UID, len(b), len(body))
		}
		if m.Account != r.email || m.Mailbox != mailbox[m.Key] || m.UIDValidity == 0 || m.UID == 0 {
			r.t.Fatalf("UID %d: headers account %q mailbox %q uidvalidity %d", m.UID, m.Account, m.Mailbox, m.UIDValidity)
		}
	}
}

func TestBackfillMixedSizes(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	now := time.Now()
	want := map[string][]byte{}
	mailbox := map[string]string{}
	sizes := []int{300, 2_000, 40_000, 1_500_000} // the last one goes through the spool
	for i := 0; i < 240; i++ {
		folder, role := "INBOX", "inbox"
		if i%4 == 3 {
			folder, role = "Sent", "sent"
		}
		size := sizes[i%len(sizes)]
		if size > 100_000 && i%20 != 3 {
			size = 5_000
		}
		msg := r.appendMsg(folder, i, size, now.Add(-time.Duration(i)*time.Hour))
		want[keyOf(msg)], mailbox[keyOf(msg)] = msg, role
	}
	// Outside the 30-day window: not relayed.
	r.appendMsg("INBOX", 9999, 500, now.AddDate(0, 0, -60))

	if err := r.syncOnce(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	r.checkStored(want, mailbox)
	if n := r.platform.Uploads(); n != len(want) {
		t.Errorf("%d uploads for %d messages: something was sent twice", n, len(want))
	}
	if left, _ := filepath.Glob(filepath.Join(r.home.SpoolDir(), "*")); len(left) != 0 {
		t.Errorf("spool files left after relay: %v", left)
	}
	// A second pass finds nothing to do.
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if n := r.platform.Uploads(); n != len(want) {
		t.Errorf("a second pass uploaded again: %d uploads", n)
	}
}

func TestHeadersAndFlags(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	date := time.Date(2026, 11, 20, 9, 30, 0, 0, time.FixedZone("", 3600))
	msg := testMessage(1, 500, date)
	uid := r.dovecot.Append(t, r.email, "INBOX", msg, date, `\Seen`, `\Flagged`)
	if err := r.syncOnce(func(o *Options) { o.Now = func() time.Time { return date.Add(time.Hour) } }); err != nil {
		t.Fatal(err)
	}
	got := r.platform.Messages()
	if len(got) != 1 {
		t.Fatalf("%d messages stored", len(got))
	}
	m := got[0]
	if m.UID != uid || m.Folder != "INBOX" || !m.InternalDate.Equal(date) || m.Key != keyOf(msg) {
		t.Errorf("stored UID %d folder %q date %v key %s; want UID %d INBOX %v %s", m.UID, m.Folder, m.InternalDate, m.Key, uid, date, keyOf(msg))
	}
	flags := strings.Join(m.Flags, " ")
	if !strings.Contains(flags, `\Seen`) || !strings.Contains(flags, `\Flagged`) {
		t.Errorf("flags %q, want \\Seen and \\Flagged", flags)
	}
}

func TestIdleDeliversNewMail(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	// Polling and IDLE renewal far in the future: only an IDLE
	// notification can bring the new message in time.
	r.start(func(o *Options) { o.PollInterval, o.IdleRefresh = time.Hour, time.Hour })
	waitState(t, r, "up to date")
	msg := r.appendMsg("INBOX", 1, 800, time.Now())
	r.waitStored(1, 10*time.Second)
	if r.platform.Messages()[0].Key != keyOf(msg) {
		t.Fatal("the stored message is not the one appended")
	}
}

func TestIdleMissingPolls(t *testing.T) {
	r := newRig(t, dovecottest.Options{NoIDLE: true})
	r.start(func(o *Options) { o.PollInterval = 200 * time.Millisecond })
	waitState(t, r, "up to date")
	r.appendMsg("INBOX", 1, 800, time.Now())
	r.waitStored(1, 10*time.Second)
}

// waitState waits until every account of the rig's engine is in state s,
// reading the status file the engine writes.
func waitState(t testing.TB, r *rig, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(r.home.StatusPath())
		if err == nil && strings.Count(string(b), `"state": "`+s+`"`) >= 3 { // account + 2 folders
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(r.home.StatusPath())
	t.Fatalf("accounts never reached %q; status:\n%s", s, b)
}

func TestPlatformUnavailableThenRecovers(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	want := map[string][]byte{}
	mailbox := map[string]string{}
	for i := 0; i < 10; i++ {
		msg := r.appendMsg("INBOX", i, 1000, time.Now())
		want[keyOf(msg)], mailbox[keyOf(msg)] = msg, "inbox"
	}
	r.platform.FailNext(6, 503, 0)
	if err := r.syncOnce(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	r.checkStored(want, mailbox)
	if n := r.platform.Uploads(); n != 16 {
		t.Errorf("%d uploads, want 16 (6 refused with 503, then 10 stored)", n)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.platform.FailNext(1, 429, time.Second)
	start := time.Now()
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	// The backoff alone would retry after at most 20 ms.
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, before the 1 s Retry-After", d)
	}
	r.waitStored(1, time.Second)
}

func TestPlatformDownGivesUpInOnceMode(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.platform.FailNext(1000, 503, 0)
	err := r.syncOnce(func(o *Options) { o.GiveUpAfter = 500 * time.Millisecond })
	var te *relay.TemporaryError
	if !errors.As(err, &te) && (err == nil || !strings.Contains(err.Error(), "unavailable")) {
		t.Fatalf("sync with the platform down = %v, want a temporary error", err)
	}
	r.platform.FailNext(0, 503, 0)
	// Nothing was checkpointed: the next pass relays it.
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.waitStored(1, time.Second)
}

func TestUnauthorizedStopsAndKeepsCheckpoints(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	for i := 0; i < 5; i++ {
		r.appendMsg("INBOX", i, 1000, time.Now())
	}
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.platform.RevokeAll()
	for i := 5; i < 8; i++ {
		r.appendMsg("INBOX", i, 1000, time.Now())
	}
	err := r.syncOnce()
	if !errors.Is(err, relay.ErrUnauthorized) && (err == nil || !strings.Contains(err.Error(), "pair")) {
		t.Fatalf("sync after revocation = %v, want the pair-again error", err)
	}
	uploads := r.platform.Uploads()
	if len(r.platform.Messages()) != 5 {
		t.Fatalf("%d stored after revocation, want 5", len(r.platform.Messages()))
	}
	// Pair again: only the three new ones are uploaded.
	c, _ := relay.New(relay.Options{BaseURL: r.platform.URL(), CAFile: r.caFile})
	defer c.Close()
	_, tok, err := c.Pair(t.Context(), r.platform.NewPairingCode(), relay.Device{Name: "test", OS: "linux", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r.token = tok
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.platform.Messages()); n != 8 {
		t.Fatalf("%d stored after pairing again, want 8", n)
	}
	if n := r.platform.Uploads() - uploads; n != 3 {
		t.Errorf("%d uploads after pairing again, want 3: checkpoints were lost", n)
	}
}

func TestUnauthorizedParksRunUntilNewToken(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.RevokeAll()
	r.appendMsg("INBOX", 1, 1000, time.Now())
	e := r.start()
	deadline := time.Now().Add(20 * time.Second)
	for e.Snapshot().Platform.State != PlatformNeedsPairing {
		if time.Now().After(deadline) {
			t.Fatalf("platform state %q, want needs pairing", e.Snapshot().Platform.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, _ := relay.New(relay.Options{BaseURL: r.platform.URL(), CAFile: r.caFile})
	defer c.Close()
	_, tok, err := c.Pair(t.Context(), r.platform.NewPairingCode(), relay.Device{Name: "test", OS: "linux", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetToken(tok); err != nil {
		t.Fatal(err)
	}
	r.waitStored(1, 10*time.Second)
}

func TestRejectedIsRecordedNotRetried(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetMaxBodySize(10_000)
	big := r.appendMsg("INBOX", 1, 20_000, time.Now())
	r.appendMsg("INBOX", 2, 1_000, time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatalf("a rejected message must not fail the sync: %v", err)
	}
	if n := len(r.platform.Messages()); n != 1 {
		t.Fatalf("%d stored, want the small one", n)
	}
	uploads := r.platform.Uploads()
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if r.platform.Uploads() != uploads {
		t.Errorf("the rejected message was uploaded again")
	}
	st, err := state.Open(r.home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rej, err := st.Rejections(r.email)
	if err != nil || len(rej) != 1 || rej[0].Key != keyOf(big) || !strings.Contains(rej[0].Reason, "413") {
		t.Fatalf("rejections %+v, %v; want the big message with HTTP 413", rej, err)
	}
}

func TestUIDValidityChange(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	want := map[string][]byte{}
	mailbox := map[string]string{}
	for i := 0; i < 6; i++ {
		msg := r.appendMsg("INBOX", i, 1000, time.Now())
		want[keyOf(msg)], mailbox[keyOf(msg)] = msg, "inbox"
	}
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	before := r.dovecot.UIDValidity(t, r.email, "INBOX")
	r.dovecot.ResetUIDValidity(t, r.email, "INBOX")
	if after := r.dovecot.UIDValidity(t, r.email, "INBOX"); after == before {
		t.Fatalf("UIDVALIDITY did not change (%d)", after)
	}
	msg := r.appendMsg("INBOX", 100, 1000, time.Now())
	want[keyOf(msg)], mailbox[keyOf(msg)] = msg, "inbox"
	uploads := r.platform.Uploads()
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(want, mailbox)
	// The check endpoint spares re-uploading what the platform has.
	if n := r.platform.Uploads() - uploads; n != 1 {
		t.Errorf("%d uploads after the UIDVALIDITY change, want 1 (the new message)", n)
	}

	// Without the check endpoint everything is uploaded again, and the
	// platform still keeps one copy of each.
	r.platform.SetCheckSupported(false)
	r.dovecot.ResetUIDValidity(t, r.email, "INBOX")
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(want, mailbox)
}

func TestNestedNamespaceAndNoSpecialUse(t *testing.T) {
	r := newRig(t, dovecottest.Options{Namespace: "INBOX.", NoSpecialUse: true})
	msg := r.appendMsg("INBOX.Sent", 1, 1000, time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	got := r.platform.Messages()
	if len(got) != 1 || got[0].Key != keyOf(msg) || got[0].Mailbox != "sent" || got[0].Folder != "INBOX.Sent" {
		t.Fatalf("stored %+v, want the message as sent from INBOX.Sent", got)
	}
}

func TestRelayDomainsFromPlatform(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"client.test"}})
	keep := r.appendMsg("INBOX", 1, 1000, time.Now()) // from customer1@client.test
	other := []byte("From: news@elsewhere.test\r\nTo: alice@acme.test\r\nSubject: News\r\nMessage-ID: <n@elsewhere.test>\r\n\r\nHello\r\n")
	r.dovecot.Append(t, r.email, "INBOX", other, time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	got := r.platform.Messages()
	if len(got) != 1 || got[0].Key != keyOf(keep) {
		t.Fatalf("stored %d messages, want only the one from client.test", len(got))
	}
	st, _ := state.Open(r.home.StatePath())
	defer st.Close()
	if c, _ := st.Counters(r.email); c.Skipped != 1 || c.Relayed != 1 {
		t.Errorf("counters %+v, want 1 relayed and 1 skipped", c)
	}
}

func TestBigMessageStreams(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	msg := r.appendMsg("INBOX", 1, 30<<20, time.Now())
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(msg): msg}, map[string]string{keyOf(msg): "inbox"})
	if left, _ := filepath.Glob(filepath.Join(r.home.SpoolDir(), "*")); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

func TestConnectionsPerAccount(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	for i := 0; i < 50; i++ {
		r.appendMsg("INBOX", i, 2000, time.Now())
	}
	r.start()
	most := 0
	deadline := time.Now().Add(20 * time.Second)
	for len(r.platform.Messages()) < 50 && time.Now().Before(deadline) {
		most = max(most, r.dovecot.Connections(t, r.email))
		time.Sleep(10 * time.Millisecond)
	}
	waitState(t, r, "up to date")
	n := r.dovecot.Connections(t, r.email)
	most = max(most, n)
	if most > 4 || n != 2 {
		t.Fatalf("connections: at most %d during sync, %d when idle; want ≤ 4 and 2", most, n)
	}
}

func TestReconnectAfterServerDropsConnections(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.start()
	waitState(t, r, "up to date")
	r.dovecot.KickUser(t, r.email)
	r.appendMsg("INBOX", 1, 1000, time.Now())
	r.waitStored(1, 15*time.Second)
}
