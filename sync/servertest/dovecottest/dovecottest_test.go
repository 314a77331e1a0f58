package dovecottest_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// TestMain fails the run when a process of a Dovecot the tests started
// outlives them. Zombies do not count: reaping the children of a dead master
// is init's business.
func TestMain(m *testing.M) {
	code := m.Run()
	var groups []string
	for _, g := range dovecottest.StartedGroups() {
		groups = append(groups, strconv.Itoa(g))
	}
	if len(groups) > 0 {
		// pgrep exits with 1 when nothing matches.
		out, _ := exec.Command("pgrep", "-a", "-r", "R,S,D,T,t,I", "-g", strings.Join(groups, ",")).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			fmt.Fprintf(os.Stderr, "dovecot processes left after the tests:\n%s", out)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	alice   = "alice@example.com"
	alicePW = "correct horse: battery \"staple\""
	// eventual bounds the wait for something Dovecot must do: a hang
	// guard, never reached by a slow machine.
	eventual = 2 * time.Minute
)

func message(subject string) []byte {
	return []byte("From: Bob <bob@example.com>\r\n" +
		"To: Alice <alice@example.com>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\n" +
		"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n" +
		"\r\n" +
		"Hello Alice,\r\n.\r\nthis is " + subject + ".\r\n")
}

// dialTLS logs alice in over implicit TLS trusting only the test CA, as the
// product would with SSL_CERT_FILE.
func dialTLS(t *testing.T, s *dovecottest.Server, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	opts.TLSConfig = &tls.Config{RootCAs: pool}
	c, err := imapclient.DialTLS(s.IMAPS, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", s.IMAPS, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func startWithAlice(t *testing.T, opts dovecottest.Options) *dovecottest.Server {
	t.Helper()
	s := dovecottest.Start(t, opts)
	s.AddUser(t, alice, alicePW)
	return s
}

func list(t *testing.T, c *imapclient.Client) map[string]*imap.ListData {
	t.Helper()
	l, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	m := map[string]*imap.ListData{}
	for _, d := range l {
		m[d.Mailbox] = d
	}
	return m
}

func TestListDefaultNamespace(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	mboxes := list(t, dialTLS(t, s, nil))
	if _, ok := mboxes["INBOX"]; !ok {
		t.Fatalf("LIST has no INBOX: %v", mboxes)
	}
	sent, ok := mboxes["Sent"]
	if !ok {
		t.Fatalf("LIST has no Sent: %v", mboxes)
	}
	if !slices.Contains(sent.Attrs, imap.MailboxAttrSent) {
		t.Errorf("Sent attributes %v, want \\Sent", sent.Attrs)
	}
	if sent.Delim != '/' {
		t.Errorf("delimiter %q, want '/'", sent.Delim)
	}
	if len(mboxes) != 2 {
		t.Errorf("LIST gives %d folders, want INBOX and Sent only", len(mboxes))
	}
}

func TestNoSpecialUse(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{NoSpecialUse: true})
	sent, ok := list(t, dialTLS(t, s, nil))["Sent"]
	if !ok {
		t.Fatal("LIST has no Sent")
	}
	if slices.Contains(sent.Attrs, imap.MailboxAttrSent) {
		t.Errorf("Sent attributes %v, want no \\Sent", sent.Attrs)
	}
}

func TestNamespaceINBOXDot(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{Namespace: "INBOX."})
	s.CreateFolder(t, alice, "INBOX.Archive", `\Archive`)
	s.CreateFolder(t, alice, "INBOX.Projects.2025", "")
	mboxes := list(t, dialTLS(t, s, nil))
	for name, attr := range map[string]imap.MailboxAttr{"INBOX.Sent": imap.MailboxAttrSent, "INBOX.Archive": imap.MailboxAttrArchive, "INBOX.Projects.2025": ""} {
		d, ok := mboxes[name]
		if !ok {
			t.Errorf("LIST has no %s: %v", name, mboxes)
			continue
		}
		if d.Delim != '.' {
			t.Errorf("%s delimiter %q, want '.'", name, d.Delim)
		}
		if attr != "" && !slices.Contains(d.Attrs, attr) {
			t.Errorf("%s attributes %v, want %s", name, d.Attrs, attr)
		}
	}
	if _, ok := mboxes["Sent"]; ok {
		t.Error("LIST has a top-level Sent")
	}
	if uid := s.Append(t, alice, "INBOX.Sent", message("sent one"), time.Time{}); uid != 1 {
		t.Errorf("first UID in INBOX.Sent %d, want 1", uid)
	}
}

func TestCreateFolderSpecialUse(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	c := dialTLS(t, s, nil) // opened before the reload: must survive it
	s.CreateFolder(t, alice, "Archive/2025", `\Archive`)
	s.CreateFolder(t, alice, "Junk Mail", `\Junk`)
	mboxes := list(t, dialTLS(t, s, nil))
	if d := mboxes["Archive/2025"]; d == nil || !slices.Contains(d.Attrs, imap.MailboxAttrArchive) {
		t.Errorf("Archive/2025: %+v, want \\Archive", d)
	}
	if d := mboxes["Junk Mail"]; d == nil || !slices.Contains(d.Attrs, imap.MailboxAttrJunk) {
		t.Errorf("Junk Mail: %+v, want \\Junk", d)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("session opened before CreateFolder: %v", err)
	}
}

func TestSTARTTLS(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})

	plain, err := imapclient.DialInsecure(s.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	caps := plain.Caps()
	if !caps.Has(imap.CapStartTLS) || !caps.Has(imap.CapLoginDisabled) {
		t.Errorf("plaintext capabilities %v, want STARTTLS and LOGINDISABLED", caps)
	}
	err = plain.Login(alice, alicePW).Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodePrivacyRequired {
		t.Errorf("LOGIN before STARTTLS: %v, want NO [PRIVACYREQUIRED]", err)
	}

	c, err := imapclient.DialStartTLS(s.IMAP, &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
}

func TestAppendFetch(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	date := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	var uids []uint32
	var msgs [][]byte
	for i := range 3 {
		msg := message(fmt.Sprintf("message %d", i))
		uid := s.Append(t, alice, "INBOX", msg, date, `\Seen`)
		if len(uids) > 0 && uid <= uids[len(uids)-1] {
			t.Fatalf("UID %d after %d: not increasing", uid, uids[len(uids)-1])
		}
		uids, msgs = append(uids, uid), append(msgs, msg)
	}

	c := dialTLS(t, s, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	for i, uid := range uids {
		got, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{
			BodySection: []*imap.FetchItemBodySection{body}, Flags: true, InternalDate: true,
		}).Collect()
		if err != nil || len(got) != 1 {
			t.Fatalf("fetch UID %d: %d messages, %v", uid, len(got), err)
		}
		if b := got[0].FindBodySection(body); !bytes.Equal(b, msgs[i]) {
			t.Errorf("UID %d BODY[] differs from what was appended:\n%q\nwant\n%q", uid, b, msgs[i])
		}
		if !slices.Contains(got[0].Flags, imap.FlagSeen) {
			t.Errorf("UID %d flags %v, want \\Seen", uid, got[0].Flags)
		}
		if !got[0].InternalDate.Equal(date) {
			t.Errorf("UID %d internal date %v, want %v", uid, got[0].InternalDate, date)
		}
	}
}

func TestResetUIDValidity(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	msg := message("kept")
	s.Append(t, alice, "INBOX", msg, time.Time{})
	s.Append(t, alice, "INBOX", message("kept too"), time.Time{})
	old := s.UIDValidity(t, alice, "INBOX")

	s.ResetUIDValidity(t, alice, "INBOX")

	c := dialTLS(t, s, nil)
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDValidity == old {
		t.Errorf("UIDVALIDITY still %d after reset", old)
	}
	if got := s.UIDValidity(t, alice, "INBOX"); got != sel.UIDValidity {
		t.Errorf("UIDValidity() %d, SELECT says %d", got, sel.UIDValidity)
	}
	if sel.NumMessages != 2 {
		t.Errorf("%d messages after reset, want 2", sel.NumMessages)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	got, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].FindBodySection(body), msg) {
		t.Errorf("first message after reset: %v, %v", got, err)
	}
	// The change must survive a restart (Dovecot keeps UIDVALIDITY in the
	// index and, for maildir, in dovecot-uidlist).
	c.Close()
	s.Restart(t)
	if got := s.UIDValidity(t, alice, "INBOX"); got != sel.UIDValidity {
		t.Errorf("UIDVALIDITY after restart %d, want %d", got, sel.UIDValidity)
	}
}

func TestNoIDLE(t *testing.T) {
	capsAfterLogin := func(t *testing.T, opts dovecottest.Options) imap.CapSet {
		s := startWithAlice(t, opts)
		return dialTLS(t, s, nil).Caps()
	}
	for _, noSpecialUse := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSpecialUse=%v", noSpecialUse), func(t *testing.T) {
			with := capsAfterLogin(t, dovecottest.Options{NoSpecialUse: noSpecialUse})
			without := capsAfterLogin(t, dovecottest.Options{NoSpecialUse: noSpecialUse, NoIDLE: true})
			if !with.Has(imap.CapIdle) {
				t.Fatalf("default capabilities %v lack IDLE", with)
			}
			if without.Has(imap.CapIdle) {
				t.Fatalf("NoIDLE capabilities %v still have IDLE", without)
			}
			// Nothing else may change: the option's list must track Dovecot's.
			for c := range with {
				if c != imap.CapIdle && !without.Has(c) {
					t.Errorf("NoIDLE also removed %s", c)
				}
			}
			for c := range without {
				if !with.Has(c) {
					t.Errorf("NoIDLE added %s", c)
				}
			}
		})
	}
}

func TestIDLEExists(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	exists := make(chan uint32, 1)
	c := dialTLS(t, s, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- *d.NumMessages:
				default:
				}
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	s.Append(t, alice, "INBOX", message("pushed"), time.Time{})
	// Dovecot batches mailbox change notifications for 0.5 s
	// (NOTIFY_DELAY_MSECS in lib-storage/mailbox-watch.c).
	appended := time.Now()
	select {
	case n := <-exists:
		t.Logf("EXISTS %v after the APPEND completed", time.Since(appended))
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(eventual):
		t.Error("no EXISTS after the append")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionsAndKick(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	var clients []*imapclient.Client
	for range 3 {
		clients = append(clients, dialTLS(t, s, nil))
	}
	waitConnections(t, s, 3)
	s.KickUser(t, alice)
	for i, c := range clients {
		select {
		case <-c.Closed():
		case <-time.After(eventual):
			t.Errorf("session %d still open after KickUser", i)
		}
	}
	if n := s.Connections(t, alice); n != 0 {
		t.Errorf("%d sessions after KickUser", n)
	}
	dialTLS(t, s, nil) // the account still works
	waitConnections(t, s, 1)
}

func waitConnections(t *testing.T, s *dovecottest.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(eventual)
	for {
		n := s.Connections(t, alice)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Connections() %d, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMaxUserIPConnections(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{MaxUserIPConnections: 2})
	dialTLS(t, s, nil)
	dialTLS(t, s, nil)
	c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePW).Wait(); err == nil {
		t.Error("third session logged in, want a refusal")
	}
}

func TestCertificates(t *testing.T) {
	for _, selfSigned := range []bool{false, true} {
		t.Run(fmt.Sprintf("SelfSigned=%v", selfSigned), func(t *testing.T) {
			s := startWithAlice(t, dovecottest.Options{SelfSigned: selfSigned})
			conn, err := tls.Dial("tcp", s.IMAPS, s.TLSConfig())
			if selfSigned {
				var unknown x509.UnknownAuthorityError
				if !errors.As(err, &unknown) {
					t.Fatalf("verifying a self-signed server against CAPEM: %v, want unknown authority", err)
				}
				conn, err = tls.Dial("tcp", s.IMAPS, &tls.Config{InsecureSkipVerify: true})
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cs := conn.ConnectionState()
			if cs.Version < tls.VersionTLS12 {
				t.Errorf("TLS version %x", cs.Version)
			}
			leaf := cs.PeerCertificates[0]
			sum := sha256.Sum256(leaf.Raw)
			if got := hex.EncodeToString(sum[:]); got != s.Fingerprint {
				t.Errorf("fingerprint of the certificate seen %s, Fingerprint %s", got, s.Fingerprint)
			}
			if !bytes.Contains(s.CertPEM, []byte("CERTIFICATE")) {
				t.Error("CertPEM is not a PEM certificate")
			}
			if ca, err := os.ReadFile(s.CAFile); err != nil || !bytes.Equal(ca, s.CAPEM) {
				t.Errorf("CAFile holds %q (%v), want CAPEM", ca, err)
			}
			// TLS 1.1 is refused (ssl_min_protocol).
			old, err := tls.Dial("tcp", s.IMAPS, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			if err == nil {
				old.Close()
				t.Error("TLS 1.1 handshake succeeded")
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	login := func(pw string) error {
		c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: s.TLSConfig()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Login(alice, pw).Wait()
	}
	// Same length, same second: Dovecot must still see each change.
	for _, pw := range []string{"password-1", "password-2", "password-3"} {
		s.SetPassword(t, alice, pw)
		if err := login(pw); err != nil {
			t.Fatalf("login with new password %q: %v", pw, err)
		}
	}
	if err := login(alicePW); err == nil {
		t.Error("old password still accepted")
	}
	s.AddUser(t, "bob@example.com", "bob's")
	if uid := s.Append(t, "bob@example.com", "INBOX", message("for bob"), time.Time{}); uid != 1 {
		t.Errorf("bob's first UID %d", uid)
	}
}

func TestStopRestart(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	s.Append(t, alice, "INBOX", message("before restart"), time.Time{})
	c := dialTLS(t, s, nil)
	imaps := s.IMAPS

	s.Stop(t)
	select {
	case <-c.Closed():
	case <-time.After(eventual):
		t.Fatal("session still open after Stop")
	}
	if conn, err := tls.Dial("tcp", s.IMAPS, s.TLSConfig()); err == nil {
		conn.Close()
		t.Fatal("IMAPS still accepts connections after Stop")
	}
	s.Stop(t) // idempotent

	s.Restart(t)
	if s.IMAPS != imaps {
		t.Errorf("address changed from %s to %s", imaps, s.IMAPS)
	}
	c = dialTLS(t, s, nil)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Errorf("INBOX after restart: %+v, %v; want 1 message", st, err)
	}
}

func TestTwoServers(t *testing.T) {
	a := startWithAlice(t, dovecottest.Options{})
	b := startWithAlice(t, dovecottest.Options{Namespace: "INBOX."})
	if a.IMAPS == b.IMAPS || a.Dir == b.Dir || a.Fingerprint == b.Fingerprint {
		t.Fatalf("servers share an address, directory or certificate: %s %s", a.IMAPS, b.IMAPS)
	}
	a.Append(t, alice, "INBOX", message("only in a"), time.Time{})
	st, err := dialTLS(t, b, nil).Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 0 {
		t.Errorf("b's INBOX: %+v, %v; want empty", st, err)
	}
}

func TestSubmission(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})

	c, err := smtp.Dial(s.Submission)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err == nil {
		t.Error("AUTH before STARTTLS accepted")
	}
	c.Close()

	c, err = smtp.DialStartTLS(s.Submission, s.TLSConfig())
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := message("submitted")
	if err := c.SendMail(alice, []string{"bob@example.com", "carol@example.org"}, bytes.NewReader(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	got := s.Delivered()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	if got[0].From != alice || !slices.Equal(got[0].To, []string{"bob@example.com", "carol@example.org"}) {
		t.Errorf("envelope %s -> %v", got[0].From, got[0].To)
	}
	if !bytes.HasSuffix(got[0].Data, msg) {
		t.Errorf("relayed data %q does not end with the message sent", got[0].Data)
	}
}
