package gui

import (
	"context"
	"errors"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// showPasswordFix asks for an account's current password, checks it and
// stores it; the dialog stays open with the reason when the server still
// refuses.
func (u *UI) showPasswordFix(email string) {
	pw := widget.NewPasswordEntry()
	msg := wrapped("")
	msg.Hide()
	var d *dialog.CustomDialog
	save := widget.NewButton("Save password", nil)
	save.Importance = widget.HighImportance
	cancel := widget.NewButton("Cancel", func() { d.Hide() })
	submit := func() {
		if pw.Text == "" {
			return
		}
		save.Disable()
		msg.SetText("Checking the password with the mail server…")
		msg.Importance = widget.MediumImportance
		msg.Show()
		b, password := u.b(), pw.Text
		go func() {
			ctx, cancelCtx := context.WithTimeout(context.Background(), time.Minute)
			defer cancelCtx()
			err := b.SetPassword(ctx, email, password)
			u.do(func() {
				save.Enable()
				if err != nil {
					msg.SetText(words.Password(err))
					msg.Importance = widget.DangerImportance
					msg.Refresh()
					return
				}
				d.Hide()
				u.Refresh()
			})
		}()
	}
	save.OnTapped = submit
	pw.OnSubmitted = func(string) { submit() }
	body := container.NewVBox(
		wrapped("The mail server refused the password stored for "+email+". If you changed it recently, enter the new one."),
		widget.NewForm(widget.NewFormItem("Password", pw)),
		msg,
	)
	d = dialog.NewCustomWithoutButtons("Enter the password for "+email, body, u.win)
	d.SetButtons([]fyne.CanvasObject{cancel, save})
	d.Resize(fyne.NewSize(480, 0))
	u.showWindow()
	d.Show()
	u.focusSoon(pw)
}

// showTrustFix connects to the account's servers to learn the certificate
// they show now, shows its fingerprint, and pins it when the user confirms.
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
			trustDialog(u.win, ue, func() {
				if err := b.TrustCertificate(email, ue.Pin()); err != nil {
					u.logf("the certificate was not pinned", err)
					dialog.ShowInformation("Not trusted", words.Trust, u.win)
				}
				u.Refresh()
			})
		})
	}()
}

// showPairAgain asks for a new pairing code for the platform this computer
// was paired with.
func (u *UI) showPairAgain() {
	code := widget.NewEntry()
	code.SetPlaceHolder("7KQ-93F")
	msg := wrapped("")
	msg.Hide()
	var d *dialog.CustomDialog
	pair := widget.NewButton("Pair again", nil)
	pair.Importance = widget.HighImportance
	submit := func() {
		if strings.TrimSpace(code.Text) == "" {
			return
		}
		pair.Disable()
		b, url, c := u.b(), u.last.PlatformURL, strings.TrimSpace(code.Text)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := b.Pair(ctx, connector.PairOptions{URL: url, Code: c})
			u.do(func() {
				pair.Enable()
				if err != nil {
					msg.SetText(words.Pairing(err))
					msg.Importance = widget.DangerImportance
					msg.Show()
					msg.Refresh()
					return
				}
				d.Hide()
				u.Refresh()
			})
		}()
	}
	pair.OnTapped = submit
	code.OnSubmitted = func(string) { submit() }
	body := container.NewVBox(
		wrapped("The platform no longer accepts this computer. In the platform, open Settings › Connector › Pair a computer, and paste the new code here."),
		widget.NewForm(widget.NewFormItem("Pairing code", code)),
		msg,
	)
	d = dialog.NewCustomWithoutButtons("Pair this computer again", body, u.win)
	d.SetButtons([]fyne.CanvasObject{widget.NewButton("Cancel", func() { d.Hide() }), pair})
	d.Resize(fyne.NewSize(480, 0))
	u.showWindow()
	d.Show()
	u.focusSoon(code)
}

// focusSoon gives an entry the keyboard once the event that opened its
// dialog is over: a space that pressed a button must not land in the
// entry as its first character.
func (u *UI) focusSoon(e *widget.Entry) {
	go func() {
		time.Sleep(150 * time.Millisecond)
		u.do(func() { u.win.Canvas().Focus(e) })
	}()
}
