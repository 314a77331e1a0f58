package imapsync_test

import (
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestLastUIDRightAfterExamine: LastUID, called right after Examine, gives
// the UID of the last message of the folder just opened, and 0 for an
// empty one without a FETCH the server refuses, never an answer about the
// folder open before (whose count go-imap may still report at that
// moment).
func TestLastUIDRightAfterExamine(t *testing.T) {
	d := dovecottest.Start(t, dovecottest.Options{})
	const email, pass = "alice@acme.test", "correct horse battery"
	d.AddUser(t, email, pass)
	uid := d.Append(t, email, "INBOX", []byte("Subject: one\r\n\r\none\r\n"), time.Now())
	imapSrv, _ := config.ParseServer(d.IMAPS, config.SecurityTLS, 993)
	acct := config.Account{Email: email, IMAP: imapSrv, TrustFingerprints: []string{d.Fingerprint}}
	pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := imapsync.Dial(t.Context(), acct, pass, pol)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The race it guards against is go-imap's; many rounds make it show.
	for i := 0; i < 200; i++ {
		if _, err := conn.Examine("INBOX"); err != nil {
			t.Fatal(err)
		}
		if last, err := conn.LastUID(); err != nil || last != uid {
			t.Fatalf("round %d: LastUID of INBOX = %d, %v; want %d", i, last, err, uid)
		}
		if _, err := conn.Examine("Sent"); err != nil {
			t.Fatal(err)
		}
		if last, err := conn.LastUID(); err != nil || last != 0 {
			t.Fatalf("round %d: LastUID of the empty Sent = %d, %v; want 0", i, last, err)
		}
	}
}
