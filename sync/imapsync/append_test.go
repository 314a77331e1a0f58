package imapsync_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/couriertest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestAppendAfterFindOnCourier: Courier refuses APPEND while a folder is
// open read-only, which FindMessageID leaves it; Append works anyway, and
// leaving the folder (CLOSE: Courier has no UNSELECT) removes nothing,
// not even a message marked \Deleted.
func TestAppendAfterFindOnCourier(t *testing.T) {
	s := couriertest.Start(t)
	const login, pass, sent = "alice", "correct horse battery", "INBOX.Sent"
	s.AddUser(t, login, pass)
	deleted := []byte("Message-ID: <deleted@acme.test>\r\nSubject: marked deleted\r\n\r\nstill here\r\n")
	c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: s.Pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(login, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	ac := c.Append(sent, int64(len(deleted)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
	ac.Write(deleted)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}

	imapSrv, _ := config.ParseServer(s.IMAPS, config.SecurityTLS, 993)
	acct := config.Account{Email: "alice@acme.test", Username: login, IMAP: imapSrv, TrustFingerprints: []string{s.Fingerprint}}
	pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := imapsync.Dial(t.Context(), acct, pass, pol)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, found, err := conn.FindMessageID(sent, "<reply@acme.test>"); err != nil || found {
		t.Fatalf("find before append: found %v, %v", found, err)
	}
	msg := []byte("Message-ID: <reply@acme.test>\r\nSubject: Re: hi\r\n\r\nreply\r\n")
	uid, err := conn.Append(sent, msg, time.Now())
	if err != nil {
		t.Fatalf("append after find: %v", err)
	}
	if got, found, err := conn.FindMessageID(sent, "<reply@acme.test>"); err != nil || !found || (uid != 0 && got != uid) {
		t.Fatalf("find after append: uid %d found %v err %v, append said %d", got, found, err, uid)
	}
	if _, found, err := conn.FindMessageID(sent, "<deleted@acme.test>"); err != nil || !found {
		t.Fatalf("the message marked \\Deleted is gone after Append (found %v, %v): CLOSE expunged it", found, err)
	}
}

// TestAppendFromUnreadableMessage: a message that cannot be read as
// announced (the file fails, ends early, or holds more) is reported as
// such, never as a server that closed the connection (which sends people
// to the network for a local problem), and nothing is filed.
func TestAppendFromUnreadableMessage(t *testing.T) {
	d := dovecottest.Start(t, dovecottest.Options{})
	const email, pass = "alice@acme.test", "correct horse battery"
	d.AddUser(t, email, pass)
	imapSrv, _ := config.ParseServer(d.IMAPS, config.SecurityTLS, 993)
	acct := config.Account{Email: email, IMAP: imapSrv, TrustFingerprints: []string{d.Fingerprint}}
	pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *imapsync.Conn {
		conn, err := imapsync.Dial(t.Context(), acct, pass, pol)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	msg := []byte("Message-ID: <reply@acme.test>\r\nSubject: Re: hi\r\n\r\nreply\r\n")
	broken := errors.New("input/output error")
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
		want string
	}{
		{"ends early", bytes.NewReader(msg), int64(len(msg)) + 10, "ended before"},
		{"holds more", bytes.NewReader(msg), int64(len(msg)) - 5, "more than"},
		{"read fails", io.MultiReader(bytes.NewReader(msg[:5]), iotest.ErrReader(broken)), int64(len(msg)), broken.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dial().AppendFrom("Sent", tc.r, tc.size, time.Now())
			var ne *imapsync.NetError
			if err == nil || errors.As(err, &ne) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("AppendFrom = %v, want an error saying the message %s, not a network failure", err, tc.want)
			}
		})
	}
	if sel, err := dial().Examine("Sent"); err != nil || sel.Messages != 0 {
		t.Fatalf("Sent holds %d messages (%v), want none", sel.Messages, err)
	}
}
