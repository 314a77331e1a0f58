package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
