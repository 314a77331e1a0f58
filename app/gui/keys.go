package gui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// Enter and Esc everywhere: fyne gives a key to the focused widget only,
// and its entries and buttons ignore Esc (and buttons Enter), so every
// form and dialog uses these: Enter presses the default button, Esc
// cancels; with nothing focused, the canvas does the same (keyHandler).

// keyEntry is an entry on which Esc cancels the form it is in; Enter
// submits it through OnSubmitted, as for any entry.
type keyEntry struct {
	widget.Entry
	esc func()
}

func newKeyEntry(password bool) *keyEntry {
	e := &keyEntry{}
	e.Password = password
	e.Wrapping = fyne.TextWrapOff
	e.ExtendBaseWidget(e)
	if password {
		e.Wrapping = fyne.TextWrap(fyne.TextTruncateClip)
		reveal := &tapIcon{}
		reveal.SetResource(theme.VisibilityOffIcon())
		reveal.ExtendBaseWidget(reveal)
		reveal.tap = func() {
			e.Password = !e.Password
			reveal.SetResource(map[bool]fyne.Resource{true: theme.VisibilityOffIcon(), false: theme.VisibilityIcon()}[e.Password])
			e.Refresh()
		}
		e.ActionItem = reveal
	}
	return e
}

// TypedKey cancels on Esc.
func (e *keyEntry) TypedKey(k *fyne.KeyEvent) {
	if k.Name == fyne.KeyEscape && e.esc != nil {
		e.esc()
		return
	}
	e.Entry.TypedKey(k)
}

// keyButton is a button that Enter presses as well as Space, and on which
// Esc cancels the form it is in.
type keyButton struct {
	widget.Button
	esc func()
}

func newKeyButton(label string, icon fyne.Resource, tapped func()) *keyButton {
	b := &keyButton{}
	b.Text, b.Icon, b.OnTapped = label, icon, tapped
	b.ExtendBaseWidget(b)
	return b
}

// TypedKey presses on Enter and cancels on Esc.
func (b *keyButton) TypedKey(k *fyne.KeyEvent) {
	switch {
	case k.Name == fyne.KeyReturn || k.Name == fyne.KeyEnter:
		if !b.Disabled() {
			b.Tapped(nil)
		}
	case k.Name == fyne.KeyEscape && b.esc != nil:
		b.esc()
	default:
		b.Button.TypedKey(k)
	}
}

// keyHandler is the canvas's key handler for keys no widget took: Enter
// runs ok, Esc runs cancel (either may be nil).
func keyHandler(ok, cancel func()) func(*fyne.KeyEvent) {
	return func(k *fyne.KeyEvent) {
		switch {
		case (k.Name == fyne.KeyReturn || k.Name == fyne.KeyEnter) && ok != nil:
			ok()
		case k.Name == fyne.KeyEscape && cancel != nil:
			cancel()
		}
	}
}

// tapIcon is an icon that does something when clicked, and stays out of
// the Tab order (the password's reveal toggle: Tab goes from the password
// to the next field).
type tapIcon struct {
	widget.Icon
	tap func()
}

// Tapped runs the icon's action.
func (i *tapIcon) Tapped(*fyne.PointEvent) { i.tap() }
