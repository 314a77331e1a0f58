package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/servertest/smtpsink"
)

// addWithSMTP adds the world's account with its IMAP on Dovecot and its
// SMTP on smtpAddr (implicit TLS).
func (w *world) addWithSMTP(smtpAddr string, extra ...string) result {
	w.t.Helper()
	args := append([]string{"account", "add", "--email", w.email, "--imap", w.dovecot.IMAPS, "--smtp", smtpAddr, "--password-stdin"}, extra...)
	return w.run(w.password+"\n", args...)
}

// storedPins returns the pins the settings file holds for the account.
func (w *world) storedPins() map[string]config.Account {
	w.t.Helper()
	cfg, err := config.Home{Dir: w.home}.Load()
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]config.Account{}
	for _, a := range cfg.Accounts {
		out[a.Email] = a
	}
	return out
}

// relayAndSend appends a message to INBOX and queues a reply, runs one
// sync, and checks both went through: relayed, sent through sink, filed.
func (w *world) relayAndSend(sink *smtpsink.Server, i int) {
	w.t.Helper()
	msg := message(1000+i, 400)
	w.dovecot.Append(w.t, w.email, "INBOX", msg, time.Now())
	raw := []byte(fmt.Sprintf("From: %s\r\nTo: customer@client.test\r\nSubject: Re: %d\r\nMessage-ID: <r%d@acme.test>\r\n\r\nAnswer %d.\r\n", w.email, i, i, i))
	id := w.platform.Enqueue(refplatform.OutboxItem{Account: w.email, Raw: raw, From: w.email, To: []string{"customer@client.test"}})
	if r := w.run("", "sync", "--once"); r.code != 0 {
		w.t.Fatalf("round %d: sync --once: exit %d\n%s", i, r.code, r.stderr)
	}
	stored := false
	for _, m := range w.platform.Messages() {
		stored = stored || m.Key == keyOf(msg)
	}
	if !stored {
		w.t.Fatalf("round %d: the new message was not relayed", i)
	}
	if res := w.platform.Results()[id]; len(res) != 1 || res[0].State != "sent" || res[0].SentUID == 0 {
		w.t.Fatalf("round %d: outbox result %+v; want sent and filed", i, res)
	}
	if n := len(sink.Delivered()); n != i+1 {
		w.t.Fatalf("round %d: the SMTP server received %d messages, want %d", i, n, i+1)
	}
}

// The setup, as a new user makes it: IMAP (Dovecot) and SMTP each
// with its own self-signed certificate, the SMTP one with only a common
// name, both pinned on the command line. The account is added, syncs and
// sends, every time.
func TestTwoSelfSignedServersPinnedEachForItsOwn(t *testing.T) {
	w := newWorld(t, dovecottest.Options{SelfSigned: true})
	w.pair()
	cert := hostile.NewCert(t, hostile.CertOptions{SelfSigned: true, CNOnly: true, Names: []string{"smtp.corp.test"}})
	sink := smtpsink.StartWithCert(t, w.email, w.password, cert)

	// With only the IMAP certificate pinned, SMTP is refused, and the
	// error says how to pin its certificate for its server.
	r := w.addWithSMTP(sink.Addr, "--trust-fingerprint", "imap="+w.dovecot.Fingerprint)
	if r.code != 1 || !strings.Contains(r.stderr, "SMTP") || !strings.Contains(r.stderr, "--trust-fingerprint "+sink.Addr+"="+sink.Fingerprint) {
		t.Fatalf("SMTP not pinned: exit %d, stderr %q; want SMTP refused with the pin to give", r.code, r.stderr)
	}
	// A pin names its server: the IMAP certificate pinned for SMTP's
	// address does not trust SMTP's certificate.
	if r := w.addWithSMTP(sink.Addr, "--trust-fingerprint", "imap="+w.dovecot.Fingerprint, "--trust-fingerprint", sink.Addr+"="+w.dovecot.Fingerprint); r.code != 1 {
		t.Fatalf("SMTP with the IMAP certificate's pin: exit %d; want refused", r.code)
	}

	// The SMTP pin in the old, bare form: it names one certificate, which
	// only the SMTP server presents.
	r = w.addWithSMTP(sink.Addr, "--trust-fingerprint", "imap="+w.dovecot.Fingerprint, "--trust-fingerprint", sink.Fingerprint)
	if r.code != 0 {
		t.Fatalf("account add with both pinned: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Count(r.stdout, "certificate pinned for this server") != 2 || !strings.Contains(r.stdout, "subject CN=smtp.corp.test,O=Hostile test server; no names besides the subject") {
		t.Errorf("account add does not show what the pinned certificates say:\n%s", r.stdout)
	}
	pins := w.storedPins()[w.email].Pins
	if len(pins) != 2 || pins[0].Server != w.dovecot.IMAPS || pins[0].Fingerprint != w.dovecot.Fingerprint ||
		pins[1].Server != sink.Addr || pins[1].Fingerprint != sink.Fingerprint || pins[1].Certificate == nil {
		t.Fatalf("stored pins %+v; want the IMAP certificate for IMAP and the SMTP one for SMTP, described", pins)
	}
	for i := 0; i < 5; i++ {
		w.relayAndSend(sink, i)
	}
	st := w.mustRun("", "status")
	if !strings.Contains(st.stdout, "certificate pinned for "+sink.Addr+": SHA-256 "+sink.Fingerprint) {
		t.Errorf("status does not show the pins:\n%s", st.stdout)
	}
	w.checkNoSecretOnDisk()
}

// A pinned IMAP certificate must not break an SMTP server the system's
// authorities vouch for (here: SSL_CERT_FILE holds the issuing CA); a bare
// fingerprint is stored only for the server that presented it.
func TestPinnedIMAPAndVerifiedSMTP(t *testing.T) {
	w := newWorld(t, dovecottest.Options{SelfSigned: true})
	w.pair()
	cert := hostile.NewCert(t, hostile.CertOptions{Names: []string{"localhost"}})
	caFile := filepath.Join(t.TempDir(), "smtp-ca.pem")
	if err := os.WriteFile(caFile, cert.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", caFile)
	sink := smtpsink.StartWithCert(t, w.email, w.password, cert)
	_, port, _ := strings.Cut(sink.Addr, ":")
	smtpAddr := "localhost:" + port
	r := w.addWithSMTP(smtpAddr, "--trust-fingerprint", w.dovecot.Fingerprint)
	if r.code != 0 {
		t.Fatalf("account add: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "certificate verified by the system's authorities") {
		t.Errorf("account add does not say how SMTP was trusted:\n%s", r.stdout)
	}
	pins := w.storedPins()[w.email].Pins
	if len(pins) != 1 || pins[0].Server != w.dovecot.IMAPS {
		t.Fatalf("stored pins %+v; want only the IMAP server's", pins)
	}
	for i := 0; i < 3; i++ {
		w.relayAndSend(sink, i)
	}
}
