package gui

import (
	"fmt"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/assets"
)

func appIcon() fyne.Resource { return fyne.NewStaticResource("app.png", assets.App()) }

// maxContentWidth is the widest the window's content grows: lines longer
// than this are hard to read, and the rest of a wide window stays empty
// on both sides.
const maxContentWidth = 680

// statusView is the status window's content, built once and updated in
// place by render: open sections, the keyboard focus, a selection in the
// details and the scroll position survive every change of the status.
type statusView struct {
	u       *UI
	content fyne.CanvasObject

	icon     *canvas.Image
	iconName string
	headline *widget.Label
	explain  *widget.Label
	header   *fyne.Container
	fixRow   *fyne.Container
	body     *fyne.Container
	fix      *keyButton

	grid     *fyne.Container // one aligned grid: platform, computer, then each mailbox
	platform *widget.Label
	device   *widget.Label
	unpair   *keyButton
	accounts map[string]*accountRows // by lower-case address
	order    []string

	details     *widget.Label
	detailsItem *widget.AccordionItem
	detailsBox  *widget.Accordion
	add         *keyButton
	noTray      *widget.Label
	pause       *keyButton
	quit        *keyButton
	leaveDemo   *keyButton
}

// accountRows are one mailbox's rows in the grid.
type accountRows struct {
	email                                   string
	title, state, relayed, waiting, sending *widget.Label
	rejected, undeliverable                 *widget.Label
	rejections                              *widget.Label
	rejectionsBox                           *widget.Accordion
	problem                                 *widget.Label
	fix, remove                             *keyButton
	rows                                    []fyne.CanvasObject // in the grid, in pairs
}

// wrapped is a label that wraps at word boundaries.
func wrapped(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// button is a button of the status window: Enter presses it, Esc closes
// the window.
func (v *statusView) button(label string, icon fyne.Resource, tapped func()) *keyButton {
	b := newKeyButton(label, icon, tapped)
	b.esc = v.u.hideWindow
	return b
}

func (v *statusView) importantButton() *keyButton {
	b := v.button("", nil, nil)
	b.Importance = widget.HighImportance
	return b
}

// caption is a grid's label column text.
func caption(text string) *widget.Label {
	return widget.NewLabelWithStyle(text, fyne.TextAlignTrailing, fyne.TextStyle{})
}

// darkTheme reports whether the app's theme draws on a dark background.
func darkTheme() bool {
	r, g, b, _ := theme.Color(theme.ColorNameBackground).RGBA()
	return (299*r+587*g+114*b)/1000 < 0x8000
}

func newStatusView(u *UI) *statusView {
	v := &statusView{u: u, accounts: map[string]*accountRows{}}
	v.icon = canvas.NewImageFromResource(appIcon())
	v.icon.FillMode = canvas.ImageFillContain
	v.icon.SetMinSize(fyne.NewSize(48, 48))
	v.headline = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.headline.SizeName = theme.SizeNameSubHeadingText
	v.headline.Wrapping = fyne.TextWrapWord
	v.explain = wrapped("")
	v.fix = v.importantButton()
	v.fix.Hide()
	v.fixRow = container.NewHBox(v.fix)
	v.header = container.NewVBox(v.headline, v.explain, v.fixRow)
	header := container.NewBorder(nil, nil, container.NewVBox(v.icon), nil, v.header)

	v.platform = widget.NewLabel("")
	v.platform.Wrapping = fyne.TextWrapWord
	v.device = widget.NewLabel("")
	v.unpair = v.button("Unpair…", nil, u.confirmUnpair)
	v.unpair.Importance = widget.LowImportance
	v.grid = container.New(layout.NewFormLayout(),
		caption("Platform"), v.platform,
		caption("This computer"), container.NewBorder(nil, nil, nil, v.unpair, v.device),
	)

	v.details = widget.NewLabel("")
	v.details.TextStyle.Monospace = true
	v.details.Selectable = true
	v.details.Wrapping = fyne.TextWrapBreak
	copyBtn := v.button("Copy details for IT", theme.ContentCopyIcon(), func() {
		u.app.Clipboard().SetContent(v.details.Text)
	})
	v.detailsItem = widget.NewAccordionItem("Details for IT", container.NewVBox(v.details, container.NewHBox(copyBtn)))
	v.detailsBox = widget.NewAccordion(v.detailsItem)

	v.noTray = wrapped("Your desktop shows no tray icons, so Inbox Relay lives in this window: closing it keeps relaying, and starting Inbox Relay again brings it back.")
	v.noTray.Hide()

	v.pause = v.button("Pause syncing", theme.MediaPauseIcon(), u.togglePause)
	v.quit = v.button("Quit", theme.LogoutIcon(), u.quit)
	v.quit.Hide()
	v.leaveDemo = v.button("Leave demo", theme.NavigateBackIcon(), u.leaveDemo)
	v.leaveDemo.Hide()
	v.add = v.button("Add mailbox…", theme.ContentAddIcon(), func() { u.showSetup(true) })
	buttons := container.NewHBox(v.add, v.leaveDemo, layout.NewSpacer(),
		v.button("Sync now", theme.ViewRefreshIcon(), u.syncNow),
		v.pause,
		v.button("Settings…", theme.SettingsIcon(), u.ShowSettings),
		v.button("About", theme.InfoIcon(), u.showAbout),
		v.quit,
	)
	v.body = container.NewVBox(header, widget.NewSeparator(), v.grid, v.detailsBox, v.noTray)
	v.content = container.NewBorder(nil, limitWidth(container.NewPadded(buttons)), nil, nil,
		container.NewVScroll(limitWidth(container.NewPadded(v.body))))
	return v
}

// headline is the window's headline: the verdict, and since when it
// holds ("All mail relayed · 2 min ago").
func (m model) headline() string {
	if m.Since == "" {
		return m.Headline
	}
	return m.Headline + " · " + m.Since
}

// render shows m; on the fyne goroutine.
func (v *statusView) render(m model) {
	dark := darkTheme()
	if name := fmt.Sprint(m.Tone.icon(), dark); name != v.iconName {
		v.iconName = name
		v.icon.Resource = trayIcon(m.Tone.icon(), dark)
		v.icon.Refresh()
	}
	head := m.headline()
	imp := toneImportance(m.Tone)
	if v.headline.Text != head || v.headline.Importance != imp {
		v.headline.Importance = imp
		v.headline.SetText(head)
	}
	setText(v.explain, m.Explain)
	showIf(v.explain, m.Explain != "")
	v.setFix(v.fix, m.Fix, m.FixEmail)
	showIf(v.fixRow, v.fix.Visible())

	line := m.Platform.Host + " — " + m.Platform.Line
	setText(v.platform, line)
	setText(v.device, m.Platform.Device)
	if v.u.demo {
		v.unpair.Hide()
	} else {
		v.unpair.Show()
	}

	v.renderAccounts(m.Accounts)
	// Rows shown or hidden: lay the grid and the header out again (their
	// widgets stay).
	v.header.Refresh()
	v.grid.Refresh()
	v.body.Refresh()
	if v.details.Text != m.Details {
		v.details.SetText(m.Details)
	}
	if v.u.hasTray {
		v.noTray.Hide()
		v.quit.Hide()
	} else {
		v.noTray.Show()
		v.quit.Show()
	}
	if v.u.demo {
		v.leaveDemo.Show()
		v.add.Hide() // a mailbox added to the throw-away demo home would vanish with it
	} else {
		v.leaveDemo.Hide()
		v.add.Show()
	}
	if m.Paused {
		setButton(v.pause, "Resume syncing", theme.MediaPlayIcon())
	} else {
		setButton(v.pause, "Pause syncing", theme.MediaPauseIcon())
	}
}

// renderAccounts adds, updates and removes the mailboxes' rows, keyed by
// address: the rows of a mailbox that stays are never rebuilt.
func (v *statusView) renderAccounts(accts []accountModel) {
	var order []string
	for _, a := range accts {
		key := strings.ToLower(a.Email)
		order = append(order, key)
		r := v.accounts[key]
		if r == nil {
			r = v.newAccountRows(a.Email)
			v.accounts[key] = r
		}
		r.render(v, a)
	}
	if !slices.Equal(order, v.order) {
		// The set or the order of mailboxes changed: lay the grid out
		// again from the rows kept (the widgets themselves stay).
		objs := v.grid.Objects[:4]
		for _, key := range order {
			objs = append(objs, v.accounts[key].rows...)
		}
		for key := range v.accounts {
			if !slices.Contains(order, key) {
				delete(v.accounts, key)
			}
		}
		v.grid.Objects = objs
		v.grid.Refresh()
		v.order = order
	}
}

func (v *statusView) newAccountRows(email string) *accountRows {
	r := &accountRows{email: email}
	r.title = widget.NewLabelWithStyle(email, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.state = wrapped("")
	r.relayed = widget.NewLabel("")
	r.waiting = widget.NewLabel("")
	r.sending = wrapped("")
	r.rejected = widget.NewLabel("")
	r.undeliverable = wrapped("")
	r.undeliverable.Selectable = true
	r.rejections = wrapped("")
	r.rejections.Selectable = true
	r.rejectionsBox = widget.NewAccordion(widget.NewAccordionItem("Why messages were refused", r.rejections))
	r.problem = wrapped("")
	r.problem.Importance = widget.DangerImportance
	r.fix = v.importantButton()
	r.remove = v.button("Remove…", nil, func() { v.u.confirmRemove(email) })
	r.remove.Importance = widget.LowImportance
	pair := func(label string, o fyne.CanvasObject) []fyne.CanvasObject {
		return []fyne.CanvasObject{caption(label), o}
	}
	r.rows = append(r.rows, widget.NewSeparator(), widget.NewSeparator())
	r.rows = append(r.rows, caption("Mailbox"), container.NewBorder(nil, nil, nil, r.remove, r.title))
	r.rows = append(r.rows, pair("Status", r.state)...)
	r.rows = append(r.rows, pair("Relayed", r.relayed)...)
	r.rows = append(r.rows, pair("Waiting", r.waiting)...)
	r.rows = append(r.rows, pair("Sending", r.sending)...)
	r.rows = append(r.rows, pair("Refused", container.NewVBox(r.rejected, r.rejectionsBox))...)
	r.rows = append(r.rows, pair("Not delivered", r.undeliverable)...)
	problemCaption := caption("Problem")
	problemCaption.Importance = widget.DangerImportance
	r.rows = append(r.rows, problemCaption, container.NewVBox(r.problem, container.NewHBox(r.fix)))
	return r
}

// showRow shows or hides the grid row whose content is o.
func showRow(rows []fyne.CanvasObject, o fyne.CanvasObject, show bool) {
	for i := 1; i < len(rows); i += 2 {
		if rows[i] == o || containsObject(rows[i], o) {
			if show {
				rows[i-1].Show()
				rows[i].Show()
			} else {
				rows[i-1].Hide()
				rows[i].Hide()
			}
		}
	}
}

func containsObject(parent, o fyne.CanvasObject) bool {
	c, ok := parent.(*fyne.Container)
	if !ok {
		return false
	}
	for _, child := range c.Objects {
		if child == o || containsObject(child, o) {
			return true
		}
	}
	return false
}

func (r *accountRows) render(v *statusView, a accountModel) {
	setText(r.state, a.State)
	r.state.Importance = toneImportance(a.Tone)
	if a.Tone == toneGood || a.Tone == toneBusy {
		r.state.Importance = widget.MediumImportance
	}
	r.state.Refresh()
	setText(r.relayed, a.Relayed)
	setText(r.waiting, a.Waiting)
	showRow(r.rows, r.waiting, a.Waiting != "")
	setText(r.sending, a.Sending)
	showRow(r.rows, r.sending, a.Sending != "")
	setText(r.rejected, a.Rejected)
	setText(r.rejections, strings.Join(a.Rejections, "\n"))
	showRow(r.rows, r.rejected, a.Rejected != "")
	undeliverable := a.Undeliverable
	if len(a.Unreadable) > 0 {
		undeliverable += "\n" + strings.Join(a.Unreadable, "\n")
	}
	setText(r.undeliverable, undeliverable)
	showRow(r.rows, r.undeliverable, a.Undeliverable != "")
	if len(a.Rejections) == 0 {
		r.rejectionsBox.Hide()
	} else {
		r.rejectionsBox.Show()
	}
	// The headline's own problem is said and fixed there: not twice.
	problem := a.Problem
	if m := v.u.model; a.Fix == m.Fix && (m.FixEmail == "" || strings.EqualFold(a.Email, m.FixEmail)) {
		problem = ""
	}
	setText(r.problem, problem)
	showRow(r.rows, r.problem, problem != "")
	v.setFix(r.fix, a.Fix, a.Email)
	if v.u.demo {
		r.remove.Hide()
	} else {
		r.remove.Show()
	}
}

// setFix makes b the button of a fix (hidden when there is none).
func (v *statusView) setFix(b *keyButton, fix words.Fix, email string) {
	label, icon, do := v.u.fixAction(fix, email)
	if label == "" {
		b.Hide()
		return
	}
	b.OnTapped = do
	setButton(b, label, icon)
	b.Show()
}

// fixAction is the label, icon and action of the button that repairs a
// problem; "" when none can.
func (u *UI) fixAction(fix words.Fix, email string) (string, fyne.Resource, func()) {
	switch fix {
	case words.FixPassword:
		return "Enter password…", theme.AccountIcon(), func() { u.showPasswordFix(email) }
	case words.FixTrust:
		return "Review certificate…", theme.VisibilityIcon(), func() { u.showTrustFix(email) }
	case words.FixPair:
		return "Pair again…", theme.LoginIcon(), func() { u.showPairAgain() }
	case words.FixRetry:
		return "Try now", theme.ViewRefreshIcon(), u.syncNow
	}
	return "", nil, nil
}

// toneImportance colours a headline by its tone.
func toneImportance(t tone) widget.Importance {
	switch t {
	case toneGood:
		return widget.SuccessImportance
	case toneBusy, toneSetup:
		return widget.HighImportance
	case toneOffline:
		return widget.WarningImportance
	case toneAction:
		return widget.DangerImportance
	}
	return widget.MediumImportance
}

// showIf shows o when show holds, else hides it.
func showIf(o fyne.CanvasObject, show bool) {
	if show {
		o.Show()
	} else {
		o.Hide()
	}
}

// setText changes a label only when its text differs, so an unchanged
// label is not redrawn (nor its selection lost).
func setText(l *widget.Label, text string) {
	if l.Text != text {
		l.SetText(text)
	}
}

func setButton(b *keyButton, text string, icon fyne.Resource) {
	if b.Text != text || b.Icon != icon {
		b.Text, b.Icon = text, icon
		b.Refresh()
	}
}

// limitWidth centres o and keeps it at most maxContentWidth wide.
func limitWidth(o fyne.CanvasObject) fyne.CanvasObject {
	return container.New(maxWidthLayout{maxContentWidth}, o)
}

// maxWidthLayout lays its objects out at most max wide, centred.
type maxWidthLayout struct{ max float32 }

func (l maxWidthLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	w := min(size.Width, l.max)
	for _, o := range objs {
		o.Resize(fyne.NewSize(w, size.Height))
		o.Move(fyne.NewPos((size.Width-w)/2, 0))
	}
}

func (l maxWidthLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var s fyne.Size
	for _, o := range objs {
		s = s.Max(o.MinSize())
	}
	return s
}
