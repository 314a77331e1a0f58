package gui

import (
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/assets"
	"github.com/inboxrelay/inboxrelay/sync/engine"
)

func appIcon() fyne.Resource { return fyne.NewStaticResource("app.png", assets.App()) }

// statusKey is everything the status view shows, so the view is rebuilt
// only when something visible changed.
func statusKey(st Status, now time.Time, hasTray bool) string {
	var b strings.Builder
	fmt.Fprintln(&b, headline(st), platformLine(st), st.DeviceName, st.Paused, trayState(st), hasTray)
	for _, a := range accounts(st) {
		fmt.Fprintln(&b, a.Email, a.State, ago(a.LastSync, now), a.Relayed, a.RelayedToday, a.Backlog, a.Rejected, a.LastError, len(a.Rejections), outboxLine(a.Outbox))
		for _, r := range a.Rejections {
			fmt.Fprintln(&b, r.Folder, r.UID, r.Reason)
		}
	}
	return b.String()
}

// showStatus puts the status view in the window, rebuilding it only when
// what it shows changed.
func (u *UI) showStatus(st Status, now time.Time) {
	key := statusKey(st, now, u.hasTray)
	if u.mode == "status" && key == u.shown {
		return
	}
	u.mode, u.shown = "status", key
	u.win.SetContent(u.statusContent(st, now))
}

func (u *UI) statusContent(st Status, now time.Time) fyne.CanvasObject {
	icon := canvas.NewImageFromResource(trayIcon(trayState(st), u.tray.dark))
	icon.FillMode = canvas.ImageFillContain
	icon.SetMinSize(fyne.NewSize(40, 40))
	title := widget.NewLabelWithStyle("Inbox Relay", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameSubHeadingText
	head := widget.NewLabel(headline(st))
	head.Wrapping = fyne.TextWrapWord
	header := container.NewBorder(nil, nil, icon, nil, container.NewVBox(title, head))

	plat := widget.NewForm(
		widget.NewFormItem("Platform", widget.NewLabel(platformLine(st))),
		widget.NewFormItem("This computer", widget.NewLabel(st.DeviceName)),
	)
	platBox := container.NewVBox(plat)
	if words.PlatformState(st.Engine.Platform.State).Problem != "" {
		platBox.Add(container.NewHBox(layout.NewSpacer(), importantButton("Pair again…", theme.LoginIcon(), func() { u.showPairAgain() })))
	}
	cards := container.NewVBox(widget.NewCard("", "", platBox))
	for _, a := range accounts(st) {
		cards.Add(u.accountCard(a, now))
	}
	if !u.hasTray {
		note := widget.NewLabelWithStyle("Your desktop has no tray area, so Inbox Relay lives in this window: closing it keeps relaying, and starting Inbox Relay again brings it back.",
			fyne.TextAlignLeading, fyne.TextStyle{Italic: true})
		note.Wrapping = fyne.TextWrapWord
		cards.Add(note)
	}
	pause := widget.NewButtonWithIcon("Pause syncing", theme.MediaPauseIcon(), u.togglePause)
	if userPaused(st) {
		pause = widget.NewButtonWithIcon("Resume syncing", theme.MediaPlayIcon(), u.togglePause)
	}
	buttons := container.NewHBox(
		widget.NewButtonWithIcon("Add mailbox…", theme.ContentAddIcon(), func() { u.showSetup(true) }),
		layout.NewSpacer(),
		widget.NewButtonWithIcon("Sync now", theme.ViewRefreshIcon(), func() { go u.b().SyncNow(); u.Refresh() }),
		pause,
		widget.NewButtonWithIcon("Settings…", theme.SettingsIcon(), u.ShowSettings),
	)
	return container.NewBorder(container.NewPadded(header), container.NewPadded(buttons), nil, nil,
		container.NewVScroll(container.NewPadded(cards)))
}

func importantButton(label string, icon fyne.Resource, tapped func()) *widget.Button {
	b := widget.NewButtonWithIcon(label, icon, tapped)
	b.Importance = widget.HighImportance
	return b
}

// plural says "1 message" or "3 messages".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func (u *UI) accountCard(a engine.AccountStatus, now time.Time) fyne.CanvasObject {
	state := words.Account(a.State).Label
	if !a.LastSync.IsZero() {
		state += " · last sync " + ago(a.LastSync, now)
	}
	waiting := "nothing"
	if a.Backlog > 0 {
		waiting = plural(a.Backlog, "message")
	}
	form := widget.NewForm(
		widget.NewFormItem("Relayed", widget.NewLabel(fmt.Sprintf("%d today · %d in total", a.RelayedToday, a.Relayed))),
		widget.NewFormItem("Waiting", widget.NewLabel(waiting)),
	)
	if line := outboxLine(a.Outbox); line != "" {
		l := widget.NewLabel(line)
		l.Wrapping = fyne.TextWrapWord
		form.Append("Sending", l)
	}
	if a.Rejected > 0 {
		form.Append("Rejected", widget.NewLabel(plural(a.Rejected, "message")+" refused by the platform"))
	}
	box := container.NewVBox(form)
	if len(a.Rejections) > 0 {
		list := container.NewVBox()
		for _, r := range a.Rejections {
			what := r.MessageID
			if what == "" {
				what = fmt.Sprintf("message %d", r.UID)
			}
			l := widget.NewLabel(fmt.Sprintf("%s in %s: %s", what, r.Folder, r.Reason))
			l.Wrapping = fyne.TextWrapWord
			list.Add(l)
		}
		box.Add(widget.NewAccordion(widget.NewAccordionItem("Why messages were rejected", list)))
	}
	if text, fix := problem(a); text != "" {
		msg := widget.NewLabel(text)
		msg.Wrapping = fyne.TextWrapWord
		msg.Importance = widget.WarningImportance
		row := container.NewBorder(nil, nil, widget.NewIcon(theme.WarningIcon()), u.fixButton(a.Email, fix), msg)
		box.Add(row)
		if a.LastError != "" {
			det := widget.NewLabel(a.LastError)
			det.Wrapping = fyne.TextWrapWord
			det.TextStyle.Monospace = true
			box.Add(widget.NewAccordion(widget.NewAccordionItem("Details for IT", det)))
		}
	}
	return widget.NewCard(a.Email, state, box)
}

// fixButton returns the button that repairs the problem, nil when none
// can.
func (u *UI) fixButton(email string, fix words.Fix) fyne.CanvasObject {
	switch fix {
	case words.FixPassword:
		return importantButton("Enter password…", theme.AccountIcon(), func() { u.showPasswordFix(email) })
	case words.FixTrust:
		return importantButton("Review certificate…", theme.VisibilityIcon(), func() { u.showTrustFix(email) })
	case words.FixPair:
		return importantButton("Pair again…", theme.LoginIcon(), func() { u.showPairAgain() })
	case words.FixRetry:
		return widget.NewButtonWithIcon("Try now", theme.ViewRefreshIcon(), func() { go u.b().SyncNow(); u.Refresh() })
	}
	return nil
}
