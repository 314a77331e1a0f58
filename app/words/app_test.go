package words

import (
	"fmt"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// TestLockedSaysWhoDecides: a setting IT's policy locks names the policy
// file, one the platform sets says so, one the user decides says nothing.
func TestLockedSaysWhoDecides(t *testing.T) {
	eff := settings.Resolve(settings.Layers{
		Locked:   settings.Values{BackfillDays: settings.Int(90)},
		Platform: settings.Values{RelayDomains: settings.Strings("customer.com")},
		User:     settings.Values{LogLevel: settings.String("debug")},
	})
	for _, c := range []struct {
		k    settings.Key
		path string
		want string
	}{
		{settings.BackfillDays, "/etc/inboxrelay/policy.toml", "Locked by your IT department (/etc/inboxrelay/policy.toml)."},
		{settings.BackfillDays, "", "Locked by your IT department."},
		{settings.RelayDomains, "/etc/inboxrelay/policy.toml", "Set by your platform."},
		{settings.LogLevel, "/etc/inboxrelay/policy.toml", ""},
		{settings.StartAtLogin, "/etc/inboxrelay/policy.toml", ""},
	} {
		if got := Locked(eff, c.k, c.path); got != c.want {
			t.Errorf("Locked(%s, %q) = %q, want %q", c.k, c.path, got, c.want)
		}
	}
}

// TestRemoveNamesThePolicy: a removal the policy refuses names its file;
// any other failure shows no engine text.
func TestRemoveNamesThePolicy(t *testing.T) {
	locked := fmt.Errorf("remove: %w", &policy.LockedError{What: "the list of accounts and their servers", Path: "/etc/inboxrelay/policy.toml"})
	if got := Remove(locked); !strings.Contains(got, "IT department manages this (/etc/inboxrelay/policy.toml)") {
		t.Errorf("Remove(locked) = %q", got)
	}
	if got := Remove(fmt.Errorf("secret engine text")); strings.Contains(got, "secret engine text") || got == "" {
		t.Errorf("Remove(other) = %q", got)
	}
}
