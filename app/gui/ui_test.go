package gui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
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

// newUI starts a UI on a test app; PollEvery is long so the test drives
// updates itself (apply) unless it asks for a Refresh.
func newUI(t *testing.T, b Backend, tray Tray) (*UI, fyne.App) {
	t.Helper()
	a := test.NewTempApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var u *UI
	serial(func() {
		u = New(a, b, tray, Options{Now: func() time.Time { return now }, PollEvery: time.Hour, Do: serial})
		u.Start(ctx)
	})
	return u, a
}

// TestTrayMenu checks the menu starts non-empty, shows one line per
// account with its state and last sync, offers the commands, follows the
// state in its icon, and is rebuilt only when a label changed.
func TestTrayMenu(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	tray := &fakeTray{}
	u, _ := newUI(t, b, tray)

	want := []string{"alice@acme.com — up to date, 2 min ago", "", "Sync now", "Pause syncing", "", "Open Inbox Relay…", "Settings…", "", "Quit"}
	if got := tray.labels(); !slices.Equal(got, want) {
		t.Fatalf("first menu:\n got %q\nwant %q", got, want)
	}
	if tray.lastIcon() != "tray-"+assets.UpToDate+"-light.png" {
		t.Fatalf("icon %q, want up to date", tray.iconList())
	}

	// The same status again rebuilds nothing.
	serial(func() { u.apply(b.Status()) })
	if tray.menuCount() != 1 || len(tray.iconList()) != 1 {
		t.Fatalf("an unchanged status rebuilt the tray: %d menus, %d icons", tray.menuCount(), len(tray.iconList()))
	}

	// Pause through the menu: the backend is asked, and the menu and icon
	// follow once the status says so.
	serial(func() { tray.firstMenu().Items[3].Action() })
	waitFor(t, "pause", func() bool { ok := false; b.with(func() { ok = len(b.paused) == 1 && b.paused[0] }); return ok })
	serial(func() { u.apply(b.Status()) })
	if got := tray.labels()[3]; got != "Resume syncing" {
		t.Fatalf("after pausing the menu says %q", got)
	}
	if tray.lastIcon() != "tray-paused-light.png" {
		t.Fatalf("icons %q, want paused last", tray.iconList())
	}

	// A login problem turns the icon to "needs attention".
	serial(func() { u.apply(running(engine.NeedsLogin)) })
	if got := tray.labels()[0]; got != "alice@acme.com — password needed, 2 min ago" {
		t.Fatalf("account line %q", got)
	}
	if tray.lastIcon() != "tray-attention-light.png" {
		t.Fatalf("icons %q, want attention last", tray.iconList())
	}

	// Before pairing the menu is not empty either.
	if got := menuLabels(Status{}, now); len(got) < 2 || !strings.Contains(got[0], "Not paired") {
		t.Fatalf("unpaired menu %q", got)
	}
}

func TestTrayState(t *testing.T) {
	for _, c := range []struct {
		name string
		st   Status
		want string
	}{
		{"not paired", Status{}, assets.Attention},
		{"no account", Status{Paired: true}, assets.Attention},
		{"up to date", running(engine.UpToDate), assets.UpToDate},
		{"syncing", running(engine.Syncing), assets.Syncing},
		{"offline", running(engine.Offline), assets.Offline},
		{"needs trust", running(engine.NeedsTrust), assets.Attention},
		{"platform unreachable", func() Status {
			s := running(engine.UpToDate)
			s.Engine.Platform.State = engine.PlatformUnreachable
			return s
		}(), assets.Offline},
		{"platform refuses", func() Status {
			s := running(engine.UpToDate)
			s.Engine.Platform.State = engine.PlatformNeedsPairing
			return s
		}(), assets.Attention},
		{"paused", func() Status { s := running(engine.Paused); s.Paused = engine.PausedByUser; return s }(), assets.Paused},
		{"paused on a metered network", func() Status { s := running(engine.Paused); s.Paused = engine.PausedOnMetered; return s }(), assets.Paused},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := trayState(c.st); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
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

func button(t *testing.T, w fyne.Window, label string) *widget.Button {
	t.Helper()
	var b *widget.Button
	var ok bool
	serial(func() {
		for _, o := range append([]fyne.CanvasObject{w.Content()}, w.Canvas().Overlays().List()...) {
			if b, ok = find(o, func(b *widget.Button) bool { return b.Text == label }); ok {
				return
			}
		}
	})
	if !ok {
		t.Fatalf("no button %q in the window", label)
	}
	return b
}

func hasText(w fyne.Window, text string) bool {
	for _, o := range append([]fyne.CanvasObject{w.Content()}, w.Canvas().Overlays().List()...) {
		if _, ok := find(o, func(l *widget.Label) bool { return strings.Contains(l.Text, text) }); ok {
			return true
		}
	}
	return false
}

// TestSetupPairsThenAddsAMailbox walks the first run: a refused code says
// what to do; a good one leads to the mailbox form; "Add mailbox" stays
// disabled until "Test connection" passed, and is disabled again when a
// field changes; what is stored is exactly what was tested.
func TestSetupPairsThenAddsAMailbox(t *testing.T) {
	b := newFake(Status{DeviceName: "alice-laptop"})
	b.findReply.IMAP = config.Server{Host: "imap.acme.com", Port: 993, Security: config.SecurityTLS}
	b.findReply.SMTP = config.Server{Host: "smtp.acme.com", Port: 587, Security: config.SecurityStartTLS}
	b.findReply.Source = "DNS SRV"
	u, _ := newUI(t, b, &fakeTray{})
	w := u.Window()

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

	// The address fills in the servers (after a short pause in typing).
	serial(func() {
		u.setup.email.SetText("alice@acme.com")
		u.setup.password.SetText("s3cret")
	})
	waitFor(t, "the servers to be filled in", func() bool { return u.setup.imap.Text == "imap.acme.com:993" })
	if u.setup.smtp.Text != "smtp.acme.com:587" || u.setup.smtpSec.Selected != secStartTLS {
		t.Fatalf("smtp %q %q", u.setup.smtp.Text, u.setup.smtpSec.Selected)
	}
	add := button(t, w, "Add mailbox")
	if !add.Disabled() {
		t.Fatal("Add mailbox is enabled before any test")
	}
	tap(button(t, w, "Test connection"))
	waitFor(t, "the test to pass", func() bool { return !add.Disabled() })
	if !hasText(w, "Incoming mail: Connection") || !hasText(w, "Port 993 answers.") {
		t.Fatal("the steps of the test are not shown")
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
	tap(add)
	waitFor(t, "the status view", func() bool { return u.mode == "status" })
	b.with(func() {
		if len(b.added) != 1 || b.added[0].Username != "alice" || b.added[0].IMAP.Host != "imap.acme.com" || b.password["alice@acme.com"] != "s3cret" {
			t.Fatalf("stored %+v", b.added)
		}
	})
}

// TestSetupAsksBeforeTrustingACertificate: an untrusted certificate stops
// the test with a dialog showing its fingerprint; only "Trust it" pins it,
// and the pinned fingerprint is what the account is stored with.
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
	w := u.Window()
	serial(func() {
		u.setup.email.SetText("alice@acme.com")
		u.setup.password.SetText("pw")
		u.setup.imap.SetText("mail.acme.com:993")
		u.setup.smtp.SetText("mail.acme.com:465")
	})
	tap(button(t, w, "Test connection"))
	waitFor(t, "the trust question", func() bool { return hasText(w, "AB:01:AB:01") })

	tap(button(t, w, "Don't trust"))
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
	// The automatic security was resolved by the test, not left empty.
	if added[0].IMAP.Security == "" {
		t.Fatal("stored an account with no security")
	}
}

// TestStatusWindow renders the status window of an account whose password
// was refused and checks, through the rendered markup, that it shows the
// counts, the rejection reasons and the fix; then that the fix stores the
// new password and the window says so when the server still refuses.
func TestStatusWindow(t *testing.T) {
	st := running(engine.NeedsLogin, func(a *engine.AccountStatus) {
		a.Backlog = 3
		a.Rejected = 1
		a.Rejections = []state.Rejection{{Folder: "inbox", UID: 7, MessageID: "<x@acme.com>", Reason: "message larger than 25 MB"}}
		a.LastError = "alice@acme.com: the mail server refused the login: [AUTHENTICATIONFAILED] Authentication failed."
		a.Outbox = engine.OutboxStatus{Queued: 2, Failed: 1, LastError: "the server refused the recipient bob@nowhere.test: 550 5.1.1 no such user"}
	})
	b := newFake(st)
	u, _ := newUI(t, b, &fakeTray{})
	w := u.Window()
	serial(func() { w.Resize(fyne.NewSize(640, 640)) })
	test.AssertRendersToMarkup(t, "status_needs_login.xml", w.Canvas())

	for _, want := range []string{"12 today · 340 in total", "3 messages",
		"2 waiting · 1 could not be sent (the server refused the recipient bob@nowhere.test: 550 5.1.1 no such user)", "refused the password", "alice-laptop", "app.example.com/connector — connected"} {
		if !hasText(w, want) {
			t.Errorf("the window does not show %q", want)
		}
	}
	tries := 0
	b.setPw = func(email, pw string) error {
		tries++
		if pw == "old" {
			return fmt.Errorf("the password was not changed: IMAP: %w", errAuth)
		}
		return nil
	}
	tap(button(t, w, "Enter password…"))
	var pw *widget.Entry
	waitFor(t, "the password dialog", func() bool {
		var ok bool
		pw, ok = find(w.Canvas().Overlays().Top(), func(e *widget.Entry) bool { return e.Password })
		return ok
	})
	serial(func() { pw.SetText("old") })
	tap(button(t, w, "Save password"))
	waitFor(t, "the refusal", func() bool { return hasText(w, "still refuses this password") })
	serial(func() { pw.SetText("new-one") })
	tap(button(t, w, "Save password"))
	waitFor(t, "the dialog to close", func() bool { return w.Canvas().Overlays().Top() == nil })
	b.with(func() {
		if tries != 2 || b.password[alice.Email] != "new-one" {
			t.Fatalf("tries %d, stored %q", tries, b.password[alice.Email])
		}
	})
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

// TestTrustFixShowsFingerprint: the "Review certificate…" fix shows the
// fingerprint the server presents now and pins it only on "Trust it".
func TestTrustFixShowsFingerprint(t *testing.T) {
	const fp = "cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02"
	b := newFake(running(engine.NeedsTrust))
	b.certErr = &trust.UntrustedError{Host: "mail.acme.com", Fingerprint: fp}
	u, _ := newUI(t, b, &fakeTray{})
	w := u.Window()
	tap(button(t, w, "Review certificate…"))
	waitFor(t, "the fingerprint", func() bool { return hasText(w, "CD:02:CD:02") })
	b.with(func() {
		if len(b.trusted) != 0 {
			t.Fatal("trusted before the user said so")
		}
	})
	tap(button(t, w, "Trust it"))
	b.with(func() {
		if b.trusted[alice.Email] != fp {
			t.Fatalf("trusted %q", b.trusted)
		}
	})
}

// TestNotifications: one notification when the password is refused, none
// while the problem lasts, a new one only after it was solved and came
// back; one when nothing was relayed for over an hour while mail waits.
func TestNotifications(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	u, _ := newUI(t, b, nil)
	apply := func(st Status) { serial(func() { u.apply(st) }) }

	test.AssertNotificationSent(t, &fyne.Notification{Title: "Password needed for alice@acme.com",
		Content: "The mail server refused the password; open Inbox Relay and enter the current one."}, func() { apply(running(engine.NeedsLogin)) })
	test.AssertNotificationSent(t, nil, func() { apply(running(engine.NeedsLogin)) })
	test.AssertNotificationSent(t, nil, func() { apply(running(engine.UpToDate)) })
	test.AssertNotificationSent(t, &fyne.Notification{Title: "Password needed for alice@acme.com",
		Content: "The mail server refused the password; open Inbox Relay and enter the current one."}, func() { apply(running(engine.NeedsLogin)) })

	var sent []string
	n := newNotifier(func(m *fyne.Notification) { sent = append(sent, m.Title) })
	waiting := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 5 })
	n.observe(waiting, now)
	n.observe(waiting, now.Add(59*time.Minute))
	if len(sent) != 0 {
		t.Fatalf("notified %q before an hour passed", sent)
	}
	n.observe(waiting, now.Add(61*time.Minute))
	n.observe(waiting, now.Add(90*time.Minute))
	if len(sent) != 1 || sent[0] != "Nothing relayed for alice@acme.com" {
		t.Fatalf("sent %q, want one stall notification", sent)
	}
	// Progress ends the problem; no mail waiting is never a stall.
	progressed := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 5; a.Relayed++ })
	n.observe(progressed, now.Add(91*time.Minute))
	idle := running(engine.UpToDate)
	n.observe(idle, now.Add(200*time.Minute))
	if len(sent) != 1 {
		t.Fatalf("sent %q", sent)
	}
}

// TestRedrawsOnChangeSignals: with no periodic read in sight, a change the
// backend signals reaches the tray and the window by itself; a burst of
// signals is read at most four times a second; after switching backends
// (the demo), the new backend's signals are the ones heard.
func TestRedrawsOnChangeSignals(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	tray := &fakeTray{}
	u, _ := newUI(t, b, tray)
	w := u.Window()

	b.set(running(engine.NeedsLogin))
	waitFor(t, "the signalled change in the tray", func() bool { return tray.labels()[0] == "alice@acme.com — password needed, 2 min ago" })
	waitFor(t, "the signalled change in the window", func() bool { return hasText(w, "refused the password") })

	var before int
	b.with(func() { before = b.reads })
	start := time.Now()
	for i := 0; i < 100; i++ {
		b.set(running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = i + 1 }))
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	waitFor(t, "the last change", func() bool { return hasText(w, "100 messages") })
	time.Sleep(2 * redrawGap)
	var reads int
	b.with(func() { reads = b.reads - before })
	if most := int(elapsed/redrawGap) + 3; reads > most || reads < 2 {
		t.Fatalf("100 signals in %v made %d reads, want 2 to %d", elapsed.Round(time.Millisecond), reads, most)
	}

	demo := newFake(running(engine.UpToDate))
	serial(func() { u.SetBackend(demo) })
	u.Refresh()
	waitFor(t, "the new backend", func() bool { return tray.labels()[0] == "alice@acme.com — up to date, 2 min ago" })
	demo.set(running(engine.Offline))
	waitFor(t, "the new backend's signal", func() bool { return tray.labels()[0] == "alice@acme.com — waiting for the network, 2 min ago" })
}

// TestSetupAsksBeforeUsingServersOutsideTheDomain: servers that DNS names
// outside the address's domain are shown and filled in only when the user
// says to use them (RFC 6186 §6).
func TestSetupAsksBeforeUsingServersOutsideTheDomain(t *testing.T) {
	b := newFake(Status{Paired: true, PlatformURL: "https://p.example"})
	b.findReply = autoconfig.Result{Source: "DNS SRV", Outside: []string{"mail.attacker.test"},
		IMAP: config.Server{Host: "mail.attacker.test", Port: 993, Security: config.SecurityTLS},
		SMTP: config.Server{Host: "mail.attacker.test", Port: 465, Security: config.SecurityTLS}}
	u, _ := newUI(t, b, &fakeTray{})
	w := u.Window()
	serial(func() { u.setup.email.SetText("alice@acme.com") })
	waitFor(t, "the question", func() bool { return hasText(w, "handled by mail.attacker.test, outside acme.com") })
	if u.setup.imap.Text != "" {
		t.Fatalf("the servers were filled in before the user answered: %q", u.setup.imap.Text)
	}
	tap(button(t, w, "Don't use them"))
	waitFor(t, "the refusal", func() bool { return hasText(w, "were not used") })
	if u.setup.imap.Text != "" || u.setup.smtp.Text != "" {
		t.Fatalf("refused servers filled in: %q %q", u.setup.imap.Text, u.setup.smtp.Text)
	}

	serial(func() { u.setup.email.SetText("bob@acme.com") })
	waitFor(t, "the question again", func() bool { return hasText(w, "handled by mail.attacker.test") })
	tap(button(t, w, "Use them"))
	waitFor(t, "the servers", func() bool { return u.setup.imap.Text == "mail.attacker.test:993" })
}
