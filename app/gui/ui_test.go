package gui

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/assets"
	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

var now = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

var alice = config.Account{Email: "alice@acme.com",
	IMAP: config.Server{Host: "mail.acme.com", Port: 993, Security: config.SecurityTLS},
	SMTP: config.Server{Host: "mail.acme.com", Port: 465, Security: config.SecurityTLS}}

// running is a paired status with alice in the given state.
func running(state engine.State, mod ...func(*engine.AccountStatus)) Status {
	a := engine.AccountStatus{Email: alice.Email, State: state, LastSync: now.Add(-2 * time.Minute), Relayed: 340, RelayedToday: 12}
	for _, m := range mod {
		m(&a)
	}
	return Status{Paired: true, PlatformURL: "https://app.example.com/connector", DeviceName: "alice-laptop",
		Accounts: []config.Account{alice}, Running: true,
		Engine: engine.Snapshot{Platform: engine.PlatformStatus{State: engine.PlatformOK}, Accounts: []engine.AccountStatus{a}}}
}

// newUI starts a UI on a test app with a clock of the test's: time moves
// only when the test advances it.
func newUI(t *testing.T, b Backend, tray Tray, mod ...func(*Options)) (*UI, *fakeClock) {
	t.Helper()
	a := test.NewTempApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clock := &fakeClock{t: now}
	var u *UI
	serial(func() {
		o := Options{Now: clock.Now, After: clock.After, Do: serial, Log: slog.New(slog.DiscardHandler)}
		for _, m := range mod {
			m(&o)
		}
		u = New(a, b, tray, o)
		u.Start(ctx)
	})
	return u, clock
}

// opened opens the main window, as the tray menu's "Open Inbox Relay…"
// does, and returns it: with a tray, the status window is built only then.
func opened(u *UI) fyne.Window {
	serial(u.showWindow)
	var w fyne.Window
	serial(func() { w = u.Window() })
	return w
}

// find returns the first object under o for which match holds.
func find[T fyne.CanvasObject](o fyne.CanvasObject, match func(T) bool) (T, bool) {
	var zero T
	for _, obj := range test.LaidOutObjects(o) {
		if v, ok := obj.(T); ok && match(v) {
			return v, true
		}
	}
	return zero, false
}

// layers are the window's content and its dialogs.
func layers(w fyne.Window) []fyne.CanvasObject {
	return append([]fyne.CanvasObject{w.Content()}, w.Canvas().Overlays().List()...)
}

// button finds a button (ours or fyne's) by its label.
func button(t *testing.T, w fyne.Window, label string) *widget.Button {
	t.Helper()
	var b *widget.Button
	serial(func() {
		for _, o := range layers(w) {
			for _, obj := range test.LaidOutObjects(o) {
				switch v := obj.(type) {
				case *widget.Button:
					if v.Text == label {
						b = v
						return
					}
				case *keyButton:
					if v.Text == label {
						b = &v.Button
						return
					}
				}
			}
		}
	})
	if b == nil {
		t.Fatalf("no button %q in the window", label)
	}
	return b
}

func hasText(w fyne.Window, text string) bool {
	for _, o := range layers(w) {
		if _, ok := find(o, func(l *widget.Label) bool { return l.Visible() && strings.Contains(l.Text, text) }); ok {
			return true
		}
	}
	return false
}

// TestTrayMenu: the menu starts non-empty with the verdict as its stable
// first line, the title is the app's name and the tooltip the verdict;
// the icon follows the state; nothing is rebuilt for an unchanged status.
func TestTrayMenu(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	tray := &fakeTray{}
	u, _ := newUI(t, b, tray)

	want := []string{"All mail relayed", "", "Sync now", "Pause syncing", "", "Open Inbox Relay…", "Settings…", "", "Quit"}
	if got := tray.labels(); !slices.Equal(got, want) {
		t.Fatalf("first menu:\n got %q\nwant %q", got, want)
	}
	if tray.lastIcon() != "tray-"+assets.UpToDate+"-light.png" {
		t.Fatalf("icon %q, want up to date", tray.iconList())
	}
	if tray.tooltips[len(tray.tooltips)-1] != "Inbox Relay: All mail relayed" {
		t.Fatalf("tooltip %q", tray.tooltips)
	}

	serial(func() { u.apply(b.Status()) })
	if tray.menuCount() != 1 || len(tray.iconList()) != 1 || len(tray.tooltips) != 1 {
		t.Fatalf("an unchanged status rebuilt the tray: %d menus, %d icons, %d tooltips", tray.menuCount(), len(tray.iconList()), len(tray.tooltips))
	}

	// Pause through the menu: the backend is asked, and the menu and icon
	// follow once the status says so.
	serial(func() { tray.firstMenu().Items[3].Action() })
	waitFor(t, "pause", func() bool { ok := false; b.with(func() { ok = len(b.paused) == 1 && b.paused[0] }); return ok })
	b.set(with(running(engine.Paused), func(s *Status) { s.Paused = engine.PausedByUser }))
	waitFor(t, "the menu to say paused", func() bool { got := tray.labels(); return got[0] == "Paused" && got[3] == "Resume syncing" })
	if tray.lastIcon() != "tray-paused-light.png" {
		t.Fatalf("icons %q, want paused last", tray.iconList())
	}

	b.set(running(engine.NeedsLogin))
	waitFor(t, "the password problem", func() bool { return tray.labels()[0] == "Action needed: enter the password for alice@acme.com" })
	if tray.lastIcon() != "tray-attention-light.png" {
		t.Fatalf("icons %q, want attention last", tray.iconList())
	}

	// The panel's shade, not the app's theme, picks the icon's ink.
	serial(func() { u.SetPanelDark(true) })
	if tray.lastIcon() != "tray-attention-dark.png" {
		t.Fatalf("icons %q, want the dark panel's", tray.iconList())
	}
}

// TestQuietMinute is the issue's "no menu rebuild while nothing changed
// for 60 s", on the test's clock: a message arriving and relayed every
// 3 s for a minute (the engine saying "syncing" then "up to date" each
// time), then a minute with no change at all. The tray is never touched;
// the window's "· just now" moves to "· 1 min ago" once, on its one
// timer; no timer is left pending with the window closed.
func TestQuietMinute(t *testing.T) {
	b := newFake(running(engine.UpToDate, func(a *engine.AccountStatus) { a.LastRelayed = now }))
	tray := &fakeTray{}
	u, clock := newUI(t, b, tray)
	serial(func() { u.showWindow() })
	menus, icons, tips := tray.menuCount(), len(tray.iconList()), len(tray.tooltips)
	var heads []string
	head := func() string {
		var h string
		serial(func() { h = u.view.headline.Text })
		return h
	}
	for i := 0; i < 20; i++ {
		at := clock.Now()
		serial(func() {
			u.apply(running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 1; a.LastRelayed = at.Add(-3 * time.Second) }))
		})
		clock.advance(time.Second)
		serial(func() {
			u.apply(running(engine.UpToDate, func(a *engine.AccountStatus) { a.LastRelayed = clock.Now() }))
		})
		clock.advance(2 * time.Second)
		heads = append(heads, head())
	}
	last := clock.Now().Add(-2 * time.Second)
	clock.advance(time.Minute)
	heads = append(heads, head())
	if n := tray.menuCount() - menus; n != 0 {
		t.Fatalf("%d menu rebuilds in two minutes of flapping and quiet", n)
	}
	if len(tray.iconList()) != icons || len(tray.tooltips) != tips {
		t.Fatalf("the tray's icon or tooltip changed: %q %q", tray.iconList(), tray.tooltips)
	}
	for _, h := range heads[:20] {
		if h != "All mail relayed · just now" {
			t.Fatalf("the window said %q while mail flowed", h)
		}
	}
	if want := "All mail relayed · " + ago(last, clock.Now()); heads[20] != want || want == "All mail relayed · just now" {
		t.Fatalf("after a quiet minute the window says %q, want %q", heads[20], want)
	}
	serial(func() { u.hideWindow() })
	if n := clock.pending(); n != 0 {
		t.Fatalf("%d timers pending with the window closed and nothing held back", n)
	}
}

// TestTrayNeverStale: a change the engine signals while the UI starts
// (after it subscribed, before its first read is shown) reaches the tray
// without any timer: the subscription comes first.
func TestTrayNeverStale(t *testing.T) {
	b := newFake(running(engine.Starting))
	b.onSub = func() {
		go b.set(running(engine.UpToDate)) // the engine came up meanwhile
	}
	tray := &fakeTray{}
	newUI(t, b, tray)
	waitFor(t, "the tray to say all is relayed", func() bool { return tray.labels()[0] == "All mail relayed" })
}

// TestStatusWindowUpdatesInPlace: the window is built once; a change of
// status updates its widgets, so an opened "Details for IT" stays open,
// the focus stays, and a mailbox's rows are the same widgets; only a
// mailbox added or removed adds or removes rows.
func TestStatusWindowUpdatesInPlace(t *testing.T) {
	st := running(engine.NeedsLogin, func(a *engine.AccountStatus) {
		a.LastError = "alice@acme.com: the mail server refused the login: [AUTHENTICATIONFAILED] Authentication failed."
	})
	b := newFake(st)
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	var content fyne.CanvasObject
	var rows *accountRows
	serial(func() {
		content = w.Content()
		u.view.detailsBox.Open(0)
		rows = u.view.accounts["alice@acme.com"]
		w.Canvas().Focus(u.view.fix)
	})
	if !hasText(w, "Action needed: enter the password for alice@acme.com") || !hasText(w, "[AUTHENTICATIONFAILED]") {
		t.Fatal("the window does not show the problem and its details")
	}
	focused := w.Canvas().Focused()

	serial(func() {
		u.apply(running(engine.NeedsLogin, func(a *engine.AccountStatus) {
			a.Relayed = 341
			a.LastError = st.Engine.Accounts[0].LastError
		}))
	})
	serial(func() {
		if w.Content() != content || u.view.accounts["alice@acme.com"] != rows {
			t.Fatal("the window was rebuilt")
		}
		if !u.view.detailsItem.Open || w.Canvas().Focused() != focused {
			t.Fatal("the details folded or the focus was lost")
		}
		if rows.relayed.Text != "12 today · 341 in total" {
			t.Fatalf("relayed %q", rows.relayed.Text)
		}
	})

	// A second mailbox adds its rows; alice's stay the same widgets.
	two := running(engine.UpToDate)
	two.Accounts = append(two.Accounts, bob)
	two.Engine.Accounts = append(two.Engine.Accounts, engine.AccountStatus{Email: bob.Email, State: engine.UpToDate})
	serial(func() { u.apply(two) })
	serial(func() {
		if u.view.accounts["alice@acme.com"] != rows || u.view.accounts["bob@acme.com"] == nil || w.Content() != content {
			t.Fatal("adding a mailbox rebuilt the others")
		}
	})
	if !hasText(w, "bob@acme.com") || hasText(w, "Action needed") {
		t.Fatal("the window does not show the new state")
	}
}

// TestHeaderGrowsWithoutOverlap: when the verdict gains an explanation
// and a fix button, what follows moves down: nothing overlaps.
func TestHeaderGrowsWithoutOverlap(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	u, _ := newUI(t, b, &fakeTray{})
	opened(u)
	serial(func() { u.win.Resize(fyne.NewSize(720, 600)) })
	serial(func() { u.apply(running(engine.NeedsLogin)) })
	serial(func() {
		d := u.app.Driver()
		head := d.AbsolutePositionForObject(u.view.header).Y + u.view.header.Size().Height
		grid := d.AbsolutePositionForObject(u.view.grid).Y
		if u.view.header.Size().Height < u.view.header.MinSize().Height || head > grid {
			t.Fatalf("the header (to %v, min height %v, height %v) overlaps the grid (from %v)", head, u.view.header.MinSize().Height, u.view.header.Size().Height, grid)
		}
	})
}

// TestCopyDetailsForIT: the details are selectable and one button copies
// them whole.
func TestCopyDetailsForIT(t *testing.T) {
	b := newFake(running(engine.Failing, func(a *engine.AccountStatus) { a.LastError = "select INBOX: the server closed the connection" }))
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	tap(button(t, w, "Copy details for IT"))
	var got string
	serial(func() {
		got = u.app.Clipboard().Content()
		if !u.view.details.Selectable {
			t.Error("the details cannot be selected")
		}
	})
	if !strings.Contains(got, "select INBOX: the server closed the connection") || !strings.Contains(got, "Verdict: Action needed") {
		t.Fatalf("copied %q", got)
	}
}

// TestSetupPairsThenAddsAMailbox walks the first run: a refused code says
// what to do; a good one leads to the mailbox form, where the address
// alone fills in the servers, said in one line with the settings folded
// away; "Add mailbox" stays disabled until the test passed, one line per
// server, and is disabled again when a field changes; what is stored is
// exactly what was tested.
func TestSetupPairsThenAddsAMailbox(t *testing.T) {
	b := newFake(Status{DeviceName: "alice-laptop"})
	b.findReply.IMAP = config.Server{Host: "imap.acme.com", Port: 993, Security: config.SecurityTLS}
	b.findReply.SMTP = config.Server{Host: "smtp.acme.com", Port: 587, Security: config.SecurityStartTLS}
	b.findReply.Source = "DNS SRV"
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)

	serial(func() {
		u.setup.pairURL.SetText("app.example.com/connector")
		u.setup.pairCode.SetText("WRONG")
	})
	tap(button(t, w, "Pair this computer"))
	waitFor(t, "the refusal", func() bool { return hasText(w, "did not accept this code") })

	serial(func() { u.setup.pairCode.SetText("GOOD-CODE") })
	tap(button(t, w, "Pair this computer"))
	waitFor(t, "the mailbox form", func() bool { return u.setup.email != nil })
	var paired []string
	b.with(func() {
		for _, p := range b.paired {
			paired = append(paired, p.URL)
		}
	})
	if got := paired[1]; got != "https://app.example.com/connector" {
		t.Fatalf("paired with %q, want the https URL", got)
	}

	serial(func() {
		u.setup.email.SetText("alice@acme.com")
		u.setup.password.SetText("s3cret")
	})
	waitFor(t, "the servers to be filled in", func() bool { return u.setup.imap.Text == "imap.acme.com:993" })
	if u.setup.smtp.Text != "smtp.acme.com:587" || u.setup.smtpSec.Selected != secStartTLS {
		t.Fatalf("smtp %q %q", u.setup.smtp.Text, u.setup.smtpSec.Selected)
	}
	if !hasText(w, "Found: acme.com — imap.acme.com, smtp.acme.com (from acme.com's DNS)") || u.setup.servers.shown {
		t.Fatal("the lookup is not one line with the settings folded away")
	}
	add := button(t, w, "Add mailbox")
	if !add.Disabled() {
		t.Fatal("Add mailbox is enabled before any test")
	}
	tap(button(t, w, "Test connection"))
	waitFor(t, "the test to pass", func() bool { return !add.Disabled() })
	if !hasText(w, "Incoming mail (imap.acme.com): works") {
		t.Fatal("the test's line per server is not shown")
	}

	// Changing a field after the test needs a new test.
	serial(func() { u.setup.username.SetText("alice") })
	if !add.Disabled() {
		t.Fatal("Add mailbox stayed enabled after the login name changed")
	}
	tap(button(t, w, "Test connection"))
	waitFor(t, "the second test to pass", func() bool { return !add.Disabled() })
	b.with(func() {
		if len(b.added) != 0 {
			t.Error("something was stored before Add mailbox")
		}
	})
	// Enter, with nothing focused, adds the tested mailbox.
	serial(func() { w.Canvas().Unfocus(); w.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyReturn}) })
	waitFor(t, "the status view", func() bool { return u.mode == "status" })
	b.with(func() {
		if len(b.added) != 1 || b.added[0].Username != "alice" || b.added[0].IMAP.Host != "imap.acme.com" || b.password["alice@acme.com"] != "s3cret" {
			t.Fatalf("stored %+v", b.added)
		}
	})
}

// TestSetupClearsWhatIsStale: a new domain clears the servers found for
// the old one, the test's lines and the trusted certificates, and says
// in the domain's words that nothing was found; the provider's advice
// follows the address.
func TestSetupClearsWhatIsStale(t *testing.T) {
	b := newFake(Status{Paired: true, PlatformURL: "https://p.example"})
	b.findReply = autoconfig.Result{IMAP: config.Server{Host: "imap.gmail.com", Port: 993, Security: config.SecurityTLS},
		SMTP: config.Server{Host: "smtp.gmail.com", Port: 465, Security: config.SecurityTLS}, Source: "known provider"}
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	serial(func() {
		u.setup.email.SetText("alice@gmail.com")
		u.setup.password.SetText("pw")
	})
	waitFor(t, "gmail's servers", func() bool { return u.setup.imap.Text == "imap.gmail.com:993" })
	if !hasText(w, "Found: Gmail — imap.gmail.com, smtp.gmail.com") || !hasText(w, "app password") {
		t.Fatal("no provider line or app-password advice for Gmail")
	}
	tap(button(t, w, "Test connection"))
	waitFor(t, "the test", func() bool { return hasText(w, "Incoming mail (imap.gmail.com): works") })

	b.with(func() { b.findErr = autoconfig.ErrNotFound })
	serial(func() { u.setup.email.SetText("alice@example.com") })
	serial(func() {
		if u.setup.imap.Text != "" || u.setup.smtp.Text != "" || len(u.setup.lines.Objects) != 0 || u.setup.tested != nil || u.setup.pins != nil {
			t.Fatalf("stale settings kept: imap %q smtp %q, %d test lines", u.setup.imap.Text, u.setup.smtp.Text, len(u.setup.lines.Objects))
		}
	})
	waitFor(t, "the failed lookup", func() bool { return hasText(w, "No settings were found for example.com") })
	if hasText(w, "app password") || hasText(w, "Gmail") {
		t.Fatal("Gmail's advice outlived the address")
	}
	if !u.setup.servers.shown {
		t.Fatal("the server settings stay folded though they must be typed")
	}
}

// TestSetupGuessedNameIsNotASpellingMistake: a server name the lookup
// filled in that does not exist is not blamed on the user's spelling.
func TestSetupGuessedNameIsNotASpellingMistake(t *testing.T) {
	b := newFake(Status{Paired: true, PlatformURL: "https://p.example"})
	b.findReply = autoconfig.Result{IMAP: config.Server{Host: "imap.acme.com", Port: 993, Security: config.SecurityTLS},
		SMTP: config.Server{Host: "smtp.acme.com", Port: 465, Security: config.SecurityTLS}, Source: "autoconfig"}
	b.checkWith = func(ctx context.Context, acct config.Account, pw string, progress func([]Step)) (config.Account, error) {
		progress([]Step{{Title: "Incoming mail: Server name", State: StepFailed, Detail: "imap.acme.com does not exist. Check the spelling of the server name."}})
		return acct, fmt.Errorf("Incoming mail: Server name: no such host")
	}
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	serial(func() {
		u.setup.email.SetText("alice@acme.com")
		u.setup.password.SetText("pw")
	})
	waitFor(t, "the servers", func() bool { return u.setup.imap.Text == "imap.acme.com:993" })
	tap(button(t, w, "Test connection"))
	// The test's end too: until then Test connection is disabled, and a
	// tap on it does nothing.
	waitFor(t, "the failure", func() bool {
		return hasText(w, "No server named imap.acme.com exists, though your domain's mail settings named it") &&
			hasText(w, "The test failed")
	})

	// Typed by the user: then it is theirs to check.
	serial(func() { u.setup.imap.SetText("imap.acme.com:993") })
	tap(button(t, w, "Test connection"))
	waitFor(t, "the failure", func() bool { return hasText(w, "Check the spelling") && !hasText(w, "though your domain") })
}

// TestSetupAsksBeforeForeignServers (issue 9): servers found outside the
// address's domain are shown and the password goes nowhere until the user
// says to use them.
func TestSetupAsksBeforeForeignServers(t *testing.T) {
	b := newFake(Status{Paired: true, PlatformURL: "https://p.example"})
	b.findReply = autoconfig.Result{IMAP: config.Server{Host: "imap.evil.example", Port: 993, Security: config.SecurityTLS},
		SMTP: config.Server{Host: "smtp.evil.example", Port: 465, Security: config.SecurityTLS}, Source: "DNS SRV"}
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	serial(func() {
		u.setup.email.SetText("alice@acme.com")
		u.setup.password.SetText("pw")
	})
	waitFor(t, "the question", func() bool { return hasText(w, "handled by imap.evil.example and smtp.evil.example, outside acme.com") })
	tap(button(t, w, "Test connection"))
	b.with(func() {
		if len(b.checked) != 0 {
			t.Fatal("the password was tested against a foreign server before the user agreed")
		}
	})
	tap(button(t, w, "Use these servers"))
	waitFor(t, "the test", func() bool { n := 0; b.with(func() { n = len(b.checked) }); return n == 1 })
}

// TestSetupAsksBeforeTrustingACertificate: an untrusted certificate stops
// the test with a question whose default (Enter) is not to trust; only
// "Trust it" pins it, for its server, and the stored account has the pin.
func TestSetupAsksBeforeTrustingACertificate(t *testing.T) {
	const fp = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01"
	b := newFake(Status{Paired: true, PlatformURL: "https://p.example"})
	b.findErr = fmt.Errorf("not found")
	b.check = func(acct config.Account) error {
		if slices.ContainsFunc(acct.PinsFor("mail.acme.com:993"), func(p trust.Pin) bool { return p.Fingerprint == fp }) {
			return nil
		}
		return fmt.Errorf("IMAP: %w", &trust.UntrustedError{Server: "mail.acme.com:993", Host: "mail.acme.com", Fingerprint: fp, Reason: fmt.Errorf("x509: unknown authority")})
	}
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	serial(func() {
		u.setup.email.SetText("alice@acme.com")
		u.setup.password.SetText("pw")
		u.setup.imap.SetText("mail.acme.com:993")
		u.setup.smtp.SetText("mail.acme.com:465")
	})
	tap(button(t, w, "Test connection"))
	waitFor(t, "the trust question", func() bool { return hasText(w, "AB:01:AB:01") })

	// Enter answers the question with its default: don't trust.
	serial(func() { w.Canvas().Unfocus(); w.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyReturn}) })
	waitFor(t, "the question to close", func() bool { return w.Canvas().Overlays().Top() == nil })
	add := button(t, w, "Add mailbox")
	var checks int
	b.with(func() { checks = len(b.checked) })
	if !add.Disabled() || checks != 1 {
		t.Fatalf("refusing the certificate went on: %d checks", checks)
	}

	tap(button(t, w, "Test connection"))
	waitFor(t, "the trust question again", func() bool { return hasText(w, "AB:01:AB:01") })
	tap(button(t, w, "Trust it"))
	waitFor(t, "the test to pass", func() bool { return !add.Disabled() })
	tap(add)
	var added []config.Account
	waitFor(t, "the account", func() bool { b.with(func() { added = b.added }); return len(added) == 1 })
	if !slices.Equal(added[0].Pins, []trust.Pin{{Server: "mail.acme.com:993", Fingerprint: fp}}) {
		t.Fatalf("stored pins %+v", added[0].Pins)
	}
	if added[0].IMAP.Security == "" {
		t.Fatal("stored an account with no security")
	}
}

// TestTrustFixShowsBothFingerprints: a changed certificate is shown beside
// the one trusted until now, with a copy button; Esc leaves it untrusted;
// "Trust it" pins the new one.
func TestTrustFixShowsBothFingerprints(t *testing.T) {
	const oldFP = "ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03"
	const fp = "cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02"
	st := running(engine.NeedsTrust)
	pinned := alice
	pinned.Pins = []trust.Pin{{Server: "mail.acme.com:993", Fingerprint: oldFP}}
	st.Accounts = []config.Account{pinned}
	b := newFake(st)
	b.certErr = &trust.UntrustedError{Server: "mail.acme.com:993", Host: "mail.acme.com", Fingerprint: fp}
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	tap(button(t, w, "Review certificate…"))
	waitFor(t, "both fingerprints", func() bool { return hasText(w, "CD:02:CD:02") && hasText(w, "EF:03:EF:03") && hasText(w, "changed") })
	tap(button(t, w, "Copy fingerprint"))
	serial(func() {
		if got := u.app.Clipboard().Content(); !strings.HasPrefix(got, "CD:02:CD:02") {
			t.Errorf("copied %q", got)
		}
	})
	serial(func() { w.Canvas().Unfocus(); w.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyEscape}) })
	b.with(func() {
		if len(b.trusted) != 0 {
			t.Fatal("Esc trusted the certificate")
		}
	})
	tap(button(t, w, "Review certificate…"))
	waitFor(t, "the question again", func() bool { return hasText(w, "CD:02:CD:02") })
	tap(button(t, w, "Trust it"))
	b.with(func() {
		if b.trusted[alice.Email] != fp {
			t.Fatalf("trusted %q", b.trusted)
		}
	})
}

// TestPasswordFix: "Enter password…" checks and stores the new password;
// the dialog stays open with the reason while the server refuses.
func TestPasswordFix(t *testing.T) {
	b := newFake(running(engine.NeedsLogin))
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	tries := 0
	b.setPw = func(email, pw string) error {
		tries++
		if pw == "old" {
			return fmt.Errorf("the password was not changed: IMAP: %w", errAuth)
		}
		return nil
	}
	tap(button(t, w, "Enter password…"))
	var pw *keyEntry
	waitFor(t, "the password dialog", func() bool {
		var ok bool
		pw, ok = find(w.Canvas().Overlays().Top(), func(e *keyEntry) bool { return e.Password })
		return ok
	})
	serial(func() { pw.SetText("old") })
	tap(button(t, w, "Save password"))
	waitFor(t, "the refusal", func() bool { return hasText(w, "still refuses this password") })
	serial(func() { pw.SetText("new-one"); pw.OnSubmitted(pw.Text) }) // Enter in the field saves
	waitFor(t, "the dialog to close", func() bool { return w.Canvas().Overlays().Top() == nil })
	b.with(func() {
		if tries != 2 || b.password[alice.Email] != "new-one" {
			t.Fatalf("tries %d, stored %q", tries, b.password[alice.Email])
		}
	})
}

// TestRemoveAndUnpairAskFirst: both keep things by default (Enter), and
// do it only on the explicit button.
func TestRemoveAndUnpairAskFirst(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	u, _ := newUI(t, b, &fakeTray{})
	w := opened(u)
	tap(button(t, w, "Remove…"))
	waitFor(t, "the question", func() bool { return hasText(w, "Remove alice@acme.com?") })
	serial(func() { w.Canvas().Unfocus(); w.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyReturn}) })
	tap(button(t, w, "Remove…"))
	waitFor(t, "the question", func() bool { return hasText(w, "Remove alice@acme.com?") })
	tap(button(t, w, "Remove mailbox"))
	waitFor(t, "the removal", func() bool { n := 0; b.with(func() { n = len(b.removed) }); return n == 1 })

	tap(button(t, w, "Unpair…"))
	waitFor(t, "the question", func() bool { return hasText(w, "Unpair this computer?") })
	tap(button(t, w, "Keep paired"))
	tap(button(t, w, "Unpair…"))
	tap(button(t, w, "Unpair"))
	waitFor(t, "unpairing", func() bool { n := 0; b.with(func() { n = b.unpaired }); return n == 1 })
}

// TestWithoutTray: with no tray the window has Quit (and Ctrl+Q quits);
// a tray that appears later takes over, and the window's Quit goes.
func TestWithoutTray(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	quits := 0
	u, _ := newUI(t, b, nil, func(o *Options) { o.Quit = func() { quits++ } })
	w := opened(u)
	if !hasText(w, "shows no tray icons") {
		t.Fatal("no word about the missing tray")
	}
	tap(button(t, w, "Quit"))
	serial(func() {
		sc := &desktop.CustomShortcut{KeyName: fyne.KeyQ, Modifier: fyne.KeyModifierControl}
		w.Canvas().(fyne.Shortcutable).TypedShortcut(sc)
	})
	if quits != 2 {
		t.Fatalf("%d quits, want 2 (button, Ctrl+Q)", quits)
	}
	serial(func() { u.SetTray(true) })
	if hasText(w, "shows no tray icons") {
		t.Fatal("the note stayed after a tray appeared")
	}
	serial(func() {
		if u.view.quit.Visible() {
			t.Fatal("Quit stayed in the window with a tray")
		}
	})
}

// TestNotifications: one notification when the password is refused, none
// while the problem lasts, a new one only after it was solved and came
// back.
func TestNotifications(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	u, _ := newUI(t, b, nil)
	apply := func(st Status) { serial(func() { u.apply(st) }) }
	note := &fyne.Notification{Title: "Password needed for alice@acme.com",
		Content: "The mail server refused the password; open Inbox Relay and enter the current one."}
	test.AssertNotificationSent(t, note, func() { apply(running(engine.NeedsLogin)) })
	test.AssertNotificationSent(t, nil, func() { apply(running(engine.NeedsLogin)) })
	test.AssertNotificationSent(t, nil, func() { apply(running(engine.UpToDate)) })
	test.AssertNotificationSent(t, note, func() { apply(running(engine.NeedsLogin)) })
}

// TestStallNotifiedByTimer: the stall notification comes from the one
// timer the model arms, with no status read in between.
func TestStallNotifiedByTimer(t *testing.T) {
	b := newFake(running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 5 }))
	var sent []string
	u, clock := newUI(t, b, nil, func(o *Options) { o.Notify = func(n *fyne.Notification) { sent = append(sent, n.Title) } })
	var reads int
	b.with(func() { reads = b.reads })
	clock.advance(61 * time.Minute)
	serial(func() {})
	if len(sent) != 1 || sent[0] != "Nothing relayed for alice@acme.com" {
		t.Fatalf("sent %q", sent)
	}
	b.with(func() {
		if b.reads != reads {
			t.Errorf("the status was read %d times by timers", b.reads-reads)
		}
	})
	_ = u
}

// TestRedrawsOnChangeSignals: with no timer in sight, a change the backend
// signals reaches the tray and the window by itself; a burst of signals is
// read at most four times a second; after switching backends (the demo),
// the new backend's signals are the ones heard.
func TestRedrawsOnChangeSignals(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	tray := &fakeTray{}
	u, _ := newUI(t, b, tray)
	w := opened(u)

	b.set(running(engine.NeedsLogin))
	waitFor(t, "the signalled change in the tray", func() bool { return tray.labels()[0] == "Action needed: enter the password for alice@acme.com" })
	waitFor(t, "the signalled change in the window", func() bool { return hasText(w, "refused the password") })

	var before int
	b.with(func() { before = b.reads })
	start := time.Now()
	for i := 0; i < 100; i++ {
		b.set(running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = i + 1 }))
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	waitFor(t, "the last change", func() bool { return hasText(w, "Relaying 100 messages") })
	time.Sleep(2 * redrawGap)
	var reads int
	b.with(func() { reads = b.reads - before })
	if most := int(elapsed/redrawGap) + 3; reads > most || reads < 2 {
		t.Fatalf("100 signals in %v made %d reads, want 2 to %d", elapsed.Round(time.Millisecond), reads, most)
	}

	demo := newFake(running(engine.UpToDate))
	serial(func() { u.SetBackend(demo, true) })
	waitFor(t, "the new backend", func() bool { return tray.labels()[0] == "All mail relayed" })
	demo.set(running(engine.NeedsTrust))
	waitFor(t, "the new backend's signal", func() bool {
		return tray.labels()[0] == "Action needed: check the certificate of alice@acme.com's server"
	})
	if !hasText(w, "Action needed: check the certificate") {
		t.Fatal("the window disagrees with the tray")
	}
}

// TestOutboxLine: the outbox in plain words, the last error beside what
// it explains, and nothing at all when there is no outgoing mail.
func TestOutboxLine(t *testing.T) {
	for _, c := range []struct {
		name string
		o    engine.OutboxStatus
		want string
	}{
		{"nothing", engine.OutboxStatus{}, ""},
		{"failed with reason", engine.OutboxStatus{Queued: 2, Failed: 1, LastError: "550 no such user"}, "2 waiting · 1 could not be sent (550 no such user)"},
		{"retrying", engine.OutboxStatus{Queued: 1, LastError: "421 try later"}, "1 waiting (421 try later)"},
		{"all kinds", engine.OutboxStatus{Queued: 1, Sending: 1, Failed: 2, Ambiguous: 1, Sent: 7},
			"1 waiting · 1 being sent · 2 could not be sent · 1 may not have gone out (look in Sent before sending again) · 7 sent in the last 30 days"},
		{"only an error", engine.OutboxStatus{LastError: "cannot reach smtp.acme.com; retrying"}, "last problem (cannot reach smtp.acme.com)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := outboxLine(c.o); got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// TestRejectionsShown: the platform's refusals are listed with their
// reasons under the mailbox.
func TestRejectionsShown(t *testing.T) {
	b := newFake(running(engine.UpToDate, func(a *engine.AccountStatus) {
		a.Rejected = 1
		a.Rejections = []state.Rejection{{Folder: "inbox", UID: 7, MessageID: "<x@acme.com>", Reason: "message larger than 25 MB"}}
	}))
	u, _ := newUI(t, b, &fakeTray{})
	if w := opened(u); !hasText(w, "1 message refused by the platform") {
		t.Fatal("the refusals are not counted")
	}
	serial(func() {
		r := u.view.accounts["alice@acme.com"]
		if r.rejections.Text != "<x@acme.com> in inbox: message larger than 25 MB" || !r.rejectionsBox.Visible() {
			t.Fatalf("reasons %q", r.rejections.Text)
		}
	})
}

// TestDemoOffersLeaveDemo: in the demo, "Add mailbox…" (which would add a
// real mailbox to a throw-away home) gives way to "Leave demo", which
// returns to the user's own backend.
func TestDemoOffersLeaveDemo(t *testing.T) {
	user := newFake(Status{DeviceName: "alice-laptop"})
	demo := newFake(with(running(engine.UpToDate), func(s *Status) { s.DeviceName = "alice-laptop (demo)" }))
	left := 0
	u, _ := newUI(t, user, &fakeTray{}, func(o *Options) {
		o.StartDemo = func(context.Context) (Backend, error) { return demo, nil }
		o.LeaveDemo = func() Backend { left++; return user }
	})
	w := u.Window()
	tap(button(t, w, "Try the demo"))
	waitFor(t, "the demo", func() bool { return u.mode == "status" && hasText(w, "alice-laptop (demo)") })
	serial(func() {
		if u.view.add.Visible() || !u.view.leaveDemo.Visible() {
			t.Fatal("the demo offers Add mailbox, or no way out")
		}
	})
	tap(button(t, w, "Leave demo"))
	waitFor(t, "the user's own setup", func() bool { return u.mode == "setup" && !u.demo })
	if left != 1 {
		t.Fatalf("LeaveDemo called %d times", left)
	}
}

// TestNoStaleReadAfterSwitchingBackends: a status read from the old
// backend while the app switched to another (the demo) is dropped, even
// when the fyne goroutine runs it after the reader moved on to the new
// backend: the window and the tray stay on the new one.
func TestNoStaleReadAfterSwitchingBackends(t *testing.T) {
	user := newFake(Status{DeviceName: "alice-laptop"})
	demo := newFake(running(engine.UpToDate))
	queue := make(chan func(), 16)
	tray := &fakeTray{}
	u, _ := newUI(t, user, tray, func(o *Options) { o.Do = func(f func()) { queue <- f } })
	run := func() { f := <-queue; serial(f) }

	gate, waiting := make(chan struct{}), make(chan struct{}, 1)
	user.with(func() { user.gate, user.waiting = gate, waiting })
	u.Refresh()
	<-waiting // the reader now waits in the user's Status
	serial(func() { u.SetBackend(demo, true) })
	close(gate) // the old read ends: queued; the reader moves on to the demo
	run()       // the old backend's status
	run()       // the demo's
	serial(func() {
		if u.mode != "status" || tray.labels()[0] != "All mail relayed" {
			t.Fatalf("after switching: mode %q, tray %q", u.mode, tray.labels())
		}
	})
}
