package policy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

const full = `# Acme's policy
[platform]
url = "https://app.example.com/connector/"
pairing_code = "7KQ-93F"
ca_file = "/etc/ssl/corp-root.pem"
proxy = "http://proxy.corp:3128"

[mail]
proxy = "socks5://proxy.corp:1080"
no_proxy = ["mail.intra"]

[[account]]
email = "{user}@acme.com"
username = "ACME\\{user}"
imap = "mail.acme.com:993"
imap_security = "tls"
smtp = "mail.acme.com"
smtp_security = "starttls"
trust_fingerprints = ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"]
min_tls = "1.3"

[[account]]
email = "support@acme.com"
username = "{email}"
imap = "imap.acme.com"
smtp = "smtp.acme.com:465"
trust_fingerprints = ["smtp=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]

[settings]
backfill_days = 90
start_at_login = true
log_level = "warn"
relay_domains = ["customer.com"]
locked = ["platform", "account", "backfill_days"]
`

func pins(a config.Account) string {
	var s []string
	for _, p := range a.Pins {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func TestParseFullPolicy(t *testing.T) {
	p, err := policy.Parse("/etc/inboxrelay/policy.toml", []byte(full), "jdoe")
	if err != nil {
		t.Fatal(err)
	}
	if p.Platform.URL != "https://app.example.com/connector" || p.Platform.PairingCode != "7KQ-93F" || p.Platform.Proxy != "http://proxy.corp:3128" || p.Platform.CAFile != "/etc/ssl/corp-root.pem" {
		t.Fatalf("platform %+v", p.Platform)
	}
	if p.Mail.Proxy != "socks5://proxy.corp:1080" || len(p.Mail.NoProxy) != 1 {
		t.Fatalf("mail %+v", p.Mail)
	}
	want := []config.Account{
		{Email: "jdoe@acme.com", Username: `ACME\jdoe`, MinTLS: "1.3",
			IMAP: config.Server{Host: "mail.acme.com", Port: 993, Security: config.SecurityTLS},
			SMTP: config.Server{Host: "mail.acme.com", Port: 587, Security: config.SecurityStartTLS},
			Pins: []trust.Pin{{Server: "mail.acme.com:993", Fingerprint: strings.Repeat("abcdef0123456789", 4)}, {Server: "mail.acme.com:587", Fingerprint: strings.Repeat("abcdef0123456789", 4)}}},
		{Email: "support@acme.com", Username: "support@acme.com",
			IMAP: config.Server{Host: "imap.acme.com", Port: 993, Security: config.SecurityTLS},
			SMTP: config.Server{Host: "smtp.acme.com", Port: 465, Security: config.SecurityTLS},
			Pins: []trust.Pin{{Server: "smtp.acme.com:465", Fingerprint: strings.Repeat("0123456789abcdef", 4)}}},
	}
	if len(p.Accounts) != 2 {
		t.Fatalf("accounts %+v", p.Accounts)
	}
	for i := range want {
		g, w := p.Accounts[i], want[i]
		if g.Email != w.Email || g.Username != w.Username || g.IMAP != w.IMAP || g.SMTP != w.SMTP || g.MinTLS != w.MinTLS || pins(g) != pins(w) {
			t.Errorf("account %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	for name, want := range map[string]bool{"platform": true, "account": true, "backfill_days": true, "log_level": false, "mail": false} {
		if p.Locks(name) != want {
			t.Errorf("Locks(%s) = %v", name, !want)
		}
	}
	if p.Locked.BackfillDays == nil || *p.Locked.BackfillDays != 90 || p.Locked.LogLevel != nil {
		t.Errorf("locked layer %+v", p.Locked)
	}
	if p.Defaults.LogLevel == nil || *p.Defaults.LogLevel != "warn" || p.Defaults.StartAtLogin == nil || !*p.Defaults.StartAtLogin || p.Defaults.BackfillDays != nil {
		t.Errorf("default layer %+v", p.Defaults)
	}
}

// The one precedence rule with the policy as its top and bottom layers:
// policy-locked > platform > user > policy default > built-in.
func TestPrecedenceWithThePolicy(t *testing.T) {
	p, err := policy.Parse("p.toml", []byte(full), "jdoe")
	if err != nil {
		t.Fatal(err)
	}
	user := settings.Values{BackfillDays: settings.Int(7), LogLevel: settings.String("debug"), RelayDomains: settings.Strings("mine.com")}
	platform := settings.Values{BackfillDays: settings.Int(365), RelayDomains: settings.Strings("platform.com")}
	eff := settings.Resolve(p.Settings().Layers(user, platform))
	checks := []struct {
		key  settings.Key
		got  any
		want any
		src  settings.Source
	}{
		{settings.BackfillDays, eff.BackfillDays, 90, settings.SourcePolicyLocked},            // locked beats the platform and the user
		{settings.RelayDomains, eff.RelayDomains[0], "platform.com", settings.SourcePlatform}, // platform beats user and policy default
		{settings.LogLevel, eff.LogLevel, "debug", settings.SourceUser},                       // user beats the policy's default
		{settings.StartAtLogin, eff.StartAtLogin, true, settings.SourcePolicyDefault},         // policy default beats built-in
		{settings.PauseOnMetered, eff.PauseOnMetered, false, settings.SourceDefault},
	}
	for _, c := range checks {
		if c.got != c.want || eff.Source(c.key) != c.src {
			t.Errorf("%s = %v from %s, want %v from %s", c.key, c.got, eff.Source(c.key), c.want, c.src)
		}
	}
	if !eff.Locked(settings.BackfillDays) || eff.Locked(settings.LogLevel) {
		t.Error("only backfill_days is locked")
	}
	// No policy at all: a nil Policy is usable and locks nothing.
	var none *policy.Policy
	if eff := settings.Resolve(none.Settings().Layers(user, settings.Values{})); eff.BackfillDays != 7 || none.Locks("platform") || none.Refuse("account") != nil {
		t.Errorf("without a policy: %+v", eff)
	}
}

func TestRefuseNamesThePolicyFile(t *testing.T) {
	p, _ := policy.Parse("/etc/inboxrelay/policy.toml", []byte(full), "jdoe")
	err := p.Refuse(policy.LockAccount)
	var le *policy.LockedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "/etc/inboxrelay/policy.toml") {
		t.Fatalf("Refuse(account) = %v", err)
	}
	if p.Refuse("log_level") != nil {
		t.Fatal("log_level is not locked")
	}
}

func TestMalformedPolicyNamesTheLine(t *testing.T) {
	cases := []struct {
		name, file string
		line       int
		words      string
	}{
		{"syntax", "[platform]\nurl = \"https://x\"\nproxy = http://unquoted\n", 3, ""},
		{"unknown key", "[platform]\nurl = \"https://x.example\"\npairing_cod = \"A\"\n", 3, "pairing_cod"},
		{"unknown table", "[platfrom]\nurl = \"https://x.example\"\n", 1, "platfrom"},
		{"http platform", "[platform]\n\nurl = \"http://x.example\"\n", 3, "https://"},
		{"bad proxy", "[platform]\nurl = \"https://x.example\"\nproxy = \"ftp://p:21\"\n", 3, "ftp"},
		{"proxy with a password", "[mail]\nproxy = \"http://bob:Secret123@p:3128\"\n", 2, "password"},
		{"bad security", "[[account]]\nemail = \"a@b.c\"\nimap = \"m:993\"\nimap_security = \"ssl\"\nsmtp = \"m:465\"\n", 4, "ssl"},
		{"bad address", "[[account]]\nemail = \"a@b.c\"\nimap = \"m:99999\"\nsmtp = \"m:465\"\n", 3, "port"},
		{"bad email", "[[account]]\nemail = \"nobody\"\nimap = \"m\"\nsmtp = \"m\"\n", 2, "not an e-mail"},
		{"second account without imap", "[[account]]\nemail = \"a@b.c\"\nimap = \"m\"\nsmtp = \"m\"\n\n[[account]]\nemail = \"b@b.c\"\nsmtp = \"m\"\n", 7, "account 2: imap is missing"},
		{"duplicate", "[[account]]\nemail = \"a@b.c\"\nimap = \"m\"\nsmtp = \"m\"\n[[account]]\nemail = \"A@b.c\"\nimap = \"m\"\nsmtp = \"m\"\n", 6, "account 1"},
		{"bad fingerprint", "[[account]]\nemail = \"a@b.c\"\nimap = \"m\"\nsmtp = \"m\"\ntrust_fingerprints = [\"12:34\"]\n", 5, "fingerprint"},
		{"bad setting value", "[settings]\nlog_level = \"loud\"\n", 2, "loud"},
		{"unknown setting", "[settings]\nbackfil_days = 3\n", 2, "backfil_days"},
		{"bad lock name", "[settings]\nlocked = [\"platfrom\"]\n", 2, "platfrom"},
		{"locked but unset", "[settings]\nlog_level = \"info\"\nlocked = [\"backfill_days\"]\n", 3, "does not set"},
		{"relative ca_file", "[platform]\nurl = \"https://x.example\"\nca_file = \"corp.pem\"\n", 3, "absolute"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := policy.Parse("/etc/inboxrelay/policy.toml", []byte(c.file), "jdoe")
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want a *policy.Error", err)
			}
			if pe.Line != c.line || !strings.Contains(err.Error(), c.words) || !strings.Contains(err.Error(), "/etc/inboxrelay/policy.toml") {
				t.Fatalf("err %q (line %d), want line %d mentioning %q and the file", err, pe.Line, c.line, c.words)
			}
			if strings.Contains(err.Error(), "Secret123") {
				t.Fatalf("the error shows the proxy's password: %v", err)
			}
		})
	}
}

func TestLoadAndCurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(path, []byte("[[account]]\nemail = \"{user}@acme.com\"\nimap = \"m\"\nsmtp = \"m\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	login, err := policy.LoginName()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(policy.EnvPath, path)
	p, err := policy.Current()
	if err != nil || p == nil || p.Path != path || p.Accounts[0].Email != login+"@acme.com" {
		t.Fatalf("Current() = %+v, %v; want {user} expanded to %s", p, err, login)
	}
	// INBOXRELAY_POLICY naming a missing file is an error, not "no policy".
	t.Setenv(policy.EnvPath, filepath.Join(dir, "missing.toml"))
	if p, err := policy.Current(); err == nil || p != nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing named policy: %v %v", p, err)
	}
	if err := os.WriteFile(path, []byte("[settings]\nlog_level = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(policy.EnvPath, path)
	var pe *policy.Error
	if _, err := policy.Current(); !errors.As(err, &pe) || pe.Line != 2 {
		t.Fatalf("malformed: %v", err)
	}
}
