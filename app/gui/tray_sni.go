//go:build linux || freebsd || openbsd || netbsd

package gui

import (
	"slices"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/systray"
)

// newTray returns the tray of this desktop: a StatusNotifierItem on the
// session bus, spoken through fyne.io/systray directly. fyne's own tray
// (desktop.App.SetSystemTrayMenu) would do the same, but it also creates a
// hidden window with an OpenGL context to learn of a quit request, which
// loads the whole GL driver (some 70 MiB under Xvfb) before the user ever
// opens a window; and it runs menu actions through fyne's queue, where the
// app cannot see them to wake its resting loop (rest.go). do runs a menu
// item's action on the fyne goroutine.
func newTray(_ fyne.App, do func(func())) Tray {
	t := &sniTray{do: do}
	start, _ := systray.RunWithExternalLoop(func() { systray.SetTitle("Inbox Relay") }, nil)
	start()
	return t
}

// sniTray is a Tray on fyne.io/systray. A menu whose items keep their
// kinds and places is updated in place (only the labels that changed);
// any other menu replaces the whole one.
type sniTray struct {
	do func(func())

	mu     sync.Mutex
	items  []*systray.MenuItem // nil for a separator
	acts   []*func()           // what each item does now
	labels []string
}

func (t *sniTray) SetIcon(icon fyne.Resource) { systray.SetIcon(icon.Content()) }
func (t *sniTray) SetTooltip(text string)     { systray.SetTooltip(text) }

func (t *sniTray) SetMenu(m *fyne.Menu) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sameShape(m) {
		for i, it := range m.Items {
			if it.IsSeparator {
				continue
			}
			*t.acts[i] = it.Action
			if it.Label != t.labels[i] {
				t.labels[i] = it.Label
				t.items[i].SetTitle(it.Label)
			}
		}
		return
	}
	// Removing the items closes their ClickedCh, which ends their
	// goroutines.
	systray.ResetMenu()
	t.items, t.acts, t.labels = nil, nil, nil
	for _, it := range m.Items {
		act := it.Action
		t.acts = append(t.acts, &act)
		t.labels = append(t.labels, it.Label)
		if it.IsSeparator {
			systray.AddSeparator()
			t.items = append(t.items, nil)
			continue
		}
		item := systray.AddMenuItem(it.Label, "")
		t.items = append(t.items, item)
		go t.clicks(item.ClickedCh, t.acts[len(t.acts)-1])
	}
}

// sameShape reports whether m has the items of the menu shown, in the
// same places, separators where they are; t.mu is held.
func (t *sniTray) sameShape(m *fyne.Menu) bool {
	if len(m.Items) != len(t.items) {
		return false
	}
	return slices.EqualFunc(m.Items, t.items, func(it *fyne.MenuItem, shown *systray.MenuItem) bool {
		return it.IsSeparator == (shown == nil)
	})
}

// clicks runs act on the fyne goroutine for every click, until the item
// is removed.
func (t *sniTray) clicks(ch <-chan struct{}, act *func()) {
	for range ch {
		t.mu.Lock()
		f := *act
		t.mu.Unlock()
		if f != nil {
			t.do(f)
		}
	}
}

// restingLoop: fyne's loop may rest here (rest.go), since the tray's
// clicks come through the app's own Do.
const restingLoop = true
