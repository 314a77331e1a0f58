package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Server
		ok   bool
	}{
		{"mail.acme.test:993", Server{"mail.acme.test", 993, SecurityTLS}, true},
		{"mail.acme.test", Server{"mail.acme.test", 465, SecurityTLS}, true},
		{"[::1]:143", Server{"::1", 143, SecurityTLS}, true},
		{"::1", Server{}, false}, // ambiguous without brackets
		{"mail.acme.test:0", Server{}, false},
		{"mail.acme.test:99999", Server{}, false},
		{":993", Server{}, false},
	} {
		got, err := ParseServer(tc.in, SecurityTLS, 465)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseServer(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if got := (Server{Host: "::1", Port: 993}).Addr(); got != "[::1]:993" {
		t.Errorf("Addr = %q", got)
	}
}

func TestSaveLoadAndLock(t *testing.T) {
	h, err := OpenHome(filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(h.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("home mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	c := &Config{Platform: Platform{URL: "https://p.test/connector"}, Accounts: []Account{{Email: "A@x.test"}}}
	if err := h.Save(c); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(h.ConfigPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("settings mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := h.Load()
	if err != nil || got.Platform.URL != c.Platform.URL {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if _, ok := got.Account("a@X.test"); !ok {
		t.Error("Account lookup is not case-insensitive")
	}

	unlock, err := h.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if !h.Running() {
		t.Error("Running is false while the lock is held")
	}
	// A second holder in this process is refused too (flock is per open
	// file description).
	if _, err := h.Lock(); !errors.Is(err, ErrRunning) {
		t.Errorf("second Lock = %v, want ErrRunning", err)
	}
	unlock()
	if h.Running() {
		t.Error("Running is true after unlock")
	}
}

func TestDamagedSettingsSayWhatToDo(t *testing.T) {
	h, _ := OpenHome(t.TempDir())
	os.WriteFile(h.ConfigPath(), []byte("{not json"), 0o600)
	if _, err := h.Load(); err == nil {
		t.Fatal("a damaged settings file loaded")
	}
}

// TestMigrateLegacySettings: files written before sync/settings kept a
// backfill window in each account and the log level at the top; Load moves
// them into the user layer (the narrowest window), and Save writes only the
// new form.
func TestMigrateLegacySettings(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		backfill string // "" when not set
		level    string
	}{
		{"one account", `{"accounts":[{"email":"a@x.com","backfill_days":90}],"log_level":"debug"}`, "90", "debug"},
		{"narrowest of several", `{"accounts":[{"email":"a@x.com","backfill_days":-1},{"email":"b@x.com","backfill_days":7},{"email":"c@x.com","backfill_days":30}]}`, "7", ""},
		{"everything everywhere", `{"accounts":[{"email":"a@x.com","backfill_days":-1},{"email":"b@x.com","backfill_days":-1}]}`, "all", ""},
		{"zero days is a window", `{"accounts":[{"email":"a@x.com","backfill_days":0},{"email":"b@x.com","backfill_days":30}]}`, "0", ""},
		{"new form wins", `{"accounts":[{"email":"a@x.com","backfill_days":7}],"log_level":"debug","settings":{"backfill_days":365,"log_level":"warn"}}`, "365", "warn"},
		{"nothing to migrate", `{"accounts":[{"email":"a@x.com"}]}`, "", ""},
		{"bad legacy values ignored", `{"accounts":[{"email":"a@x.com","backfill_days":-5}],"log_level":"loud"}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := OpenHome(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(h.ConfigPath(), []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := h.Load()
			if err != nil {
				t.Fatal(err)
			}
			check := func(c *Config, when string) {
				t.Helper()
				bf, _ := c.Settings.Text(settings.BackfillDays)
				lv, _ := c.Settings.Text(settings.LogLevel)
				if bf != tt.backfill || lv != tt.level {
					t.Fatalf("%s: backfill %q, log level %q; want %q, %q", when, bf, lv, tt.backfill, tt.level)
				}
			}
			check(c, "loaded")
			if err := h.Save(c); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(h.ConfigPath())
			var raw struct {
				LogLevel *string `json:"log_level"`
				Accounts []map[string]any
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			if raw.LogLevel != nil {
				t.Fatalf("saved file still has a top-level log_level: %s", b)
			}
			for _, a := range raw.Accounts {
				if _, ok := a["backfill_days"]; ok {
					t.Fatalf("saved file still has a per-account backfill_days: %s", b)
				}
			}
			again, err := h.Load()
			if err != nil {
				t.Fatal(err)
			}
			check(again, "saved and loaded again")
		})
	}
}

// A home written before pins were per server keeps working: each old
// fingerprint becomes a pin for the account's IMAP and SMTP servers, and
// the old list is not written again.
func TestLoadMigratesFingerprintsToPins(t *testing.T) {
	h, _ := OpenHome(t.TempDir())
	fp := strings.Repeat("ab", 32)
	old := `{"platform":{"url":"https://p.test"},"accounts":[{"email":"a@x.test",
		"imap":{"host":"Mail.X.test","port":993,"security":"tls"},"smtp":{"host":"mail.x.test","port":465,"security":"tls"},
		"trust_fingerprints":["` + strings.ToUpper(fp) + `"]}]}`
	if err := os.WriteFile(h.ConfigPath(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := h.Load()
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts[0]
	want := []trust.Pin{{Server: "mail.x.test:993", Fingerprint: fp}, {Server: "mail.x.test:465", Fingerprint: fp}}
	if len(a.TrustFingerprints) != 0 || len(a.Pins) != 2 || a.Pins[0] != want[0] || a.Pins[1] != want[1] {
		t.Fatalf("migrated %+v / %v; want pins %+v", a.Pins, a.TrustFingerprints, want)
	}
	if got := a.PinsFor("MAIL.X.TEST:993"); len(got) != 1 || got[0].Fingerprint != fp {
		t.Errorf("PinsFor = %+v", got)
	}
	if err := h.Save(c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(h.ConfigPath())
	if strings.Contains(string(b), "trust_fingerprints") || !strings.Contains(string(b), `"sha256": "`+fp) {
		t.Errorf("saved settings:\n%s", b)
	}
	if added, _ := a.AddPin(trust.Pin{Server: "mail.x.test:993", Fingerprint: strings.ToUpper(fp)}); added {
		t.Error("AddPin added a pin the account has")
	}
}

func TestDefaultPort(t *testing.T) {
	for _, c := range []struct {
		smtp bool
		sec  Security
		want int
	}{{false, SecurityTLS, 993}, {false, SecurityStartTLS, 143}, {true, SecurityTLS, 465}, {true, SecurityStartTLS, 587}} {
		if got := DefaultPort(c.smtp, c.sec); got != c.want {
			t.Errorf("DefaultPort(smtp %v, %s) = %d, want %d", c.smtp, c.sec, got, c.want)
		}
	}
}
