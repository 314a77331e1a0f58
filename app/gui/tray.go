package gui

import (
	"slices"

	"fyne.io/fyne/v2"

	"github.com/inboxrelay/inboxrelay/assets"
)

// Tray is the system tray entry. The real one is newTray's (a
// StatusNotifierItem of our own on Linux and the BSDs, fyne's elsewhere);
// tests record what they are given. Methods are called on the fyne
// goroutine only.
type Tray interface {
	// SetIcon shows icon in the tray.
	SetIcon(icon fyne.Resource)
	// SetMenu replaces the tray menu; it rebuilds the native menu, so it is
	// called only when a label really changed.
	SetMenu(menu *fyne.Menu)
	// SetTooltip sets the text shown on hovering the icon.
	SetTooltip(text string)
}

// trayIcon returns the icon resource for a state and panel shade.
func trayIcon(state string, dark bool) fyne.Resource {
	shade := "light"
	if dark {
		shade = "dark"
	}
	return fyne.NewStaticResource("tray-"+state+"-"+shade+".png", assets.Tray(state, dark))
}

// trayActions are what the menu's items do.
type trayActions struct {
	openWindow, openSettings, syncNow, togglePause, quit func()
}

// trayView keeps the tray in step with the model, touching it only when
// the icon, the tooltip or a label changed: a menu rebuild renumbers the
// native menu (and makes some panels flicker), so it never happens for
// nothing.
type trayView struct {
	tray    Tray
	act     trayActions
	dark    bool // the panel is dark
	icon    string
	tooltip string
	labels  []string
}

// menuLabels are the menu's labels for a model, in order; "" is a
// separator.
func menuLabels(m model) []string {
	pause := "Pause syncing"
	if m.Paused {
		pause = "Resume syncing"
	}
	l := slices.Clone(m.Menu)
	return append(l, "", "Sync now", pause, "", "Open Inbox Relay…", "Settings…", "", "Quit")
}

// render shows m; it must run on the fyne goroutine.
func (v *trayView) render(m model) {
	if v.tray == nil {
		return
	}
	if icon := m.Tone.icon(); icon != v.icon {
		v.icon = icon
		v.tray.SetIcon(trayIcon(icon, v.dark))
	}
	if m.Tooltip != v.tooltip {
		v.tooltip = m.Tooltip
		v.tray.SetTooltip(m.Tooltip)
	}
	labels := menuLabels(m)
	if slices.Equal(labels, v.labels) {
		return
	}
	v.labels = labels
	v.tray.SetMenu(v.menu(labels, len(m.Menu)))
}

// setDark redraws the icon for a panel of the other shade.
func (v *trayView) setDark(dark bool) {
	if v.dark == dark || v.tray == nil {
		v.dark = dark
		return
	}
	v.dark = dark
	if v.icon != "" {
		v.tray.SetIcon(trayIcon(v.icon, dark))
	}
}

// menu builds the menu: the first status lines open the window.
func (v *trayView) menu(labels []string, status int) *fyne.Menu {
	m := fyne.NewMenu("Inbox Relay")
	for i, l := range labels {
		var it *fyne.MenuItem
		switch {
		case i < status: // the verdict and the accounts: open the window on them
			it = fyne.NewMenuItem(l, v.act.openWindow)
		case l == "":
			it = fyne.NewMenuItemSeparator()
		case l == "Sync now":
			it = fyne.NewMenuItem(l, v.act.syncNow)
		case l == "Pause syncing" || l == "Resume syncing":
			it = fyne.NewMenuItem(l, v.act.togglePause)
		case l == "Open Inbox Relay…":
			it = fyne.NewMenuItem(l, v.act.openWindow)
		case l == "Settings…":
			it = fyne.NewMenuItem(l, v.act.openSettings)
		case l == "Quit":
			it = fyne.NewMenuItem(l, v.act.quit)
			it.IsQuit = true
		}
		m.Items = append(m.Items, it)
	}
	return m
}
