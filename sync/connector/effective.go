package connector

// The effective settings of a home and where each comes from: what
// `inboxrelay policy` prints and the support bundle holds.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

// Sources of the report's entries besides sync/settings' own names
// (policy_locked, platform, user, policy_default, default).
const (
	SourceEnvironment = "environment" // HTTPS_PROXY / NO_PROXY
	SourceSystem      = "system"      // the OS's proxy settings
	SourceUnset       = "unset"
)

// Entry is one effective setting.
type Entry struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`         // see settings.Source's names and the Source* constants
	From   string `json:"from,omitempty"` // where exactly: the policy file, HTTPS_PROXY, GNOME's proxy settings…
	Locked bool   `json:"locked"`         // fixed by IT's policy: the user cannot change it
}

// Report is every effective setting of a home, with its source. It holds
// no secret: proxy passwords are redacted, the pairing code is never
// shown.
type Report struct {
	// PolicyFile is the policy file read, "" when there is none.
	PolicyFile string  `json:"policy_file,omitempty"`
	Settings   []Entry `json:"settings"`
	// Notes are things to know about the values: a PAC script not
	// followed, a platform layer that could not be read.
	Notes []string `json:"notes,omitempty"`
}

// Effective reports the settings of home under IT's policy it (nil: none).
// platform is the platform's layer when the caller has the state database
// open (a Runner); nil reads it from the database, which fails while
// another process runs the engine: the report then says so in Notes.
func Effective(ctx context.Context, home config.Home, it *policy.Policy, platform *settings.Values) (Report, error) {
	cfg, err := home.Load()
	if err != nil {
		return Report{}, err
	}
	var rep Report
	if it != nil {
		rep.PolicyFile = it.Path
	}
	add := func(e Entry) { rep.Settings = append(rep.Settings, e) }
	itSource := func(name string, fromPolicy bool, set bool) (string, string, bool) {
		switch {
		case fromPolicy && it.Locks(name):
			return settings.SourcePolicyLocked.String(), it.Path, true
		case fromPolicy:
			return settings.SourcePolicyDefault.String(), it.Path, false
		case set:
			return settings.SourceUser.String(), home.ConfigPath(), false
		}
		return SourceUnset, "", it.Locks(name)
	}

	// The platform.
	var pp policy.Platform
	if it != nil {
		pp = it.Platform
	}
	for _, f := range []struct{ key, value, itValue string }{
		{"platform.url", cfg.Platform.URL, pp.URL},
		{"platform.ca_file", cfg.Platform.CAFile, pp.CAFile},
	} {
		src, from, locked := itSource(policy.LockPlatform, f.itValue != "" && f.itValue == f.value, f.value != "")
		add(Entry{Key: f.key, Value: f.value, Source: src, From: from, Locked: locked})
	}
	proxy := Entry{Key: "platform.proxy", Value: "direct connection", Source: settings.SourceDefault.String(), Locked: it.Locks(policy.LockPlatform)}
	if cfg.Platform.URL != "" {
		// The report shows the proxy without its login, so the keychain is
		// not asked: IT can read the report where no keychain runs.
		choice, err := platformRoute(ctx, netdial.Setting{Value: cfg.Platform.Proxy, Source: proxySource(cfg, it)}, cfg.Platform.URL)
		if err != nil {
			return Report{}, err
		}
		if choice.Note != "" {
			rep.Notes = append(rep.Notes, choice.Note)
		}
		if choice.Proxy != nil {
			proxy.Value = netdial.Redact(choice.Proxy.URL)
			proxy.From = choice.Proxy.Source
		}
		switch {
		case cfg.Platform.Proxy != "":
			proxy.Source, proxy.From, proxy.Locked = itSource(policy.LockPlatform, pp.Proxy != "" && pp.Proxy == cfg.Platform.Proxy, true)
			if strings.EqualFold(cfg.Platform.Proxy, netdial.SettingDirect) {
				proxy.Value = "direct connection (HTTPS_PROXY and the system's settings ignored)"
			}
		case choice.Proxy != nil && strings.HasPrefix(strings.ToLower(choice.Proxy.Source), "https_proxy"):
			proxy.Source = SourceEnvironment
		case choice.Proxy != nil:
			proxy.Source = SourceSystem
		}
	}
	add(proxy)
	add(pairing(home, cfg, it))

	// The mail connections.
	route, err := MailRoute(home, it)
	if err != nil {
		return Report{}, err
	}
	mail := Entry{Key: "mail.proxy", Value: "direct connections", Source: settings.SourceDefault.String(), Locked: it.Locks(policy.LockMail)}
	if route.Proxy != nil {
		mail.Value, mail.Source, mail.From = netdial.Redact(route.Proxy.URL), settings.SourcePolicyLocked.String(), it.Path
		if len(route.Bypass) > 0 {
			mail.Value += " (except " + strings.Join(route.Bypass, ", ") + ")"
		}
	}
	add(mail)

	// The accounts.
	for _, a := range cfg.Accounts {
		pa, inPolicy := it.Account(a.Email)
		src, from, locked := itSource(policy.LockAccount, inPolicy && pa.IMAP == a.IMAP && pa.SMTP == a.SMTP, true)
		add(Entry{Key: "account " + a.Email, Value: fmt.Sprintf("IMAP %s (%s), SMTP %s (%s), login %s", a.IMAP.Addr(), a.IMAP.Security, a.SMTP.Addr(), a.SMTP.Security, a.Login()),
			Source: src, From: from, Locked: locked})
	}
	if it != nil {
		for _, pa := range it.Accounts {
			if _, ok := cfg.Account(pa.Email); !ok {
				add(Entry{Key: "account " + pa.Email, Value: "in the policy, not set up here yet (added at the next start)", Source: settings.SourcePolicyDefault.String(), From: it.Path, Locked: it.Locks(policy.LockAccount)})
			}
		}
	}

	// The settings of sync/settings.
	if platform == nil {
		st, err := state.Open(home.StatePath())
		switch {
		case err == nil:
			ps, perr := st.Settings()
			st.Close()
			if perr != nil {
				return Report{}, perr
			}
			l := ps.Layer()
			platform = &l
		case errors.Is(err, state.ErrLocked):
			rep.Notes = append(rep.Notes, "Inbox Relay is running, so the platform's settings were not read here: values the platform sets may differ (see the window)")
			platform = &settings.Values{}
		default:
			return Report{}, err
		}
	}
	eff := settings.Resolve(it.Settings().Layers(cfg.Settings, *platform))
	for _, s := range eff.Settings() {
		e := Entry{Key: string(s.Key), Value: s.Value, Source: s.Source.String(), Locked: s.Locked}
		switch s.Source {
		case settings.SourcePolicyLocked, settings.SourcePolicyDefault:
			e.From = it.Path
		case settings.SourceUser:
			e.From = home.ConfigPath()
		case settings.SourcePlatform:
			e.From = "the platform's heartbeat answer"
		}
		if e.Value == "" {
			e.Value = "(none)"
		}
		add(e)
	}
	return rep, nil
}

// pairing reports whether the home is paired, and how.
func pairing(home config.Home, cfg *config.Config, it *policy.Policy) Entry {
	e := Entry{Key: "platform.pairing", Source: settings.SourceUser.String()}
	rec, _ := LoadEnrolment(home)
	paired := false
	if cfg.Platform.DeviceID != "" {
		if kc, err := keychain.New(home.Dir); err == nil {
			_, err := kc.Get(keychain.DeviceTokenKey)
			paired = err == nil
		}
	}
	for _, u := range rec.Codes {
		if u.URL == cfg.Platform.URL && u.Outcome == "paired" && u.DeviceID == cfg.Platform.DeviceID {
			e.Source, e.From = settings.SourcePolicyDefault.String(), "the pairing code of the policy, used "+u.At.Local().Format("2006-01-02 15:04")
		}
	}
	switch {
	case paired:
		e.Value = "paired as device " + cfg.Platform.DeviceID
	case cfg.Platform.URL == "":
		e.Value, e.Source = "not paired", SourceUnset
	case it != nil && it.Platform.PairingCode != "":
		e.Value, e.Source, e.From = "not paired yet: the policy's pairing code is used at the next start", settings.SourcePolicyDefault.String(), it.Path
		for _, u := range rec.Codes {
			if u.SHA256 == codeHash(it.Platform.URL, it.Platform.PairingCode) {
				e.Value = (&SpentCodeError{Path: it.Path, Used: u, Refused: u.Outcome == "refused"}).Error()
			}
		}
	default:
		e.Value, e.Source = "not paired: pair this computer with a code from the platform", SourceUnset
	}
	return e
}

// Print writes the report as a table for people.
func (r Report) Print(w io.Writer) error {
	if r.PolicyFile != "" {
		fmt.Fprintf(w, "IT's policy: %s\n\n", r.PolicyFile)
	} else {
		path, _ := policy.Path()
		fmt.Fprintf(w, "IT's policy: none (%s does not exist)\n\n", path)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, e := range r.Settings {
		from := sourceWords(e.Source)
		if e.From != "" {
			from += ": " + e.From
		}
		if e.Locked {
			from += " (locked)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Key, e.Value, from)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
	return nil
}

func sourceWords(s string) string {
	switch s {
	case settings.SourcePolicyLocked.String():
		return "IT's policy"
	case settings.SourcePolicyDefault.String():
		return "IT's policy (a default)"
	case settings.SourcePlatform.String():
		return "the platform"
	case settings.SourceUser.String():
		return "your settings"
	case settings.SourceDefault.String():
		return "built-in default"
	case SourceEnvironment:
		return "the environment"
	case SourceSystem:
		return "the system's settings"
	case SourceUnset:
		return "not set"
	}
	return s
}
