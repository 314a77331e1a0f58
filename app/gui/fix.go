package gui

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// modal is a dialog with a default and a cancel button, where Enter
// presses the default and Esc cancels, wherever the focus is.
type modal struct {
	u        *UI
	w        fyne.Window
	d        *dialog.CustomDialog
	ok       *keyButton
	cancel   *keyButton
	msg      *widget.Label
	entries  []*keyEntry
	prevKeys func(*fyne.KeyEvent)
}

// newModal builds a dialog on w. okLabel's button runs onOK (the dialog
// stays open: onOK closes it when done); cancelLabel closes it. When
// safeCancel is set, the cancel button is the default (Enter) and looks
// it: for questions whose yes cannot be undone lightly.
func (u *UI) newModal(w fyne.Window, title string, body fyne.CanvasObject, okLabel string, onOK func(), cancelLabel string, safeCancel bool) *modal {
	m := &modal{u: u, w: w, msg: wrapped("")}
	m.msg.Hide()
	m.ok = newKeyButton(okLabel, nil, onOK)
	m.cancel = newKeyButton(cancelLabel, nil, m.close)
	m.ok.esc, m.cancel.esc = m.close, m.close
	def := m.ok
	if safeCancel {
		def = m.cancel
		m.ok.Importance = widget.DangerImportance
	}
	def.Importance = widget.HighImportance
	buttons := []fyne.CanvasObject{m.cancel, m.ok}
	if okLabel == "" {
		buttons = []fyne.CanvasObject{m.cancel}
	}
	m.d = dialog.NewCustomWithoutButtons(title, container.NewVBox(body, m.msg), w)
	m.d.SetButtons(buttons)
	m.prevKeys = w.Canvas().OnTypedKey()
	enter := func() {
		if !def.Disabled() {
			def.Tapped(nil)
		}
	}
	w.Canvas().SetOnTypedKey(keyHandler(enter, m.close))
	m.d.SetOnClosed(func() { w.Canvas().SetOnTypedKey(m.prevKeys) })
	return m
}

// entry returns an entry of the dialog: Enter in it presses the default
// button, Esc cancels.
func (m *modal) entry(password bool, placeholder string) *keyEntry {
	e := newKeyEntry(password)
	e.SetPlaceHolder(placeholder)
	e.esc = m.close
	e.OnSubmitted = func(string) {
		if !m.ok.Disabled() {
			m.ok.Tapped(nil)
		}
	}
	m.entries = append(m.entries, e)
	return e
}

// show opens the dialog width wide and gives the keyboard to its first
// entry, or else to its default button.
func (m *modal) show(width float32) {
	m.d.Resize(fyne.NewSize(width, 0))
	m.d.Show()
	var target fyne.Focusable = m.ok
	if m.ok.Importance != widget.HighImportance {
		target = m.cancel
	}
	if len(m.entries) > 0 {
		target = m.entries[0]
	}
	// Once the event that opened the dialog is over: a space that pressed
	// a button must not land in the entry as its first character.
	go func() {
		time.Sleep(150 * time.Millisecond)
		m.u.do(func() { m.w.Canvas().Focus(target) })
	}()
}

func (m *modal) close() { m.d.Hide() }

// say shows a sentence under the dialog's body; bad makes it red.
func (m *modal) say(text string, bad bool) {
	m.msg.SetText(text)
	m.msg.Importance = widget.MediumImportance
	if bad {
		m.msg.Importance = widget.DangerImportance
	}
	m.msg.Refresh()
	m.msg.Show()
}

// showPasswordFix asks for an account's current password, checks it and
// stores it; the dialog stays open with the reason when the server still
// refuses.
func (u *UI) showPasswordFix(email string) {
	var m *modal
	var pw *keyEntry
	submit := func() {
		if pw.Text == "" {
			return
		}
		m.ok.Disable()
		m.say("Checking the password with the mail server…", false)
		b, password := u.b(), pw.Text
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := b.SetPassword(ctx, email, password)
			u.do(func() {
				m.ok.Enable()
				if err != nil {
					m.say(words.Password(err), true)
					return
				}
				m.close()
				u.Refresh()
			})
		}()
	}
	body := container.NewVBox(
		wrapped("The mail server refused the password stored for " + email + ". If you changed it recently, enter the new one."),
	)
	m = u.newModal(u.win, "Enter the password for "+email, body, "Save password", submit, "Cancel", false)
	pw = m.entry(true, "")
	body.Add(widget.NewForm(widget.NewFormItem("Password", pw)))
	u.showWindow()
	m.show(480)
}

// showTrustFix connects to the account's servers to learn the certificate
// they show now, shows its fingerprint beside the one trusted until now,
// and pins it when the user confirms.
func (u *UI) showTrustFix(email string) {
	b := u.b()
	prog := dialog.NewCustomWithoutButtons("Checking the certificate…", widget.NewProgressBarInfinite(), u.win)
	prog.Show()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := b.CheckCertificate(ctx, email)
		u.do(func() {
			prog.Hide()
			var ue *trust.UntrustedError
			if !errors.As(err, &ue) {
				dialog.ShowInformation("Nothing to trust", "The server's certificate is trusted now; relaying resumes on its own.", u.win)
				go b.SyncNow()
				return
			}
			var old []trust.Pin
			for _, a := range u.last.Accounts {
				if strings.EqualFold(a.Email, email) {
					old = a.PinsFor(ue.Server)
				}
			}
			u.trustDialog(u.win, ue, old, func() {
				if err := b.TrustCertificate(email, ue.Pin()); err != nil {
					u.logf("the certificate was not pinned", err)
					dialog.ShowInformation("Not trusted", words.Trust, u.win)
				}
				u.Refresh()
			})
		})
	}()
}

// trustDialog shows a server certificate's fingerprint (beside the one
// trusted until now, when it changed) and asks whether to trust it;
// onTrust runs only on an explicit "Trust it". "Don't trust" is the
// default: Enter and Esc both leave the certificate untrusted.
func (u *UI) trustDialog(w fyne.Window, ue *trust.UntrustedError, old []trust.Pin, onTrust func()) {
	changed := len(old) > 0
	title := "Trust this server's certificate?"
	intro := "The certificate of " + ue.Server + " is not vouched for by any authority this computer trusts. That is normal for a company server with its own certificate, and it is also what an attack would look like. Trust it only if your IT department confirms its fingerprint."
	if changed {
		title = "The certificate of " + ue.Server + " changed"
		intro = "The mail server now shows a different certificate from the one you trusted. Servers renew their certificates, and an attack would look the same: trust the new one only if your IT department confirms its fingerprint."
	}
	fpLabel := func(fp string) *widget.Label {
		l := widget.NewLabelWithStyle(groupFingerprint(fp), fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		l.Selectable = true
		return l
	}
	copyFP := widget.NewButtonWithIcon("Copy fingerprint", theme.ContentCopyIcon(), func() {
		u.app.Clipboard().SetContent(groupFingerprint(ue.Fingerprint))
	})
	newBox := container.NewVBox(caption2("Shown now (SHA-256)"), fpLabel(ue.Fingerprint))
	if len(ue.Chain) > 0 {
		// A pin trusts this certificate on this server whatever it says:
		// show what it says.
		newBox.Add(wrapped(certWords(ue.Chain[0])))
	} else if p := ue.Pin(); p.Certificate != nil {
		newBox.Add(wrapped(describeCert(p.Certificate)))
	}
	var fps fyne.CanvasObject = newBox
	if changed {
		oldBox := container.NewVBox(caption2("Trusted until now"), fpLabel(old[len(old)-1].Fingerprint))
		if c := old[len(old)-1].Certificate; c != nil {
			oldBox.Add(wrapped(describeCert(c)))
		}
		fps = container.NewGridWithColumns(2, oldBox, newBox)
	}
	body := container.NewVBox(wrapped(intro), fps, container.NewHBox(copyFP),
		wrapped("Trusting it trusts this one certificate for "+ue.Server+" only, whatever its name and dates."))
	var m *modal
	m = u.newModal(w, title, body, "Trust it", func() { m.close(); onTrust() }, "Don't trust", true)
	width := float32(520)
	if changed {
		width = 720
	}
	m.show(width)
}

func caption2(text string) *widget.Label {
	return widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
}

func wrappedLow(text string) *widget.Label {
	l := wrapped(text)
	l.Importance = widget.LowImportance
	return l
}

// describeCert says what a certificate names, in a line a person reads.
func describeCert(c *trust.CertInfo) string {
	names := strings.Join(c.Names, ", ")
	if names == "" {
		names = c.Subject
	}
	return "For " + names + ", issued by " + c.Issuer + ", valid until " + c.NotAfter.Format("2 Jan 2006") + "."
}

// certWords says who a certificate is for, who issued it and until when.
func certWords(c *x509.Certificate) string {
	name := func(n pkix.Name) string {
		if n.CommonName != "" {
			return n.CommonName
		}
		return n.String()
	}
	issuer := name(c.Issuer)
	if c.Issuer.String() == c.Subject.String() {
		issuer = "itself"
	}
	s := fmt.Sprintf("It was issued to %s by %s, valid from %s to %s", name(c.Subject), issuer,
		c.NotBefore.Local().Format("2 January 2006"), c.NotAfter.Local().Format("2 January 2006"))
	if time.Now().After(c.NotAfter) {
		s += " (it has expired)"
	}
	return s + "."
}

// groupFingerprint writes a hex fingerprint as IT reads it: AB:CD:…,
// eight bytes per line.
func groupFingerprint(hex string) string {
	hex = strings.ToUpper(hex)
	var parts []string
	for i := 0; i+2 <= len(hex); i += 2 {
		parts = append(parts, hex[i:i+2])
	}
	var lines []string
	for i := 0; i < len(parts); i += 8 {
		end := min(i+8, len(parts))
		lines = append(lines, strings.Join(parts[i:end], ":"))
	}
	return strings.Join(lines, "\n")
}

// showPairAgain asks for a new pairing code for the platform this computer
// was paired with, keeping the company certificate and proxy it was paired
// with (shown, and changeable, under "Advanced").
func (u *UI) showPairAgain() {
	stored := u.b().PlatformOptions()
	var m *modal
	var code, proxy, ca *keyEntry
	submit := func() {
		c := strings.TrimSpace(code.Text)
		if c == "" {
			m.say("Enter the pairing code the platform shows.", true)
			return
		}
		o := connector.PairOptions{URL: stored.URL, Code: c, CAFile: strings.TrimSpace(ca.Text), Proxy: strings.TrimSpace(proxy.Text), ProxySource: "the proxy field"}
		if o.CAFile == stored.CAFile {
			o.CAFile = "" // the home's copy of it is kept
		}
		m.ok.Disable()
		m.say("Pairing…", false)
		b := u.b()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := b.Pair(ctx, o)
			u.do(func() {
				m.ok.Enable()
				if err != nil {
					m.say(words.Pairing(err), true)
					return
				}
				m.close()
				u.Refresh()
			})
		}()
	}
	body := container.NewVBox(
		wrapped("In the platform, open Settings › Connector › Pair a computer, and enter the new code here. " + hostOf(stored.URL) + " stays the platform."),
	)
	m = u.newModal(u.win, "Pair this computer again", body, "Pair again", submit, "Cancel", false)
	code = m.entry(false, "code from the platform")
	proxy = m.entry(false, "none")
	proxy.SetText(stored.Proxy)
	ca = m.entry(false, "none (this computer's own roots)")
	ca.SetText(stored.CAFile)
	body.Add(widget.NewForm(widget.NewFormItem("Pairing code", code)))
	adv := widget.NewAccordionItem("Advanced: proxy / company certificate", widget.NewForm(
		widget.NewFormItem("Proxy", proxy),
		widget.NewFormItem("Company certificate", ca),
	))
	acc := widget.NewAccordion(adv)
	if stored.Proxy != "" || stored.CAFile != "" {
		acc.Open(0) // what is kept is shown
	}
	body.Add(acc)
	u.showWindow()
	m.show(520)
}

// confirmRemove asks before forgetting a mailbox.
func (u *UI) confirmRemove(email string) {
	body := wrapped("Inbox Relay stops relaying " + email + " and forgets its password on this computer. Mail already relayed stays on the platform; nothing changes in the mailbox.")
	var m *modal
	m = u.newModal(u.win, "Remove "+email+"?", body, "Remove mailbox", func() {
		m.ok.Disable()
		b := u.b()
		go func() {
			err := b.RemoveAccount(email)
			u.do(func() {
				m.ok.Enable()
				if err != nil {
					m.say(words.Remove(err), true)
					return
				}
				m.close()
				u.Refresh()
			})
		}()
	}, "Keep it", true)
	m.show(480)
}

// confirmUnpair asks before unpairing this computer.
func (u *UI) confirmUnpair() {
	body := wrapped("This computer stops relaying to " + hostOf(u.last.PlatformURL) + " and forgets its key. Your mailboxes stay set up: pair again with a new code to resume.")
	var m *modal
	m = u.newModal(u.win, "Unpair this computer?", body, "Unpair", func() {
		m.ok.Disable()
		b := u.b()
		go func() {
			err := b.Unpair()
			u.do(func() {
				m.ok.Enable()
				if err != nil {
					m.say(words.Remove(err), true)
					return
				}
				m.close()
				u.Refresh()
			})
		}()
	}, "Keep paired", true)
	m.show(480)
}

// leaveDemo ends the demo and returns to the user's own home.
func (u *UI) leaveDemo() {
	if u.o.LeaveDemo == nil || !u.demo {
		return
	}
	b := u.o.LeaveDemo()
	u.SetBackend(b, false)
}

// showAbout shows the version, where the logs are and the licences.
func (u *UI) showAbout() {
	logDir := u.b().LogDir()
	logs := widget.NewLabel(logDir)
	logs.Selectable = true
	open := widget.NewButtonWithIcon("Open the log folder", theme.FolderOpenIcon(), func() { u.openFolder(logDir) })
	grid := container.New(layout.NewFormLayout(),
		caption("Version"), widget.NewLabel(appVersion()),
		caption("Logs"), container.NewVBox(logs, container.NewHBox(open)),
		caption("Licences"), wrapped(licences),
	)
	body := container.NewVBox(wrapped("Inbox Relay relays your mailbox to your team's platform, from this computer."), grid)
	m := u.newModal(u.win, "About Inbox Relay", body, "", nil, "Close", false)
	m.cancel.Importance = widget.HighImportance
	u.showWindow()
	m.show(560)
}
