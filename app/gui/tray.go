package gui

import (
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/inboxrelay/inboxrelay/assets"
)

// Tray is the system tray entry. The real one is the desktop driver's
// (desktopTray); tests record what they are given. Methods are called on
// the fyne goroutine only.
type Tray interface {
	// SetIcon shows icon in the tray.
	SetIcon(icon fyne.Resource)
	// SetMenu replaces the tray menu; it rebuilds the native menu, so it is
	// called only when a label really changed.
	SetMenu(menu *fyne.Menu)
}

// desktopTray is the tray of a desktop fyne app.
type desktopTray struct{ app desktop.App }

func (t desktopTray) SetIcon(icon fyne.Resource) { t.app.SetSystemTrayIcon(icon) }
func (t desktopTray) SetMenu(menu *fyne.Menu)    { t.app.SetSystemTrayMenu(menu) }

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

// trayPresenter keeps the tray in step with the status, touching it only
// when the icon or a label changed.
type trayPresenter struct {
	tray    Tray
	act     trayActions
	dark    bool
	icon    string
	labels  []string
	updates int // menus set, for tests
}

// menuLabels are the menu's labels for a status, in order; "" is a
// separator.
func menuLabels(st Status, now time.Time) []string {
	var l []string
	switch {
	case !st.Paired:
		l = append(l, "Not paired with the platform yet — open Inbox Relay to set up")
	case len(st.Accounts) == 0:
		l = append(l, "No mailbox yet — open Inbox Relay to add one")
	default:
		for _, a := range accounts(st) {
			l = append(l, accountLine(a, now))
		}
	}
	pause := "Pause syncing"
	if userPaused(st) {
		pause = "Resume syncing"
	}
	return append(l, "", "Sync now", pause, "", "Open Inbox Relay…", "Settings…", "", "Quit")
}

// update shows st; it must run on the fyne goroutine.
func (p *trayPresenter) update(st Status, now time.Time) {
	if p.tray == nil {
		return
	}
	if icon := trayState(st); icon != p.icon {
		p.icon = icon
		p.tray.SetIcon(trayIcon(icon, p.dark))
	}
	labels := menuLabels(st, now)
	if equal(labels, p.labels) {
		return
	}
	p.labels = labels
	p.updates++
	p.tray.SetMenu(p.menu(labels))
}

func (p *trayPresenter) menu(labels []string) *fyne.Menu {
	m := fyne.NewMenu("Inbox Relay")
	for _, l := range labels {
		var it *fyne.MenuItem
		switch l {
		case "":
			it = fyne.NewMenuItemSeparator()
		case "Sync now":
			it = fyne.NewMenuItem(l, p.act.syncNow)
		case "Pause syncing", "Resume syncing":
			it = fyne.NewMenuItem(l, p.act.togglePause)
		case "Open Inbox Relay…":
			it = fyne.NewMenuItem(l, p.act.openWindow)
		case "Settings…":
			it = fyne.NewMenuItem(l, p.act.openSettings)
		case "Quit":
			it = fyne.NewMenuItem(l, p.act.quit)
			it.IsQuit = true
		default: // an account line: opens the window on it
			it = fyne.NewMenuItem(l, p.act.openWindow)
		}
		m.Items = append(m.Items, it)
	}
	return m
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
