package gui

import (
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// setting returns a setting's control in the settings window and the
// hint under it, by the form's label or the check box's text.
func setting(t *testing.T, u *UI, label string) (fyne.CanvasObject, string) {
	t.Helper()
	var form *widget.Form
	serial(func() { form, _ = find(u.settings.Content(), func(*widget.Form) bool { return true }) })
	if form == nil {
		t.Fatal("no form in the settings window")
	}
	for _, it := range form.Items {
		box, ok := it.Widget.(*fyne.Container)
		if !ok || len(box.Objects) < 2 {
			continue
		}
		c, hint := box.Objects[0], box.Objects[1].(*widget.Label)
		h := ""
		if hint.Visible() {
			h = hint.Text
		}
		if it.Text == label {
			return c, h
		}
		if chk, ok := c.(*widget.Check); ok && chk.Text == label {
			return c, h
		}
	}
	t.Fatalf("no setting %q", label)
	return nil, ""
}

// TestSettingsWindowShowsWhoSetsWhat: the settings window shows the
// effective values of sync/settings; a setting the platform or IT sets is
// disabled and says who sets it; the log detail is in words; "Pause on
// metered connections" says why it cannot be used when the computer does
// not tell; the user's change goes to the backend as that one setting.
func TestSettingsWindowShowsWhoSetsWhat(t *testing.T) {
	st := running(engine.UpToDate)
	st.Settings = settings.Resolve(settings.Layers{
		Platform: settings.Values{BackfillDays: settings.Int(14)},
		Locked:   settings.Values{LogLevel: settings.String("warn")},
		User:     settings.Values{BackfillDays: settings.Int(7), PauseOnMetered: settings.Bool(true)},
	})
	b := newFake(st)
	metered := true
	u, _ := newUI(t, b, nil, func(o *Options) { o.Metered = func() (bool, bool) { return false, metered } })
	serial(u.ShowSettings)
	bf, hint := setting(t, u, "Relay existing mail from")
	if sel := bf.(*widget.Select); sel.Selected != "The last 14 days" || !sel.Disabled() || hint != "Set by your platform. Mail already relayed stays relayed." {
		t.Errorf("backfill: %q, disabled %v, hint %q", sel.Selected, sel.Disabled(), hint)
	}
	lv, hint := setting(t, u, "Log detail")
	if s := lv.(*widget.Select); s.Selected != "Problems only" || !s.Disabled() || !strings.HasPrefix(hint, "Locked by your IT department.") {
		t.Errorf("log level: %q, disabled %v, hint %q", s.Selected, s.Disabled(), hint)
	}
	mc, _ := setting(t, u, "Pause on metered connections")
	m := mc.(*widget.Check)
	if !m.Checked || m.Disabled() {
		t.Errorf("metered: checked %v, disabled %v", m.Checked, m.Disabled())
	}
	serial(func() { test.Tap(m) })
	waitFor(t, "the change to reach the backend", func() bool {
		var ok bool
		b.with(func() {
			ok = slices.ContainsFunc(b.changes, func(v settings.Values) bool {
				return v.PauseOnMetered != nil && !*v.PauseOnMetered && v.BackfillDays == nil
			})
		})
		return ok
	})

	// Where the computer does not say whether it is metered: disabled,
	// with the reason.
	metered = false
	serial(func() { u.settings.Close() })
	serial(u.ShowSettings)
	mc, hint = setting(t, u, "Pause on metered connections")
	if !mc.(*widget.Check).Disabled() || !strings.Contains(hint, "does not say whether its connection is metered") {
		t.Errorf("metered with no answer from the OS: disabled %v, hint %q", mc.(*widget.Check).Disabled(), hint)
	}

	// The log detail is chosen in words and stored as the level.
	st.Settings = settings.Resolve(settings.Layers{})
	b.set(st)
	serial(func() { u.apply(st); u.settings.Close() })
	serial(u.ShowSettings)
	lv, _ = setting(t, u, "Log detail")
	serial(func() { lv.(*widget.Select).SetSelected("Everything (for troubleshooting)") })
	waitFor(t, "the log level", func() bool {
		var ok bool
		b.with(func() {
			ok = slices.ContainsFunc(b.changes, func(v settings.Values) bool { return v.LogLevel != nil && *v.LogLevel == "debug" })
		})
		return ok
	})
}
