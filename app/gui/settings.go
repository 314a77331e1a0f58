package gui

import (
	"net/url"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/sync/config"
)

// Preference keys (fyne preferences: UI choices, not sync settings).
const (
	prefBackfill     = "backfill_days"
	prefPauseMetered = "pause_on_metered"
)

// backfillChoices are the backfill windows offered, in order.
var backfillChoices = []struct {
	label string
	days  int
}{
	{"The last 7 days", 7},
	{"The last 30 days", 30},
	{"The last 90 days", 90},
	{"The last year", 365},
	{"Everything", config.BackfillAll},
}

// backfillDefault is the backfill window for new mailboxes.
func backfillDefault(app fyne.App) int {
	return app.Preferences().IntWithFallback(prefBackfill, config.DefaultBackfillDays)
}

var logLevels = []string{"debug", "info", "warn", "error"}

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

func (u *UI) settingsContent(w fyne.Window) fyne.CanvasObject {
	var labels []string
	current := backfillDefault(u.app)
	sel := ""
	for _, c := range backfillChoices {
		labels = append(labels, c.label)
		if c.days == current {
			sel = c.label
		}
	}
	backfill := widget.NewSelect(labels, nil)
	backfill.SetSelected(sel)
	backfill.OnChanged = func(label string) {
		for _, c := range backfillChoices {
			if c.label == label {
				u.app.Preferences().SetInt(prefBackfill, c.days)
				if err := u.b().SetBackfillDays(c.days); err != nil {
					dialog.ShowError(err, w)
				}
			}
		}
	}

	level := widget.NewSelect(logLevels, nil)
	lv := u.last.LogLevel
	if lv == "" {
		lv = "info"
	}
	level.SetSelected(lv)
	level.OnChanged = func(l string) {
		if err := u.b().SetLogLevel(l); err != nil {
			dialog.ShowError(err, w)
		}
	}

	form := widget.NewForm(widget.NewFormItem("Relay existing mail from", backfill))
	form.Items[0].HintText = "Mail already relayed stays relayed; your platform's setting, if it has one, wins."

	if u.o.Autostart != nil {
		login := widget.NewCheck("Start Inbox Relay when I log in", nil)
		login.SetChecked(u.o.Autostart.Enabled())
		login.OnChanged = func(on bool) {
			if err := u.o.Autostart.SetEnabled(on); err != nil {
				dialog.ShowError(err, w)
				login.SetChecked(!on)
			}
		}
		form.Append("", login)
	}
	if u.o.Metered != nil {
		metered := widget.NewCheck("Pause on metered connections", func(on bool) {
			u.app.Preferences().SetBool(prefPauseMetered, on)
			u.Refresh()
		})
		metered.SetChecked(u.app.Preferences().Bool(prefPauseMetered))
		form.Append("", metered)
		if _, ok := u.o.Metered(); !ok {
			metered.Disable()
			form.Items[len(form.Items)-1].HintText = "This computer does not say whether its connection is metered."
		}
	}
	form.Append("Log detail", level)
	logs := widget.NewButton("Open the log folder", func() {
		dir := u.b().LogDir()
		if err := u.app.OpenURL(&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}); err != nil {
			dialog.ShowInformation("Log folder", "The logs are in "+dir+".", w)
		}
	})
	form.Append("Logs", logs)
	return container.NewPadded(form)
}
