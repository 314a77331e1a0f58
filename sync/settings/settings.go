// Package settings is the one owner of the connector's settings: it
// resolves each setting from its layers with one precedence rule and says
// where every effective value comes from.
//
// The layers, from strongest to weakest:
//
//	policy-locked   IT's policy, values the user cannot change (Layers.Locked)
//	platform        the platform's heartbeat settings, kept in the state database (Layers.Platform)
//	user            the user's own choices, kept in config.json (Layers.User)
//	policy default  IT's policy, defaults the user may change (Layers.Defaults)
//	built-in        the defaults of this package (Default)
//
// Every front end (the command line, the tray app) and the engine read
// settings through Resolve; nothing else decides which value wins. A layer
// sets a setting by giving it a non-nil value; a value that fails Validate
// is ignored, so the next layer down applies (a platform or a policy file
// cannot put the engine in a state this package does not accept).
//
// The package imports nothing of the connector's, so that any package
// (config, engine, policy, the front ends) may use it.
package settings

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Key names one setting, as config.json, the policy file, the heartbeat
// and `inboxrelay policy` spell it.
type Key string

// The settings.
const (
	// BackfillDays is how many days of existing mail a folder's first sync
	// relays (BackfillAll: everything). A wider window later relays the
	// older mail too; a narrower one never takes back what was relayed.
	BackfillDays Key = "backfill_days"
	// RelayDomains, when not empty, lets only messages with an address in
	// one of these domains (or their subdomains) leave the machine.
	RelayDomains Key = "relay_domains"
	// SendAs lists, per account (lower-case address), the other sender
	// addresses its outbox items may use.
	SendAs Key = "send_as"
	// LogLevel is debug, info, warn or error.
	LogLevel Key = "log_level"
	// StartAtLogin starts the tray app when the user logs in.
	StartAtLogin Key = "start_at_login"
	// PauseOnMetered pauses relaying while the network connection is
	// metered.
	PauseOnMetered Key = "pause_on_metered"
)

// Keys are all the settings, in the order they are listed to people.
var Keys = []Key{BackfillDays, RelayDomains, SendAs, LogLevel, StartAtLogin, PauseOnMetered}

// BackfillAll, as BackfillDays, relays the whole folder whatever the age
// of its messages.
const BackfillAll = -1

// LogLevels are the accepted values of LogLevel, from the most detailed.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Values is what one layer sets: a nil field is not set by that layer. The
// JSON form (config.json's "settings", the policy file) uses the keys'
// names and omits what is not set.
type Values struct {
	BackfillDays   *int                 `json:"backfill_days,omitempty"`
	RelayDomains   *[]string            `json:"relay_domains,omitempty"`
	SendAs         *map[string][]string `json:"send_as,omitempty"`
	LogLevel       *string              `json:"log_level,omitempty"`
	StartAtLogin   *bool                `json:"start_at_login,omitempty"`
	PauseOnMetered *bool                `json:"pause_on_metered,omitempty"`
}

// Default is the built-in layer, under every other: it sets every key.
func Default() Values {
	return Values{
		BackfillDays:   ptr(DefaultBackfillDays),
		RelayDomains:   ptr([]string{}),
		SendAs:         ptr(map[string][]string{}),
		LogLevel:       ptr("info"),
		StartAtLogin:   ptr(false),
		PauseOnMetered: ptr(false),
	}
}

// DefaultBackfillDays is Default's backfill window.
const DefaultBackfillDays = 30

func ptr[T any](v T) *T { return &v }

// Int returns a pointer to v, to set one field of Values:
// Values{BackfillDays: settings.Int(7)}.
func Int(v int) *int { return &v }

// Bool returns a pointer to v, to set one field of Values.
func Bool(v bool) *bool { return &v }

// String returns a pointer to v, to set one field of Values.
func String(v string) *string { return &v }

// Strings returns a pointer to a copy of v (never nil, also when empty),
// to set one field of Values.
func Strings(v ...string) *[]string { v = append([]string{}, v...); return &v }

// Map returns a pointer to a copy of v, to set one field of Values.
func Map(v map[string][]string) *map[string][]string { v = maps.Clone(v); return &v }

// Has reports whether the layer sets k.
func (v Values) Has(k Key) bool {
	switch k {
	case BackfillDays:
		return v.BackfillDays != nil
	case RelayDomains:
		return v.RelayDomains != nil
	case SendAs:
		return v.SendAs != nil
	case LogLevel:
		return v.LogLevel != nil
	case StartAtLogin:
		return v.StartAtLogin != nil
	case PauseOnMetered:
		return v.PauseOnMetered != nil
	}
	return false
}

// Empty reports whether the layer sets nothing.
func (v Values) Empty() bool {
	for _, k := range Keys {
		if v.Has(k) {
			return false
		}
	}
	return true
}

// Merge returns v with every setting that over sets replaced by over's.
func (v Values) Merge(over Values) Values {
	for _, k := range Keys {
		if over.Has(k) {
			v.copyKey(over, k)
		}
	}
	return v
}

// Unset returns v without k.
func (v Values) Unset(k Key) Values {
	var none Values
	v.copyKey(none, k)
	return v
}

func (v *Values) copyKey(from Values, k Key) {
	switch k {
	case BackfillDays:
		v.BackfillDays = from.BackfillDays
	case RelayDomains:
		v.RelayDomains = from.RelayDomains
	case SendAs:
		v.SendAs = from.SendAs
	case LogLevel:
		v.LogLevel = from.LogLevel
	case StartAtLogin:
		v.StartAtLogin = from.StartAtLogin
	case PauseOnMetered:
		v.PauseOnMetered = from.PauseOnMetered
	}
}

// Validate checks every value the layer sets and returns the first
// problem, naming its key.
func (v Values) Validate() error {
	for _, k := range Keys {
		if err := v.check(k); err != nil {
			return err
		}
	}
	return nil
}

// check validates k's value (nil when k is not set).
func (v Values) check(k Key) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", k, fmt.Sprintf(format, a...))
	}
	switch k {
	case BackfillDays:
		if d := v.BackfillDays; d != nil && *d < 0 && *d != BackfillAll {
			return bad("%d is not a number of days (or all)", *d)
		}
	case RelayDomains:
		if v.RelayDomains != nil {
			for _, d := range *v.RelayDomains {
				if !validDomain(d) {
					return bad("%q is not a domain name", d)
				}
			}
		}
	case SendAs:
		if v.SendAs != nil {
			for acct, addrs := range *v.SendAs {
				if !strings.Contains(acct, "@") {
					return bad("%q is not an e-mail address", acct)
				}
				for _, a := range addrs {
					if !strings.Contains(a, "@") || strings.ContainsAny(a, " \t\r\n<>,") {
						return bad("%q is not an e-mail address", a)
					}
				}
			}
		}
	case LogLevel:
		if l := v.LogLevel; l != nil && !slices.Contains(LogLevels, *l) {
			return bad("%q is not one of %s", *l, strings.Join(LogLevels, ", "))
		}
	}
	return nil
}

func validDomain(d string) bool {
	d = strings.TrimSuffix(strings.TrimPrefix(d, "."), ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127) {
				return false
			}
		}
	}
	return true
}

// Set parses text as k's value and sets it in v: a number of days or
// "all" for backfill_days; a comma-separated list of domains for
// relay_domains; true or false (also yes/no, on/off, 1/0) for the
// switches; one of LogLevels for log_level; for send_as, entries
// "account=addr1 addr2" separated by ";". Front ends and policy files that
// hold settings as text use it, so every text form is parsed alike. The
// value is validated; v is unchanged on error.
func (v *Values) Set(k Key, text string) error {
	text = strings.TrimSpace(text)
	var nv Values
	switch k {
	case BackfillDays:
		if strings.EqualFold(text, "all") {
			nv.BackfillDays = Int(BackfillAll)
		} else if n, err := strconv.Atoi(text); err == nil {
			nv.BackfillDays = Int(n)
		} else {
			return fmt.Errorf("%s: %q is not a number of days or \"all\"", k, text)
		}
	case RelayDomains:
		l := []string{}
		for _, d := range strings.Split(text, ",") {
			if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
				l = append(l, d)
			}
		}
		nv.RelayDomains = &l
	case SendAs:
		m := map[string][]string{}
		for _, entry := range strings.Split(text, ";") {
			if strings.TrimSpace(entry) == "" {
				continue
			}
			acct, addrs, ok := strings.Cut(entry, "=")
			if !ok {
				return fmt.Errorf("%s: %q is not account=address …", k, strings.TrimSpace(entry))
			}
			acct = strings.ToLower(strings.TrimSpace(acct))
			m[acct] = append(m[acct], strings.FieldsFunc(addrs, func(r rune) bool { return r == ' ' || r == ',' })...)
		}
		nv.SendAs = &m
	case LogLevel:
		nv.LogLevel = String(strings.ToLower(text))
	case StartAtLogin, PauseOnMetered:
		var b bool
		switch strings.ToLower(text) {
		case "true", "yes", "on", "1":
			b = true
		case "false", "no", "off", "0":
		default:
			return fmt.Errorf("%s: %q is not true or false", k, text)
		}
		if k == StartAtLogin {
			nv.StartAtLogin = &b
		} else {
			nv.PauseOnMetered = &b
		}
	default:
		return fmt.Errorf("%q is not a setting (the settings are %s)", string(k), keyList())
	}
	if err := nv.check(k); err != nil {
		return err
	}
	v.copyKey(nv, k)
	return nil
}

func keyList() string {
	s := make([]string, len(Keys))
	for i, k := range Keys {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Text returns k's value in v in the form Set parses, and whether v sets
// k.
func (v Values) Text(k Key) (string, bool) {
	if !v.Has(k) {
		return "", false
	}
	switch k {
	case BackfillDays:
		if *v.BackfillDays == BackfillAll {
			return "all", true
		}
		return strconv.Itoa(*v.BackfillDays), true
	case RelayDomains:
		return strings.Join(*v.RelayDomains, ","), true
	case SendAs:
		var entries []string
		for _, acct := range slices.Sorted(maps.Keys(*v.SendAs)) {
			entries = append(entries, acct+"="+strings.Join((*v.SendAs)[acct], " "))
		}
		return strings.Join(entries, ";"), true
	case LogLevel:
		return *v.LogLevel, true
	case StartAtLogin:
		return strconv.FormatBool(*v.StartAtLogin), true
	case PauseOnMetered:
		return strconv.FormatBool(*v.PauseOnMetered), true
	}
	return "", false
}

// LockedError means a change was refused because IT's policy fixes the
// setting.
type LockedError struct{ Key Key }

// Error says which setting is locked.
func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is set by your IT department's policy and cannot be changed here", e.Key)
}

// Source is the layer an effective value comes from. Its text form
// (String, MarshalText) is one of "default", "policy_default", "user",
// "platform", "policy_locked".
type Source uint8

// The layers, from weakest to strongest: a higher Source wins.
const (
	SourceDefault       Source = iota // built in
	SourcePolicyDefault               // IT's policy, a default the user may change
	SourceUser                        // the user's choice (config.json)
	SourcePlatform                    // the platform's heartbeat settings
	SourcePolicyLocked                // IT's policy, fixed
)

var sourceNames = [...]string{"default", "policy_default", "user", "platform", "policy_locked"}

// String returns the source's name ("platform").
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// MarshalText returns String's name; an unknown Source is an error.
func (s Source) MarshalText() ([]byte, error) {
	if int(s) >= len(sourceNames) {
		return nil, fmt.Errorf("settings: unknown source %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText parses a name MarshalText returns.
func (s *Source) UnmarshalText(b []byte) error {
	if i := slices.Index(sourceNames[:], string(b)); i >= 0 {
		*s = Source(i)
		return nil
	}
	return fmt.Errorf("settings: unknown source %q", b)
}

// Layers are the inputs of one resolution, one Values per layer. The
// built-in defaults are not a field: they are always under the rest.
type Layers struct {
	Locked   Values // IT's policy: values the user cannot change
	Platform Values // the platform's heartbeat settings
	User     Values // the user's choices
	Defaults Values // IT's policy: defaults the user may change
}

// Policy is IT's part of the settings, read from the policy file by
// sync/policy: the top layer, which the user cannot change, and the one
// above the built-in defaults, which the user may.
type Policy struct {
	Locked   Values
	Defaults Values
}

// Layers returns the layers of a resolution under this policy, with the
// user's and the platform's values.
func (p Policy) Layers(user, platform Values) Layers {
	return Layers{Locked: p.Locked, Platform: platform, User: user, Defaults: p.Defaults}
}

// Effective is every setting's value after Resolve, with the layer each
// one comes from. Its slices and maps are the caller's to read, not to
// change.
type Effective struct {
	BackfillDays   int
	RelayDomains   []string
	SendAs         map[string][]string
	LogLevel       string
	StartAtLogin   bool
	PauseOnMetered bool

	from map[Key]Source
}

// Resolve applies the precedence rule to every key: the strongest layer
// that sets a valid value wins; the built-in default when none does.
func Resolve(l Layers) Effective {
	// Weakest first: each stronger layer's valid values overwrite.
	order := []struct {
		v   Values
		src Source
	}{{Default(), SourceDefault}, {l.Defaults, SourcePolicyDefault}, {l.User, SourceUser}, {l.Platform, SourcePlatform}, {l.Locked, SourcePolicyLocked}}
	var won Values
	from := map[Key]Source{}
	for _, layer := range order {
		for _, k := range Keys {
			if layer.v.Has(k) && layer.v.check(k) == nil {
				won.copyKey(layer.v, k)
				from[k] = layer.src
			}
		}
	}
	return Effective{
		BackfillDays:   *won.BackfillDays,
		RelayDomains:   slices.Clone(*won.RelayDomains),
		SendAs:         maps.Clone(*won.SendAs),
		LogLevel:       *won.LogLevel,
		StartAtLogin:   *won.StartAtLogin,
		PauseOnMetered: *won.PauseOnMetered,
		from:           from,
	}
}

// Source returns the layer k's value comes from.
func (e Effective) Source(k Key) Source { return e.from[k] }

// Locked reports whether IT's policy fixes k: the user's value, if any,
// is ignored and front ends offer no way to change it.
func (e Effective) Locked(k Key) bool { return e.from[k] == SourcePolicyLocked }

// UserWins reports whether a user value for k takes effect, that is no
// layer above the user's sets it (neither the platform nor a lock).
func (e Effective) UserWins(k Key) bool { return e.from[k] <= SourceUser }

// Values returns the effective values as a layer that sets every key.
func (e Effective) Values() Values {
	return Values{
		BackfillDays: Int(e.BackfillDays), RelayDomains: Strings(e.RelayDomains...), SendAs: Map(e.SendAs),
		LogLevel: String(e.LogLevel), StartAtLogin: Bool(e.StartAtLogin), PauseOnMetered: Bool(e.PauseOnMetered),
	}
}

// Setting is one effective value as `inboxrelay policy` reports it.
type Setting struct {
	Key    Key    `json:"key"`
	Value  string `json:"value"`  // in the form Values.Set parses
	Source Source `json:"source"` // the layer it comes from
	Locked bool   `json:"locked"` // fixed by IT's policy
}

// Settings lists every effective value, in the order of Keys.
func (e Effective) Settings() []Setting {
	v := e.Values()
	out := make([]Setting, len(Keys))
	for i, k := range Keys {
		text, _ := v.Text(k)
		out[i] = Setting{Key: k, Value: text, Source: e.Source(k), Locked: e.Locked(k)}
	}
	return out
}
