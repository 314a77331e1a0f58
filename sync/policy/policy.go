// Package policy reads the policy file IT departments drop on the machines
// they manage: the platform to pair with (and a one-time pairing code), the
// mailboxes, proxies, and settings the user cannot change.
//
// The file is TOML, at Path (INBOXRELAY_POLICY overrides it):
//
//	[platform]
//	url = "https://app.example.com/connector"
//	pairing_code = "7KQ-93F"            # enrol unattended on first start; used once
//	ca_file = "/etc/ssl/corp-root.pem"  # trusted for the platform, besides the OS's roots
//	proxy = "http://proxy.corp:3128"    # or "direct", or "system" (HTTPS_PROXY, then the OS settings)
//
//	[mail]                               # how IMAP and SMTP leave the machine
//	proxy = "socks5://proxy.corp:1080"   # or http:// (CONNECT); default: direct
//	no_proxy = ["mail.acme.com"]         # reached directly all the same
//
//	[[account]]                          # one per mailbox; {user} and {email} expand
//	email = "{user}@acme.com"
//	username = "{user}"
//	imap = "mail.acme.com:993"
//	imap_security = "tls"
//	smtp = "mail.acme.com:465"
//	smtp_security = "tls"
//	trust_fingerprints = ["AB:CD:…"]   # pinned for both servers; "imap=AB:…" for one
//	min_tls = "1.2"
//
//	[settings]                           # any key of sync/settings
//	backfill_days = 30
//	start_at_login = true
//	log_level = "info"
//	locked = ["platform", "account", "backfill_days"]
//
// A locked name fixes what it names: "platform" the whole [platform] table,
// "account" the list of accounts and their servers, "mail" the [mail]
// table (which only the policy sets anyway), a setting's key that setting.
// What is not locked is IT's default: the user may change it.
//
// A file that does not parse, or holds a value the connector would refuse,
// is an error naming its line: the connector never runs on half a policy.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// EnvPath names the environment variable that points to another policy
// file than Path's default.
const EnvPath = "INBOXRELAY_POLICY"

// maxSize bounds the policy file: it is small by nature.
const maxSize = 1 << 20

// Lock names besides the settings' keys.
const (
	LockPlatform = "platform"
	LockAccount  = "account"
	LockMail     = "mail"
)

// DefaultPath is where the policy file lives on this OS:
// /etc/inboxrelay/policy.toml on Linux and the BSDs,
// /Library/Application Support/InboxRelay/policy.toml on macOS,
// %ProgramData%\InboxRelay\policy.toml on Windows.
func DefaultPath() string {
	switch runtime.GOOS {
	case "windows":
		base := os.Getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return filepath.Join(base, "InboxRelay", "policy.toml")
	case "darwin":
		return "/Library/Application Support/InboxRelay/policy.toml"
	}
	return "/etc/inboxrelay/policy.toml"
}

// Path returns the policy file to read, and whether INBOXRELAY_POLICY named
// it (then the file must exist).
func Path() (path string, explicit bool) {
	if p := os.Getenv(EnvPath); p != "" {
		return p, true
	}
	return DefaultPath(), false
}

// Platform is the [platform] table.
type Platform struct {
	URL         string
	PairingCode string
	CAFile      string
	Proxy       string // a proxy URL, netdial.SettingDirect, netdial.SettingSystem or ""
}

// Mail is the [mail] table: how connections to the mail servers are made.
type Mail struct {
	Proxy   string   // a proxy URL; "" or "direct": no proxy
	NoProxy []string // hosts reached directly despite Proxy (NO_PROXY syntax)
}

// Policy is a policy file as read and checked by Load. A nil *Policy is
// "no policy": every method works on it and locks nothing.
type Policy struct {
	// Path is the file it was read from.
	Path     string
	Platform Platform
	Mail     Mail
	// Accounts are the [[account]] tables, {user} and {email} expanded.
	Accounts []config.Account
	// Locked holds IT's fixed settings, Defaults those the user may change
	// (the two policy layers of sync/settings).
	Locked, Defaults settings.Values

	locks []string
}

// Error is a policy file that cannot be used: where and why.
type Error struct {
	Path string
	Line int // 0 when the problem has no one line
	Msg  string
}

// Error names the file, the line when there is one, and what is wrong.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("the policy file %s, line %d: %s; fix the file or ask your IT department", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("the policy file %s: %s; fix the file or ask your IT department", e.Path, e.Msg)
}

// Current loads the policy file that applies to this process (Path): nil
// and no error when there is none at the default path. A file named by
// INBOXRELAY_POLICY must exist. A file that exists and is not valid is an
// *Error: the app must stop and show it.
func Current() (*Policy, error) {
	path, explicit := Path()
	p, err := Load(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil, nil
	}
	return p, err
}

// Load reads and checks the policy file at path. A missing file is an
// error wrapping os.ErrNotExist; anything wrong inside is an *Error naming
// the line. {user} expands to the login name of the user running the
// process (without a Windows domain), {email} to the account's address.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("the policy file %s does not exist: %w", path, err)
		}
		return nil, &Error{Path: path, Msg: fmt.Sprintf("cannot be read (%v)", err)}
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, maxSize+1)); err != nil {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("cannot be read (%v)", err)}
	}
	if b.Len() > maxSize {
		return nil, &Error{Path: path, Msg: "is larger than 1 MiB"}
	}
	login, err := LoginName()
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	return Parse(path, b.Bytes(), login)
}

// LoginName is the name of the user running the process, as {user}
// expands: the login name, without the DOMAIN\ part Windows adds.
func LoginName() (string, error) {
	u, err := user.Current()
	name := ""
	if err == nil {
		name = u.Username
	}
	if name == "" {
		for _, v := range []string{"USER", "USERNAME", "LOGNAME"} {
			if name = os.Getenv(v); name != "" {
				break
			}
		}
	}
	if i := strings.LastIndexByte(name, '\\'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		return "", errors.New("the login name of this user is unknown, so {user} cannot be expanded")
	}
	return name, nil
}

// file is the TOML shape.
type file struct {
	Platform struct {
		URL         string     `toml:"url"`
		PairingCode string     `toml:"pairing_code"`
		CAFile      string     `toml:"ca_file"`
		Proxy       proxyValue `toml:"proxy"`
	} `toml:"platform"`
	Mail struct {
		Proxy   proxyValue `toml:"proxy"`
		NoProxy []string   `toml:"no_proxy"`
	} `toml:"mail"`
	Account  []accountTable `toml:"account"`
	Settings settingsTable  `toml:"settings"`
}

type accountTable struct {
	Email             string        `toml:"email"`
	Username          string        `toml:"username"`
	IMAP              string        `toml:"imap"`
	IMAPSecurity      securityValue `toml:"imap_security"`
	SMTP              string        `toml:"smtp"`
	SMTPSecurity      securityValue `toml:"smtp_security"`
	TrustFingerprints []pinValue    `toml:"trust_fingerprints"`
	MinTLS            minTLSValue   `toml:"min_tls"`
}

// proxyValue is a proxy setting, checked as it is decoded (so that an
// error names its line).
type proxyValue string

func (v *proxyValue) UnmarshalText(b []byte) error {
	if err := netdial.CheckSetting(string(b)); err != nil {
		return err
	}
	if u, err := netdial.ParseProxy(string(b)); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return errors.New("the proxy URL holds a password, and a policy file is readable by every user of the machine: remove it; each user gives Inbox Relay the proxy's login, which it keeps in the keychain")
		}
	}
	*v = proxyValue(strings.TrimSpace(string(b)))
	return nil
}

type securityValue config.Security

func (v *securityValue) UnmarshalText(b []byte) error {
	s, err := config.ParseSecurity(string(b))
	*v = securityValue(s)
	return err
}

// pinValue is a pinned certificate: a SHA-256 fingerprint for both of the
// account's servers, or "imap=FP" / "smtp=FP" for one.
type pinValue struct{ server, fp string }

func (v *pinValue) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if k, rest, ok := strings.Cut(s, "="); ok && (strings.EqualFold(k, "imap") || strings.EqualFold(k, "smtp")) {
		v.server, s = strings.ToLower(k), rest
	}
	fp, err := trust.ParseFingerprint(s)
	if err != nil {
		return fmt.Errorf("trust_fingerprints: %w (write \"imap=\" or \"smtp=\" before it to pin it for one server)", err)
	}
	v.fp = fp
	return nil
}

type minTLSValue string

func (v *minTLSValue) UnmarshalText(b []byte) error {
	_, err := trust.ParseMinVersion(string(b))
	*v = minTLSValue(b)
	return err
}

// keyError is a problem with one key of [settings].
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.err.Error() }

// settingsTable is [settings]: any key of sync/settings, and locked.
type settingsTable struct {
	values settings.Values
	locked []string
	// err is the first problem found: kept here rather than returned, as
	// the decoder would place it on the table's line, not the key's.
	err *keyError
}

// UnmarshalTOML checks every key of [settings] with sync/settings' own
// parser, so the policy accepts exactly what the user's settings accept.
func (s *settingsTable) UnmarshalTOML(data any) error {
	m, ok := data.(map[string]any)
	fail := func(k string, err error) error {
		s.err = &keyError{key: k, err: err}
		return nil
	}
	if !ok {
		return errors.New("[settings] must be a table")
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		raw := m[k]
		if k == "locked" {
			list, ok := raw.([]any)
			if !ok {
				return fail(k, errors.New(`locked must be a list of names, such as ["platform", "account", "backfill_days"]`))
			}
			for _, x := range list {
				name, ok := x.(string)
				if !ok || !lockable(name) {
					return fail(k, fmt.Errorf("locked: %v is not one of platform, account, mail, %s", x, keyNames()))
				}
				s.locked = append(s.locked, name)
			}
			continue
		}
		key := settings.Key(k)
		if !slices.Contains(settings.Keys, key) {
			return fail(k, fmt.Errorf("%q is not a setting (the settings are %s, and locked)", k, keyNames()))
		}
		text, err := settingText(key, raw)
		if err != nil {
			return fail(k, err)
		}
		if err := s.values.Set(key, text); err != nil {
			return fail(k, err)
		}
	}
	return nil
}

// settingText turns a TOML value into the text settings.Values.Set parses.
func settingText(k settings.Key, raw any) (string, error) {
	switch v := raw.(type) {
	case string:
		return v, nil
	case int64:
		return fmt.Sprint(v), nil
	case bool:
		return fmt.Sprint(v), nil
	case []any:
		var parts []string
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return "", fmt.Errorf("%s: the list must hold strings", k)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		if k != settings.SendAs {
			return "", fmt.Errorf("%s cannot be a table", k)
		}
		var entries []string
		for _, acct := range slices.Sorted(maps.Keys(v)) {
			list, ok := v[acct].([]any)
			if !ok {
				return "", fmt.Errorf("%s: %s must be a list of addresses", k, acct)
			}
			var addrs []string
			for _, x := range list {
				s, ok := x.(string)
				if !ok {
					return "", fmt.Errorf("%s: %s must be a list of addresses", k, acct)
				}
				addrs = append(addrs, s)
			}
			entries = append(entries, acct+"="+strings.Join(addrs, " "))
		}
		return strings.Join(entries, ";"), nil
	}
	return "", fmt.Errorf("%s has a value of an unexpected type", k)
}

func lockable(name string) bool {
	return name == LockPlatform || name == LockAccount || name == LockMail || slices.Contains(settings.Keys, settings.Key(name))
}

func keyNames() string {
	var s []string
	for _, k := range settings.Keys {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Parse checks a policy file's content (path only names it in errors);
// login is what {user} expands to.
func Parse(path string, data []byte, login string) (*Policy, error) {
	var f file
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Path: path, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &Error{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	idx := indexLines(data)
	if ke := f.Settings.err; ke != nil {
		return nil, &Error{Path: path, Line: idx.find(toml.Key{"settings", ke.key}), Msg: ke.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, &Error{Path: path, Line: idx.find(k), Msg: fmt.Sprintf("%q is not a key the policy knows (check its spelling and its table)", k.String())}
	}
	p := &Policy{
		Path: path,
		Platform: Platform{URL: strings.TrimSpace(f.Platform.URL), PairingCode: strings.TrimSpace(f.Platform.PairingCode),
			CAFile: strings.TrimSpace(f.Platform.CAFile), Proxy: string(f.Platform.Proxy)},
		Mail:  Mail{Proxy: string(f.Mail.Proxy), NoProxy: f.Mail.NoProxy},
		locks: f.Settings.locked,
	}
	bad := func(key toml.Key, format string, a ...any) error {
		return &Error{Path: path, Line: idx.find(key), Msg: fmt.Sprintf(format, a...)}
	}
	if p.Platform.URL != "" {
		if !strings.HasPrefix(p.Platform.URL, "https://") || len(p.Platform.URL) <= len("https://") {
			return nil, bad(toml.Key{"platform", "url"}, "url %q must be an https:// URL", p.Platform.URL)
		}
		p.Platform.URL = strings.TrimRight(p.Platform.URL, "/")
	}
	if p.Platform.PairingCode != "" && p.Platform.URL == "" {
		return nil, bad(toml.Key{"platform", "pairing_code"}, "pairing_code needs the platform's url")
	}
	if p.Platform.CAFile != "" && !filepath.IsAbs(p.Platform.CAFile) {
		return nil, bad(toml.Key{"platform", "ca_file"}, "ca_file %q must be an absolute path", p.Platform.CAFile)
	}
	if m := strings.ToLower(p.Mail.Proxy); m == netdial.SettingSystem {
		return nil, bad(toml.Key{"mail", "proxy"}, `proxy for mail must be a socks5:// or http:// URL, or "direct"`)
	}
	seen := map[string]int{}
	for i, t := range f.Account {
		a, err := t.account(login)
		if err != nil {
			return nil, &Error{Path: path, Line: idx.account(i, err.key), Msg: fmt.Sprintf("account %d: %s", i+1, err.msg)}
		}
		if j, dup := seen[strings.ToLower(a.Email)]; dup {
			return nil, &Error{Path: path, Line: idx.account(i, "email"), Msg: fmt.Sprintf("account %d has the address %s of account %d", i+1, a.Email, j+1)}
		}
		seen[strings.ToLower(a.Email)] = i
		p.Accounts = append(p.Accounts, a)
	}
	for _, k := range settings.Keys {
		if !f.Settings.values.Has(k) {
			continue
		}
		if slices.Contains(p.locks, string(k)) {
			p.Locked = p.Locked.Merge(only(f.Settings.values, k))
		} else {
			p.Defaults = p.Defaults.Merge(only(f.Settings.values, k))
		}
	}
	for _, name := range p.locks {
		k := settings.Key(name)
		if slices.Contains(settings.Keys, k) && !f.Settings.values.Has(k) {
			return nil, bad(toml.Key{"settings", "locked"}, "locked names %s, which [settings] does not set: set it (the value to fix) or remove it from locked", name)
		}
		if name == LockPlatform && p.Platform.URL == "" {
			return nil, bad(toml.Key{"settings", "locked"}, "locked names platform, but [platform] has no url")
		}
	}
	return p, nil
}

// only returns the layer with k alone.
func only(v settings.Values, k settings.Key) settings.Values {
	for _, other := range settings.Keys {
		if other != k {
			v = v.Unset(other)
		}
	}
	return v
}

// fieldError is a problem with one key of an [[account]] table.
type fieldError struct{ key, msg string }

// account checks t and expands {user} and {email}.
func (t accountTable) account(login string) (config.Account, *fieldError) {
	email := strings.TrimSpace(t.Email)
	if strings.Contains(email, "{email}") {
		return config.Account{}, &fieldError{"email", "email cannot use {email}"}
	}
	email = strings.ReplaceAll(email, "{user}", login)
	if email == "" {
		return config.Account{}, &fieldError{"email", "email is missing"}
	}
	if at := strings.LastIndexByte(email, '@'); at <= 0 || at == len(email)-1 || strings.ContainsAny(email, " \t<>,;") {
		return config.Account{}, &fieldError{"email", fmt.Sprintf("email %q is not an e-mail address", email)}
	}
	expand := func(s string) string {
		return strings.NewReplacer("{user}", login, "{email}", email).Replace(strings.TrimSpace(s))
	}
	a := config.Account{Email: email, Username: expand(t.Username), MinTLS: string(t.MinTLS)}
	if t.IMAP == "" {
		return a, &fieldError{"email", "imap is missing (host:port of the IMAP server)"}
	}
	if t.SMTP == "" {
		return a, &fieldError{"email", "smtp is missing (host:port of the submission server)"}
	}
	isec := config.Security(t.IMAPSecurity)
	if isec == "" {
		isec = config.SecurityTLS
	}
	ssec := config.Security(t.SMTPSecurity)
	if ssec == "" {
		ssec = config.SecurityTLS
	}
	var err error
	if a.IMAP, err = config.ParseServer(expand(t.IMAP), isec, config.DefaultPort(false, isec)); err != nil {
		return a, &fieldError{"imap", "imap: " + err.Error()}
	}
	if a.SMTP, err = config.ParseServer(expand(t.SMTP), ssec, config.DefaultPort(true, ssec)); err != nil {
		return a, &fieldError{"smtp", "smtp: " + err.Error()}
	}
	for _, pv := range t.TrustFingerprints {
		for _, srv := range []struct {
			name string
			s    config.Server
		}{{"imap", a.IMAP}, {"smtp", a.SMTP}} {
			if pv.server == "" || pv.server == srv.name {
				if _, err := a.AddPin(trust.Pin{Server: srv.s.Addr(), Fingerprint: pv.fp}); err != nil {
					return a, &fieldError{"trust_fingerprints", err.Error()}
				}
			}
		}
	}
	return a, nil
}

// Locks reports whether the policy locks name: LockPlatform, LockAccount,
// LockMail or a settings key. A nil Policy locks nothing.
func (p *Policy) Locks(name string) bool {
	return p != nil && slices.Contains(p.locks, name)
}

// Settings returns IT's two layers of sync/settings (connector.Options.Policy
// calls it). A nil Policy has none.
func (p *Policy) Settings() settings.Policy {
	if p == nil {
		return settings.Policy{}
	}
	return settings.Policy{Locked: p.Locked, Defaults: p.Defaults}
}

// Account returns the policy's account with this address, if any.
func (p *Policy) Account(email string) (config.Account, bool) {
	if p == nil {
		return config.Account{}, false
	}
	for _, a := range p.Accounts {
		if strings.EqualFold(a.Email, email) {
			return a, true
		}
	}
	return config.Account{}, false
}

// LockedError is a change refused because the policy file fixes what it
// would change. Its message names the file.
type LockedError struct {
	What string // "the platform", "the accounts", "backfill_days"
	Path string
}

// Error says what is locked and names the policy file.
func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is set by your IT department's policy (%s) and cannot be changed here", e.What, e.Path)
}

// Refuse returns a *LockedError when the policy locks name, nil otherwise.
func (p *Policy) Refuse(name string) error {
	if !p.Locks(name) {
		return nil
	}
	what := name
	switch name {
	case LockPlatform:
		what = "the platform (its address, CA file and proxy)"
	case LockAccount:
		what = "the list of accounts and their servers"
	case LockMail:
		what = "the mail proxy"
	}
	return &LockedError{What: what, Path: p.Path}
}
