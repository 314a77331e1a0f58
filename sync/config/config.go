// Package config reads and writes the connector's settings file and knows
// where everything lives under a home directory.
//
// The settings file never holds a secret: passwords and the device token
// live in the OS keychain (package keychain). Writes are atomic (a temporary
// file renamed over the old one), so a crash leaves either the old or the
// new file, never half of one.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Security is how a connection to a mail server is protected.
type Security string

// The two protections the connector accepts; plaintext is never one of them.
const (
	SecurityTLS      Security = "tls"      // implicit TLS from the first byte (IMAP 993, SMTP 465)
	SecurityStartTLS Security = "starttls" // STARTTLS, required: the connection aborts when it is missing or fails
)

// ParseSecurity validates s; the empty string means SecurityTLS.
func ParseSecurity(s string) (Security, error) {
	switch Security(strings.ToLower(s)) {
	case "", SecurityTLS:
		return SecurityTLS, nil
	case SecurityStartTLS:
		return SecurityStartTLS, nil
	}
	return "", fmt.Errorf("security %q is not one of tls, starttls", s)
}

// Server is the address of one mail server and how to protect the
// connection to it.
type Server struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	Security Security `json:"security"`
}

// Addr returns host:port, with IPv6 hosts bracketed.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DefaultPort is the well-known port of IMAP (smtp false) or submission
// (smtp true) with security sec: 993 and 465 for implicit TLS, 143 and
// 587 for STARTTLS.
func DefaultPort(smtp bool, sec Security) int {
	switch {
	case smtp && sec == SecurityStartTLS:
		return 587
	case smtp:
		return 465
	case sec == SecurityStartTLS:
		return 143
	}
	return 993
}

// ParseServer parses "host:port" (or "host" with defaultPort).
func ParseServer(hostport string, sec Security, defaultPort int) (Server, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			host, port = strings.Trim(hostport, "[]"), strconv.Itoa(defaultPort)
		} else {
			return Server{}, fmt.Errorf("server address %q: %w", hostport, err)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return Server{}, fmt.Errorf("server address %q: port must be a number from 1 to 65535", hostport)
	}
	if host == "" {
		return Server{}, fmt.Errorf("server address %q has no host", hostport)
	}
	return Server{Host: host, Port: p, Security: sec}, nil
}

// Account is one mailbox. Its password is in the keychain under
// keychain.AccountKey(Email).
type Account struct {
	Email    string `json:"email"`
	Username string `json:"username"` // login name; Email when empty
	IMAP     Server `json:"imap"`
	SMTP     Server `json:"smtp"`
	// Pins trust one certificate for one server each (package trust: the
	// certificate's name, issuer and dates are not checked for it). Only
	// pins whose Server is this account's IMAP or SMTP address matter.
	Pins []trust.Pin `json:"pins,omitempty"`
	// TrustFingerprints is the form pins had before they were per server:
	// each fingerprint is trusted for the account's IMAP and SMTP servers
	// (TrustPins). Load turns it into Pins and clears it, so it is never
	// written again.
	TrustFingerprints []string `json:"trust_fingerprints,omitempty"`
	// MinTLS is the lowest TLS version accepted: "1.0", "1.1", "1.2" or
	// "1.3"; empty means "1.2".
	MinTLS string `json:"min_tls,omitempty"`
}

// AddPin adds p (its server and fingerprint normalised) unless the account
// has it already; it reports whether it was added.
func (a *Account) AddPin(p trust.Pin) (bool, error) {
	srv, err := trust.NormalizeServer(p.Server)
	if err != nil {
		return false, err
	}
	fp, err := trust.ParseFingerprint(p.Fingerprint)
	if err != nil {
		return false, err
	}
	for i, have := range a.Pins {
		if have.Fingerprint == fp && strings.EqualFold(have.Server, srv) {
			if have.Certificate == nil && p.Certificate != nil {
				a.Pins[i].Certificate = p.Certificate
			}
			return false, nil
		}
	}
	p.Server, p.Fingerprint = srv, fp
	a.Pins = append(a.Pins, p)
	return true, nil
}

// PinsFor returns the account's pins for server (host:port).
func (a Account) PinsFor(server string) []trust.Pin {
	srv, err := trust.NormalizeServer(server)
	if err != nil {
		return nil
	}
	var out []trust.Pin
	for _, p := range a.Pins {
		if strings.EqualFold(p.Server, srv) {
			out = append(out, p)
		}
	}
	return out
}

// TrustPins returns the pins a trust.Policy for this account gets: Pins,
// plus each TrustFingerprints entry pinned for the account's IMAP and SMTP
// servers (what such an entry trusted before pins were per server).
func (a Account) TrustPins() []trust.Pin {
	out := append([]trust.Pin(nil), a.Pins...)
	for _, fp := range a.TrustFingerprints {
		for _, srv := range []Server{a.IMAP, a.SMTP} {
			if srv.Host != "" {
				out = append(out, trust.Pin{Server: srv.Addr(), Fingerprint: fp})
			}
		}
	}
	return out
}

// migratePins turns TrustFingerprints into Pins (see TrustPins).
func (a *Account) migratePins() {
	if len(a.TrustFingerprints) == 0 {
		return
	}
	for _, p := range a.TrustPins()[len(a.Pins):] {
		a.AddPin(p) // a malformed old entry is dropped: it made every connection fail
	}
	a.TrustFingerprints = nil
}

// Login returns the name to log in with.
func (a Account) Login() string {
	if a.Username != "" {
		return a.Username
	}
	return a.Email
}

// Platform is where messages are relayed, as set by pairing.
type Platform struct {
	URL      string `json:"url"`                 // base URL, e.g. https://app.example.com/connector
	DeviceID string `json:"device_id,omitempty"` // set by pairing; the token is in the keychain
	// CAFile is an extra PEM bundle trusted besides the system roots
	// (for platforms behind a corporate TLS-inspecting proxy, or a test
	// platform).
	CAFile string `json:"ca_file,omitempty"`
	// Proxy, when set, is the HTTPS proxy URL; it wins over HTTPS_PROXY.
	Proxy string `json:"proxy,omitempty"`
}

// Config is the whole settings file.
type Config struct {
	Platform Platform  `json:"platform"`
	Accounts []Account `json:"accounts"`
	// Settings are the user's own choices: the user layer of
	// sync/settings, which resolves them against the platform's and IT's
	// (read settings through it, never from here alone).
	Settings settings.Values `json:"settings"`
}

// Account returns the account with this e-mail address (case-insensitive).
func (c *Config) Account(email string) (Account, bool) {
	for _, a := range c.Accounts {
		if strings.EqualFold(a.Email, email) {
			return a, true
		}
	}
	return Account{}, false
}

// Home is the directory that holds everything of one connector: settings,
// state, status, logs, spool and the lock. Two homes share nothing, not even
// keychain entries.
type Home struct{ Dir string }

// DefaultHome returns the home used without --home or INBOXRELAY_HOME: the
// OS user config directory + /inboxrelay.
func DefaultHome() (Home, error) {
	if d := os.Getenv("INBOXRELAY_HOME"); d != "" {
		return OpenHome(d)
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return Home{}, fmt.Errorf("find the user config directory (set --home or INBOXRELAY_HOME): %w", err)
	}
	return OpenHome(filepath.Join(base, "inboxrelay"))
}

// OpenHome makes dir (mode 0700) and returns it as a Home with an absolute
// path. An existing dir must be the user's own: one that belongs to
// another user, or holds something that does, is refused; one that others
// may read or write is made private (mode 0700). The errors say which and
// what to do.
func OpenHome(dir string) (Home, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Home{}, fmt.Errorf("home %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return Home{}, fmt.Errorf("create home: %w", err)
	}
	if err := checkHome(abs); err != nil {
		return Home{}, err
	}
	return Home{Dir: abs}, nil
}

// ConfigPath is the settings file.
func (h Home) ConfigPath() string { return filepath.Join(h.Dir, "config.json") }

// StatePath is the state database (checkpoints, counters, outbox).
func (h Home) StatePath() string { return filepath.Join(h.Dir, "state.db") }

// StatusPath is the status snapshot the running engine keeps up to date.
func (h Home) StatusPath() string { return filepath.Join(h.Dir, "status.json") }

// LockPath is the file locked by the one process that runs the engine.
func (h Home) LockPath() string { return filepath.Join(h.Dir, "lock") }

// LogDir holds the rotating log files.
func (h Home) LogDir() string { return filepath.Join(h.Dir, "logs") }

// PlatformCAPath is the copy of the platform's extra CA bundle that
// pairing keeps in the home, so that it is not read again, at every start,
// from a place others may be able to write.
func (h Home) PlatformCAPath() string { return filepath.Join(h.Dir, "platform-ca.pem") }

// SpoolDir holds big messages between their download and their upload.
func (h Home) SpoolDir() string { return filepath.Join(h.Dir, "spool") }

// Load reads the settings file; a missing file is an empty Config.
func (h Home) Load() (*Config, error) {
	b, err := os.ReadFile(h.ConfigPath())
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("settings file %s is damaged (%v): fix or remove it", h.ConfigPath(), err)
	}
	var old legacy
	if err := json.Unmarshal(b, &old); err == nil {
		old.migrate(&c)
	}
	for i := range c.Accounts {
		c.Accounts[i].migratePins()
	}
	return &c, nil
}

// legacy holds what files written before sync/settings kept elsewhere: a
// backfill window per account and the log level at the top level.
type legacy struct {
	LogLevel string `json:"log_level"`
	Accounts []struct {
		BackfillDays *int `json:"backfill_days"`
	} `json:"accounts"`
}

// migrate moves legacy settings into c.Settings (the next Save writes the
// new form), unless c.Settings sets them already. Of several accounts'
// backfill windows the narrowest is kept: a folder that has synced keeps
// its own window anyway (a narrower setting never takes back what was
// relayed), and a wider one could relay mail its user chose to keep back.
func (old legacy) migrate(c *Config) {
	if old.LogLevel != "" && c.Settings.LogLevel == nil {
		var v settings.Values
		if v.Set(settings.LogLevel, old.LogLevel) == nil {
			c.Settings.LogLevel = v.LogLevel
		}
	}
	if c.Settings.BackfillDays != nil {
		return
	}
	narrowest, found := 0, false
	for _, a := range old.Accounts {
		d := a.BackfillDays
		if d == nil || (*d < 0 && *d != settings.BackfillAll) {
			continue
		}
		wider := func(x, y int) bool { return y != settings.BackfillAll && (x == settings.BackfillAll || x > y) }
		if !found || wider(narrowest, *d) {
			narrowest, found = *d, true
		}
	}
	if found {
		c.Settings.BackfillDays = settings.Int(narrowest)
	}
}

// Save writes c atomically with mode 0600.
func (h Home) Save(c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	return WriteFileAtomic(h.ConfigPath(), append(b, '\n'), 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers see either the old or the new content.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
