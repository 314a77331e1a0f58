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
	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Security choices of the setup form; "Automatic" lets the test find out.
const (
	secAuto     = "Automatic"
	secTLS      = "SSL/TLS"
	secStartTLS = "STARTTLS"
)

// setupView is the first-run wizard (pair, then add a mailbox) and the
// "Add mailbox…" form. Its widgets are fields so tests can fill them in.
type setupView struct {
	u         *UI
	cancel    bool // an account exists: offer "Cancel" back to the status
	pairURL   *widget.Entry
	pairCode  *widget.Entry
	pairBtn   *widget.Button
	pairMsg   *widget.Label
	demoBtn   *widget.Button
	email     *widget.Entry
	password  *widget.Entry
	imap      *widget.Entry
	imapSec   *widget.Select
	smtp      *widget.Entry
	smtpSec   *widget.Select
	username  *widget.Entry
	found     *widget.Label
	testBtn   *widget.Button
	addBtn    *widget.Button
	msg       *widget.Label
	steps     *fyne.Container
	pins      []trust.Pin // certificates the user confirmed during this setup, each for its server
	tested    *config.Account
	edited    map[*widget.Entry]bool // fields the user typed in: autoconfig leaves them alone
	filling   bool
	lookupGen int
}

// showSetup opens the wizard at the step needed: pairing first, then the
// mailbox. cancellable adds a way back to the status view.
func (u *UI) showSetup(cancellable bool) {
	u.mode = "setup"
	u.setup = &setupView{u: u, cancel: cancellable, edited: map[*widget.Entry]bool{}}
	if !u.last.Paired {
		u.win.SetContent(u.setup.pairPage())
		u.win.Canvas().Focus(u.setup.pairURL)
	} else {
		u.win.SetContent(u.setup.accountPage())
		u.win.Canvas().Focus(u.setup.email)
	}
	u.win.Show()
}

// leaveSetup returns to the status view.
func (u *UI) leaveSetup() {
	u.mode, u.shown, u.setup = "", "", nil
	u.win.Canvas().Unfocus()
	u.apply(u.last)
	u.Refresh()
}

func heading(text string) *widget.Label {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return l
}

func wrapped(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

func (s *setupView) pairPage() fyne.CanvasObject {
	s.pairURL = widget.NewEntry()
	s.pairURL.SetPlaceHolder("https://app.example.com/connector")
	s.pairCode = widget.NewEntry()
	s.pairCode.SetPlaceHolder("7KQ-93F")
	s.pairMsg = wrapped("")
	s.pairMsg.Hide()
	s.pairBtn = importantButton("Pair this computer", theme.LoginIcon(), s.pair)
	s.pairCode.OnSubmitted = func(string) { s.pair() }
	form := widget.NewForm(
		widget.NewFormItem("Platform address", s.pairURL),
		widget.NewFormItem("Pairing code", s.pairCode),
	)
	form.Items[1].HintText = "In the platform, open Settings › Connector › Pair a computer, and copy the code shown."
	page := container.NewVBox(
		heading("Welcome to Inbox Relay"),
		wrapped("Inbox Relay copies the e-mail of your mailbox to your team's platform, from this computer. First, connect it to the platform; then add your mailbox."),
		widget.NewSeparator(),
		heading("1. Connect to the platform"),
		form,
		container.NewHBox(layout.NewSpacer(), s.pairBtn),
		s.pairMsg,
	)
	if s.u.o.StartDemo != nil && len(s.u.last.Accounts) == 0 {
		s.demoBtn = widget.NewButtonWithIcon("Try the demo", theme.MediaPlayIcon(), s.startDemo)
		page.Add(widget.NewSeparator())
		page.Add(container.NewBorder(nil, nil, nil, s.demoBtn,
			wrapped("Just looking? The demo relays a sample mailbox to a sample platform on this computer; nothing of yours is touched.")))
	}
	return container.NewPadded(page)
}

// pair runs on the fyne goroutine; the network call runs beside it.
func (s *setupView) pair() {
	url := strings.TrimSpace(s.pairURL.Text)
	code := strings.TrimSpace(s.pairCode.Text)
	if url == "" || code == "" {
		s.say(s.pairMsg, "Enter the platform address and the pairing code shown by the platform.", true)
		return
	}
	if !strings.Contains(url, "://") {
		url = "https://" + url
	}
	s.pairBtn.Disable()
	s.say(s.pairMsg, "Pairing…", false)
	b := s.u.b()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := b.Pair(ctx, connector.PairOptions{URL: url, Code: code})
		st := b.Status()
		s.u.do(func() {
			s.pairBtn.Enable()
			if err != nil {
				s.say(s.pairMsg, words.Pairing(err), true)
				return
			}
			s.u.last = st
			if s.u.setup != s {
				return
			}
			if len(st.Accounts) > 0 { // paired again: the accounts are there
				s.u.leaveSetup()
				return
			}
			s.u.win.SetContent(s.accountPage())
			s.u.win.Canvas().Focus(s.email)
		})
	}()
}

func (s *setupView) say(l *widget.Label, text string, bad bool) {
	l.SetText(text)
	l.Importance = widget.MediumImportance
	if bad {
		l.Importance = widget.DangerImportance
	}
	l.Refresh()
	l.Show()
}

func (s *setupView) startDemo() {
	s.demoBtn.Disable()
	s.say(s.pairMsg, "Starting the demo…", false)
	start := s.u.o.StartDemo
	go func() {
		b, err := start(context.Background())
		s.u.do(func() {
			if err != nil {
				s.demoBtn.Enable()
				s.u.logf("the demo did not start", err)
				s.say(s.pairMsg, words.Demo(err), true)
				return
			}
			s.u.setup = nil
			s.u.SetBackend(b)
			s.u.Refresh()
		})
	}()
}

func (s *setupView) accountPage() fyne.CanvasObject {
	s.email = widget.NewEntry()
	s.email.SetPlaceHolder("alice@acme.com")
	s.password = widget.NewPasswordEntry()
	s.imap = widget.NewEntry()
	s.imap.SetPlaceHolder("mail.acme.com:993")
	s.smtp = widget.NewEntry()
	s.smtp.SetPlaceHolder("mail.acme.com:465")
	s.username = widget.NewEntry()
	s.username.SetPlaceHolder("same as the e-mail address")
	opts := []string{secAuto, secTLS, secStartTLS}
	s.imapSec = widget.NewSelect(opts, func(string) { s.changed() })
	s.imapSec.SetSelected(secAuto)
	s.smtpSec = widget.NewSelect(opts, func(string) { s.changed() })
	s.smtpSec.SetSelected(secAuto)
	s.found = wrapped("Type your address: the server settings are filled in when they can be found.")
	s.found.Importance = widget.LowImportance
	s.msg = wrapped("")
	s.msg.Hide()
	s.steps = container.NewVBox()
	s.testBtn = widget.NewButtonWithIcon("Test connection", theme.SearchIcon(), s.test)
	s.addBtn = importantButton("Add mailbox", theme.ConfirmIcon(), s.add)
	s.addBtn.Disable()

	for _, e := range []*widget.Entry{s.email, s.password, s.imap, s.smtp, s.username} {
		e := e
		e.OnChanged = func(string) {
			if !s.filling {
				s.edited[e] = true
			}
			s.changed()
		}
	}
	s.email.OnChanged = func(string) {
		s.changed()
		s.lookup()
	}
	s.password.OnSubmitted = func(string) { s.test() }

	form := widget.NewForm(
		widget.NewFormItem("E-mail address", s.email),
		widget.NewFormItem("Password", s.password),
	)
	servers := widget.NewForm(
		widget.NewFormItem("Incoming (IMAP)", container.NewBorder(nil, nil, nil, s.imapSec, s.imap)),
		widget.NewFormItem("Outgoing (SMTP)", container.NewBorder(nil, nil, nil, s.smtpSec, s.smtp)),
		widget.NewFormItem("Login name", s.username),
	)
	buttons := container.NewHBox(layout.NewSpacer(), s.testBtn, s.addBtn)
	if s.cancel {
		buttons.Objects = append([]fyne.CanvasObject{widget.NewButton("Cancel", s.u.leaveSetup)}, buttons.Objects...)
	}
	title := "2. Add your mailbox"
	if s.cancel {
		title = "Add a mailbox"
	}
	page := container.NewVBox(
		heading(title),
		wrapped("Inbox Relay reads your mailbox without changing anything in it. Your password stays in this computer's keychain."),
		form,
		widget.NewSeparator(),
		widget.NewLabelWithStyle("Server settings", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		s.found,
		servers,
		buttons,
		s.msg,
		s.steps,
	)
	return container.NewVScroll(container.NewPadded(page))
}

// changed forgets a passed test: what is stored must be what was tested.
func (s *setupView) changed() {
	if s.addBtn == nil {
		return
	}
	s.tested = nil
	s.addBtn.Disable()
}

// lookup fills in the server settings for the address typed, a moment
// after the typing stopped, leaving alone the fields the user edited.
func (s *setupView) lookup() {
	email := strings.TrimSpace(s.email.Text)
	s.lookupGen++
	gen := s.lookupGen
	at := strings.LastIndex(email, "@")
	if at < 1 || !strings.Contains(email[at:], ".") {
		return
	}
	b := s.u.b()
	go func() {
		time.Sleep(600 * time.Millisecond)
		var stale bool
		s.u.doWait(func() { stale = gen != s.lookupGen })
		if stale {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
		defer cancel()
		r, err := b.FindServers(ctx, email)
		s.u.do(func() {
			if gen != s.lookupGen {
				return
			}
			if err != nil {
				s.found.SetText("The settings for " + email[at+1:] + " could not be found; enter the server names your IT team gave you.")
				return
			}
			if len(r.Outside) > 0 {
				s.askOutside(email[at+1:], r)
				return
			}
			s.fill(r)
		})
	}()
}

// askOutside shows the servers DNS named outside the address's domain
// and fills them in only when the user confirms (RFC 6186 §6): DNS can be
// forged, and the password goes to whatever server the form names.
func (s *setupView) askOutside(domain string, r autoconfig.Result) {
	body := container.NewVBox(
		wrapped("Your domain's DNS says that the mail of "+domain+" is handled by "+strings.Join(r.Outside, " and ")+", outside "+domain+"."),
		wrapped("DNS answers can be forged. Use these servers only if your IT team confirms them: your password will be sent to them."),
	)
	d := dialog.NewCustomConfirm("Use servers outside your domain?", "Use them", "Don't use them", body, func(ok bool) {
		if ok {
			s.fill(r)
			return
		}
		s.found.SetText("The servers found in DNS were not used; enter the server names your IT team gave you.")
	}, s.u.win)
	d.Resize(fyne.NewSize(520, 0))
	d.Show()
}

func (s *setupView) fill(r autoconfig.Result) {
	s.filling = true
	defer func() { s.filling = false }()
	if !s.edited[s.imap] {
		s.imap.SetText(r.IMAP.Addr())
		s.imapSec.SetSelected(secName(r.IMAP.Security))
	}
	if !s.edited[s.smtp] {
		s.smtp.SetText(r.SMTP.Addr())
		s.smtpSec.SetSelected(secName(r.SMTP.Security))
	}
	if !s.edited[s.username] && r.Username != "" {
		s.username.SetText(r.Username)
	}
	src := map[string]string{"known provider": "from the list of well-known providers", "DNS SRV": "from your domain's DNS", "autoconfig": "from your domain's mail settings"}[r.Source]
	s.found.SetText("Filled in " + src + "; change them if your IT team says otherwise.")
}

func secName(s config.Security) string {
	switch s {
	case config.SecurityTLS:
		return secTLS
	case config.SecurityStartTLS:
		return secStartTLS
	}
	return secAuto
}

func secValue(name string) config.Security {
	switch name {
	case secTLS:
		return config.SecurityTLS
	case secStartTLS:
		return config.SecurityStartTLS
	}
	return ""
}

// account builds the account from the form; the error says which field
// to fix.
func (s *setupView) account() (config.Account, string, error) {
	email := strings.TrimSpace(s.email.Text)
	if at := strings.LastIndex(email, "@"); at < 1 || at == len(email)-1 {
		return config.Account{}, "", errors.New("Enter your e-mail address, like alice@acme.com.")
	}
	if s.password.Text == "" {
		return config.Account{}, "", errors.New("Enter the password of your mailbox.")
	}
	parse := func(field *widget.Entry, sec *widget.Select, smtp bool, what string) (config.Server, error) {
		v := secValue(sec.Selected)
		port := 993
		switch {
		case smtp && v == config.SecurityStartTLS:
			port = 587
		case smtp:
			port = 465
		case v == config.SecurityStartTLS:
			port = 143
		}
		srv, err := config.ParseServer(strings.TrimSpace(field.Text), v, port)
		if err != nil {
			return srv, errors.New("Enter the " + what + " server as name:port, like mail.acme.com:" + map[bool]string{false: "993", true: "465"}[smtp] + ".")
		}
		return srv, nil
	}
	imap, err := parse(s.imap, s.imapSec, false, "incoming")
	if err != nil {
		return config.Account{}, "", err
	}
	smtp, err := parse(s.smtp, s.smtpSec, true, "outgoing")
	if err != nil {
		return config.Account{}, "", err
	}
	acct := config.Account{Email: email, Username: strings.TrimSpace(s.username.Text), IMAP: imap, SMTP: smtp,
		Pins: append([]trust.Pin(nil), s.pins...)}
	return acct, s.password.Text, nil
}

// test runs "Test connection" and shows each step as it goes.
func (s *setupView) test() {
	acct, pw, err := s.account()
	if err != nil {
		s.say(s.msg, err.Error(), true)
		return
	}
	s.msg.Hide()
	s.testBtn.Disable()
	s.addBtn.Disable()
	s.steps.Objects = nil
	s.steps.Refresh()
	b := s.u.b()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		checked, err := b.Check(ctx, acct, pw, func(steps []Step) {
			s.u.do(func() { s.showSteps(steps) })
		})
		s.u.do(func() {
			s.testBtn.Enable()
			var ue *trust.UntrustedError
			switch {
			case errors.As(err, &ue):
				s.say(s.msg, "The mail server's certificate needs your decision.", true)
				s.askTrust(ue, func() { s.test() })
			case err != nil:
				s.say(s.msg, "The test failed; fix what the step below says and test again.", true)
			default:
				s.tested = &checked
				s.say(s.msg, "Everything works. Add the mailbox to start relaying.", false)
				s.addBtn.Enable()
				s.u.win.Canvas().Focus(s.addBtn)
			}
		})
	}()
}

// askTrust shows a certificate's fingerprint and, when the user confirms
// it, pins it for this setup and calls then.
func (s *setupView) askTrust(ue *trust.UntrustedError, then func()) {
	trustDialog(s.u.win, ue, func() {
		s.pins = append(s.pins, ue.Pin())
		then()
	})
}

func (s *setupView) showSteps(steps []Step) {
	s.steps.Objects = nil
	for _, st := range steps {
		s.steps.Add(stepRow(st))
	}
	s.steps.Refresh()
}

func stepRow(st Step) fyne.CanvasObject {
	var icon fyne.Resource
	switch st.State {
	case StepPending:
		icon = theme.MoreHorizontalIcon()
	case StepRunning:
		icon = theme.ViewRefreshIcon()
	case StepPassed:
		icon = theme.NewSuccessThemedResource(theme.ConfirmIcon())
	case StepFailed:
		icon = theme.NewErrorThemedResource(theme.CancelIcon())
	case StepSkipped:
		icon = theme.NewDisabledResource(theme.ContentRemoveIcon())
	case StepWarned:
		icon = theme.NewWarningThemedResource(theme.WarningIcon())
	}
	title := widget.NewLabel(st.Title)
	if st.State == StepSkipped {
		title.Importance = widget.LowImportance
	}
	box := container.NewVBox(title)
	if st.State == StepPassed && st.Detail != "" {
		// One line per passed step keeps the list short enough to read.
		title.SetText(st.Title + " — " + st.Detail)
		title.Wrapping = fyne.TextWrapWord
	} else if st.Detail != "" {
		d := wrapped(st.Detail)
		d.Importance = widget.LowImportance
		switch st.State {
		case StepFailed:
			d.Importance = widget.DangerImportance
		case StepWarned:
			d.Importance = widget.WarningImportance
		}
		box.Add(d)
	}
	return container.NewBorder(nil, nil, container.NewCenter(widget.NewIcon(icon)), nil, box)
}

// add stores the tested account.
func (s *setupView) add() {
	if s.tested == nil {
		return
	}
	acct, pw := *s.tested, s.password.Text
	s.addBtn.Disable()
	s.testBtn.Disable()
	s.say(s.msg, "Adding the mailbox…", false)
	b := s.u.b()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err := b.AddAccount(ctx, acct, pw)
		st := b.Status()
		s.u.do(func() {
			s.testBtn.Enable()
			if err != nil {
				s.u.logf("the mailbox was not added", err)
				s.say(s.msg, words.AddAccount(err), true)
				return
			}
			s.u.last = st
			if s.u.setup == s {
				s.u.leaveSetup()
			}
		})
	}()
}

// trustDialog shows a server certificate's fingerprint and asks whether to
// trust it; onTrust runs only on an explicit yes.
func trustDialog(w fyne.Window, ue *trust.UntrustedError, onTrust func()) {
	fp := widget.NewLabelWithStyle(groupFingerprint(ue.Fingerprint), fyne.TextAlignCenter, fyne.TextStyle{Monospace: true})
	fp.Wrapping = fyne.TextWrapWord
	body := container.NewVBox(
		wrapped("The certificate of "+ue.Server+" is not vouched for by any authority this computer trusts. That is normal for a company server with its own certificate, and it is also what an attack would look like."),
		wrapped("Trust it only if your IT team confirms that its SHA-256 fingerprint is:"),
		fp,
	)
	if len(ue.Chain) > 0 {
		// A pin trusts this certificate on this server whatever it says:
		// show what it says.
		body.Add(wrapped(certWords(ue.Chain[0]) + " Trusting it trusts this one certificate for " + ue.Server + " only, whatever its name and dates."))
	}
	d := dialog.NewCustomConfirm("Trust this server's certificate?", "Trust it", "Don't trust", body, func(ok bool) {
		if ok {
			onTrust()
		}
	}, w)
	d.Resize(fyne.NewSize(520, 0))
	d.Show()
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
// sixteen bytes per line.
func groupFingerprint(hex string) string {
	hex = strings.ToUpper(hex)
	var parts []string
	for i := 0; i+2 <= len(hex); i += 2 {
		parts = append(parts, hex[i:i+2])
	}
	var lines []string
	for i := 0; i < len(parts); i += 16 {
		end := min(i+16, len(parts))
		lines = append(lines, strings.Join(parts[i:end], ":"))
	}
	return strings.Join(lines, "\n")
}
