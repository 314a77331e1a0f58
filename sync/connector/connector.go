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
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	gosync "sync"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/logfile"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
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
	// option" when empty).
	ProxySource string
}

// Pair exchanges the code for a device token, stores the token in the
// keychain and the platform in the settings, and returns the device id.
// Nothing is stored when the platform refuses the code.
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
		src = "the --proxy option"
	}
	choice, err := platformChoice(ctx, kc, netdial.Setting{Value: o.Proxy, Source: src}, o.URL)
	if err != nil {
		return "", err
	}
	client, err := relay.New(relay.Options{BaseURL: o.URL, CAFile: o.CAFile, Proxy: via(choice)})
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
	cfg.Platform = config.Platform{URL: strings.TrimRight(o.URL, "/"), DeviceID: id, CAFile: o.CAFile, Proxy: stored}
	if err := home.Save(cfg); err != nil {
		return "", err
	}
	return id, nil
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
		return Check{}, fmt.Errorf("%s is already set up: remove it first", acct.Email)
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

// Options configure a Runner.
type Options struct {
	// LogTo also receives the log (stderr for `run`); nil: the log file only.
	LogTo io.Writer
	// Once makes Run do one pass and return (sync --once).
	Once bool
	// Tweak, when set, adjusts the engine's options (tests, the demo).
	Tweak func(*engine.Options)
	// Policy, when set, reads IT's policy (sync/policy): the locked and
	// default layers of the settings. It is read again at every engine
	// build and every Settings call; an error stops the engine from
	// starting (a policy that cannot be read is not ignored).
	Policy func() (settings.Policy, error)
	// IT, when set, is IT's policy file: Run enrols the home from it
	// (Enrol) before each engine build, the engine reaches the mail
	// servers through its [mail] proxy, and Policy defaults to its
	// settings layers. Changes that it locks are refused.
	IT *policy.Policy
}

// Runner runs the engine of one home. It holds the home's lock from Open
// to Close. Its methods are safe for concurrent use.
type Runner struct {
	home   config.Home
	o      Options
	kc     *keychain.Store
	store  *state.Store
	log    *slog.Logger
	close  func()
	reload chan struct{}
	level  *slog.LevelVar // the log's level, changed live by SetLogLevel

	setMu gosync.Mutex // serializes SetUserSettings' read-modify-write of config.json

	mu  gosync.Mutex
	eng *engine.Engine
	// paused survives engine restarts.
	paused bool
	subs   map[chan struct{}]struct{} // Subscribe's channels, across engines
}

// Open takes the home's lock (failing with config.ErrRunning when another
// process has it) and opens its state and log.
func Open(home config.Home, o Options) (*Runner, error) {
	if o.Policy == nil && o.IT != nil {
		it := o.IT
		o.Policy = func() (settings.Policy, error) { return it.Settings(), nil }
	}
	unlock, err := home.Lock()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	cfg, err := home.Load()
	if err != nil {
		return nil, err
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return nil, err
	}
	lf, err := logfile.Open(home.LogDir(), "inboxrelay.log", 5<<20, 3)
	if err != nil {
		return nil, err
	}
	var w io.Writer = lf
	if o.LogTo != nil {
		w = io.MultiWriter(o.LogTo, lf)
	}
	store, err := state.Open(home.StatePath())
	if err != nil {
		lf.Close()
		return nil, err
	}
	ok = true
	level := new(slog.LevelVar)
	r := &Runner{
		home: home, o: o, kc: kc, store: store, reload: make(chan struct{}, 1), level: level, subs: map[chan struct{}]struct{}{},
		log:   slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})),
		close: func() { store.Close(); lf.Close(); unlock() },
	}
	if eff, err := r.resolve(cfg); err == nil {
		r.applyLogLevel(eff.LogLevel)
	}
	return r, nil
}

// Log is the runner's logger.
func (r *Runner) Log() *slog.Logger { return r.log }

// Store is the home's state database, open while the runner is.
func (r *Runner) Store() *state.Store { return r.store }

// Close releases the state, the log and the lock. Call it after Run
// returned.
func (r *Runner) Close() { r.close() }

// newEngine builds an engine from the settings as they are now.
func (r *Runner) newEngine() (*engine.Engine, error) {
	cfg, err := r.home.Load()
	if err != nil {
		return nil, err
	}
	if cfg.Platform.URL == "" {
		return nil, ErrNotPaired
	}
	token, err := r.kc.Get(keychain.DeviceTokenKey)
	if errors.Is(err, keychain.ErrNotFound) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	pol, err := r.policy()
	if err != nil {
		return nil, err
	}
	choice, err := PlatformProxy(context.Background(), r.home, cfg, r.o.IT)
	if err != nil {
		return nil, err
	}
	if choice.Note != "" {
		r.log.Warn(choice.Note)
	}
	o := engine.Options{
		Home: r.home, Config: cfg, Store: r.store, Secrets: r.kc, Log: r.log, Once: r.o.Once, Policy: pol,
		Platform: relay.Options{BaseURL: cfg.Platform.URL, CAFile: cfg.Platform.CAFile, Proxy: via(choice), Token: token},
	}
	if r.o.Once {
		o.GiveUpAfter = 2 * time.Minute
	}
	if r.o.Tweak != nil {
		r.o.Tweak(&o)
	}
	return engine.New(o)
}

// Run runs the engine until ctx ends (Once: one pass), building it anew
// after Reload. It returns the engine's error; nil after a clean stop.
func (r *Runner) Run(ctx context.Context) error {
	for {
		if err := Enrol(ctx, r.home, r.o.IT); err != nil {
			return err
		}
		route, err := MailRoute(r.home, r.o.IT)
		if err != nil {
			return err
		}
		eng, err := r.newEngine()
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.eng = eng
		if r.paused {
			eng.Pause()
		}
		r.mu.Unlock()
		unforward := r.forward(eng)
		r.changed() // another engine: another snapshot
		ectx, cancel := context.WithCancel(netdial.WithRoute(ctx, route))
		done := make(chan error, 1)
		go func() { done <- eng.Run(ectx) }()
		select {
		case err := <-done:
			cancel()
			unforward()
			r.changed() // the engine stopped
			return err
		case <-r.reload:
			cancel()
			<-done
			unforward()
			r.log.Info("settings changed; engine restarted")
		}
	}
}

// Reload makes Run restart the engine with the current settings (after an
// account was added, say). Safe to call any time.
func (r *Runner) Reload() {
	select {
	case r.reload <- struct{}{}:
	default:
	}
}

// Subscribe returns a channel signalled whenever the running engine's
// snapshot may have changed (engine.Engine.Subscribe), and also when Run
// builds an engine anew (after Reload) or the engine stops, and a
// function that ends the subscription. It may be called before Run and
// lasts across engine rebuilds. As with the engine's, the channel has a
// buffer of one, is never closed, and signals pending together merge:
// read the status after each receive. Safe for concurrent use; the
// returned function may be called more than once.
func (r *Runner) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

// changed signals every subscriber.
func (r *Runner) changed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// forward passes eng's signals on to the runner's subscribers until the
// returned function is called.
func (r *Runner) forward(eng *engine.Engine) (stop func()) {
	sig, unsubscribe := eng.Subscribe()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-sig:
				r.changed()
			case <-quit:
				return
			}
		}
	}()
	return func() {
		unsubscribe()
		close(quit)
		<-done
	}
}

// Engine returns the engine running now, nil before Run started it.
func (r *Runner) Engine() *engine.Engine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng
}

// SetPaused pauses or resumes relaying, also across engine restarts.
func (r *Runner) SetPaused(p bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = p
	if r.eng == nil {
		return
	}
	if p {
		r.eng.Pause()
	} else {
		r.eng.Resume()
	}
}

// Pair pairs the home again (or for the first time) and gives the running
// engine the new token.
func (r *Runner) Pair(ctx context.Context, o PairOptions) (string, error) {
	cfg, err := r.home.Load()
	if err != nil {
		return "", err
	}
	if err := CheckPair(r.o.IT, o); err != nil {
		return "", err
	}
	id, err := Pair(ctx, r.home, o)
	if err != nil {
		return "", err
	}
	if stored, _ := splitProxyLogin(o.Proxy); cfg.Platform.URL != strings.TrimRight(o.URL, "/") || cfg.Platform.CAFile != o.CAFile || cfg.Platform.Proxy != stored {
		r.Reload()
		return id, nil
	}
	if eng := r.Engine(); eng != nil {
		tok, err := r.kc.Get(keychain.DeviceTokenKey)
		if err == nil {
			err = eng.SetToken(tok)
		}
		if err != nil {
			return id, err
		}
	}
	return id, nil
}

// AddAccount checks and stores an account (see AddAccount) and restarts
// the engine to relay it.
func (r *Runner) AddAccount(ctx context.Context, acct config.Account, password string) (Check, error) {
	if err := r.o.IT.Refuse(policy.LockAccount); err != nil {
		return Check{}, err
	}
	ctx, err := WithMailRoute(ctx, r.home, r.o.IT)
	if err != nil {
		return Check{}, err
	}
	chk, err := AddAccount(ctx, r.home, acct, password)
	if err == nil {
		r.Reload()
	}
	return chk, err
}

// RemoveAccount forgets an account and restarts the engine without it.
func (r *Runner) RemoveAccount(email string) error {
	if _, ok := r.o.IT.Account(email); ok {
		if err := r.o.IT.Refuse(policy.LockAccount); err != nil {
			return err
		}
	}
	if err := RemoveAccount(r.home, r.store, email); err != nil {
		return err
	}
	r.Reload()
	return nil
}
