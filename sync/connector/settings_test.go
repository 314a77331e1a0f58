package connector

import (
	"errors"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// TestUserSettingsStoredAndLocked: the user's choices land in config.json
// and win over the defaults; a setting IT's policy locks is refused with a
// *settings.LockedError and nothing is stored; an invalid value is refused.
func TestUserSettingsStoredAndLocked(t *testing.T) {
	home := idleHome(t)
	policy := settings.Policy{Locked: settings.Values{LogLevel: settings.String("warn")}, Defaults: settings.Values{BackfillDays: settings.Int(90)}}
	r, err := Open(home, Options{Policy: func() (settings.Policy, error) { return policy, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	eff, err := r.Settings()
	if err != nil {
		t.Fatal(err)
	}
	if eff.BackfillDays != 90 || eff.Source(settings.BackfillDays) != settings.SourcePolicyDefault || eff.LogLevel != "warn" || !eff.Locked(settings.LogLevel) {
		t.Fatalf("before any choice: %+v", eff.Settings())
	}

	if err := r.SetUserSettings(settings.Values{BackfillDays: settings.Int(7), PauseOnMetered: settings.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	cfg, err := home.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cfg.Settings.Text(settings.BackfillDays); got != "7" || cfg.Settings.PauseOnMetered == nil || !*cfg.Settings.PauseOnMetered {
		t.Fatalf("config.json holds %+v", cfg.Settings)
	}
	if eff, _ = r.Settings(); eff.BackfillDays != 7 || eff.Source(settings.BackfillDays) != settings.SourceUser || !eff.PauseOnMetered {
		t.Fatalf("after the user's choice: %+v", eff.Settings())
	}

	var locked *settings.LockedError
	if err := r.SetUserSettings(settings.Values{LogLevel: settings.String("debug"), BackfillDays: settings.Int(30)}); !errors.As(err, &locked) || locked.Key != settings.LogLevel {
		t.Fatalf("changing a locked setting: %v", err)
	}
	if err := StoreUserSettings(home, policy, settings.Values{LogLevel: settings.String("debug")}); !errors.As(err, &locked) {
		t.Fatalf("storing a locked setting without a runner: %v", err)
	}
	if err := r.SetUserSettings(settings.Values{BackfillDays: settings.Int(-3)}); err == nil {
		t.Fatal("an invalid window was accepted")
	}
	if cfg, _ = home.Load(); cfg.Settings.LogLevel != nil || *cfg.Settings.BackfillDays != 7 {
		t.Fatalf("a refused change was stored: %+v", cfg.Settings)
	}
}
