package gui

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/version"
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
	w.Resize(fyne.NewSize(600, 520))
	w.SetOnClosed(func() { u.settings = nil })
	w.Canvas().SetOnTypedKey(keyHandler(w.Close, w.Close))
	u.settings = w
	w.Show()
}

func (u *UI) settingsContent(w fyne.Window) fyne.CanvasObject {
	eff := u.last.Settings
	policy := u.last.PolicyPath
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
	// Each setting's hint is a wrapped line under it (a form's own hint
	// does not wrap): who locks it, what it does.
	var items []*widget.FormItem
	add := func(label string, c fyne.Disableable, k settings.Key, hint string) *widget.Label {
		if who := words.Locked(eff, k, policy); who != "" {
			c.Disable()
			hint = strings.TrimSpace(who + " " + hint)
		}
		h := wrapped(hint)
		h.SizeName = theme.SizeNameCaptionText
		if hint == "" {
			h.Hide()
		}
		items = append(items, widget.NewFormItem(label, container.NewVBox(c.(fyne.CanvasObject), h)))
		return h
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
		h := add("", metered, settings.PauseOnMetered, "Relaying waits while this computer uses a mobile hotspot or another metered connection.")
		if _, ok := u.o.Metered(); !ok && !metered.Disabled() {
			metered.Disable()
			h.SetText(words.Metered)
		}
	}

	var levels []string
	for _, l := range settings.LogLevels {
		levels = append(levels, words.LogLevel(l))
	}
	level := widget.NewSelect(levels, nil)
	level.SetSelected(words.LogLevel(eff.LogLevel))
	level.OnChanged = func(choice string) {
		for _, l := range settings.LogLevels {
			if words.LogLevel(l) == choice {
				set(settings.Values{LogLevel: settings.String(l)})
			}
		}
	}
	add("Log detail", level, settings.LogLevel, "What the log keeps; it never holds a password or a message.")

	dir := u.b().LogDir()
	logs := widget.NewButtonWithIcon("Open the log folder", theme.FolderOpenIcon(), func() { u.openFolder(dir) })
	support := container.NewHBox(logs)
	if u.o.SupportBundle != nil {
		support.Add(widget.NewButtonWithIcon("Save support bundle…", theme.DocumentSaveIcon(), func() { u.saveSupportBundle(w) }))
	}
	h := wrapped("The support bundle holds the logs, the settings and the status, never a password or a message.")
	h.SizeName = theme.SizeNameCaptionText
	items = append(items, widget.NewFormItem("For IT", container.NewVBox(support, h)))
	form := widget.NewForm(items...)
	closeBtn := newKeyButton("Close", nil, w.Close)
	closeBtn.esc = w.Close
	closeBtn.Importance = widget.HighImportance
	return container.NewPadded(container.NewBorder(nil, container.NewHBox(layout.NewSpacer(), closeBtn), nil, nil, form))
}

// saveSupportBundle asks where to save the support bundle and writes it.
func (u *UI) saveSupportBundle(w fyne.Window) {
	d := dialog.NewFileSave(func(f fyne.URIWriteCloser, err error) {
		if err != nil || f == nil {
			return
		}
		path := f.URI().Path()
		f.Close()
		go func() {
			err := u.o.SupportBundle(path)
			u.do(func() {
				if err != nil {
					dialog.ShowInformation("Support bundle", "The support bundle could not be saved: "+err.Error(), w)
					return
				}
				dialog.ShowInformation("Support bundle", "Saved as "+path+". Send it to your IT department.", w)
			})
		}()
	}, w)
	d.SetFileName("inboxrelay-support-" + u.o.Now().Format("2006-01-02") + ".zip")
	d.Show()
}

// openFolder opens a folder in the file manager, or says where it is.
func (u *UI) openFolder(dir string) {
	if err := u.app.OpenURL(&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}); err != nil {
		dialog.ShowInformation("Folder", "The folder is "+dir+".", u.win)
	}
}

// appVersion is the version About shows.
func appVersion() string { return version.Version }

// licences names the open-source modules Inbox Relay is built with and
// their licences.
const licences = "Inbox Relay is built with Fyne (BSD 3-Clause), go-imap, go-smtp, go-sasl and go-keyring (MIT), bbolt (MIT), godbus (BSD 2-Clause), systray (Apache 2.0) and Go (BSD 3-Clause). Their licence texts come with the source of each."
