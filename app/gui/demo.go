package gui

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/demo/mailserver"
	"github.com/inboxrelay/inboxrelay/sync/refplatform"
)

// demoEmail is the sample mailbox's owner, as in `inboxrelay demo`.
const demoEmail = "csm@demo.inboxrelay.test"

// demoSession is the app running against the embedded demo mailbox and
// reference platform, in a throw-away home, as `inboxrelay demo` does.
type demoSession struct {
	backend *runnerBackend
	close   func()
}

// startDemo starts the sample mailbox and platform on loopback, pairs a
// throw-away home with the platform, adds the sample mailbox and runs its
// engine until ctx ends. close stops everything and removes the home and
// its keychain entries.
func startDemo(ctx context.Context) (*demoSession, error) {
	tmp, err := os.MkdirTemp("", "inboxrelay-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo folder: %w", err)
	}
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	undo = append(undo, func() { os.RemoveAll(tmp) })
	fail := func(err error) (*demoSession, error) { cleanup(); return nil, err }

	home, err := config.OpenHome(filepath.Join(tmp, "home"))
	if err != nil {
		return fail(err)
	}
	plat, err := refplatform.New(filepath.Join(tmp, "platform"))
	if err != nil {
		return fail(err)
	}
	if err := plat.Start("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { plat.Close() })
	caFile := filepath.Join(tmp, "platform-ca.pem")
	if err := os.WriteFile(caFile, plat.CAPEM(), 0o600); err != nil {
		return fail(err)
	}
	dctx, stop := context.WithCancel(ctx)
	undo = append(undo, stop)
	password := rand.Text()
	mail, err := mailserver.Start(dctx, mailserver.Options{Email: demoEmail, Password: password, NewMailEvery: 5 * time.Second, Seed: 1})
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { mail.Close() })
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { kc.Delete(keychain.AccountKey(demoEmail)); kc.Delete(keychain.DeviceTokenKey) })
	if _, err := connector.Pair(dctx, home, connector.PairOptions{URL: plat.URL(), Code: plat.NewPairingCode(), CAFile: caFile}); err != nil {
		return fail(err)
	}
	imapSrv, _ := config.ParseServer(mail.IMAPAddr(), config.SecurityTLS, 993)
	smtpSrv, _ := config.ParseServer(mail.SMTPAddr(), config.SecurityTLS, 465)
	acct := config.Account{Email: demoEmail, IMAP: imapSrv, SMTP: smtpSrv, BackfillDays: config.DefaultBackfillDays, TrustFingerprints: []string{mail.Fingerprint()}}
	if _, err := connector.AddAccount(dctx, home, acct, password); err != nil {
		return fail(err)
	}
	r, err := connector.Open(home, connector.Options{})
	if err != nil {
		return fail(err)
	}
	b := newRunnerBackend(r)
	b.device += " (demo)"
	done := make(chan struct{})
	go func() { defer close(done); b.run(dctx) }()
	undo = append(undo, func() { stop(); <-done; r.Close() })
	return &demoSession{backend: b, close: cleanup}, nil
}
