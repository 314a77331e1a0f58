package state

import (
	"testing"
	"time"
)

// TestSettingsEqual: settings compare by value (a heartbeat bringing the
// same settings again is no change), whenever they came; a setting sent
// empty differs from one not sent (the local value applies then).
func TestSettingsEqual(t *testing.T) {
	days := func(n int) *int { return &n }
	base := func() Settings {
		return Settings{BackfillDays: days(30), RelayDomains: []string{"corp.example"}, DomainsGiven: true,
			SendAs: map[string][]string{"alice@acme.test": {"support@acme.test"}}, Platform: "https://p.test", Received: time.Now()}
	}
	for _, tc := range []struct {
		name  string
		tweak func(*Settings)
		equal bool
	}{
		{"the same again, later", func(s *Settings) { s.Received = s.Received.Add(time.Minute); s.BackfillDays = days(30) }, true},
		{"other backfill", func(s *Settings) { s.BackfillDays = days(90) }, false},
		{"backfill not sent", func(s *Settings) { s.BackfillDays = nil }, false},
		{"other domains", func(s *Settings) { s.RelayDomains = []string{"corp.test"} }, false},
		{"domains not sent", func(s *Settings) { s.DomainsGiven = false }, false},
		{"other alias", func(s *Settings) { s.SendAs["alice@acme.test"] = []string{"sales@acme.test"} }, false},
		{"alias for another account", func(s *Settings) { s.SendAs = map[string][]string{"bob@acme.test": {"support@acme.test"}} }, false},
		{"send_as sent empty", func(s *Settings) { s.SendAs = map[string][]string{} }, false},
		{"send_as not sent", func(s *Settings) { s.SendAs = nil }, false},
		{"another platform", func(s *Settings) { s.Platform = "https://q.test" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.tweak(&b)
			if got := a.Equal(b); got != tc.equal {
				t.Errorf("Equal = %v, want %v", got, tc.equal)
			}
			if got := b.Equal(a); got != tc.equal {
				t.Errorf("reversed, Equal = %v, want %v", got, tc.equal)
			}
		})
	}
	empty := Settings{SendAs: map[string][]string{}}
	if !empty.Equal(Settings{SendAs: map[string][]string{}}) || empty.Equal(Settings{}) {
		t.Error("an empty send_as must equal an empty one and differ from none")
	}
}
