package gui

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// A setting IT's policy locks is shown as locked, naming the policy file;
// one it only defaults stays the user's to change.
func TestSettingsShowWhatThePolicyLocks(t *testing.T) {
	st := running(engine.UpToDate)
	pol := settings.Policy{Locked: settings.Values{BackfillDays: settings.Int(90)}, Defaults: settings.Values{LogLevel: settings.String("warn")}}
	st.Settings = settings.Resolve(pol.Layers(settings.Values{}, settings.Values{}))
	st.PolicyPath = "/etc/inboxrelay/policy.toml"
	u, _ := newUI(t, newFake(st), &fakeTray{})
	serial(u.ShowSettings)
	backfill, hint := setting(t, u, "Relay existing mail from")
	if !strings.Contains(hint, "Locked by your IT department") || !strings.Contains(hint, "/etc/inboxrelay/policy.toml") {
		t.Errorf("the locked backfill window says %q", hint)
	}
	if sel, ok := backfill.(*widget.Select); !ok || !sel.Disabled() {
		t.Error("the locked backfill window can be changed")
	}
	level, hint := setting(t, u, "Log detail")
	if sel, ok := level.(*widget.Select); !ok || sel.Disabled() || sel.Selected != "Problems only" || strings.Contains(hint, "policy.toml") {
		t.Errorf("the log level (IT's default, not locked): %+v %q", level, hint)
	}
}
