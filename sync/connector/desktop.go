package connector

// What the tray app needs besides the command line's commands: fixing an
// account in place (a new password, a newly trusted certificate) and the
// settings it edits. Each account change is checked, stored, then applied
// by restarting the engine (Reload), as AddAccount does; settings are
// applied live where they can be.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Home is the home the runner was opened on.
func (r *Runner) Home() config.Home { return r.home }

// SetPassword replaces the stored password of an account after checking
// it (CheckAccount with the account's stored settings), and restarts the
// engine so the account relays again. Nothing is stored when the check
// fails; the error says which server refused and why.
func (r *Runner) SetPassword(ctx context.Context, email, password string) error {
	ctx, err := WithMailRoute(ctx, r.home, r.o.IT)
	if err != nil {
		return err
	}
	cfg, err := r.home.Load()
	if err != nil {
		return err
	}
	acct, ok := cfg.Account(email)
	if !ok {
		return fmt.Errorf("no account %s here", email)
	}
	if _, err := CheckAccount(ctx, acct, password); err != nil {
		return fmt.Errorf("the password was not changed: %w", err)
	}
	if err := r.kc.Set(keychain.AccountKey(acct.Email), password); err != nil {
		return fmt.Errorf("store the password: %w", err)
	}
	r.Reload()
	return nil
}

// TrustCertificate pins a server certificate for one of an account's
// servers (pin.Server, host:port: its IMAP or SMTP server) by its SHA-256
// fingerprint (any form trust.ParseFingerprint accepts), and restarts the
// engine. The caller must have shown the fingerprint to the user and had
// it confirmed: this is the one place where a certificate no root vouches
// for becomes trusted.
func (r *Runner) TrustCertificate(email string, pin trust.Pin) error {
	cfg, err := r.home.Load()
	if err != nil {
		return err
	}
	for i, a := range cfg.Accounts {
		if !strings.EqualFold(a.Email, email) {
			continue
		}
		srv, err := trust.NormalizeServer(pin.Server)
		if err != nil {
			return err
		}
		if !strings.EqualFold(srv, a.IMAP.Addr()) && !strings.EqualFold(srv, a.SMTP.Addr()) {
			return fmt.Errorf("%s is neither the IMAP nor the SMTP server of %s: nothing was pinned", pin.Server, a.Email)
		}
		added, err := cfg.Accounts[i].AddPin(pin)
		if err != nil {
			return err
		}
		if added {
			if err := r.home.Save(cfg); err != nil {
				return err
			}
			r.log.Info("certificate pinned", "account", a.Email, "server", srv, "fingerprint", pin.Fingerprint)
		}
		r.Reload()
		return nil
	}
	return fmt.Errorf("no account %s here", email)
}

// Settings resolves the settings now (sync/settings): IT's policy, the
// platform's settings as last received, the user's choices. Every front
// end reads settings here.
func (r *Runner) Settings() (settings.Effective, error) {
	cfg, err := r.home.Load()
	if err != nil {
		return settings.Effective{}, err
	}
	return r.resolve(cfg)
}

// resolve resolves the settings with cfg as the user's.
func (r *Runner) resolve(cfg *config.Config) (settings.Effective, error) {
	pol, err := r.policy()
	if err != nil {
		return settings.Effective{}, err
	}
	plat, err := r.store.Settings()
	if err != nil {
		return settings.Effective{}, err
	}
	return settings.Resolve(pol.Layers(cfg.Settings, plat.Layer())), nil
}

// policy reads IT's policy (Options.Policy); none when it is not set.
func (r *Runner) policy() (settings.Policy, error) {
	if r.o.Policy == nil {
		return settings.Policy{}, nil
	}
	return r.o.Policy()
}

// SetUserSettings stores the user's choices that change sets (the user
// layer of sync/settings; what change leaves nil is kept) and applies
// them: the log level at once, pause_on_metered at the next look at the
// network, the backfill window and the relay domains by restarting the
// engine. A value that does not validate, or a setting IT's policy locks,
// is refused (a *settings.LockedError) and nothing is stored. A setting the
// platform sets is stored all the same: it applies when the platform stops
// setting it.
func (r *Runner) SetUserSettings(change settings.Values) error {
	if err := change.Validate(); err != nil {
		return err
	}
	r.setMu.Lock()
	defer r.setMu.Unlock()
	cfg, err := r.home.Load()
	if err != nil {
		return err
	}
	before, err := r.resolve(cfg)
	if err != nil {
		return err
	}
	pol, err := r.policy()
	if err != nil {
		return err
	}
	if err := StoreUserSettings(r.home, pol, change); err != nil {
		return err
	}
	if cfg, err = r.home.Load(); err != nil {
		return err
	}
	after, err := r.resolve(cfg)
	if err != nil {
		return err
	}
	r.applyLogLevel(after.LogLevel)
	if after.PauseOnMetered != before.PauseOnMetered {
		select {
		case r.meterd <- struct{}{}:
		default:
		}
	}
	if after.BackfillDays != before.BackfillDays || !slices.Equal(after.RelayDomains, before.RelayDomains) {
		r.log.Info("settings changed; the engine restarts to apply them", "backfill_days", after.BackfillDays)
		r.Reload()
	}
	r.changed()
	return nil
}

// StoreUserSettings stores the user's choices that change sets in the
// home's config.json (what change leaves nil is kept), for a front end
// without a Runner (`inboxrelay account add --backfill-days`); a running
// engine applies them when it restarts. A value that does not validate, or
// a setting pol locks (a *settings.LockedError), is refused and nothing is
// stored.
func StoreUserSettings(home config.Home, pol settings.Policy, change settings.Values) error {
	if err := change.Validate(); err != nil {
		return err
	}
	eff := settings.Resolve(pol.Layers(change, settings.Values{}))
	for _, k := range settings.Keys {
		if change.Has(k) && eff.Locked(k) {
			return &settings.LockedError{Key: k}
		}
	}
	cfg, err := home.Load()
	if err != nil {
		return err
	}
	cfg.Settings = cfg.Settings.Merge(change)
	return home.Save(cfg)
}

// applyLogLevel sets the running log's level.
func (r *Runner) applyLogLevel(level string) {
	var l slog.Level
	if l.UnmarshalText([]byte(level)) == nil {
		r.level.Set(l)
	}
}

// CheckStoredAccount runs CheckAccount on an account as it is stored, with
// its password from the keychain: the tray app uses it to learn what a
// failing account's problem is now (for instance the fingerprint of a
// certificate that changed) before offering a fix.
func (r *Runner) CheckStoredAccount(ctx context.Context, email string) (Check, error) {
	ctx, err := WithMailRoute(ctx, r.home, r.o.IT)
	if err != nil {
		return Check{}, err
	}
	cfg, err := r.home.Load()
	if err != nil {
		return Check{}, err
	}
	acct, ok := cfg.Account(email)
	if !ok {
		return Check{}, fmt.Errorf("no account %s here", email)
	}
	pw, err := r.kc.Get(keychain.AccountKey(acct.Email))
	if err != nil {
		return Check{}, fmt.Errorf("read the password of %s from the keychain: %w", acct.Email, err)
	}
	return CheckAccount(ctx, acct, pw)
}
