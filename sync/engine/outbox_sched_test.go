package engine

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// prepare does what the outbox does with an item it takes: the message
// made ready to send in the outbox folder. It returns the file and the
// Message-ID.
func (r *rig) prepare(e *Engine, it relay.OutboxItem) (string, string) {
	r.t.Helper()
	ob := newOutbox(e)
	if err := os.MkdirAll(ob.dir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	path := ob.filePath(it.ID)
	p, err := prepareFile(it.File, path, r.email, time.Now(), func([]byte) string { return "" })
	if err != nil || p.Refused != "" {
		r.t.Fatalf("prepare: %v %s", err, p.Refused)
	}
	return path, p.MessageID
}

// sendDirect sends the prepared message in path through the account's
// SMTP server, as the outbox would, outside any engine.
func (r *rig) sendDirect(path string) {
	r.t.Helper()
	acct := r.cfg.Accounts[0]
	pol, err := trust.NewPolicy(acct.MinTLS, acct.TrustPins(), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	c, err := smtpsend.Dial(context.Background(), acct, r.password, pol)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	f, err := os.Open(path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if _, _, err := c.Send(r.email, []string{"customer@client.test"}, f, fi.Size()); err != nil {
		r.t.Fatal(err)
	}
}

// useSMTP points the rig's account at srv for sending (IMAP stays Dovecot).
func (r *rig) useSMTP(srv *hostile.ScriptedSMTP) {
	r.t.Helper()
	a := &r.cfg.Accounts[0]
	a.SMTP = config.Server{Host: srv.Host, Port: srv.Port, Security: config.SecurityTLS}
	a.Pins = append(a.Pins, trust.Pin{Server: srv.Addr, Fingerprint: srv.Fingerprint})
}

// enqueueTo offers a reply from the rig's account to one recipient.
func (r *rig) enqueueTo(to string, raw []byte) string {
	return r.platform.Enqueue(refplatform.OutboxItem{Account: r.email, Raw: raw, From: r.email, To: []string{to}})
}

// waitResult waits until the platform holds a result for item id.
func (r *rig) waitResult(id string, within time.Duration) refplatform.OutboxResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return len(r.result(id)) > 0 }); err != nil {
		r.t.Fatalf("no result for outbox item %s within %v", id, within)
	}
	return r.result(id)[0]
}

// record reads item id's record from the engine's store.
func record(t testing.TB, e *Engine, id string) state.OutboxItem {
	t.Helper()
	rec, ok, err := e.o.Store.OutboxItem(id)
	if err != nil || !ok {
		t.Fatalf("outbox item %s: known %v, %v", id, ok, err)
	}
	return rec
}

func accountStatus(t testing.TB, e *Engine, email string) AccountStatus {
	t.Helper()
	for _, a := range e.Snapshot().Accounts {
		if a.Email == email {
			return a
		}
	}
	t.Fatalf("no account %s in the status", email)
	return AccountStatus{}
}

// TestOutboxAccountsAreIndependent: bob's password in the keychain is
// wrong, and his item comes first. Alice's item is sent all the same;
// bob's waits, unreported and unfailed (it is not at fault), and his status
// names the refused password. (Before: one loop for all accounts retried
// bob's item forever, and alice's was never sent.)
func TestOutboxAccountsAreIndependent(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	const bob = "bob@acme.test"
	r.dovecot.AddUser(t, bob, "bob's real password")
	if err := r.kc.Set(keychain.AccountKey(bob), "a wrong password"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.kc.Delete(keychain.AccountKey(bob)) })
	b := r.cfg.Accounts[0]
	b.Email = bob
	r.cfg.Accounts = append(r.cfg.Accounts, b)

	bobsItem := r.platform.Enqueue(refplatform.OutboxItem{Account: bob, Raw: []byte("From: bob@acme.test\r\nTo: c@client.test\r\nSubject: bob\r\n\r\nhi\r\n"), From: bob, To: []string{"c@client.test"}})
	alicesItem := r.enqueue(reply(20))
	e := r.start()
	if res := r.waitResult(alicesItem, time.Minute); res.State != "sent" {
		t.Fatalf("alice's item: %+v, want sent", res)
	}
	if res := r.result(bobsItem); len(res) != 0 {
		t.Fatalf("bob's item was reported %+v; a wrong password is not the item's fault", res)
	}
	rec := record(t, e, bobsItem)
	if rec.State != state.OutboxReceived || rec.Attempts != 0 {
		t.Fatalf("bob's item: state %s after %d attempts, want still received, never tried", rec.State, rec.Attempts)
	}
	if st := accountStatus(t, e, bob); !strings.Contains(st.Outbox.LastError, "password") {
		t.Fatalf("bob's outbox status says %q, want the refused password", st.Outbox.LastError)
	}
	for _, d := range r.dovecot.Delivered() {
		if d.From == bob {
			t.Fatal("bob's item was delivered with a wrong password")
		}
	}
}

// TestOutboxTemporaryRefusalWaitsAlone: the server answers 452 for one
// item's recipient, every time. The item waits on its own schedule (stored
// next attempt and retry count) while the item after it is sent. (Before:
// the first item was retried inline forever and blocked the second.)
func TestOutboxTemporaryRefusalWaitsAlone(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, Rcpt: func(addr string) string {
		if addr == "full@client.test" {
			return "452 4.2.2 Mailbox full, try later"
		}
		return ""
	}})
	r.useSMTP(srv)
	stuck := r.enqueueTo("full@client.test", reply(21))
	next := r.enqueueTo("customer@client.test", reply(22))
	e := r.start()
	if res := r.waitResult(next, time.Minute); res.State != "sent" {
		t.Fatalf("the second item: %+v, want sent", res)
	}
	if res := r.result(stuck); len(res) != 0 {
		t.Fatalf("the refused item was reported %+v; a 452 is temporary", res)
	}
	rec := record(t, e, stuck)
	if rec.State != state.OutboxReceived || rec.Retries == 0 || !rec.NextAttempt.After(rec.Received) || !strings.Contains(rec.LastError, "452") {
		t.Fatalf("the refused item: %+v, want received with its own retry count, next attempt and the 452", rec)
	}
	if got := srv.Accepted(); len(got) != 1 || got[0].To[0] != "customer@client.test" {
		t.Fatalf("the server accepted %+v, want only the second item", got)
	}
}

// TestOutboxResetsAfterRefusedData: the server refuses DATA for the first
// item and keeps the transaction open, as Postfix does. That item is
// failed at once with the server's 554, and the second one, on the same
// connection, is sent. (Before: no RSET, so the second item's MAIL got
// "503 nested MAIL command" and was failed for good.)
func TestOutboxResetsAfterRefusedData(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, Data: func(_ string, to []string) string {
		if to[0] == "spam-trap@client.test" {
			return "554 5.7.1 Message refused by policy"
		}
		return ""
	}})
	r.useSMTP(srv)
	first := r.enqueueTo("spam-trap@client.test", reply(23))
	second := r.enqueueTo("customer@client.test", reply(24))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if res := r.result(first); len(res) != 1 || res[0].State != "failed" || res[0].SMTPCode != 554 || !strings.Contains(res[0].Error, "refused by policy") {
		t.Fatalf("first item: %+v, want failed with the 554", res)
	}
	if res := r.result(second); len(res) != 1 || res[0].State != "sent" {
		t.Fatalf("second item: %+v, want sent", res)
	}
	if srv.Logins() != 1 {
		t.Fatalf("%d logins: the second item did not use the same connection", srv.Logins())
	}
	cmds := srv.Commands()
	for i, c := range cmds {
		if c == "DATA" && i+1 < len(cmds) && strings.HasPrefix(cmds[i+1], "MAIL") {
			t.Fatalf("MAIL followed a refused DATA without RSET: %q", cmds)
		}
	}
}

// TestOutboxServerSilentMidData: the server stops reading 1 MiB into a
// 16 MiB item and never answers. The send is given up once nothing moved
// for the stall limit, the item is kept for later as not handed over
// (neither sent nor ambiguous), and the small item after it goes out on a
// new connection. (Before: no deadline on the message body: the outbox
// hung, and every later item with it.)
func TestOutboxServerSilentMidData(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, StallAfter: 1 << 20})
	r.useSMTP(srv)
	big := r.enqueueTo("customer@client.test", bigReply(16<<20))
	small := r.enqueueTo("customer@client.test", reply(25))
	err := r.syncOnce(func(o *Options) {
		o.Outbox.SMTP.Stall = 300 * time.Millisecond
		o.GiveUpAfter = 0 // no waiting for retries in this pass
	})
	if err == nil || !strings.Contains(err.Error(), "1 outbox items could not be sent") {
		t.Fatalf("the pass ended with %v, want one item left", err)
	}
	if res := r.result(small); len(res) != 1 || res[0].State != "sent" {
		t.Fatalf("the small item: %+v, want sent", res)
	}
	if res := r.result(big); len(res) != 0 {
		t.Fatalf("the big item was reported %+v; it was never handed over", res)
	}
	e := r.engine(true)
	rec := record(t, e, big)
	if rec.State != state.OutboxReceived || rec.Retries == 0 || !strings.Contains(rec.LastError, "stopped answering while taking the message (after") {
		t.Fatalf("the big item: state %s, retries %d, last error %q", rec.State, rec.Retries, rec.LastError)
	}
	if srv.Stalled() != rec.Retries || srv.Logins() < srv.Stalled() {
		t.Fatalf("stalled %d, logins %d, retries %d; want one retry per stall, each on a new connection", srv.Stalled(), srv.Logins(), rec.Retries)
	}
}

// TestOutboxHugeEHLOAnswer: a server answers EHLO with 64 MiB of lines.
// The connection is dropped after 1 MiB, the item waits (the account's
// connection does, not the item), and the status says what the server did.
// (Before: go-smtp read the whole answer into memory.)
func TestOutboxHugeEHLOAnswer(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, HugeEHLO: 64 << 20})
	r.useSMTP(srv)
	id := r.enqueue(reply(26))
	e := r.engine(true, func(o *Options) { o.GiveUpAfter = 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := e.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 outbox items could not be sent") {
		t.Fatalf("the pass ended with %v, want the item left", err)
	}
	if w := srv.HugeWritten(); w >= 32<<20 {
		t.Fatalf("the server wrote %d MiB of its answer: the client kept reading", w>>20)
	}
	if rec := record(t, e, id); rec.State != state.OutboxReceived || rec.Attempts != 0 {
		t.Fatalf("the item: %+v, want received and never handed to SMTP", rec)
	}
	if st := accountStatus(t, e, r.email); !strings.Contains(st.Outbox.LastError, "in one answer") {
		t.Fatalf("the status says %q, want the oversized answer named", st.Outbox.LastError)
	}
}

// TestOutboxScheduleSurvivesRestart: an item stored with a next attempt an
// hour away and three failures behind it is not tried by the next run.
// (Before: a restart retried every unfinished item at once.)
func TestOutboxScheduleSurvivesRestart(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	id := r.enqueue(reply(27))
	items := r.takeItems()
	e := r.engine(true)
	path, mid := r.prepare(e, items[0])
	next := time.Now().Add(time.Hour)
	rec := state.OutboxItem{ID: id, Account: r.email, From: r.email, To: []string{"customer@client.test"}, MessageID: mid, File: path,
		State: state.OutboxReceived, Retries: 3, NextAttempt: next, LastError: "451 try later", Received: time.Now()}
	if err := e.o.Store.PutOutboxItem(rec); err != nil {
		t.Fatal(err)
	}
	e.o.Store.Close()
	if err := r.syncOnce(func(o *Options) { o.GiveUpAfter = time.Minute }); err == nil {
		t.Fatal("the pass says nothing is left")
	}
	if n := len(r.dovecot.Delivered()); n != 0 {
		t.Fatalf("delivered %d times before its next attempt", n)
	}
	got := record(t, r.engine(true), id)
	if got.Retries != 3 || !got.NextAttempt.Equal(next) || got.Attempts != 0 {
		t.Fatalf("after the restart: retries %d, next attempt %v, attempts %d; want 3, %v, 0", got.Retries, got.NextAttempt, got.Attempts, next)
	}
}

// TestOutboxPauseSendsNothing: while the engine is paused the outbox
// neither retries an item that was waiting (its server answers 452) nor
// sends one that arrives through a long poll already under way; after
// Resume the new item is sent. Heartbeats go on while paused: they mark
// time without a clock. (Before: the retry loop ignored Pause, and so did
// a poll in flight: the new item was sent at once.)
func TestOutboxPauseSendsNothing(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	var mu gosync.Mutex
	refused := 0 // RCPT TO full@
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, Rcpt: func(addr string) string {
		if addr != "full@client.test" {
			return ""
		}
		mu.Lock()
		refused++
		mu.Unlock()
		return "452 4.2.2 Mailbox full, try later"
	}})
	r.useSMTP(srv)
	attempts := func() int { mu.Lock(); defer mu.Unlock(); return refused }
	var polls atomic.Int32
	r.platform.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/v1/outbox") {
			polls.Add(1)
		}
		return false
	})
	heartbeats := func(n int) {
		t.Helper()
		beats := len(r.platform.Heartbeats())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.platform.Wait(ctx, func() bool { return len(r.platform.Heartbeats()) >= beats+n }); err != nil {
			t.Fatal("the heartbeat stopped too")
		}
	}

	waiting := r.enqueueTo("full@client.test", reply(28))
	e := r.start(func(o *Options) { o.HeartbeatEvery = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return attempts() > 0 }); err != nil {
		t.Fatal("the first item was never tried")
	}

	// The waiting item is not tried while paused.
	e.Pause(PausedByUser)
	heartbeats(2) // a step under way when Pause came may finish
	before := attempts()
	heartbeats(10)
	if n := attempts() - before; n != 0 {
		t.Fatalf("the paused outbox tried the waiting item %d more times", n)
	}

	// Nor is an item sent that the long poll under way brings (the poll
	// that followed the first item's: the platform holds it open).
	if err := r.platform.Wait(ctx, func() bool { return polls.Load() >= 2 }); err != nil {
		t.Fatal("no long poll after the first item")
	}
	arrived := r.enqueueTo("customer@client.test", reply(29))
	heartbeats(10)
	if got := srv.Accepted(); len(got) != 0 || len(r.result(arrived)) != 0 {
		t.Fatalf("the paused outbox sent %d messages", len(got))
	}
	e.Resume()
	if res := r.waitResult(arrived, time.Minute); res.State != "sent" {
		t.Fatalf("after Resume: %+v, want sent", res)
	}
	if len(r.result(waiting)) != 0 {
		t.Fatal("the item refused with 452 was reported")
	}
}

// TestOutboxRefusesWhatItMayNotSend: items that would send as someone else
// or carry an injection are failed at once with the reason, never handed
// to SMTP, never retried: each is offered once and reported once.
// (Before: forged senders and 101 recipients were sent; an address with a
// CR was retried without end.)
func TestOutboxRefusesWhatItMayNotSend(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	msg := func(head string) []byte {
		return []byte(head + "To: customer@client.test\r\nSubject: Renewal\r\n\r\nThanks.\r\n")
	}
	alice := "From: Alice <alice@acme.test>\r\n"
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("c%d@client.test", i)
	}
	cases := []struct {
		name string
		item refplatform.OutboxItem
		want string
	}{
		{"forged envelope sender", refplatform.OutboxItem{From: "ceo@acme.test", Raw: msg(alice), To: []string{"customer@client.test"}}, "envelope sender ceo@acme.test is neither"},
		{"forged From header", refplatform.OutboxItem{Raw: msg("From: CEO <ceo@acme.test>\r\n"), To: []string{"customer@client.test"}}, `From header names "ceo@acme.test"`},
		{"unlisted alias", refplatform.OutboxItem{From: "support@acme.test", Raw: msg("From: Support <support@acme.test>\r\n"), To: []string{"customer@client.test"}}, "nor an alias the platform lists"},
		{"second address in From", refplatform.OutboxItem{Raw: msg("From: alice@acme.test, ceo@acme.test\r\n"), To: []string{"customer@client.test"}}, `names "ceo@acme.test"`},
		{"forged Sender", refplatform.OutboxItem{Raw: msg(alice + "Sender: ceo@acme.test\r\n"), To: []string{"customer@client.test"}}, "Sender header names"},
		{"no From header", refplatform.OutboxItem{Raw: msg(""), To: []string{"customer@client.test"}}, "no From header"},
		{"101 recipients", refplatform.OutboxItem{Raw: msg(alice), To: many}, "101 recipients, more than the 100 allowed"},
		{"CR in a recipient", refplatform.OutboxItem{Raw: msg(alice), To: []string{"customer@client.test\r\nRCPT TO:<eve@evil.test>"}}, "contains a line break"},
		{"CR in the sender", refplatform.OutboxItem{From: "alice@acme.test\r\nRSET", Raw: msg(alice), To: []string{"customer@client.test"}}, "contains a line break"},
		{"parameter in a recipient", refplatform.OutboxItem{Raw: msg(alice), To: []string{"customer@client.test> NOTIFY=NEVER"}}, "contains"},
		{"no recipient", refplatform.OutboxItem{Raw: msg(alice), To: nil}, "no recipient"},
		{"not base64", refplatform.OutboxItem{Raw: nil, To: []string{"customer@client.test"}}, "malformed"},
	}
	ids := map[string]string{}
	for _, c := range cases {
		it := c.item
		it.Account = r.email
		if it.From == "" {
			it.From = r.email
		}
		ids[c.name] = r.platform.Enqueue(it)
	}
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	e := r.engine(true)
	for _, c := range cases {
		id := ids[c.name]
		res := r.result(id)
		if len(res) != 1 || res[0].State != "failed" || !strings.Contains(res[0].Error, c.want) || res[0].SMTPCode != 0 {
			t.Errorf("%s: results %+v, want one failed saying %q", c.name, res, c.want)
			continue
		}
		if n := r.platform.Offers(id); n != 1 {
			t.Errorf("%s: offered %d times", c.name, n)
		}
		if rec := record(t, e, id); rec.Attempts != 0 {
			t.Errorf("%s: %d SMTP attempts, want none", c.name, rec.Attempts)
		}
	}
	if dl := r.dovecot.Delivered(); len(dl) != 0 {
		t.Fatalf("%d refused items were delivered anyway: first to %v", len(dl), dl[0].To)
	}
}

// TestOutboxSizeCap: an item bigger than the connector sends is failed at
// once, saying so; one bigger than the SIZE the server announces is failed
// naming the server's limit, never sent. (Before: no cap at all.)
func TestOutboxSizeCap(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, Size: 3 << 20})
	r.useSMTP(srv)
	tooBig := r.enqueue(bigReply(5 << 20))
	overSIZE := r.enqueue(bigReply(4 << 20))
	fits := r.enqueue(bigReply(2 << 20))
	if err := r.syncOnce(func(o *Options) { o.Outbox.MaxMessage = 4<<20 + 512<<10 }); err != nil {
		t.Fatal(err)
	}
	if res := r.result(tooBig); len(res) != 1 || res[0].State != "failed" || !strings.Contains(res[0].Error, "larger than 4 MiB, the most this connector sends") {
		t.Fatalf("the item over the connector's cap: %+v", res)
	}
	if res := r.result(overSIZE); len(res) != 1 || res[0].State != "failed" || !strings.Contains(res[0].Error, "accepts messages of at most 3.0 MB") {
		t.Fatalf("the item over the server's SIZE: %+v", res)
	}
	if res := r.result(fits); len(res) != 1 || res[0].State != "sent" {
		t.Fatalf("the item that fits: %+v", res)
	}
	if got := srv.Accepted(); len(got) != 1 {
		t.Fatalf("the server got %d messages, want 1", len(got))
	}
}

// fakeClock is the outbox's clock in a test: time stands still until
// Advance, and every wait the outbox asks for is reported on asked.
type fakeClock struct {
	mu    gosync.Mutex
	now   time.Time
	waits []fakeWait
	asked chan time.Duration
}

type fakeWait struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), asked: make(chan time.Duration, 10000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waits = append(c.waits, fakeWait{at: c.now.Add(d), ch: ch})
	}
	c.mu.Unlock()
	select {
	case c.asked <- d:
	default:
	}
	return ch
}

// Advance moves time on by d, ending the waits it covers.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waits[:0]
	for _, w := range c.waits {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waits = kept
}

// waitAsked returns once the outbox asked to wait exactly d.
func (c *fakeClock) waitAsked(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(time.Minute)
	var seen []time.Duration
	for {
		select {
		case got := <-c.asked:
			if got == d {
				return
			}
			seen = append(seen, got)
		case <-deadline:
			t.Fatalf("the outbox never asked to wait %v; it asked for %v", d, seen)
		}
	}
}

// TestOutboxPollHonoursRetryAfter: the platform answers the outbox poll
// 503 with Retry-After: 120. The outbox waits those 120 s (on an injected
// clock: no time passes in the test) before it polls again, and then sends
// the item. (Before: it polled again after its own backoff, here 20 ms.)
func TestOutboxPollHonoursRetryAfter(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	var polls atomic.Int32
	r.platform.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/v1/outbox") && polls.Add(1) == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	id := r.enqueue(reply(30))
	clock := newFakeClock()
	r.start(func(o *Options) { o.Outbox.Now, o.Outbox.After = clock.Now, clock.After })
	clock.waitAsked(t, 120*time.Second)
	if n := polls.Load(); n != 1 {
		t.Fatalf("%d polls before the Retry-After ran out, want 1", n)
	}
	clock.Advance(120 * time.Second)
	if res := r.waitResult(id, time.Minute); res.State != "sent" {
		t.Fatalf("after the wait: %+v, want sent", res)
	}
}

// TestOutboxReportHonoursRetryAfter: the platform answers the first result
// report 503 with Retry-After: 300. The item stores its next attempt 300 s
// on (so that a restart keeps it) and waits for it while the sender is
// free; then the result is reported. (Before: the report was retried after
// the outbox's own backoff.)
func TestOutboxReportHonoursRetryAfter(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	var reports atomic.Int32
	r.platform.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/result") && reports.Add(1) == 1 {
			w.Header().Set("Retry-After", "300")
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	id := r.enqueue(reply(31))
	clock := newFakeClock()
	e := r.start(func(o *Options) { o.Outbox.Now, o.Outbox.After = clock.Now, clock.After })
	clock.waitAsked(t, 300*time.Second)
	rec := record(t, e, id)
	if rec.State != state.OutboxSent || rec.Reported || rec.Retries != 1 || !rec.NextAttempt.Equal(clock.Now().Add(300*time.Second)) || !strings.Contains(rec.LastError, "503") {
		t.Fatalf("after the 503: %+v, want sent, unreported, one retry, next attempt in 300 s", rec)
	}
	clock.Advance(300 * time.Second)
	if res := r.waitResult(id, time.Minute); res.State != "sent" || reports.Load() != 2 {
		t.Fatalf("after the wait: %+v after %d reports, want sent on the second", res, reports.Load())
	}
	if n := len(r.dovecot.Delivered()); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
}

// TestOutboxFilingGivesUpOnSilentIMAP: the IMAP server accepts connections
// and says nothing. Each filing step is given up after IMAPStep, retried a
// few times, and then the item is reported sent without its copy in Sent,
// instead of never. (Before: no deadline on filing, and the result was
// never reported.)
func TestOutboxFilingGivesUpOnSilentIMAP(t *testing.T) {
	r := newFaultRig(t, dovecottest.Options{})
	r.IMAPProxy.Freeze()
	id := r.enqueue(reply(32))
	r.start(func(o *Options) { o.Outbox.IMAPStep = 300 * time.Millisecond })
	res := r.waitResult(id, time.Minute)
	if res.State != "sent" || res.SentUID != 0 {
		t.Fatalf("result %+v, want sent without a Sent UID", res)
	}
	if n := len(r.dovecot.Delivered()); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
	r.IMAPProxy.Thaw()
}

// TestOutboxSendsAsListedAlias: the platform's heartbeat lists
// support@acme.test in send_as for alice. An item from that alias (envelope
// and From) is sent; one from an alias it does not list is failed at once.
// (Before: send_as did not exist, and every sender was accepted.)
func TestOutboxSendsAsListedAlias(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/v1/heartbeat") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"settings": {"send_as": {%q: ["Support@acme.test"]}}}`, r.email)
		return true
	})
	msg := func(from string) []byte {
		return []byte("From: " + from + "\r\nTo: customer@client.test\r\nSubject: Your ticket\r\n\r\nSolved.\r\n")
	}
	listed := r.platform.Enqueue(refplatform.OutboxItem{Account: r.email, From: "support@acme.test", Raw: msg("Support <support@acme.test>"), To: []string{"customer@client.test"}})
	unlisted := r.platform.Enqueue(refplatform.OutboxItem{Account: r.email, From: "sales@acme.test", Raw: msg("Sales <sales@acme.test>"), To: []string{"customer@client.test"}})
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if res := r.result(listed); len(res) != 1 || res[0].State != "sent" {
		t.Fatalf("the listed alias: %+v, want sent", res)
	}
	if res := r.result(unlisted); len(res) != 1 || res[0].State != "failed" || !strings.Contains(res[0].Error, "sales@acme.test is neither") {
		t.Fatalf("the unlisted alias: %+v, want failed naming it", res)
	}
	if dl := r.dovecot.Delivered(); len(dl) != 1 || dl[0].From != "support@acme.test" {
		t.Fatalf("delivered %+v, want one from support@acme.test", dl)
	}
}

// TestOutboxStopsWhenThePlatformRefusesTheDevice: an item waits to be
// tried again (its server answered 452) when the platform stops accepting
// the device's token. It is not sent while that lasts, though the server
// would now take it: the connector no longer acts for the platform. After
// pairing again (a new token) it is sent and reported.
func TestOutboxStopsWhenThePlatformRefusesTheDevice(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	var full atomic.Bool
	full.Store(true)
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: r.password, Rcpt: func(string) string {
		if full.Load() {
			return "452 4.2.2 Mailbox full, try later"
		}
		return ""
	}})
	r.useSMTP(srv)
	id := r.enqueue(reply(33))
	e := r.start(func(o *Options) {
		o.HeartbeatEvery = 50 * time.Millisecond
		o.Backoff = backoff.Policy{Base: 200 * time.Millisecond, Max: 400 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.platform.Wait(ctx, func() bool { return len(srv.Commands()) > 0 && record(t, e, id).Retries > 0 }); err != nil {
		t.Fatal("the item was never tried")
	}
	r.platform.RevokeAll()
	if err := r.platform.Wait(ctx, func() bool { return e.Snapshot().Platform.State == PlatformNeedsPairing }); err != nil {
		t.Fatal("the engine never noticed the refusal")
	}
	full.Store(false)
	rejected := len(r.platform.Rejections())
	if err := r.platform.Wait(ctx, func() bool { return len(r.platform.Rejections()) >= rejected+10 }); err != nil {
		t.Fatal("the heartbeat stopped")
	}
	if got := srv.Accepted(); len(got) != 0 {
		t.Fatalf("sent %d messages for a platform that refuses this device", len(got))
	}
	_, token := r.Platform.Pair(t)
	if err := e.SetToken(token); err != nil {
		t.Fatal(err)
	}
	if res := r.waitResult(id, time.Minute); res.State != "sent" {
		t.Fatalf("after pairing again: %+v, want sent", res)
	}
}
