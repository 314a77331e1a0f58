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
	serial(func() { u.ShowSettings() })
	var form *widget.Form
	serial(func() { form, _ = find(u.settings.Content(), func(*widget.Form) bool { return true }) })
	if form == nil {
		t.Fatal("no form in the settings window")
	}
	var backfill, level *widget.FormItem
	for _, it := range form.Items {
		switch it.Text {
		case "Relay existing mail from":
			backfill = it
		case "Log detail":
			level = it
		}
	}
	if backfill == nil || level == nil {
		t.Fatalf("form items: %+v", form.Items)
	}
	if !strings.Contains(backfill.HintText, "IT department") || !strings.Contains(backfill.HintText, "/etc/inboxrelay/policy.toml") {
		t.Errorf("the locked backfill window says %q", backfill.HintText)
	}
	if sel, ok := backfill.Widget.(*widget.Select); !ok || !sel.Disabled() {
		t.Error("the locked backfill window can be changed")
	}
	if sel, ok := level.Widget.(*widget.Select); !ok || sel.Disabled() || sel.Selected != "warn" || strings.Contains(level.HintText, "policy.toml") {
		t.Errorf("the log level (IT's default, not locked): %+v %q", level.Widget, level.HintText)
	}
}
