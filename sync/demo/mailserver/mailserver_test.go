package mailserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/trust"
)

const (
	testEmail    = "csm@demo.inboxrelay.test"
	testPassword = "correct horse battery staple"
	// hangGuard bounds the wait for something the server must do: only a
	// hang reaches it, never a slow machine.
	hangGuard = 2 * time.Minute
)

var testNow = time.Date(2025, 3, 20, 15, 4, 5, 0, time.UTC)

// startServer starts a server with the test credentials and clock; mod
// adjusts the options. It is closed when the test ends.
func startServer(t *testing.T, mod func(*Options)) *Server {
	t.Helper()
	o := Options{Email: testEmail, Password: testPassword, Now: func() time.Time { return testNow }, Seed: 42}
	if mod != nil {
		mod(&o)
	}
	s, err := Start(t.Context(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// pinnedTLS returns a client configuration that trusts the server at addr
// only by the fingerprint fp, without switching verification off: the
// certificate is learned from a first, failed handshake, checked against fp
// and made the only root; VerifyPeerCertificate checks the pin again on
// every handshake.
func pinnedTLS(t *testing.T, addr, fp string) *tls.Config {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "127.0.0.1", RootCAs: x509.NewCertPool()})
	if err == nil {
		conn.Close()
		t.Fatalf("handshake with an empty root pool succeeded")
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
		t.Fatalf("first handshake: %v, want a certificate verification error", err)
	}
	cert := cve.UnverifiedCertificates[0]
	if got := sha256Hex(cert.Raw); got != fp {
		t.Fatalf("server certificate fingerprint %s, want %s", got, fp)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{
		ServerName: "127.0.0.1",
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || sha256Hex(raw[0]) != fp {
				return errors.New("certificate does not match the pinned fingerprint")
			}
			return nil
		},
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// dialIMAP connects over pinned TLS without logging in.
func dialIMAP(t *testing.T, s *Server, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPAddr(), &imapclient.Options{
		TLSConfig:             pinnedTLS(t, s.IMAPAddr(), s.Fingerprint()),
		UnilateralDataHandler: h,
	})
	if err != nil {
		t.Fatalf("dial IMAP: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// loginIMAP connects and logs in with the test credentials.
func loginIMAP(t *testing.T, s *Server, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c := dialIMAP(t, s, h)
	if err := c.Login(testEmail, testPassword).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func TestStartRejectsMissingCredentials(t *testing.T) {
	for _, o := range []Options{{Password: "x"}, {Email: "no-at-sign", Password: "x"}, {Email: testEmail}} {
		if s, err := Start(t.Context(), o); err == nil {
			s.Close()
			t.Errorf("Start(%+v) succeeded, want an error", o)
		}
	}
}

func TestFingerprintIsCertificateSHA256(t *testing.T) {
	s := startServer(t, nil)
	if len(s.Fingerprint()) != 64 || strings.ToLower(s.Fingerprint()) != s.Fingerprint() {
		t.Fatalf("Fingerprint() = %q, want 64 lowercase hex digits", s.Fingerprint())
	}
	for _, addr := range []string{s.IMAPAddr(), s.SMTPAddr()} {
		pinnedTLS(t, addr, s.Fingerprint()) // fails the test on a mismatch
	}
	if other := startServer(t, nil); other.Fingerprint() == s.Fingerprint() {
		t.Fatalf("two servers share the fingerprint %s, want a fresh certificate each", s.Fingerprint())
	}
}

// The connector's own trust policy must accept the demo server once its
// fingerprint is pinned.
func TestConnectorTrustPolicyAcceptsPin(t *testing.T) {
	s := startServer(t, nil)
	for _, addr := range []string{s.IMAPAddr(), s.SMTPAddr()} {
		p, err := trust.NewPolicy("", []trust.Pin{{Server: addr, Fingerprint: s.Fingerprint()}}, x509.NewCertPool())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", addr, p.Config(addr))
		if err != nil {
			t.Fatalf("handshake with %s pinned: %v", addr, err)
		}
		conn.Close()
	}
}

func TestIMAPAuthentication(t *testing.T) {
	s := startServer(t, nil)
	for _, tc := range []struct {
		name, user, pass string
		plain            bool
		ok               bool
	}{
		{"LOGIN", testEmail, testPassword, false, true},
		{"LOGIN wrong password", testEmail, "wrong", false, false},
		{"LOGIN wrong user", "someone@demo.inboxrelay.test", testPassword, false, false},
		{"AUTHENTICATE PLAIN", testEmail, testPassword, true, true},
		{"AUTHENTICATE PLAIN wrong password", testEmail, "wrong", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialIMAP(t, s, nil)
			var err error
			if tc.plain {
				err = c.Authenticate(sasl.NewPlainClient("", tc.user, tc.pass))
			} else {
				err = c.Login(tc.user, tc.pass).Wait()
			}
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
				t.Fatalf("got %v, want a NO response", err)
			}
			if c.State() == imap.ConnStateAuthenticated {
				t.Fatal("connection is authenticated after a refused login")
			}
		})
	}
}

func TestIMAPListsInboxAndSent(t *testing.T) {
	s := startServer(t, nil)
	c := loginIMAP(t, s, nil)
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	got := map[string]bool{}
	for _, b := range boxes {
		got[b.Mailbox] = true
	}
	if !got[Inbox] || !got[Sent] || len(got) != 2 {
		t.Fatalf("LIST returned %v, want exactly INBOX and Sent", got)
	}
}

func TestIMAPSeededMailbox(t *testing.T) {
	s := startServer(t, nil)
	inbox, sent := s.Seeded()
	if len(inbox) != SampleInbox || len(sent) != SampleReplies {
		t.Fatalf("Seeded() has %d and %d messages, want %d and %d", len(inbox), len(sent), SampleInbox, SampleReplies)
	}
	c := loginIMAP(t, s, nil)
	validities := map[uint32]string{}
	for _, box := range []struct {
		name string
		want [][]byte
	}{{Inbox, inbox}, {Sent, sent}} {
		t.Run(box.name, func(t *testing.T) {
			statusOpts := &imap.StatusOptions{NumMessages: true, UIDValidity: true, UIDNext: true, NumUnseen: true}
			st, err := c.Status(box.name, statusOpts).Wait()
			if err != nil {
				t.Fatalf("STATUS: %v", err)
			}
			if *st.NumMessages != uint32(len(box.want)) {
				t.Fatalf("MESSAGES %d, want %d", *st.NumMessages, len(box.want))
			}
			if st.UIDValidity == 0 || validities[st.UIDValidity] != "" {
				t.Fatalf("UIDVALIDITY %d, want non-zero and unique (others: %v)", st.UIDValidity, validities)
			}
			validities[st.UIDValidity] = box.name
			if st.UIDNext != imap.UID(len(box.want)+1) {
				t.Fatalf("UIDNEXT %d, want %d", st.UIDNext, len(box.want)+1)
			}

			if _, err := c.Select(box.name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatalf("EXAMINE: %v", err)
			}
			section := &imap.FetchItemBodySection{Peek: true}
			var all imap.UIDSet
			all.AddRange(1, 0)
			msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			if err != nil {
				t.Fatalf("UID FETCH: %v", err)
			}
			if len(msgs) != len(box.want) {
				t.Fatalf("fetched %d messages, want %d", len(msgs), len(box.want))
			}
			var prev time.Time
			for i, m := range msgs {
				if m.UID != imap.UID(i+1) {
					t.Fatalf("message %d has UID %d, want %d", i, m.UID, i+1)
				}
				if got := m.FindBodySection(section); !bytes.Equal(got, box.want[i]) {
					t.Fatalf("UID %d: BODY[] differs from the seeded bytes (%d vs %d bytes)", m.UID, len(got), len(box.want[i]))
				}
				if m.RFC822Size != int64(len(box.want[i])) {
					t.Fatalf("UID %d: RFC822.SIZE %d, want %d", m.UID, m.RFC822Size, len(box.want[i]))
				}
				if m.InternalDate.Before(prev) || m.InternalDate.After(testNow) {
					t.Fatalf("UID %d: INTERNALDATE %v out of order or after now", m.UID, m.InternalDate)
				}
				prev = m.InternalDate
			}
			if err := c.Unselect().Wait(); err != nil {
				t.Fatalf("UNSELECT: %v", err)
			}
			after, err := c.Status(box.name, statusOpts).Wait()
			if err != nil {
				t.Fatalf("STATUS: %v", err)
			}
			if *after.NumUnseen != *st.NumUnseen {
				t.Fatalf("UNSEEN went from %d to %d after BODY.PEEK[]", *st.NumUnseen, *after.NumUnseen)
			}
		})
	}
}

// An IDLE session must hear about a Deliver at once.
func TestDeliverNotifiesIdleClient(t *testing.T) {
	s := startServer(t, nil)
	exists := make(chan uint32, 1)
	c := loginIMAP(t, s, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- *d.NumMessages:
				default:
				}
			}
		},
	})
	if _, err := c.Select(Inbox, nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	select {
	case n := <-exists:
		t.Fatalf("EXISTS %d before any delivery", n)
	default:
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	// No pause here: a Deliver racing IDLE's start must not be lost.
	msg := []byte("From: Ana <ana@customer.example>\r\nTo: " + testEmail + "\r\nSubject: hello\r\nMessage-ID: <new-1@customer.example>\r\n\r\nA new message.\r\n")
	date := testNow.Add(-time.Minute)
	if err := s.Deliver(msg, date); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	select {
	case n := <-exists:
		if n != SampleInbox+1 {
			t.Fatalf("EXISTS %d, want %d", n, SampleInbox+1)
		}
	case <-time.After(hangGuard):
		t.Fatal("no EXISTS after Deliver")
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("stop IDLE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}

	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(SampleInbox+1), &imap.FetchOptions{InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("UID FETCH of the delivered message: %d messages, %v", len(msgs), err)
	}
	if got := msgs[0].FindBodySection(section); !bytes.Equal(got, msg) {
		t.Fatalf("delivered message reads back as %q", got)
	}
	if !msgs[0].InternalDate.Equal(date) {
		t.Fatalf("INTERNALDATE %v, want %v", msgs[0].InternalDate, date)
	}
}

// A client appending to Sent (as the connector files its replies) must be
// seen at once by another session IDLE on Sent.
func TestAppendNotifiesOtherIdleSession(t *testing.T) {
	s := startServer(t, nil)
	exists := make(chan uint32, 1)
	watcher := loginIMAP(t, s, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- *d.NumMessages:
				default:
				}
			}
		},
	})
	if _, err := watcher.Select(Sent, nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	defer idle.Close()

	writer := loginIMAP(t, s, nil)
	msg := []byte("From: " + testEmail + "\r\nTo: dana@acme-logistics.example\r\nSubject: Re: hello\r\n\r\nThanks!\r\n")
	cmd := writer.Append(Sent, int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	if _, err := cmd.Write(msg); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if data.UID != SampleReplies+1 || data.UIDValidity == 0 {
		t.Fatalf("APPENDUID %d %d, want UID %d and a UIDVALIDITY", data.UIDValidity, data.UID, SampleReplies+1)
	}
	select {
	case n := <-exists:
		if n != SampleReplies+1 {
			t.Fatalf("EXISTS %d, want %d", n, SampleReplies+1)
		}
	case <-time.After(hangGuard):
		t.Fatal("no EXISTS after another session's APPEND")
	}
}

func TestNewMailEveryAddsMail(t *testing.T) {
	s := startServer(t, func(o *Options) { o.NewMailEvery = 20 * time.Millisecond })
	c := loginIMAP(t, s, nil)
	deadline := time.Now().Add(hangGuard)
	for {
		st, err := c.Status(Inbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS: %v", err)
		}
		if *st.NumMessages >= SampleInbox+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX still has %d messages, want new mail beyond %d", *st.NumMessages, SampleInbox)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Select(Inbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE: %v", err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	var uids imap.UIDSet
	uids.AddRange(SampleInbox+1, SampleInbox+2)
	msgs, err := c.Fetch(uids, &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("UID FETCH of new mail: %d messages, %v", len(msgs), err)
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		if !m.InternalDate.Equal(testNow) {
			t.Errorf("UID %d: INTERNALDATE %v, want the injected now %v", m.UID, m.InternalDate, testNow)
		}
		if len(m.Flags) != 0 {
			t.Errorf("UID %d: flags %v, want none (unread)", m.UID, m.Flags)
		}
		h := checkMessage(t, m.FindBodySection(section), testNow)
		if !strings.Contains(h.Get("To"), testEmail) || strings.Contains(h.Get("From"), "demo.inboxrelay.test") {
			t.Errorf("UID %d: From %q To %q, want a customer writing to the user", m.UID, h.Get("From"), h.Get("To"))
		}
		ids[h.Get("Message-ID")] = true
	}
	if len(ids) != 2 {
		t.Fatalf("new messages share a Message-ID: %v", ids)
	}
}

// dialSMTP connects to the submission port over pinned TLS.
func dialSMTP(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	c, err := smtp.DialTLS(s.SMTPAddr(), pinnedTLS(t, s.SMTPAddr(), s.Fingerprint()))
	if err != nil {
		t.Fatalf("dial SMTP: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

func TestSMTPSendIsRecordedNotFiled(t *testing.T) {
	s := startServer(t, nil)
	c := dialSMTP(t, s)
	if !c.SupportsAuth(sasl.Plain) {
		t.Fatal("AUTH PLAIN not offered over TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", testEmail, testPassword)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := []byte("From: Sam Rivera <" + testEmail + ">\r\nTo: Dana <dana@acme-logistics.example>\r\nSubject: Re: Renewal question\r\n\r\nHi Dana,\r\n.leading dot\r\n")
	to := []string{"dana@acme-logistics.example", "marcus@acme-logistics.example"}
	if err := c.SendMail(testEmail, to, bytes.NewReader(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}

	out := s.Outgoing()
	if len(out) != 1 {
		t.Fatalf("Outgoing() has %d deliveries, want 1", len(out))
	}
	d := out[0]
	if d.From != testEmail || strings.Join(d.To, ",") != strings.Join(to, ",") || !bytes.Equal(d.Data, msg) || !d.Received.Equal(testNow) {
		t.Fatalf("recorded %+v (data %q), want from %s to %v with the message sent at %v", d, d.Data, testEmail, to, testNow)
	}

	ic := loginIMAP(t, s, nil)
	for name, want := range map[string]uint32{Inbox: SampleInbox, Sent: SampleReplies} {
		st, err := ic.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS %s: %v", name, err)
		}
		if *st.NumMessages != want {
			t.Fatalf("%s has %d messages after sending, want %d: sent mail must not be filed", name, *st.NumMessages, want)
		}
	}
}

func TestSMTPRefusals(t *testing.T) {
	s := startServer(t, nil)
	for _, tc := range []struct {
		name string
		do   func(c *smtp.Client) error
		code int
	}{
		{"wrong password", func(c *smtp.Client) error {
			return c.Auth(sasl.NewPlainClient("", testEmail, "wrong"))
		}, 535},
		{"wrong user", func(c *smtp.Client) error {
			return c.Auth(sasl.NewPlainClient("", "other@demo.inboxrelay.test", testPassword))
		}, 535},
		{"mail without auth", func(c *smtp.Client) error {
			return c.Mail(testEmail, nil)
		}, 530},
		{"sender not the user", func(c *smtp.Client) error {
			if err := c.Auth(sasl.NewPlainClient("", testEmail, testPassword)); err != nil {
				return fmt.Errorf("AUTH: %w", err)
			}
			return c.Mail("ceo@elsewhere.example", nil)
		}, 553},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do(dialSMTP(t, s))
			var smtpErr *smtp.SMTPError
			if !errors.As(err, &smtpErr) || smtpErr.Code != tc.code {
				t.Fatalf("got %v, want an SMTP %d", err, tc.code)
			}
		})
	}
	if n := len(s.Outgoing()); n != 0 {
		t.Fatalf("Outgoing() has %d deliveries after refusals", n)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, Options{Email: testEmail, Password: testPassword, NewMailEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := loginIMAP(t, s, nil)
	cancel()
	select {
	case <-s.Done():
	case <-time.After(hangGuard):
		t.Fatal("server still running after its context was cancelled")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after shutdown: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Noop().Wait(); err == nil {
		t.Error("an open IMAP connection still works after Close")
	}
	for _, addr := range []string{s.IMAPAddr(), s.SMTPAddr()} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
	}
	if err := s.Deliver([]byte("Subject: late\r\n\r\n"), time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Deliver after Close = %v, want ErrClosed", err)
	}
}

// checkMessage checks that raw is a well-formed message dated within the
// 31 days before now and returns its header.
func checkMessage(t *testing.T, raw []byte, now time.Time) mail.Header {
	t.Helper()
	if i := bytes.IndexByte(bytes.ReplaceAll(raw, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Fatalf("bare LF in message:\n%s", raw)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\r")) {
		t.Fatalf("bare CR in message:\n%s", raw)
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("message does not end with CRLF")
	}
	for _, line := range bytes.Split(raw, []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatalf("line of %d octets, RFC 5322 allows 998", len(line))
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	date, err := m.Header.Date()
	if err != nil {
		t.Fatalf("Date: %v", err)
	}
	if date.After(now) || date.Before(now.AddDate(0, 0, -31)) {
		t.Fatalf("Date %v outside the 31 days before %v", date, now)
	}
	for _, f := range []string{"From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"} {
		if m.Header.Get(f) == "" {
			t.Fatalf("no %s header", f)
		}
	}
	if _, err := m.Header.AddressList("From"); err != nil {
		t.Fatalf("From: %v", err)
	}
	if _, err := m.Header.AddressList("To"); err != nil {
		t.Fatalf("To: %v", err)
	}
	return m.Header
}
