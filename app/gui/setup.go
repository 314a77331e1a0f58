package gui

import (
	"context"
	"errors"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
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
// "Add mailbox…" form, as Thunderbird's: the address and the password
// first; the server settings looked up and said in one line, folded away
// unless they must be typed; the test as one line per server, its steps
// on demand. Its widgets are fields so tests can fill them in.
type setupView struct {
	u      *UI
	cancel bool // an account exists: offer "Cancel" back to the status

	pairURL, pairCode, pairProxy, pairCA *keyEntry
	pairBtn                              *keyButton
	pairMsg                              *widget.Label
	demoBtn                              *widget.Button

	email, password, imap, smtp, username *keyEntry
	imapSec, smtpSec                      *widget.Select
	hint                                  *widget.Label // the provider's advice (app passwords)
	found                                 *widget.Label // the lookup in one line
	confirm                               *fyne.Container
	confirmMsg                            *widget.Label
	testBtn, addBtn                       *keyButton
	msg                                   *widget.Label
	lines                                 *fyne.Container // one line per server
	stepList                              *fyne.Container
	steps                                 *widget.Accordion

	pins      []trust.Pin // certificates the user confirmed during this setup, each for its server
	tested    *config.Account
	edited    map[*keyEntry]bool // fields the user typed in: the lookup leaves them alone
	filling   bool
	lookupGen int
	testGen   int    // bumped by every change of the form: a test's late answer for an older form is dropped
	domain    string // the address's domain the form was filled for
	source    string // where the filled-in servers came from, for the test's words
	unsure    bool   // the servers found are outside the address's domain: asked before testing
	box       *fyne.Container
	grid      *fyne.Container // the page's one aligned grid of fields
	servers   *fold           // the mailbox's server settings
	advanced  *fold           // pairing's proxy and company certificate
	follow    [][2]fyne.CanvasObject
}

// showSetup opens the wizard at the step needed: pairing first, then the
// mailbox. cancellable adds a way back to the status view.
func (u *UI) showSetup(cancellable bool) {
	u.mode = "setup"
	u.setup = &setupView{u: u, cancel: cancellable, edited: map[*keyEntry]bool{}}
	if !u.last.Paired {
		u.win.SetContent(u.setup.pairPage())
		u.win.Canvas().Focus(u.setup.pairURL)
	} else {
		u.win.SetContent(u.setup.accountPage())
		u.win.Canvas().Focus(u.setup.email)
	}
	u.showWindow()
}

// leaveSetup returns to the status view.
func (u *UI) leaveSetup() {
	u.mode, u.setup = "", nil
	u.win.Canvas().Unfocus()
	u.win.Canvas().SetOnTypedKey(u.statusKeys)
	u.apply(u.last)
	u.Refresh()
}

func heading(text string) *widget.Label {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return l
}

// page lays a setup page out: at most maxContentWidth wide, scrolling.
// Its box is laid out again (relayout) whenever a part of it is shown or
// hidden.
func (s *setupView) page(objs ...fyne.CanvasObject) fyne.CanvasObject {
	s.box = container.NewVBox(objs...)
	return container.NewVScroll(limitWidth(container.NewPadded(s.box)))
}

// relayout lays the page out again after parts of it were shown or
// hidden; its widgets stay.
func (s *setupView) relayout() {
	for _, p := range s.follow {
		showIf(p[0], p[1].Visible())
	}
	if s.grid != nil {
		s.grid.Refresh()
	}
	if s.box != nil {
		s.box.Refresh()
	}
}

// fieldLabel is a field's label in a setup grid.
func fieldLabel(text string) *widget.Label {
	return widget.NewLabelWithStyle(text, fyne.TextAlignTrailing, fyne.TextStyle{Bold: true})
}

// rowLabel is the empty label of a grid row whose content is o: relayout
// shows and hides it with o, so that a hidden line leaves no gap.
func (s *setupView) rowLabel(o fyne.CanvasObject) fyne.CanvasObject {
	l := widget.NewLabel("")
	s.follow = append(s.follow, [2]fyne.CanvasObject{l, o})
	return l
}

// fold is a group of a grid's rows shown and hidden by a toggle in the
// grid itself, so that the folded rows line up with the others.
type fold struct {
	toggle *widget.Button
	rows   []fyne.CanvasObject // label, field pairs
	shown  bool
	after  func()
}

func newFold(title string, after func(), rows ...fyne.CanvasObject) *fold {
	f := &fold{rows: rows, after: after}
	f.toggle = widget.NewButtonWithIcon(title, theme.MenuExpandIcon(), func() { f.open(!f.shown) })
	f.toggle.Importance = widget.LowImportance
	f.toggle.Alignment = widget.ButtonAlignLeading
	f.open(false)
	return f
}

// objects are the fold's grid cells: its toggle's row, then its rows.
func (f *fold) objects() []fyne.CanvasObject {
	return append([]fyne.CanvasObject{widget.NewLabel(""), f.toggle}, f.rows...)
}

// open shows or hides the rows.
func (f *fold) open(show bool) {
	f.shown = show
	for _, r := range f.rows {
		showIf(r, show)
	}
	if show {
		f.toggle.SetIcon(theme.MenuDropDownIcon())
	} else {
		f.toggle.SetIcon(theme.MenuExpandIcon())
	}
	if f.after != nil {
		f.after()
	}
}

func (s *setupView) entry(password bool, placeholder string, submit func()) *keyEntry {
	e := newKeyEntry(password)
	e.SetPlaceHolder(placeholder)
	if s.cancel {
		e.esc = s.u.leaveSetup
	}
	e.OnSubmitted = func(string) { submit() }
	return e
}

func (s *setupView) pairPage() fyne.CanvasObject {
	s.pairURL = s.entry(false, "copy it from the platform", s.pair)
	s.pairCode = s.entry(false, "shown next to it", s.pair)
	s.pairProxy = s.entry(false, "none", s.pair)
	s.pairCA = s.entry(false, "none (this computer's own)", s.pair)
	s.pairMsg = wrapped("")
	s.pairMsg.Hide()
	s.pairBtn = newKeyButton("Pair this computer", theme.LoginIcon(), s.pair)
	s.pairBtn.Importance = widget.HighImportance
	where := wrapped("In the platform, open Settings › Connector › Pair a computer: it shows the address and a code.")
	where.SizeName = theme.SizeNameCaptionText
	s.advanced = newFold("Advanced: proxy / company certificate", s.relayout,
		fieldLabel("Proxy"), s.pairProxy,
		fieldLabel("Company certificate"), s.pairCA)
	grid := container.New(layout.NewFormLayout(), append([]fyne.CanvasObject{
		fieldLabel("Platform address"), s.pairURL,
		fieldLabel("Pairing code"), s.pairCode,
		widget.NewLabel(""), where,
	}, s.advanced.objects()...)...)
	s.grid = grid
	objs := []fyne.CanvasObject{
		heading("Welcome to Inbox Relay"),
		wrapped("Inbox Relay copies the e-mail of your mailbox to your team's platform, from this computer. First, connect it to the platform; then add your mailbox."),
		widget.NewSeparator(),
		heading("1. Connect to the platform"),
		grid,
		container.NewHBox(layout.NewSpacer(), s.pairBtn),
		s.pairMsg,
	}
	if s.u.o.StartDemo != nil && len(s.u.last.Accounts) == 0 {
		s.demoBtn = widget.NewButtonWithIcon("Try the demo", theme.MediaPlayIcon(), s.startDemo)
		objs = append(objs, widget.NewSeparator(), container.NewBorder(nil, nil, nil, s.demoBtn,
			wrapped("Just looking? The demo relays a sample mailbox to a sample platform on this computer; nothing of yours is touched.")))
	}
	s.u.win.Canvas().SetOnTypedKey(keyHandler(s.pair, nil))
	return s.page(objs...)
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
	if s.pairBtn.Disabled() {
		return
	}
	s.pairBtn.Disable()
	s.say(s.pairMsg, "Pairing…", false)
	b := s.u.b()
	o := connector.PairOptions{URL: url, Code: code, Proxy: strings.TrimSpace(s.pairProxy.Text), CAFile: strings.TrimSpace(s.pairCA.Text), ProxySource: "the proxy field"}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := b.Pair(ctx, o)
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
	s.relayout()
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
			s.u.SetBackend(b, true)
		})
	}()
}

func (s *setupView) accountPage() fyne.CanvasObject {
	s.email = s.entry(false, "your work address", s.test)
	s.password = s.entry(true, "", s.test)
	s.imap = s.entry(false, "server name (and :port)", s.test)
	s.smtp = s.entry(false, "server name (and :port)", s.test)
	s.username = s.entry(false, "same as the address", s.test)
	opts := []string{secAuto, secTLS, secStartTLS}
	s.imapSec = widget.NewSelect(opts, func(string) { s.changed() })
	s.imapSec.SetSelected(secAuto)
	s.smtpSec = widget.NewSelect(opts, func(string) { s.changed() })
	s.smtpSec.SetSelected(secAuto)
	s.hint = wrapped("")
	s.hint.Importance = widget.WarningImportance
	s.hint.Hide()
	s.found = wrapped("")
	s.found.Hide()
	s.confirmMsg = wrapped("")
	s.confirmMsg.Importance = widget.WarningImportance
	s.confirm = container.NewVBox(s.confirmMsg, container.NewHBox(
		widget.NewButton("Use these servers", func() { s.unsure = false; s.confirm.Hide(); s.relayout(); s.test() }),
		widget.NewButton("Enter them myself", func() {
			s.unsure = false
			s.confirm.Hide()
			s.clearServers()
			s.servers.open(true)
			s.relayout()
		}),
	))
	s.confirm.Hide()
	s.msg = wrapped("")
	s.msg.Hide()
	s.lines = container.NewVBox()
	s.stepList = container.NewVBox()
	s.steps = widget.NewAccordion(widget.NewAccordionItem("Details of the test", s.stepList))
	s.steps.Hide()
	s.testBtn = newKeyButton("Test connection", theme.SearchIcon(), s.test)
	s.testBtn.Importance = widget.HighImportance
	s.addBtn = newKeyButton("Add mailbox", theme.ConfirmIcon(), s.add)
	s.addBtn.Disable()
	if s.cancel {
		s.testBtn.esc, s.addBtn.esc = s.u.leaveSetup, s.u.leaveSetup
	}

	for _, e := range []*keyEntry{s.password, s.imap, s.smtp, s.username} {
		e.OnChanged = func(string) {
			if !s.filling {
				s.edited[e] = true
			}
			s.changed()
		}
	}
	s.email.OnChanged = func(string) { s.addressChanged() }

	// One aligned grid: the address and the password, what was found,
	// then the server settings, folded away unless they must be typed.
	s.servers = newFold("Server settings", s.relayout,
		fieldLabel("Incoming (IMAP)"), container.NewBorder(nil, nil, nil, s.imapSec, s.imap),
		fieldLabel("Outgoing (SMTP)"), container.NewBorder(nil, nil, nil, s.smtpSec, s.smtp),
		fieldLabel("Login name"), s.username)
	s.grid = container.New(layout.NewFormLayout(), append([]fyne.CanvasObject{
		fieldLabel("E-mail address"), s.email,
		fieldLabel("Password"), s.password,
		s.rowLabel(s.hint), s.hint,
		s.rowLabel(s.found), s.found,
		s.rowLabel(s.confirm), s.confirm,
	}, s.servers.objects()...)...)
	buttons := container.NewHBox(layout.NewSpacer(), s.testBtn, s.addBtn)
	if s.cancel {
		buttons.Objects = append([]fyne.CanvasObject{widget.NewButton("Cancel", s.u.leaveSetup)}, buttons.Objects...)
	}
	title := "2. Add your mailbox"
	if s.cancel {
		title = "Add a mailbox"
	}
	var cancel func()
	if s.cancel {
		cancel = s.u.leaveSetup
	}
	s.u.win.Canvas().SetOnTypedKey(keyHandler(s.defaultAction, cancel))
	defer s.relayout()
	return s.page(
		heading(title),
		wrapped("Inbox Relay reads your mailbox without changing anything in it. Your password stays in this computer's keychain."),
		s.grid,
		buttons,
		s.msg,
		s.lines,
		s.steps,
	)
}

// defaultAction is what Enter does on the page: add once tested, else
// test.
func (s *setupView) defaultAction() {
	if s.tested != nil && !s.addBtn.Disabled() {
		s.add()
		return
	}
	s.test()
}

// changed forgets a passed test: what is stored must be what was tested.
func (s *setupView) changed() {
	if s.addBtn == nil {
		return
	}
	s.testGen++
	s.tested = nil
	s.addBtn.Disable()
	s.addBtn.Importance = widget.MediumImportance
	s.testBtn.Importance = widget.HighImportance
	s.addBtn.Refresh()
	s.testBtn.Refresh()
}

// domainOf is the part of an address after its last @, lower case; ""
// when it is not an address yet.
func domainOf(email string) string {
	email = strings.TrimSpace(email)
	at := strings.LastIndex(email, "@")
	if at < 1 || !strings.Contains(email[at:], ".") || strings.HasSuffix(email, ".") {
		return ""
	}
	return strings.ToLower(email[at+1:])
}

// addressChanged clears what belonged to another domain (the servers
// found or typed for it, the test, the certificates trusted, the advice)
// and looks the new one up.
func (s *setupView) addressChanged() {
	s.changed()
	d := domainOf(s.email.Text)
	if d == s.domain {
		return
	}
	s.domain = d
	s.lookupGen++
	s.clearServers()
	s.pins = nil
	s.lines.Objects = nil
	s.lines.Refresh()
	s.stepList.Objects = nil
	s.steps.Hide()
	s.msg.Hide()
	s.confirm.Hide()
	s.unsure = false
	s.found.Hide()
	s.showHint("")
	if d != "" {
		s.lookup(d)
	}
	s.relayout()
}

// clearServers empties the server settings.
func (s *setupView) clearServers() {
	s.filling = true
	for _, e := range []*keyEntry{s.imap, s.smtp, s.username} {
		e.SetText("")
		delete(s.edited, e)
	}
	s.imapSec.SetSelected(secAuto)
	s.smtpSec.SetSelected(secAuto)
	s.filling = false
	s.source = ""
}

func (s *setupView) showHint(imapHost string) {
	if _, hint := words.Provider(s.domain, imapHost); hint != "" {
		s.hint.SetText(hint)
		s.hint.Show()
	} else {
		s.hint.Hide()
	}
	s.relayout()
}

// lookup finds the server settings for domain, a moment after the typing
// stopped, and says what it found in one line.
func (s *setupView) lookup(domain string) {
	gen := s.lookupGen
	email := strings.TrimSpace(s.email.Text)
	b := s.u.b()
	s.showHint("")
	go func() {
		time.Sleep(600 * time.Millisecond)
		var stale bool
		s.u.doWait(func() {
			stale = gen != s.lookupGen
			if !stale {
				s.say(s.found, "Looking up settings…", false)
				s.found.Importance = widget.LowImportance
				s.found.Refresh()
			}
		})
		if stale {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
		defer cancel()
		r, err := b.FindServers(ctx, email)
		s.u.log("server settings looked up", "domain", domain, "found", err == nil)
		s.u.do(func() {
			if gen != s.lookupGen {
				return
			}
			if err != nil {
				s.say(s.found, words.LookupFailed(domain, err), false)
				s.servers.open(true)
				return
			}
			s.fill(r)
		})
	}()
}

func (s *setupView) fill(r autoconfig.Result) {
	s.filling = true
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
	s.filling = false
	s.source = r.Source
	s.say(s.found, words.Found(s.domain, r), false)
	s.found.Importance = widget.SuccessImportance
	s.found.Refresh()
	s.showHint(r.IMAP.Host)
	if len(r.Outside) > 0 || r.Source != "known provider" && (!inDomain(r.IMAP.Host, s.domain) || !inDomain(r.SMTP.Host, s.domain)) {
		// A server outside the address's domain, from DNS or a document
		// anyone on the path could have forged (RFC 6186 §6): shown, and
		// the password goes there only once the user says so.
		s.unsure = true
		s.confirmMsg.SetText(words.ForeignServers(s.domain, r))
		s.confirm.Show()
	}
	s.relayout()
}

// inDomain reports whether host is domain or under it.
func inDomain(host, domain string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == domain || strings.HasSuffix(host, "."+domain)
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
	parse := func(field *keyEntry, sec *widget.Select, smtp bool, what string) (config.Server, error) {
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
		text := strings.TrimSpace(field.Text)
		if text == "" {
			return config.Server{}, errors.New("Enter the " + what + " server under Server settings: your IT department knows it.")
		}
		srv, err := config.ParseServer(text, v, port)
		if err != nil {
			return srv, errors.New("Enter the " + what + " server as a name, optionally with :port, like mail.acme.com:" + map[bool]string{false: "993", true: "465"}[smtp] + ".")
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

// test runs "Test connection" and shows one line per server as it goes.
func (s *setupView) test() {
	if s.testBtn.Disabled() {
		return
	}
	if s.unsure {
		s.say(s.msg, "Say first whether to use the servers found.", true)
		return
	}
	acct, pw, err := s.account()
	if err != nil {
		s.say(s.msg, err.Error(), true)
		if strings.Contains(err.Error(), "Server settings") {
			s.servers.open(true)
		}
		return
	}
	s.msg.Hide()
	s.testBtn.Disable()
	s.addBtn.Disable()
	s.lines.Objects = nil
	s.lines.Refresh()
	b := s.u.b()
	guessed := map[string]bool{"imap": !s.edited[s.imap] && s.source != "", "smtp": !s.edited[s.smtp] && s.source != ""}
	gen := s.testGen
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		checked, err := b.Check(ctx, acct, pw, func(steps []Step) {
			s.u.do(func() {
				if gen == s.testGen {
					s.showSteps(steps, acct, guessed)
				}
			})
		})
		s.u.do(func() {
			s.testBtn.Enable()
			if gen != s.testGen {
				return // the form changed meanwhile: this answer is for another account
			}
			var ue *trust.UntrustedError
			switch {
			case errors.As(err, &ue):
				s.say(s.msg, "The mail server's certificate needs your decision.", true)
				s.u.trustDialog(s.u.win, ue, nil, func() {
					s.pins = append(s.pins, ue.Pin())
					s.test()
				})
			case err != nil:
				s.say(s.msg, "The test failed: fix what the line above says, then test again.", true)
			default:
				s.tested = &checked
				s.say(s.msg, "Everything works. Add the mailbox to start relaying.", false)
				s.addBtn.Enable()
				s.addBtn.Importance = widget.HighImportance
				s.testBtn.Importance = widget.MediumImportance
				s.addBtn.Refresh()
				s.testBtn.Refresh()
				s.u.win.Canvas().Focus(s.addBtn)
			}
		})
	}()
}

// showSteps shows the test: one line per server, and every step under
// "Details of the test".
func (s *setupView) showSteps(steps []Step, acct config.Account, guessed map[string]bool) {
	s.lines.Objects = nil
	for _, srv := range []struct {
		prefix, key string
		server      config.Server
	}{{words.Target("imap") + ": ", "imap", acct.IMAP}, {words.Target("smtp") + ": ", "smtp", acct.SMTP}} {
		var mine []Step
		for _, st := range steps {
			if strings.HasPrefix(st.Title, srv.prefix) {
				mine = append(mine, st)
			}
		}
		if len(mine) == 0 {
			continue
		}
		state, line := serverLine(mine, srv.server.Host, guessed[srv.key], s.source)
		s.lines.Add(stepRow(Step{Title: strings.TrimSuffix(srv.prefix, ": ") + " (" + srv.server.Host + "): " + line, State: state}))
	}
	s.lines.Refresh()
	s.stepList.Objects = nil
	for _, st := range steps {
		s.stepList.Add(stepRow(st))
	}
	s.stepList.Refresh()
	s.steps.Show()
	s.relayout()
}

// serverLine sums a server's steps up in one line: the failed step's
// words, the step under way, or what works.
func serverLine(steps []Step, host string, guessed bool, source string) (StepState, string) {
	running := ""
	warned := ""
	for _, st := range steps {
		_, name, _ := strings.Cut(st.Title, ": ")
		switch st.State {
		case StepFailed:
			if name == words.StepName("dns") && guessed {
				return StepFailed, words.GuessedNameMissing(host, source)
			}
			return StepFailed, st.Detail
		case StepRunning:
			if running == "" {
				running = "checking " + strings.ToLower(name) + "…"
			}
		case StepWarned:
			if warned == "" {
				warned = st.Detail
			}
		case StepPending:
			if running == "" {
				running = "waiting…"
			}
		}
	}
	switch {
	case running != "":
		return StepRunning, running
	case warned != "":
		return StepWarned, "works, but " + warned
	}
	return StepPassed, "works"
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
	title := wrapped(st.Title)
	title.Selectable = true
	if st.State == StepSkipped {
		title.Importance = widget.LowImportance
	}
	box := container.NewVBox(title)
	if st.Detail != "" {
		d := wrapped(st.Detail)
		d.Selectable = true
		d.Importance = widget.LowImportance
		switch st.State {
		case StepFailed:
			d.Importance = widget.DangerImportance
		case StepWarned:
			d.Importance = widget.WarningImportance
		}
		box.Add(d)
	}
	return container.NewBorder(nil, nil, container.NewVBox(widget.NewIcon(icon)), nil, box)
}

// add stores the tested account.
func (s *setupView) add() {
	if s.tested == nil || s.addBtn.Disabled() {
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
				s.addBtn.Enable()
				return
			}
			s.u.last = st
			if s.u.setup == s {
				s.u.leaveSetup()
			}
		})
	}()
}
