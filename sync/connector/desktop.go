package connector

// What the tray app needs besides the command line's commands: fixing an
// account in place (a new password, a newly trusted certificate) and the
// few settings it edits. Each change is checked, stored, then applied by
// restarting the engine (Reload), as AddAccount does.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Home is the home the runner was opened on.
func (r *Runner) Home() config.Home { return r.home }

// SetPassword replaces the stored password of an account after checking
// it (CheckAccount with the account's stored settings), and restarts the
// engine so the account relays again. Nothing is stored when the check
// fails; the error says which server refused and why.
func (r *Runner) SetPassword(ctx context.Context, email, password string) error {
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

// TrustCertificate pins a server certificate for an account by its SHA-256
// fingerprint (any form trust.ParseFingerprint accepts) and restarts the
// engine. The caller must have shown the fingerprint to the user and had
// it confirmed: this is the one place where a certificate no root vouches
// for becomes trusted.
func (r *Runner) TrustCertificate(email, fingerprint string) error {
	fp, err := trust.ParseFingerprint(fingerprint)
	if err != nil {
		return err
	}
	cfg, err := r.home.Load()
	if err != nil {
		return err
	}
	for i, a := range cfg.Accounts {
		if !strings.EqualFold(a.Email, email) {
			continue
		}
		for _, have := range a.TrustFingerprints {
			if have == fp {
				r.Reload()
				return nil
			}
		}
		cfg.Accounts[i].TrustFingerprints = append(a.TrustFingerprints, fp)
		if err := r.home.Save(cfg); err != nil {
			return err
		}
		r.log.Info("certificate pinned", "account", a.Email, "fingerprint", fp)
		r.Reload()
		return nil
	}
	return fmt.Errorf("no account %s here", email)
}

// SetLogLevel stores the log level (debug, info, warn or error) and applies
// it to the running log at once.
func (r *Runner) SetLogLevel(level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level %q is not one of debug, info, warn, error", level)
	}
	cfg, err := r.home.Load()
	if err != nil {
		return err
	}
	cfg.LogLevel = strings.ToLower(level)
	if err := r.home.Save(cfg); err != nil {
		return err
	}
	r.level.Set(l)
	return nil
}

// SetBackfillDays sets how many days of existing mail every account relays
// (config.BackfillAll: everything) and restarts the engine. Mail already
// relayed stays relayed; a platform's backfill_days setting still wins.
func (r *Runner) SetBackfillDays(days int) error {
	if days < 0 && days != config.BackfillAll {
		return fmt.Errorf("backfill window %d is not a number of days", days)
	}
	cfg, err := r.home.Load()
	if err != nil {
		return err
	}
	for i := range cfg.Accounts {
		cfg.Accounts[i].BackfillDays = days
	}
	if err := r.home.Save(cfg); err != nil {
		return err
	}
	r.Reload()
	return nil
}

// CheckStoredAccount runs CheckAccount on an account as it is stored, with
// its password from the keychain: the tray app uses it to learn what a
// failing account's problem is now (for instance the fingerprint of a
// certificate that changed) before offering a fix.
func (r *Runner) CheckStoredAccount(ctx context.Context, email string) (Check, error) {
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
