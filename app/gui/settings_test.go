package gui

import (
	"context"
	"slices"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// TestSettingsWindowShowsWhoSetsWhat: the settings window shows the
// effective values of sync/settings; a setting the platform or IT sets is
// disabled and says who sets it; the user's change goes to the backend as
// that one setting, not as a preference of the window's own.
func TestSettingsWindowShowsWhoSetsWhat(t *testing.T) {
	st := running(engine.UpToDate)
	st.Settings = settings.Resolve(settings.Layers{
		Platform: settings.Values{BackfillDays: settings.Int(14)},
		Locked:   settings.Values{LogLevel: settings.String("warn")},
		User:     settings.Values{BackfillDays: settings.Int(7), PauseOnMetered: settings.Bool(true)},
	})
	b := newFake(st)
	a := test.NewTempApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var u *UI
	serial(func() {
		u = New(a, b, nil, Options{Now: func() time.Time { return now }, PollEvery: time.Hour, Do: serial,
			Metered: func() (bool, bool) { return false, true }})
		u.Start(ctx)
		u.ShowSettings()
	})
	w := u.settings
	var form *widget.Form
	serial(func() { form, _ = find(w.Content(), func(*widget.Form) bool { return true }) })
	if form == nil {
		t.Fatal("no form in the settings window")
	}
	item := func(label string) *widget.FormItem {
		for _, it := range form.Items {
			if it.Text == label {
				return it
			}
			if c, ok := it.Widget.(*widget.Check); ok && c.Text == label {
				return it
			}
		}
		t.Fatalf("no setting %q", label)
		return nil
	}
	serial(func() {
		bf := item("Relay existing mail from")
		sel := bf.Widget.(*widget.Select)
		if sel.Selected != "The last 14 days" || !sel.Disabled() || bf.HintText != "Set by your platform. Mail already relayed stays relayed." {
			t.Errorf("backfill: %q, disabled %v, hint %q", sel.Selected, sel.Disabled(), bf.HintText)
		}
		lv := item("Log detail")
		if s := lv.Widget.(*widget.Select); s.Selected != "warn" || !s.Disabled() || lv.HintText != "Set by your IT department." {
			t.Errorf("log level: %q, disabled %v, hint %q", s.Selected, s.Disabled(), lv.HintText)
		}
		m := item("Pause on metered connections").Widget.(*widget.Check)
		if !m.Checked || m.Disabled() {
			t.Errorf("metered: checked %v, disabled %v", m.Checked, m.Disabled())
		}
		test.Tap(m)
	})
	waitFor(t, "the change to reach the backend", func() bool {
		var ok bool
		b.with(func() {
			ok = slices.ContainsFunc(b.changes, func(v settings.Values) bool {
				return v.PauseOnMetered != nil && !*v.PauseOnMetered && v.BackfillDays == nil
			})
		})
		return ok
	})
}
