// Package demo sets up what `inboxrelay demo` and the tray app's "Try the
// demo" run against: the embedded sample mailbox and the reference
// platform on loopback, and a throw-away home paired with the one and set
// up with the other, through the same steps a user's setup takes.
package demo

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
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Email is the sample mailbox's owner.
const Email = "csm@demo.inboxrelay.test"

// Options configure a demo.
type Options struct {
	// NewMailEvery is how often a new customer message arrives; 0 never.
	NewMailEvery time.Duration
}

// Demo is a running sample mailbox and platform, and a home set up for
// them. Open a connector.Runner on Home to relay.
type Demo struct {
	Home     config.Home
	Platform *refplatform.Platform
	Mail     *mailserver.Server
	undo     []func()
}

// Start starts the sample mailbox and the platform, pairs a new home in a
// temporary folder with the platform and adds the mailbox's account (its
// certificate pinned). The servers stop when ctx ends or at Close.
func Start(ctx context.Context, o Options) (_ *Demo, err error) {
	d := &Demo{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	tmp, err := os.MkdirTemp("", "inboxrelay-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo folder: %w", err)
	}
	d.undo = append(d.undo, func() { os.RemoveAll(tmp) })
	if d.Home, err = config.OpenHome(filepath.Join(tmp, "home")); err != nil {
		return nil, err
	}
	if d.Platform, err = refplatform.New(filepath.Join(tmp, "platform")); err != nil {
		return nil, err
	}
	if err := d.Platform.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	d.undo = append(d.undo, func() { d.Platform.Close() })
	caFile := filepath.Join(tmp, "platform-ca.pem")
	if err := os.WriteFile(caFile, d.Platform.CAPEM(), 0o600); err != nil {
		return nil, err
	}
	password := rand.Text()
	if d.Mail, err = mailserver.Start(ctx, mailserver.Options{Email: Email, Password: password, NewMailEvery: o.NewMailEvery, Seed: 1}); err != nil {
		return nil, err
	}
	d.undo = append(d.undo, func() { d.Mail.Close() })
	kc, err := keychain.New(d.Home.Dir)
	if err != nil {
		return nil, err
	}
	d.undo = append(d.undo, func() {
		kc.Delete(keychain.AccountKey(Email))
		kc.Delete(keychain.DeviceTokenKey)
	})
	if _, err := connector.Pair(ctx, d.Home, connector.PairOptions{URL: d.Platform.URL(), Code: d.Platform.NewPairingCode(), CAFile: caFile}); err != nil {
		return nil, err
	}
	imapSrv, err := config.ParseServer(d.Mail.IMAPAddr(), config.SecurityTLS, 993)
	if err != nil {
		return nil, err
	}
	smtpSrv, err := config.ParseServer(d.Mail.SMTPAddr(), config.SecurityTLS, 465)
	if err != nil {
		return nil, err
	}
	acct := config.Account{Email: Email, IMAP: imapSrv, SMTP: smtpSrv,
		Pins: []trust.Pin{{Server: imapSrv.Addr(), Fingerprint: d.Mail.Fingerprint()}, {Server: smtpSrv.Addr(), Fingerprint: d.Mail.Fingerprint()}}}
	if _, err := connector.AddAccount(ctx, d.Home, acct, password); err != nil {
		return nil, err
	}
	return d, nil
}

// Close stops the servers and removes the home and its keychain entries.
// Safe to call twice.
func (d *Demo) Close() {
	for i := len(d.undo) - 1; i >= 0; i-- {
		d.undo[i]()
	}
	d.undo = nil
}
