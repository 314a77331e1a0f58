// Package connector is what a front end (the command line, the tray app)
// drives: pairing, adding and removing accounts, and running the engine of
// one home under its lock, restarting it when the accounts change.
//
// It holds the steps that must happen in one order whatever the front end:
// check an account before storing anything, store the password in the
// keychain before the settings, never leave a secret behind on failure.
package connector

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// goos is the OS named at pairing.
const goos = runtime.GOOS

// The reasons the engine cannot start that a front end acts on; check
// them with errors.Is. Their text says what is wrong, not which command
// fixes it: each front end adds its own way.
var (
	// ErrNotPaired means the home has no platform yet.
	ErrNotPaired = engine.ErrNotPaired
	// ErrNoToken means the home is paired but its device token is not in
	// the keychain.
	ErrNoToken = errors.New("the device token is missing from the keychain")
	// ErrAccountExists means AddAccount was given an address already set
	// up; it must be removed first.
	ErrAccountExists = errors.New("this account is already set up")
)

// PairOptions say where the platform is and how to reach it.
type PairOptions struct {
	URL    string // base URL, https
	Code   string // one-time code shown by the platform
	CAFile string // extra PEM roots (optional, absolute)
	// Proxy is the proxy setting (optional): a URL, "direct" or "system"
	// (netdial.PlatformProxy). A password in the URL goes to the keychain,
	// the rest to config.json.
	Proxy string
	// ProxySource names where Proxy comes from, for errors ("the --proxy
	// option", "the proxy field"); "the proxy given for pairing" when
	// empty.
	ProxySource string
}

// Pair exchanges the code for a device token, stores the token in the
// keychain and the platform in the settings, and returns the device id.
// Nothing is stored when the platform refuses the code. The extra CA
// bundle (o.CAFile) is read once and copied into the home
// (Home.PlatformCAPath), which the settings then name; pairing again
// without one keeps the copy.
func Pair(ctx context.Context, home config.Home, o PairOptions) (string, error) {
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return "", err
	}
	cfg, err := home.Load()
	if err != nil {
		return "", err
	}
	stored, login := splitProxyLogin(o.Proxy)
	src := o.ProxySource
	if src == "" {
		src = "the proxy given for pairing"
	}
	choice, err := platformChoice(ctx, kc, netdial.Setting{Value: o.Proxy, Source: src}, o.URL)
	if err != nil {
		return "", err
	}
	caFile, commitCA, err := stageCA(home, cfg, o.CAFile)
	if err != nil {
		return "", err
	}
	defer commitCA(false)
	client, err := relay.New(relay.Options{BaseURL: o.URL, CAFile: caFile, Proxy: via(choice)})
	if err != nil {
		return "", err
	}
	defer client.Close()
	host, _ := os.Hostname()
	id, token, err := client.Pair(ctx, strings.TrimSpace(o.Code), relay.Device{Name: host, OS: goos, Version: version.Version})
	if err != nil {
		return "", err
	}
	if err := kc.Set(keychain.DeviceTokenKey, token); err != nil {
		return "", fmt.Errorf("store the device token: %w", err)
	}
	if login != nil {
		if err := StoreProxyLogin(home, stored, login.User, login.Password); err != nil {
			return "", err
		}
	}
	ca, err := commitCA(true)
	if err != nil {
		return "", err
	}
	cfg.Platform = config.Platform{URL: strings.TrimRight(o.URL, "/"), DeviceID: id, CAFile: ca, Proxy: stored}
	if err := home.Save(cfg); err != nil {
		return "", err
	}
	return id, nil
}

// stageCA reads the CA bundle src once into a file beside the home's copy
// and returns that file, for the pairing request, and commit: commit(true)
// makes it the home's copy and returns the path the settings name;
// commit(false) removes it (a no-op after commit(true)). With no src, the
// copy an earlier pairing made is kept and used.
func stageCA(home config.Home, cfg *config.Config, src string) (file string, commit func(keep bool) (string, error), err error) {
	if src == "" {
		kept := ""
		if cfg.Platform.CAFile == home.PlatformCAPath() {
			kept = cfg.Platform.CAFile
		}
		return kept, func(bool) (string, error) { return kept, nil }, nil
	}
	pem, err := os.ReadFile(src)
	if err != nil {
		return "", nil, fmt.Errorf("read the platform CA bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return "", nil, fmt.Errorf("the platform CA bundle %s holds no PEM certificate", src)
	}
	staged := home.PlatformCAPath() + ".new"
	if err := config.WriteFileAtomic(staged, pem, 0o600); err != nil {
		return "", nil, fmt.Errorf("copy the platform CA bundle into the home: %w", err)
	}
	done := false
	return staged, func(keep bool) (string, error) {
		if done {
			return home.PlatformCAPath(), nil
		}
		if !keep {
			os.Remove(staged)
			return "", nil
		}
		done = true
		if err := os.Rename(staged, home.PlatformCAPath()); err != nil {
			return "", fmt.Errorf("copy the platform CA bundle into the home: %w", err)
		}
		return home.PlatformCAPath(), nil
	}, nil
}

// Check is what CheckAccount found.
type Check struct {
	Sent imapsync.Folder // the Sent folder and how it was found
	// IMAPCert and SMTPCert are the certificates the servers presented.
	IMAPCert, SMTPCert ServerCert
}

// ServerCert is a server's certificate as the check accepted it.
type ServerCert struct {
	Cert *x509.Certificate
	// Pinned is true when a pin for this server made the certificate
	// trusted (its name, issuer and dates were not checked); false when
	// the system's authorities vouched for it.
	Pinned bool
}

// CheckAccount logs in to the account's IMAP and SMTP servers, opens INBOX
// and finds Sent, and returns what it found (the certificates included);
// the error says which server failed and why.
func CheckAccount(ctx context.Context, acct config.Account, password string) (Check, error) {
	pol, err := trust.NewPolicy(acct.MinTLS, acct.TrustPins(), nil)
	if err != nil {
		return Check{}, err
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := imapsync.Dial(ictx, acct, password, pol)
	if err != nil {
		return Check{}, fmt.Errorf("IMAP: %w", err)
	}
	defer c.Close()
	if _, err := c.Examine("INBOX"); err != nil {
		return Check{}, fmt.Errorf("IMAP: %w", err)
	}
	sent, err := c.FindSent()
	if err != nil {
		return Check{}, fmt.Errorf("IMAP: %w", err)
	}
	sctx, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	s, err := smtpsend.Dial(sctx, acct, password, pol)
	if err != nil {
		return Check{}, fmt.Errorf("SMTP: %w", err)
	}
	s.Close()
	chk := Check{Sent: sent}
	chk.IMAPCert.Cert, chk.IMAPCert.Pinned = pol.Presented(acct.IMAP.Addr())
	chk.SMTPCert.Cert, chk.SMTPCert.Pinned = pol.Presented(acct.SMTP.Addr())
	return chk, nil
}

// keepUsedPins returns acct's pins that trusted a certificate in chk, each
// with the certificate's description; the others trusted nothing (a
// fingerprint given for both servers, shown by one of them) and are not
// stored. The old TrustFingerprints are turned into pins on the way.
func keepUsedPins(acct config.Account, chk Check) []trust.Pin {
	var out config.Account
	for _, p := range acct.TrustPins() {
		for _, sc := range []struct {
			addr string
			c    ServerCert
		}{{acct.IMAP.Addr(), chk.IMAPCert}, {acct.SMTP.Addr(), chk.SMTPCert}} {
			srv, err := trust.NormalizeServer(p.Server)
			if err != nil || !sc.c.Pinned || sc.c.Cert == nil || !strings.EqualFold(srv, sc.addr) {
				continue
			}
			if fp, err := trust.ParseFingerprint(p.Fingerprint); err == nil && fp == trust.Fingerprint(sc.c.Cert) {
				p.Certificate = trust.Describe(sc.c.Cert)
				out.AddPin(p)
			}
		}
	}
	return out.Pins
}

// AddAccount checks the account (CheckAccount), then stores its password
// in the keychain and the account in the settings. Nothing is stored when
// a check fails; an account with the same address is refused. Of the
// account's pins, only those that trusted the certificate a server
// presented are stored, each with that certificate's description.
func AddAccount(ctx context.Context, home config.Home, acct config.Account, password string) (Check, error) {
	cfg, err := home.Load()
	if err != nil {
		return Check{}, err
	}
	if _, exists := cfg.Account(acct.Email); exists {
		return Check{}, fmt.Errorf("%s: %w", acct.Email, ErrAccountExists)
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return Check{}, err
	}
	// Fail before the network checks when the keychain cannot hold the
	// password anyway.
	if _, err := kc.Get(keychain.AccountKey(acct.Email)); err != nil && !errors.Is(err, keychain.ErrNotFound) {
		return Check{}, err
	}
	chk, err := CheckAccount(ctx, acct, password)
	if err != nil {
		return Check{}, fmt.Errorf("nothing was stored: %w", err)
	}
	acct.Pins, acct.TrustFingerprints = keepUsedPins(acct, chk), nil
	if err := kc.Set(keychain.AccountKey(acct.Email), password); err != nil {
		return Check{}, fmt.Errorf("store the password: %w", err)
	}
	cfg.Accounts = append(cfg.Accounts, acct)
	if err := home.Save(cfg); err != nil {
		kc.Delete(keychain.AccountKey(acct.Email))
		return Check{}, err
	}
	return chk, nil
}

// RemoveAccount forgets an account: settings, password, state. The caller
// holds the home's lock (no engine may be relaying it).
func RemoveAccount(home config.Home, store *state.Store, email string) error {
	cfg, err := home.Load()
	if err != nil {
		return err
	}
	kept := cfg.Accounts[:0]
	found := false
	for _, a := range cfg.Accounts {
		if strings.EqualFold(a.Email, email) {
			found = true
			continue
		}
		kept = append(kept, a)
	}
	if !found {
		return fmt.Errorf("no account %s here", email)
	}
	cfg.Accounts = kept
	if err := home.Save(cfg); err != nil {
		return err
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return err
	}
	if err := kc.Delete(keychain.AccountKey(email)); err != nil {
		return fmt.Errorf("the account is removed, but its password could not be deleted from the keychain: %w", err)
	}
	return store.Forget(email)
}
