package connector

// Unattended enrolment from IT's policy file: the platform and the
// accounts it names are applied to the home, and its pairing code is used
// once, so that the user only ever gives a password.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// EnrolmentPath is the file where a home remembers what the policy did to
// it: the pairing codes already used (as hashes, never the codes) and the
// policy's accounts already added.
func EnrolmentPath(home config.Home) string { return filepath.Join(home.Dir, "enrolment.json") }

// Enrolment is the content of EnrolmentPath.
type Enrolment struct {
	// Codes are the policy's pairing codes this home has used.
	Codes []UsedCode `json:"codes,omitempty"`
	// Accounts are the policy's accounts (lower-case addresses) added to
	// this home once: an account the user removed since is not added again
	// unless the policy locks the accounts.
	Accounts []string `json:"accounts,omitempty"`
}

// UsedCode is a pairing code sent to the platform once.
type UsedCode struct {
	SHA256   string    `json:"sha256"` // of the platform URL, a newline and the code
	URL      string    `json:"url"`
	At       time.Time `json:"at"`
	Outcome  string    `json:"outcome"` // "paired" or "refused"
	DeviceID string    `json:"device_id,omitempty"`
}

// LoadEnrolment reads the home's enrolment record; none is an empty one.
func LoadEnrolment(home config.Home) (Enrolment, error) {
	var e Enrolment
	b, err := os.ReadFile(EnrolmentPath(home))
	if errors.Is(err, os.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("read the enrolment record: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return Enrolment{}, fmt.Errorf("the enrolment record %s is damaged (%v): remove it", EnrolmentPath(home), err)
	}
	return e, nil
}

func saveEnrolment(home config.Home, e Enrolment) error {
	b, _ := json.MarshalIndent(e, "", "  ")
	return config.WriteFileAtomic(EnrolmentPath(home), append(b, '\n'), 0o600)
}

func codeHash(url, code string) string {
	s := sha256.Sum256([]byte(strings.TrimRight(url, "/") + "\n" + strings.TrimSpace(code)))
	return hex.EncodeToString(s[:])
}

// SpentCodeError means the policy's pairing code was used already (or
// refused) and this home is not paired: only a new code helps, in the
// policy or given by hand. Enrol never sends a spent code again. Its
// message names no command: a front end adds its own way to pair.
type SpentCodeError struct {
	Path    string // the policy file
	Used    UsedCode
	Refused bool // the platform refused it (else: it paired this home before)
}

// Error says when the code was used or refused, and what to do.
func (e *SpentCodeError) Error() string {
	if e.Refused {
		return fmt.Sprintf("the platform refused the pairing code of the policy %s on %s (wrong, expired or already used): ask IT for a new code in the policy file, or pair this computer with a code from the platform",
			e.Path, e.Used.At.Local().Format("2006-01-02 15:04"))
	}
	return fmt.Sprintf("the pairing code of the policy %s was used on %s and this computer is no longer paired: ask IT for a new code in the policy file, or pair this computer with a code from the platform",
		e.Path, e.Used.At.Local().Format("2006-01-02 15:04"))
}

// ApplyPolicy applies the policy's platform and accounts to the home's
// config.json (no network): a locked platform or locked accounts are set
// to the policy's every time; unlocked ones are IT's defaults, applied to
// what the user has not set (a platform when none is paired, an account
// not added before). It returns whether config.json changed. A nil policy
// changes nothing. The caller may hold the home's lock or not: every write
// is atomic and the result the same.
func ApplyPolicy(home config.Home, pol *policy.Policy) (bool, error) {
	if pol == nil {
		return false, nil
	}
	cfg, err := home.Load()
	if err != nil {
		return false, err
	}
	rec, err := LoadEnrolment(home)
	if err != nil {
		return false, err
	}
	changed, newPlatform, added := applyPolicy(pol, cfg, &rec)
	if newPlatform {
		// The token belongs to the platform the policy no longer names.
		if kc, err := keychain.New(home.Dir); err == nil {
			kc.Delete(keychain.DeviceTokenKey)
		}
	}
	if changed {
		if err := home.Save(cfg); err != nil {
			return false, err
		}
	}
	if added {
		if err := saveEnrolment(home, rec); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// applyPolicy is ApplyPolicy on values: cfg and rec are updated.
func applyPolicy(pol *policy.Policy, cfg *config.Config, rec *Enrolment) (changed, newPlatform, recorded bool) {
	if pol.Platform.URL != "" {
		want := config.Platform{URL: pol.Platform.URL, CAFile: pol.Platform.CAFile, Proxy: pol.Platform.Proxy}
		switch {
		case pol.Locks(policy.LockPlatform) && !strings.EqualFold(strings.TrimRight(cfg.Platform.URL, "/"), want.URL):
			newPlatform = cfg.Platform.URL != ""
			cfg.Platform, changed = want, true
		case pol.Locks(policy.LockPlatform) && (cfg.Platform.CAFile != want.CAFile || cfg.Platform.Proxy != want.Proxy):
			cfg.Platform.CAFile, cfg.Platform.Proxy, changed = want.CAFile, want.Proxy, true
		case cfg.Platform.URL == "":
			cfg.Platform, changed = want, true
		}
	}
	locked := pol.Locks(policy.LockAccount)
	for _, a := range pol.Accounts {
		key := strings.ToLower(a.Email)
		i := slices.IndexFunc(cfg.Accounts, func(c config.Account) bool { return strings.EqualFold(c.Email, a.Email) })
		switch {
		case i >= 0 && locked:
			// The policy's servers; certificates the user confirmed stay
			// pinned beside the policy's.
			for _, p := range cfg.Accounts[i].Pins {
				a.AddPin(p)
			}
			if !sameAccount(cfg.Accounts[i], a) {
				cfg.Accounts[i], changed = a, true
			}
		case i < 0 && (locked || !slices.Contains(rec.Accounts, key)):
			cfg.Accounts, changed = append(cfg.Accounts, a), true
		}
		if !slices.Contains(rec.Accounts, key) {
			rec.Accounts, recorded = append(rec.Accounts, key), true
		}
	}
	return changed, newPlatform, recorded
}

func sameAccount(a, b config.Account) bool {
	return a.Email == b.Email && a.Username == b.Username && a.IMAP == b.IMAP && a.SMTP == b.SMTP && a.MinTLS == b.MinTLS &&
		slices.EqualFunc(a.Pins, b.Pins, func(x, y trust.Pin) bool { return x.Server == y.Server && x.Fingerprint == y.Fingerprint })
}

// Enrol applies the policy to the home (ApplyPolicy), then, when the home
// is not paired and the policy has a pairing code for its platform that
// this home never sent, pairs with it: once. The code's outcome is
// recorded before Enrol returns, so a spent or refused code is never sent
// again (a *SpentCodeError says so). A temporary failure (the platform
// unreachable) records nothing: the next call tries again. It returns the
// device id when it paired now, "" otherwise. A nil policy does nothing.
// The caller holds the home's lock.
func Enrol(ctx context.Context, home config.Home, pol *policy.Policy) (string, error) {
	if pol == nil {
		return "", nil
	}
	if _, err := ApplyPolicy(home, pol); err != nil {
		return "", err
	}
	if pol.Platform.PairingCode == "" {
		return "", nil
	}
	cfg, err := home.Load()
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(cfg.Platform.URL, pol.Platform.URL) {
		return "", nil // the user paired elsewhere (the platform is not locked)
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return "", err
	}
	if cfg.Platform.DeviceID != "" {
		if _, err := kc.Get(keychain.DeviceTokenKey); err == nil {
			return "", nil // paired
		} else if !errors.Is(err, keychain.ErrNotFound) {
			return "", err
		}
	}
	rec, err := LoadEnrolment(home)
	if err != nil {
		return "", err
	}
	h := codeHash(pol.Platform.URL, pol.Platform.PairingCode)
	if i := slices.IndexFunc(rec.Codes, func(u UsedCode) bool { return u.SHA256 == h }); i >= 0 {
		return "", &SpentCodeError{Path: pol.Path, Used: rec.Codes[i], Refused: rec.Codes[i].Outcome == "refused"}
	}
	id, err := Pair(ctx, home, PairOptions{URL: cfg.Platform.URL, Code: pol.Platform.PairingCode, CAFile: cfg.Platform.CAFile, Proxy: cfg.Platform.Proxy,
		ProxySource: proxySource(cfg, pol)})
	used := UsedCode{SHA256: h, URL: cfg.Platform.URL, At: time.Now().UTC().Truncate(time.Second)}
	switch {
	case err == nil:
		used.Outcome, used.DeviceID = "paired", id
	case errors.Is(err, relay.ErrBadCode):
		used.Outcome = "refused"
	default:
		return "", fmt.Errorf("pair with the platform named by the policy: %w", err)
	}
	rec.Codes = append(rec.Codes, used)
	if serr := saveEnrolment(home, rec); serr != nil {
		return "", serr
	}
	if err != nil {
		return "", &SpentCodeError{Path: pol.Path, Used: used, Refused: true}
	}
	return id, nil
}
