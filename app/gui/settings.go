package gui

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// Preference keys of the fyne preferences in which earlier versions kept
// two settings; migratePrefs moves them into the user's settings.
const (
	prefBackfill     = "backfill_days"
	prefPauseMetered = "pause_on_metered"
)

// migratePrefs moves the settings earlier versions kept as fyne
// preferences into the user's settings (config.json), where every front
// end reads them, unless the user's settings already have them; then it
// forgets the preferences.
func migratePrefs(p fyne.Preferences, r *connector.Runner) {
	cfg, err := r.Home().Load()
	if err != nil {
		return // tried again at the next start
	}
	var change settings.Values
	const none = -1 << 20
	if d := p.IntWithFallback(prefBackfill, none); d != none && !cfg.Settings.Has(settings.BackfillDays) {
		change.BackfillDays = settings.Int(d)
	}
	if p.Bool(prefPauseMetered) && !cfg.Settings.Has(settings.PauseOnMetered) {
		change.PauseOnMetered = settings.Bool(true)
	}
	if !change.Empty() {
		if err := r.SetUserSettings(change); err != nil {
			r.Log().Info("an earlier version's preference was not kept", "err", err)
		}
	}
	p.RemoveValue(prefBackfill)
	p.RemoveValue(prefPauseMetered)
}

// backfillChoices are the backfill windows offered, in order.
var backfillChoices = []struct {
	label string
	days  int
}{
	{"The last 7 days", 7},
	{"The last 30 days", 30},
	{"The last 90 days", 90},
	{"The last year", 365},
	{"Everything", settings.BackfillAll},
}

// ShowSettings opens the settings window (or brings it forward).
func (u *UI) ShowSettings() {
	if u.settings != nil {
		u.settings.Show()
		u.settings.RequestFocus()
		return
	}
	w := u.app.NewWindow("Inbox Relay settings")
	w.SetIcon(appIcon())
	w.SetContent(u.settingsContent(w))
	w.Resize(fyne.NewSize(520, 0))
	w.SetOnClosed(func() { u.settings = nil })
	u.settings = w
	w.Show()
}

// source says who sets k when the user cannot (words.Source), naming IT's
// policy file for what it locks.
func (u *UI) source(eff settings.Effective, k settings.Key) string {
	h := words.Source(eff, k)
	if eff.Locked(k) && u.last.PolicyPath != "" {
		h = strings.TrimSuffix(h, ".") + " (" + u.last.PolicyPath + ")."
	}
	return h
}

func (u *UI) settingsContent(w fyne.Window) fyne.CanvasObject {
	eff := u.last.Settings
	set := func(change settings.Values) {
		b := u.b()
		go func() {
			err := b.SetSettings(change)
			u.do(func() {
				if err != nil {
					dialog.ShowInformation("Not changed", words.Setting(err), w)
				}
			})
			u.Refresh()
		}()
	}
	var labels []string
	sel := ""
	for _, c := range backfillChoices {
		labels = append(labels, c.label)
		if c.days == eff.BackfillDays {
			sel = c.label
		}
	}
	if sel == "" { // a window the platform or IT chose
		sel = fmt.Sprintf("The last %d days", eff.BackfillDays)
		labels = append(labels, sel)
	}
	backfill := widget.NewSelect(labels, nil)
	backfill.SetSelected(sel)
	backfill.OnChanged = func(label string) {
		for _, c := range backfillChoices {
			if c.label == label {
				set(settings.Values{BackfillDays: settings.Int(c.days)})
			}
		}
	}

	level := widget.NewSelect(settings.LogLevels, nil)
	level.SetSelected(eff.LogLevel)
	level.OnChanged = func(l string) { set(settings.Values{LogLevel: settings.String(l)}) }

	// Every item gets its hint before the form is built: a hint set on a
	// form already shown is not drawn.
	var items []*widget.FormItem
	add := func(label string, w fyne.Disableable, k settings.Key, hint string) *widget.FormItem {
		it := widget.NewFormItem(label, w.(fyne.CanvasObject))
		it.HintText = hint
		if who := u.source(eff, k); who != "" {
			w.Disable()
			it.HintText = strings.TrimSpace(who + " " + hint)
		}
		items = append(items, it)
		return it
	}
	add("Relay existing mail from", backfill, settings.BackfillDays, "Mail already relayed stays relayed.")

	if u.o.Autostart != nil {
		login := widget.NewCheck("Start Inbox Relay when I log in", nil)
		login.SetChecked(u.o.Autostart.Enabled())
		login.OnChanged = func(on bool) {
			if err := u.o.Autostart.SetEnabled(on); err != nil {
				u.logf("start at login was not changed", err)
				dialog.ShowInformation("Not changed", words.Autostart, w)
				login.SetChecked(!on)
				return
			}
			set(settings.Values{StartAtLogin: settings.Bool(on)})
		}
		add("", login, settings.StartAtLogin, "")
	}
	if u.o.Metered != nil {
		metered := widget.NewCheck("Pause on metered connections", nil)
		metered.SetChecked(eff.PauseOnMetered)
		metered.OnChanged = func(on bool) { set(settings.Values{PauseOnMetered: settings.Bool(on)}) }
		it := add("", metered, settings.PauseOnMetered, "")
		if _, ok := u.o.Metered(); !ok && !metered.Disabled() {
			metered.Disable()
			it.HintText = "This computer does not say whether its connection is metered."
		}
	}
	add("Log detail", level, settings.LogLevel, "")
	logs := widget.NewButton("Open the log folder", func() {
		dir := u.b().LogDir()
		if err := u.app.OpenURL(&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}); err != nil {
			dialog.ShowInformation("Log folder", "The logs are in "+dir+".", w)
		}
	})
	items = append(items, widget.NewFormItem("Logs", logs))
	form := widget.NewForm(items...)
	return container.NewPadded(form)
}
