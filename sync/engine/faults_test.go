package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

// waitSnapshot waits until cond holds for the engine's snapshot, and
// returns that snapshot.
func waitSnapshot(t *testing.T, e *Engine, what string, cond func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := e.Snapshot()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(s, "", "  ")
			t.Fatalf("never %s; snapshot:\n%s", what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fillInbox appends n messages of about size bytes to INBOX, dated in the
// last n minutes, over one session, and returns them by key with their
// UIDs in order.
func (r *rig) fillInbox(n, size int) (msgs map[string][]byte, uids []uint32) {
	r.t.Helper()
	c := r.dovecot.Login(r.t, r.email, nil)
	defer c.Close()
	msgs = map[string][]byte{}
	now := time.Now()
	for i := 0; i < n; i++ {
		date := now.Add(-time.Duration(i) * time.Minute)
		msg := testMessage(i, size, date)
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Time: date})
		if _, err := cmd.Write(msg); err != nil {
			r.t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			r.t.Fatal(err)
		}
		d, err := cmd.Wait()
		if err != nil || d.UID == 0 {
			r.t.Fatalf("append: %v (UID %d)", err, d.UID)
		}
		uids = append(uids, uint32(d.UID))
		msgs[keyOf(msg)] = msg
	}
	return msgs, uids
}

func inboxOnly(msgs map[string][]byte) map[string]string {
	m := map[string]string{}
	for k := range msgs {
		m[k] = "inbox"
	}
	return m
}

// TestUnreadableMessage: one message of INBOX that the server cannot
// deliver (Dovecot closes the connection when asked for it, here while
// reading its facts) is narrowed down to its UID and set aside: the 119
// others are relayed, and so is mail that comes later. It shows in status
// as undeliverable with what the server did, apart from the platform's
// rejections, and in the heartbeat's error line; the folder does not say
// the server cannot be reached. Sync now tries it again, and once the
// server can deliver it, it is relayed.
func TestUnreadableMessage(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	all, uids := r.fillInbox(120, 3000)
	badUID := uids[37]
	var bad []byte
	want := map[string][]byte{}
	for k, m := range all {
		if strings.Contains(string(m), "Message-ID: <msg-37@") {
			bad = m
			continue
		}
		want[k] = m
	}
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", badUID)
	e := r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })

	r.waitStored(119, time.Minute)
	s := waitSnapshot(t, e, "one undeliverable message", func(s Snapshot) bool {
		return len(s.Accounts) == 1 && s.Accounts[0].Undeliverable == 1 && s.Accounts[0].State == UpToDate
	})
	a := s.Accounts[0]
	u := a.UndeliverableMessages[0]
	if u.UID != badUID || u.Folder != "INBOX" || u.Role != "inbox" || !strings.Contains(u.Reason, "closed the connection") {
		t.Errorf("undeliverable %+v, want UID %d of INBOX, closed the connection", u, badUID)
	}
	if a.Rejected != 0 {
		t.Errorf("%d rejected: a message the server cannot deliver is not the platform's rejection", a.Rejected)
	}
	for _, f := range a.Folders {
		if strings.Contains(f.Error, "cannot reach") {
			t.Errorf("folder %s says %q", f.Role, f.Error)
		}
	}

	later := r.appendMsg("INBOX", 500, 1000, time.Now())
	want[keyOf(later)] = later
	r.waitStored(120, 30*time.Second)
	r.checkStored(want, inboxOnly(want))

	deadline := time.Now().Add(10 * time.Second)
	for !heartbeatSays(r, "1 message(s) of the mailbox cannot be relayed; the last, INBOX UID") {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat reported the undeliverable message: %+v", r.platform.Heartbeats())
		}
		time.Sleep(20 * time.Millisecond)
	}

	r.dovecot.MakeReadable(t, r.email, "INBOX", badUID)
	e.SyncNow()
	r.waitStored(121, 30*time.Second)
	want[keyOf(bad)] = bad
	r.checkStored(want, inboxOnly(want))
	waitSnapshot(t, e, "the undeliverable message relayed", func(s Snapshot) bool {
		return s.Accounts[0].Undeliverable == 0 && s.Accounts[0].Relayed == 121
	})
	if n := r.platform.Uploads(); n != 121 {
		t.Errorf("%d uploads for 121 messages", n)
	}
}

// heartbeatSays reports whether a heartbeat carried an account error
// holding text, with no rejection counted.
func heartbeatSays(r *rig, text string) bool {
	for _, hb := range r.platform.Heartbeats() {
		for _, a := range hb.Accounts {
			if strings.Contains(a.Error, text) && a.Rejected == 0 {
				return true
			}
		}
	}
	return false
}

// TestSyncNowRetriesEveryUndeliverable: two messages are set aside as
// undeliverable; the server can deliver the second one now, not the
// first. Sync now tries both: the first one's failure, which costs the
// session, does not leave the second one waiting for its daily retry.
func TestSyncNowRetriesEveryUndeliverable(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	all, uids := r.fillInbox(5, 1000)
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", uids[1])
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", uids[3])
	e := r.start()
	waitSnapshot(t, e, "two undeliverable messages", func(s Snapshot) bool {
		return len(s.Accounts) == 1 && s.Accounts[0].Undeliverable == 2 && s.Accounts[0].State == UpToDate
	})
	r.dovecot.MakeReadable(t, r.email, "INBOX", uids[3])
	e.SyncNow()
	r.waitStored(4, 30*time.Second) // a hang guard: without Sync now it comes a day later
	want := map[string][]byte{}
	for k, m := range all {
		if !strings.Contains(string(m), "Message-ID: <msg-1@") {
			want[k] = m
		}
	}
	r.checkStored(want, inboxOnly(want))
	waitSnapshot(t, e, "one undeliverable message left", func(s Snapshot) bool {
		u := s.Accounts[0].UndeliverableMessages
		return s.Accounts[0].Undeliverable == 1 && u[0].UID == uids[1]
	})
}

// warmCache makes Dovecot cache the facts of every message of INBOX, so
// that it can still tell them once a message file is unreadable: then only
// the body fetch breaks.
func (r *rig) warmCache() {
	r.t.Helper()
	c := r.dovecot.Login(r.t, r.email, nil)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second fetch finds the fields the first asked for in the cache
		if _, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}},
			&imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true}).Collect(); err != nil {
			r.t.Fatal(err)
		}
	}
}

// bodiesSent sums what Dovecot logged at the end of each session of the
// user: how many message bodies it sent.
func (r *rig) bodiesSent() int {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dovecot.Dir, "dovecot.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for _, m := range regexp.MustCompile(`imap\(`+regexp.QuoteMeta(r.email)+`\).*body_count=(\d+)`).FindAllSubmatch(b, -1) {
		k, _ := strconv.Atoi(string(m[1]))
		n += k
	}
	return n
}

// TestUnreadableBodyKeepsFetchedBodies: when the server breaks the fetch of
// a group's bodies on one message, the bodies that came before it in that
// same fetch are relayed, not thrown away and fetched again; the message is
// narrowed down and set aside, and the rest of the group follows.
func TestUnreadableBodyKeepsFetchedBodies(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	_, uids := r.fillInbox(10, 2000)
	r.warmCache()
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", uids[4])
	err := r.syncOnce()
	if err != nil {
		t.Fatalf("a message the server cannot deliver must not fail the pass: %v", err)
	}
	if n := len(r.platform.Messages()); n != 9 {
		t.Fatalf("%d of the 9 deliverable messages relayed", n)
	}
	st, err := state.Open(r.home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.AccountUndeliverables(r.email)
	st.Close()
	if err != nil || len(u) != 1 || u[0].UID != uids[4] {
		t.Fatalf("undeliverable %+v, %v; want UID %d", u, err, uids[4])
	}
	// Each session logs what it sent when it ends: each of the 9 once, the
	// broken one never whole.
	deadline := time.Now().Add(5 * time.Second)
	n := r.bodiesSent()
	for n < 9 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = r.bodiesSent()
	}
	if n != 9 {
		t.Errorf("Dovecot sent %d bodies for the 9 deliverable messages, want each once: bodies that came were fetched again", n)
	}
}

// TestFrozenServerMidBackfill: Dovecot's IMAP processes freeze in the
// middle of a backfill (connections open, nothing said). The engine notices
// the silence, says so in status (what went silent, not "cannot reach"),
// drops the connection, connects again and relays everything.
func TestFrozenServerMidBackfill(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	all, _ := r.fillInbox(300, 5_000)
	// The platform holds the uploads back, so the backfill is surely under
	// way (every worker busy, the folder waiting for room in a small body
	// budget to fetch more) when the server freezes.
	r.platform.FailNext(1_000_000, 503, 0)
	e := r.start(func(o *Options) {
		o.Ahead = 64 << 10 // a few dozen of the 300 messages: the rest must be fetched after the freeze
		o.Silence = time.Second
		o.Backoff.Base, o.Backoff.Max = time.Second, 2*time.Second // the error stays in status half a second at least
	})
	var seen gosync.Map // folder errors seen in status
	changes, unsubscribe := e.Subscribe()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); unsubscribe() })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-changes:
			}
			for _, a := range e.Snapshot().Accounts {
				for _, f := range a.Folders {
					if f.Error != "" {
						seen.Store(f.Error, true)
					}
				}
			}
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for r.platform.Uploads() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d uploads tried", r.platform.Uploads())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.dovecot.FreezeSessions(t, r.email); n == 0 {
		t.Fatal("no IMAP process to freeze")
	}
	r.platform.FailNext(0, 503, 0)
	r.waitStored(len(all), 2*time.Minute)
	r.checkStored(all, inboxOnly(all))
	named := false
	seen.Range(func(k, _ any) bool {
		s := k.(string)
		if strings.Contains(s, "cannot reach") {
			t.Errorf("status said %q", s)
		}
		named = named || strings.Contains(s, "stopped answering while")
		return true
	})
	if !named {
		t.Error("status never said the server stopped answering, and while doing what")
	}
}

// TestBigMessagesCountTowardGroups: messages over the in-memory threshold
// (1 MiB, spooled to disk) count toward the body budget (Options.Ahead)
// like the others, so a batch of big messages is not all downloaded before
// the first upload. With the platform holding the uploads back, what waits
// on disk is at most the budget, whatever the workers hold.
func TestBigMessagesCountTowardGroups(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	const n, size = 20, 1_500_000
	r.fillInbox(n, size)
	r.platform.FailNext(1_000_000, 503, time.Hour) // every worker sleeps on its first message
	e := r.start(func(o *Options) { o.Workers = 2 })
	deadline := time.Now().Add(time.Minute)
	for r.platform.Uploads() < e.o.Workers {
		if time.Now().After(deadline) {
			t.Fatalf("only %d uploads tried", r.platform.Uploads())
		}
		time.Sleep(10 * time.Millisecond)
	}
	files, _ := filepath.Glob(filepath.Join(r.home.SpoolDir(), "msg-*"))
	if most := int(e.o.Ahead / size); len(files) > most {
		t.Fatalf("%d bodies of %d bytes on disk with %d uploads under way: want at most %d (the body budget, %d bytes)", len(files), size, e.o.Workers, most, e.o.Ahead)
	}
}

// TestFetchesAheadOfUploads: while the uploads wait for the platform, the
// folder goes on fetching the next groups, up to the body budget, instead
// of waiting for a worker to take each message of the group it holds.
// With uploads held back, 12 messages of 1.1 MB (two groups, both within
// the budget) all come to the spool.
func TestFetchesAheadOfUploads(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	const n, size = 12, 1_100_000
	r.fillInbox(n, size)
	r.platform.FailNext(1_000_000, 503, time.Hour) // every worker sleeps on its first message
	e := r.start(func(o *Options) { o.Workers = 2 })
	if n*size > e.o.Ahead || n*size <= groupBytes {
		t.Fatalf("%d bytes of mail: want more than one group (%d) and less than the budget (%d)", n*size, groupBytes, e.o.Ahead)
	}
	deadline := time.Now().Add(time.Minute) // a hang guard
	for {
		files, _ := filepath.Glob(filepath.Join(r.home.SpoolDir(), "msg-*"))
		if len(files) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d bodies fetched while %d uploads wait: the folder stopped fetching until a worker was free", len(files), n, e.o.Workers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(r.platform.Messages()); got != 0 {
		t.Fatalf("the platform holds %d messages: the uploads were not held back", got)
	}
}

// TestUIDValidityChangeKeepsOldDatedNewMail: a message that arrived after
// the first sync with an old INTERNALDATE (copied from an archive, say) is
// in scope by its UID; when UIDVALIDITY changes before it was relayed, it
// is still relayed under its new UID.
func TestUIDValidityChangeKeepsOldDatedNewMail(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	if err := r.syncOnce(); err != nil { // the first sync: later UIDs are new mail
		t.Fatal(err)
	}
	old := r.appendMsg("INBOX", 1, 1000, time.Now().AddDate(0, 0, -60))
	r.platform.FailNext(1_000_000, 503, 0)
	if err := r.syncOnce(func(o *Options) { o.GiveUpAfter = 200 * time.Millisecond }); err == nil {
		t.Fatal("a pass with the platform down reported nothing left")
	}
	r.platform.FailNext(0, 503, 0)
	r.dovecot.ResetUIDValidity(t, r.email, "INBOX")
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(map[string][]byte{keyOf(old): old}, map[string]string{keyOf(old): "inbox"})
}

// TestSentBecomesAnotherFolder: the Sent folder resolves to another folder
// ("Sent Items" gets the \Sent attribute) that has the same UIDVALIDITY
// as the old one. It is a new folder, scanned whole under the window: its
// messages with UIDs below the old one's watermark are relayed too, and
// nothing twice.
func TestSentBecomesAnotherFolder(t *testing.T) {
	r := newRig(t, dovecottest.Options{NoSpecialUse: true})
	want := map[string][]byte{}
	mailbox := map[string]string{}
	for i := 0; i < 3; i++ {
		m := r.appendMsg("Sent", i, 1000, time.Now())
		want[keyOf(m)], mailbox[keyOf(m)] = m, "sent"
	}
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.dovecot.CreateFolder(t, r.email, "Sent Items", "")
	for i := 10; i < 15; i++ {
		m := r.appendMsg("Sent Items", i, 1000, time.Now())
		want[keyOf(m)], mailbox[keyOf(m)] = m, "sent"
	}
	r.dovecot.SetUIDValidity(t, r.email, "Sent Items", r.dovecot.UIDValidity(t, r.email, "Sent"))
	r.dovecot.SetSpecialUse(t, r.email, "Sent Items", `\Sent`)
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	r.checkStored(want, mailbox)
	if n := r.platform.Uploads(); n != len(want) {
		t.Errorf("%d uploads for %d messages", n, len(want))
	}
}

// TestServerRefusesOneMessage: a server that answers NO for one message
// (Exchange: "could not be converted"), the connection staying open: the
// others are relayed, the message is recorded undeliverable with the
// server's own words.
func TestServerRefusesOneMessage(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	h := hostile.StartIMAP(t, hostile.IMAPOptions{RefuseBodies: []uint32{4}})
	want := map[string][]byte{}
	for i := 1; i <= 10; i++ {
		m := testMessage(i, 1000, time.Now())
		h.Append(t, "INBOX", m, time.Now())
		if i != 4 {
			want[keyOf(m)] = m
		}
	}
	srv, err := config.ParseServer(h.Addr, config.SecurityTLS, 993)
	if err != nil {
		t.Fatal(err)
	}
	a := &r.cfg.Accounts[0]
	a.Email, a.IMAP, a.TrustFingerprints = h.User, srv, append(a.TrustFingerprints, h.Cert.Fingerprint)
	if err := r.kc.Set(keychain.AccountKey(h.User), h.Password); err != nil {
		t.Fatal(err)
	}
	if err := r.syncOnce(); err != nil {
		t.Fatalf("a message the server refuses must not fail the pass: %v", err)
	}
	r.checkStored(want, inboxOnly(want))
	st, err := state.Open(r.home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.AccountUndeliverables(h.User)
	if err != nil || len(u) != 1 || u[0].UID != 4 || !strings.Contains(u[0].Reason, hostile.ErrNotConverted.Text) {
		t.Fatalf("undeliverable %+v, %v; want UID 4 with the server's words", u, err)
	}
}

// TestUndeliverableRetriedDaily: a message recorded undeliverable is not
// asked for again on every pass (each try may cost the server a broken
// connection), only once a day; the day after, it is tried again and, the
// server able to deliver it now, relayed and counted once.
func TestUndeliverableRetriedDaily(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	_, uids := r.fillInbox(10, 1000)
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", uids[4])
	day := time.Now()
	at := func(d time.Duration) func(*Options) {
		return func(o *Options) { o.Now = func() time.Time { return day.Add(d) } }
	}
	if err := r.syncOnce(at(0)); err != nil {
		t.Fatal(err)
	}
	r.dovecot.MakeReadable(t, r.email, "INBOX", uids[4])
	if err := r.syncOnce(at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(r.platform.Messages()); n != 9 {
		t.Fatalf("%d relayed an hour later, want 9: the undeliverable message was tried again before its day", n)
	}
	if err := r.syncOnce(at(25 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(r.platform.Messages()); n != 10 {
		t.Fatalf("%d relayed a day later, want 10", n)
	}
	st, err := state.Open(r.home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, _ := st.Counters(r.email)
	u, _ := st.AccountUndeliverables(r.email)
	if c.Relayed != 10 || len(u) != 0 {
		t.Fatalf("counters %+v, undeliverable %+v; want 10 relayed and none left", c, u)
	}
}

// TestTooBigForTheSpool: a message bigger than the spool may ever hold is
// set aside at once, from its announced size, without downloading it; the
// others are relayed.
func TestTooBigForTheSpool(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	_, uids := r.fillInbox(4, 2000)
	big := r.appendMsg("INBOX", 99, 300<<10, time.Now())
	e := r.engine(true)
	e.spool.Budget = 200 << 10
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatalf("a message too big for the spool must not fail the pass: %v", err)
	}
	if n := len(r.platform.Messages()); n != len(uids) {
		t.Fatalf("%d relayed, want the %d small ones", n, len(uids))
	}
	u, err := e.o.Store.AccountUndeliverables(r.email)
	if err != nil || len(u) != 1 || !strings.Contains(u[0].Reason, "larger than 204800 bytes") {
		t.Fatalf("undeliverable %+v, %v; want the big one, larger than the spool", u, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.bodiesSent() < len(uids) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := r.bodiesSent(); n != len(uids) {
		t.Errorf("Dovecot sent %d bodies, want %d: the big one was downloaded (%d bytes)", n, len(uids), len(big))
	}
}

// TestDeletedUndeliverableIsForgotten: a message set aside as
// undeliverable that the user then deletes from the mailbox is forgotten:
// status no longer counts it, nothing fails, and the store keeps no record
// to retry daily. The running engine hears of the deletion while it idles
// and drops the record at once, not at the next daily retry (IDLE is
// renewed only every 9 minutes).
func TestDeletedUndeliverableIsForgotten(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	_, uids := r.fillInbox(5, 1000)
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", uids[2])
	e := r.start()
	waitSnapshot(t, e, "one undeliverable message", func(s Snapshot) bool {
		return len(s.Accounts) == 1 && s.Accounts[0].Undeliverable == 1 && s.Accounts[0].State == UpToDate
	})
	r.waitStored(4, 30*time.Second)

	r.dovecot.Expunge(t, r.email, "INBOX", uids[2])
	s := waitSnapshot(t, e, "the deleted message forgotten", func(s Snapshot) bool {
		return s.Accounts[0].Undeliverable == 0 && len(s.Accounts[0].UndeliverableMessages) == 0
	})
	a := s.Accounts[0]
	if a.State != UpToDate || a.Rejected != 0 || a.Relayed != 4 {
		t.Errorf("after the deletion: state %v, %d rejected, %d relayed; want up to date, 0 and 4", a.State, a.Rejected, a.Relayed)
	}
	for _, f := range a.Folders {
		if f.Error != "" {
			t.Errorf("folder %s says %q", f.Role, f.Error)
		}
	}
	if u, err := e.o.Store.AccountUndeliverables(r.email); err != nil || len(u) != 0 {
		t.Fatalf("stored undeliverable %+v, %v; want none", u, err)
	}
	r.appendMsg("INBOX", 50, 1000, time.Now())
	r.waitStored(5, 30*time.Second) // and mail that comes later is relayed
}

// TestUndeliverableRecordsFollowTheMailbox: the record of an undeliverable
// message lives as long as the message does under its UIDVALIDITY. When
// UIDVALIDITY changes, the old record goes and the message, still
// undeliverable, is recorded once under the new one; when the user deletes
// it, the daily retry does not ask for it and fails nothing, and the
// record goes.
func TestUndeliverableRecordsFollowTheMailbox(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	_, uids := r.fillInbox(5, 1000)
	bad := uids[3]
	r.dovecot.MakeUnreadable(t, r.email, "INBOX", bad)
	day := time.Now()
	at := func(d time.Duration) func(*Options) {
		return func(o *Options) { o.Now = func() time.Time { return day.Add(d) } }
	}
	records := func() []state.Undeliverable {
		t.Helper()
		st, err := state.Open(r.home.StatePath())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		u, err := st.AccountUndeliverables(r.email)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if err := r.syncOnce(at(0)); err != nil {
		t.Fatal(err)
	}
	old := r.dovecot.UIDValidity(t, r.email, "INBOX")
	if u := records(); len(u) != 1 || u[0].UID != bad || u[0].UIDValidity != old {
		t.Fatalf("undeliverable %+v; want UID %d under UIDVALIDITY %d", u, bad, old)
	}

	r.dovecot.ResetUIDValidity(t, r.email, "INBOX")
	if err := r.syncOnce(at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	now := r.dovecot.UIDValidity(t, r.email, "INBOX")
	if u := records(); len(u) != 1 || u[0].UID != bad || u[0].UIDValidity != now {
		t.Fatalf("after the UIDVALIDITY change, undeliverable %+v; want UID %d under %d only", u, bad, now)
	}

	r.dovecot.Expunge(t, r.email, "INBOX", bad)
	if err := r.syncOnce(at(26 * time.Hour)); err != nil {
		t.Fatalf("the daily retry of a deleted message: %v", err)
	}
	if u := records(); len(u) != 0 {
		t.Fatalf("after the message was deleted, undeliverable %+v; want none", u)
	}
	if n := len(r.platform.Messages()); n != 4 {
		t.Fatalf("%d relayed, want the 4 others", n)
	}
}
