package engine

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// reply is what a CSM writes in the platform: no Message-ID, no Date, bare
// LF line ends (the connector adds the first two and fixes the third).
func reply(n int) []byte {
	return []byte("From: Alice <alice@acme.test>\nTo: customer@client.test\nSubject: Re: Renewal " + strings.Repeat("x", n) + "\n\nThanks, we will renew.\n")
}

func (r *rig) enqueue(raw []byte) string {
	return r.platform.Enqueue(refplatform.OutboxItem{Account: r.email, Raw: raw, From: r.email, To: []string{"customer@client.test"}})
}

// sentCopies returns the bodies in Sent whose Message-ID is id.
func (r *rig) sentCopies(id string) [][]byte {
	r.t.Helper()
	c := r.dovecot.Login(r.t, r.email, nil)
	if _, err := c.Select("Sent", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		r.t.Fatal(err)
	}
	d, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
	if err != nil {
		r.t.Fatal(err)
	}
	if len(d.AllUIDs()) == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSetNum(d.AllUIDs()...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		r.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out = append(out, b.Bytes)
		}
	}
	return out
}

func (r *rig) result(id string) []refplatform.OutboxResult {
	return r.platform.Results()[id]
}

func TestOutboxDeliversFilesAndRelays(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	id := r.enqueue(reply(1))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "sent" || res[0].SMTPCode != 250 || res[0].SentUID == 0 || res[0].MessageID == "" {
		t.Fatalf("results %+v, want one sent with code 250, a Sent UID and the Message-ID", res)
	}
	dl := r.dovecot.Delivered()
	if len(dl) != 1 || dl[0].From != r.email || len(dl[0].To) != 1 || dl[0].To[0] != "customer@client.test" {
		t.Fatalf("delivered %+v, want one message to customer@client.test", dl)
	}
	copies := r.sentCopies(res[0].MessageID)
	if len(copies) != 1 {
		t.Fatalf("%d copies in Sent, want 1", len(copies))
	}
	sent := copies[0]
	if !bytes.HasSuffix(dl[0].Data, sent) || bytes.Contains(sent, []byte("\r\n")) == false || bytes.Contains(bytes.ReplaceAll(sent, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatalf("the delivered bytes do not end with the Sent copy, or line ends are not CRLF:\n%q", sent)
	}
	if !bytes.Contains(sent, []byte("Message-ID: "+res[0].MessageID+"\r\n")) || !bytes.Contains(sent, []byte("\r\nDate: ")) && !bytes.HasPrefix(sent, []byte("Date: ")) {
		t.Fatalf("the connector did not add Message-ID and Date:\n%s", sent)
	}
	// The Sent copy reaches the platform through the Sent folder's sync.
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range r.platform.Messages() {
		if m.Key == keyOf(sent) && m.Mailbox == "sent" && m.UID == res[0].SentUID {
			found = true
		}
	}
	if !found {
		t.Fatal("the copy in Sent was not relayed to the platform as sent mail")
	}
	if len(r.dovecot.Delivered()) != 1 || len(r.result(id)) != 1 {
		t.Fatal("the second pass sent or reported again")
	}
}

func TestOutboxKeepsMessageIDAndDate(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	raw := []byte("Message-ID: <given@acme.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nFrom: alice@acme.test\r\nTo: customer@client.test\r\nSubject: Hi\r\n\r\nHello\r\n")
	id := r.enqueue(raw)
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if res := r.result(id); len(res) != 1 || res[0].MessageID != "<given@acme.test>" {
		t.Fatalf("results %+v", res)
	}
	if copies := r.sentCopies("<given@acme.test>"); len(copies) != 1 || !bytes.Equal(copies[0], raw) {
		t.Fatalf("the Sent copy is not the message exactly as given: %q", copies)
	}
}

func TestOutboxPermanentRefusal(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.dovecot.RefuseNext(554, "5.7.1 Message rejected as spam")
	id := r.enqueue(reply(2))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "failed" || res[0].SMTPCode != 554 || !strings.Contains(res[0].Error, "spam") {
		t.Fatalf("results %+v, want failed with 554", res)
	}
	if len(r.dovecot.Delivered()) != 0 || len(r.sentCopies(res[0].MessageID)) != 0 {
		t.Fatal("a refused message was delivered or filed in Sent")
	}
}

func TestOutboxTemporaryRefusalThenSuccess(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.dovecot.RefuseNext(451, "4.3.0 Try again later")
	id := r.enqueue(reply(3))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "sent" {
		t.Fatalf("results %+v, want one sent after the retry", res)
	}
	if len(r.dovecot.Delivered()) != 1 || len(r.sentCopies(res[0].MessageID)) != 1 {
		t.Fatal("want the message delivered once and filed once")
	}
}

func TestOutboxInvalidItem(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	id := r.platform.Enqueue(refplatform.OutboxItem{Account: "nobody@elsewhere.test", Raw: reply(4), From: "nobody@elsewhere.test", To: []string{"x@client.test"}})
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if res := r.result(id); len(res) != 1 || res[0].State != "failed" || !strings.Contains(res[0].Error, "no account") {
		t.Fatalf("results %+v, want failed: no account", res)
	}
}

// TestOutboxCrashBetweenSMTPAndAppend: the SMTP server accepted the
// message, then the connector died before filing it in Sent. After the
// restart it files it once and reports it sent, never sending again.
func TestOutboxCrashBetweenSMTPAndAppend(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	id := r.enqueue(reply(5))
	items := r.takeItems()
	// What the first run did before dying: stored the item, sent it.
	e := r.engine(true)
	path, mid := r.prepare(e, items[0])
	r.sendDirect(path)
	rec := state.OutboxItem{ID: id, Account: r.email, From: r.email, To: []string{"customer@client.test"}, MessageID: mid, File: path,
		State: state.OutboxSent, SMTPCode: 250, SMTPMessage: "ok", Received: time.Now()}
	if err := e.o.Store.PutOutboxItem(rec); err != nil {
		t.Fatal(err)
	}
	e.o.Store.Close()

	r.platform.SetLease(100 * time.Millisecond) // the dead run's lease expires; the item is offered again
	time.Sleep(200 * time.Millisecond)
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "sent" || res[0].SentUID == 0 {
		t.Fatalf("results %+v, want one sent with its Sent UID", res)
	}
	if n := len(r.dovecot.Delivered()); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
	if n := len(r.sentCopies(mid)); n != 1 {
		t.Fatalf("%d copies in Sent, want 1", n)
	}
}

// TestOutboxCrashWhileSending: the connector died in the middle of the
// SMTP transaction. Not found in Sent, the item is reported ambiguous and
// never sent again.
func TestOutboxCrashWhileSending(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	id := r.enqueue(reply(6))
	items := r.takeItems()
	e := r.engine(true)
	path, mid := r.prepare(e, items[0])
	rec := state.OutboxItem{ID: id, Account: r.email, From: r.email, To: []string{"customer@client.test"}, MessageID: mid, File: path,
		State: state.OutboxSending, Received: time.Now()}
	if err := e.o.Store.PutOutboxItem(rec); err != nil {
		t.Fatal(err)
	}
	e.o.Store.Close()
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "ambiguous" || res[0].Error == "" {
		t.Fatalf("results %+v, want ambiguous", res)
	}
	if len(r.dovecot.Delivered()) != 0 {
		t.Fatal("an item caught mid-send was sent again")
	}
}

// TestOutboxOfferedTwice: an item whose result was already reported is
// not handled again, and one offered again before its report is reported,
// not resent.
func TestOutboxOfferedTwice(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	r.platform.SetLease(200 * time.Millisecond)
	id := r.enqueue(reply(7))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	// Offer it again by hand, as a platform that lost the result would.
	e := r.engine(true)
	ob := newOutbox(e)
	before := len(r.dovecot.Delivered())
	again := r.itemWithID(id)
	ob.intake(again)
	if _, err := os.Stat(again.File); !os.IsNotExist(err) {
		t.Fatalf("the message offered again was kept: %v", err)
	}
	if len(ob.senders) != 0 {
		t.Fatal("an item already reported was queued again")
	}
	e.o.Store.Close()
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if after := len(r.dovecot.Delivered()); after != before || before != 1 {
		t.Fatalf("delivered %d then %d times, want once", before, after)
	}
	if n := len(r.result(id)); n != 1 {
		t.Fatalf("%d results, want 1", n)
	}
}

// takeItems leases the outbox's items as a connector run would, and
// returns them, their messages in files.
func (r *rig) takeItems() []relay.OutboxItem {
	r.t.Helper()
	c, err := relay.New(relay.Options{BaseURL: r.platform.URL(), CAFile: r.caFile, Token: r.token})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	items, err := c.Outbox(context.Background(), relay.OutboxOptions{Dir: r.t.TempDir()})
	if err != nil || len(items) == 0 {
		r.t.Fatalf("outbox: %v, %d items", err, len(items))
	}
	return items
}

// itemWithID is item id as the platform offers it, its message in a file.
func (r *rig) itemWithID(id string) relay.OutboxItem {
	r.t.Helper()
	f := filepath.Join(r.t.TempDir(), "incoming.raw")
	if err := os.WriteFile(f, reply(7), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return relay.OutboxItem{ID: id, Account: r.email, File: f, Size: int64(len(reply(7))), From: r.email, To: []string{"customer@client.test"}}
}

// TestOutboxAmbiguousWhenCutAfterData uses a go-smtp server (Dovecot's
// submission cannot be told to hang up at that exact moment) that reads
// the whole message and drops the connection without a reply.
func TestOutboxAmbiguousWhenCutAfterData(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	cut := startCuttingSMTP(t)
	r.cfg.Accounts[0].SMTP.Host, r.cfg.Accounts[0].SMTP.Port, r.cfg.Accounts[0].SMTP.Security = "127.0.0.1", cut.port, "tls"
	r.cfg.Accounts[0].TrustFingerprints = append(r.cfg.Accounts[0].TrustFingerprints, cut.fingerprint)
	id := r.enqueue(reply(8))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "ambiguous" {
		t.Fatalf("results %+v, want ambiguous", res)
	}
	if n := cut.received(); n != 1 {
		t.Fatalf("the server received %d messages, want 1: an ambiguous send must not be retried", n)
	}
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if n := cut.received(); n != 1 {
		t.Fatalf("a later run sent the ambiguous item again (%d)", n)
	}
}

type cuttingSMTP struct {
	port        int
	fingerprint string
	mu          gosync.Mutex
	n           int
}

func (c *cuttingSMTP) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func startCuttingSMTP(t *testing.T) *cuttingSMTP {
	t.Helper()
	cert, fp := selfSigned(t)
	c := &cuttingSMTP{fingerprint: fp}
	srv := smtp.NewServer(smtp.BackendFunc(func(conn *smtp.Conn) (smtp.Session, error) {
		return &cutSession{c: c, conn: conn}, nil
	}))
	srv.Domain = "cut.localhost"
	srv.AllowInsecureAuth = false
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return c
}

type cutSession struct {
	c    *cuttingSMTP
	conn *smtp.Conn
}

func (s *cutSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *cutSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, _, _ string) error { return nil }), nil
}
func (s *cutSession) Reset()                               {}
func (s *cutSession) Logout() error                        { return nil }
func (s *cutSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *cutSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *cutSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	s.c.mu.Lock()
	s.c.n++
	s.c.mu.Unlock()
	s.conn.Conn().Close() // hang up instead of answering
	return errors.New("cut")
}

// selfSigned makes a certificate for 127.0.0.1 and returns it with its
// fingerprint.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cut.localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, trust.Fingerprint(leaf)
}
