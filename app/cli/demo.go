package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/demo/mailserver"
	"github.com/inboxrelay/inboxrelay/sync/refplatform"
)

// demoEmail is the sample mailbox's owner.
const demoEmail = "csm@demo.inboxrelay.test"

// demo runs an embedded mailbox and reference platform on loopback, pairs
// a throw-away home with the platform, and relays between them, printing
// each message the platform stores. Nothing of the user's own home is
// touched; the throw-away home and its keychain entries are removed at the
// end.
func (e *env) demo(args []string) error {
	fs := flags("demo")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	every := fs.Duration("new-mail-every", 5*time.Second, "how often a new customer message arrives")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	tmp, err := os.MkdirTemp("", "inboxrelay-demo-")
	if err != nil {
		return fmt.Errorf("demo folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	home, err := config.OpenHome(filepath.Join(tmp, "home"))
	if err != nil {
		return err
	}

	plat, err := refplatform.New(filepath.Join(tmp, "platform"))
	if err != nil {
		return err
	}
	if err := plat.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer plat.Close()
	caFile := filepath.Join(tmp, "platform-ca.pem")
	if err := os.WriteFile(caFile, plat.CAPEM(), 0o600); err != nil {
		return err
	}

	password := randomPassword()
	mailSrv, err := mailserver.Start(ctx, mailserver.Options{Email: demoEmail, Password: password, NewMailEvery: *every, Seed: 1})
	if err != nil {
		return err
	}
	defer mailSrv.Close()
	fmt.Fprintf(e.stdout, "demo mailbox %s: IMAP %s, SMTP %s (certificate pinned: %s)\n", demoEmail, mailSrv.IMAPAddr(), mailSrv.SMTPAddr(), mailSrv.Fingerprint())
	fmt.Fprintf(e.stdout, "demo platform: %s\n", plat.URL())

	kc, err := keychain.New(home.Dir)
	if err != nil {
		return err
	}
	defer kc.Delete(keychain.AccountKey(demoEmail))
	defer kc.Delete(keychain.DeviceTokenKey)
	if _, err := connector.Pair(ctx, home, connector.PairOptions{URL: plat.URL(), Code: plat.NewPairingCode(), CAFile: caFile}); err != nil {
		return err
	}
	imapSrv, _ := config.ParseServer(mailSrv.IMAPAddr(), config.SecurityTLS, 993)
	smtpSrv, _ := config.ParseServer(mailSrv.SMTPAddr(), config.SecurityTLS, 465)
	acct := config.Account{Email: demoEmail, IMAP: imapSrv, SMTP: smtpSrv, BackfillDays: config.DefaultBackfillDays, TrustFingerprints: []string{mailSrv.Fingerprint()}}
	if _, err := connector.AddAccount(ctx, home, acct, password); err != nil {
		return err
	}
	r, err := connector.Open(home, connector.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	fmt.Fprintln(e.stdout, "relaying; press Ctrl+C to stop")
	seen := map[string]bool{}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, m := range plat.Messages() {
			if seen[m.Key] {
				continue
			}
			seen[m.Key] = true
			fmt.Fprintf(e.stdout, "relayed %-5s UID %-3d %6d bytes  %s\n", m.Mailbox, m.UID, m.Size, subject(m))
		}
		select {
		case err := <-done:
			fmt.Fprintf(e.stdout, "stopped; the platform stored %d messages\n", len(seen))
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		case <-tick.C:
		}
	}
}

// subject reads the stored message's Subject, decoded, for display.
func subject(m refplatform.Message) string {
	f, err := m.Open()
	if err != nil {
		return ""
	}
	defer f.Close()
	msg, err := mail.ReadMessage(bufio.NewReader(f))
	if err != nil {
		return "(unreadable header)"
	}
	s := msg.Header.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return s
}

// randomPassword makes the demo mailbox's one-time password.
func randomPassword() string { return rand.Text() }
