package gui

import (
	"errors"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/assets"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

var bob = config.Account{Email: "bob@acme.com",
	IMAP: config.Server{Host: "mail.acme.com", Port: 993, Security: config.SecurityTLS},
	SMTP: config.Server{Host: "mail.acme.com", Port: 465, Security: config.SecurityTLS}}

// with returns st changed by the functions.
func with(st Status, mods ...func(*Status)) Status {
	for _, m := range mods {
		m(&st)
	}
	return st
}

// TestVerdicts is the table of what the app says, one row per situation
// the issue names (and a few more): the headline shared by tray, window
// and notifications, its tone (icon, colour), the fix offered and what
// the tray's first line is.
func TestVerdicts(t *testing.T) {
	twoAccounts := func(a, b engine.State) Status {
		st := running(a)
		st.Accounts = append(st.Accounts, bob)
		st.Engine.Accounts = append(st.Engine.Accounts, engine.AccountStatus{Email: bob.Email, State: b})
		return st
	}
	for _, c := range []struct {
		name     string
		st       Status
		headline string
		since    string
		tone     tone
		fix      words.Fix
	}{
		{"not paired", Status{}, "Not set up yet", "", toneSetup, words.FixNone},
		{"no mailbox", Status{Paired: true, Running: false, Stopped: engine.ErrNoAccount}, "No mailbox yet", "", toneSetup, words.FixNone},
		{"first sync done", running(engine.UpToDate, func(a *engine.AccountStatus) { a.LastRelayed = now.Add(-2 * time.Minute) }),
			"All mail relayed", "2 min ago", toneGood, words.FixNone},
		{"up to date, nothing relayed yet", running(engine.UpToDate), "All mail relayed", "", toneGood, words.FixNone},
		{"first sync under way", running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 1204 }),
			"Relaying about 1,000 messages…", "", toneBusy, words.FixNone},
		{"a few left", running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 3 }), "Relaying 3 messages…", "", toneBusy, words.FixNone},
		{"connecting", running(engine.Starting), "Connecting…", "", toneBusy, words.FixNone},
		{"engine not started yet", with(running(engine.Starting), func(s *Status) { s.Running = false; s.Engine = engine.Snapshot{} }),
			"Connecting…", "", toneBusy, words.FixNone},
		{"platform refuses the token", with(running(engine.UpToDate), func(s *Status) { s.Engine.Platform.State = engine.PlatformNeedsPairing }),
			"Action needed: pair this computer again", "", toneAction, words.FixPair},
		{"token missing", with(running(engine.UpToDate), func(s *Status) { s.Running, s.Stopped = false, connector.ErrNoToken }),
			"Action needed: pair this computer again", "", toneAction, words.FixPair},
		{"untrusted certificate", running(engine.NeedsTrust), "Action needed: check the certificate of alice@acme.com's server", "", toneAction, words.FixTrust},
		{"wrong password", running(engine.NeedsLogin), "Action needed: enter the password for alice@acme.com", "", toneAction, words.FixPassword},
		{"two problems", twoAccounts(engine.NeedsLogin, engine.NeedsTrust), "Action needed for 2 mailboxes", "", toneAction, words.FixNone},
		{"stopped by an error", running(engine.Failing), "Action needed: relaying from alice@acme.com stopped", "", toneAction, words.FixRetry},
		{"mailbox just added", with(running(engine.Starting), func(s *Status) {
			s.Running, s.Stopped, s.Engine = false, engine.ErrNoAccount, engine.Snapshot{}
		}), "Connecting…", "", toneBusy, words.FixNone},
		{"engine cannot start", with(running(engine.UpToDate), func(s *Status) { s.Running, s.Stopped = false, errors.New("disk full") }),
			"Action needed: relaying stopped", "", toneAction, words.FixRetry},
		{"offline", with(running(engine.Offline), func(s *Status) { s.Engine.Platform.State = engine.PlatformUnreachable }),
			"Offline — will retry", "", toneOffline, words.FixRetry},
		{"mail server unreachable", running(engine.Offline), "Mail server unreachable — will retry", "", toneOffline, words.FixRetry},
		{"one of two mail servers unreachable", twoAccounts(engine.UpToDate, engine.Offline), "A mail server is unreachable — will retry", "", toneOffline, words.FixRetry},
		{"platform unreachable", with(running(engine.UpToDate), func(s *Status) { s.Engine.Platform.State = engine.PlatformUnreachable }),
			"Platform unreachable — will retry", "", toneOffline, words.FixRetry},
		{"paused", with(running(engine.Paused), func(s *Status) { s.Paused = engine.PausedByUser }),
			"Paused", "", tonePaused, words.FixNone},
		{"paused while offline", with(running(engine.Paused), func(s *Status) {
			s.Paused = engine.PausedByUser
			s.Engine.Platform.State = engine.PlatformUnreachable
		}), "Paused", "", tonePaused, words.FixNone},
		{"password wins over paused", with(running(engine.NeedsLogin), func(s *Status) { s.Paused = engine.PausedByUser }),
			"Action needed: enter the password for alice@acme.com", "", toneAction, words.FixPassword},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newPresenter().present(c.st, now)
			if m.Headline != c.headline || m.Since != c.since || m.Tone != c.tone || m.Fix != c.fix {
				t.Fatalf("got %q · %q tone %d fix %d\nwant %q · %q tone %d fix %d", m.Headline, m.Since, m.Tone, m.Fix, c.headline, c.since, c.tone, c.fix)
			}
			if len(m.Menu) == 0 || m.Menu[0] != m.Headline {
				t.Fatalf("the tray's first line is %q, not the headline %q", m.Menu, m.Headline)
			}
			if m.Tooltip != "Inbox Relay: "+m.Headline {
				t.Fatalf("tooltip %q", m.Tooltip)
			}
			for _, w := range []string{"needs_login", "needs login", "needs trust", "needs pairing", "starting", "not synced", "state"} {
				if strings.Contains(strings.ToLower(m.Headline+" "+m.Explain), w) {
					t.Errorf("the engine's word %q shows: %q / %q", w, m.Headline, m.Explain)
				}
			}
		})
	}
}

// TestAccountLines: the per-account lines in human words, with no engine
// state word, and "waiting" only when something waits.
func TestAccountLines(t *testing.T) {
	st := running(engine.UpToDate, func(a *engine.AccountStatus) { a.LastRelayed = now.Add(-5 * time.Minute) })
	st.Accounts = append(st.Accounts, bob)
	st.Engine.Accounts = append(st.Engine.Accounts, engine.AccountStatus{Email: bob.Email, State: engine.NeedsLogin, Backlog: 0})
	m := newPresenter().present(st, now)
	want := []string{"Action needed: enter the password for bob@acme.com", "alice@acme.com — up to date", "bob@acme.com — password needed"}
	if strings.Join(m.Menu, "|") != strings.Join(want, "|") {
		t.Fatalf("menu %q, want %q", m.Menu, want)
	}
	a := m.Accounts[0]
	if a.State != "Up to date · last message relayed 5 min ago" || a.Relayed != "12 today · 340 in total" || a.Waiting != "" {
		t.Fatalf("alice: %+v", a)
	}
	if b := m.Accounts[1]; b.Problem == "" || b.Fix != words.FixPassword || b.Tone != toneAction {
		t.Fatalf("bob: %+v", b)
	}

	// Messages the server cannot deliver are said, each with its reason.
	und := running(engine.UpToDate, func(a *engine.AccountStatus) {
		a.Undeliverable = 2
		a.UndeliverableMessages = []state.Undeliverable{{Folder: "INBOX", UID: 42, Reason: "the server closed the connection while sending it"}}
	})
	if a := newPresenter().present(und, now).Accounts[0]; a.Undeliverable != "2 messages the mail server cannot deliver; tried again daily" ||
		len(a.Unreadable) != 1 || a.Unreadable[0] != "message 42 in INBOX: the server closed the connection while sending it" {
		t.Fatalf("undeliverable: %+v", a)
	}

	// Paused: every line says paused, and nothing says "waiting" for a
	// backlog that cannot move.
	paused := running(engine.Paused, func(a *engine.AccountStatus) { a.Backlog = 7 })
	paused.Paused = engine.PausedByUser
	pm := newPresenter().present(paused, now)
	if pm.Accounts[0].Menu != "alice@acme.com — paused" || pm.Accounts[0].Tone != tonePaused {
		t.Fatalf("paused account %+v", pm.Accounts[0])
	}

	// The platform refuses the computer: no account claims to relay.
	refused := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 68 })
	refused.Engine.Platform.State = engine.PlatformNeedsPairing
	rm := newPresenter().present(refused, now)
	if strings.Contains(strings.ToLower(rm.Accounts[0].State), "relaying") || rm.Platform.Line != words.PlatformState(engine.PlatformNeedsPairing).Line {
		t.Fatalf("while the platform refuses: %+v / %+v", rm.Accounts[0], rm.Platform)
	}
}

// TestNoFlapping feeds the presenter what the engine says when a message
// arrives every 3 s and takes a second to relay: the verdict and the
// tray stay "All mail relayed" (only the window's time moves), while
// relaying that lasts longer than settleBusy is shown, and shown at once
// on the first sync.
func TestNoFlapping(t *testing.T) {
	p := newPresenter()
	clock := now
	last := now.Add(-time.Hour)
	p.present(running(engine.UpToDate, func(a *engine.AccountStatus) { a.LastRelayed = last }), clock)
	var menus []string
	for i := 0; i < 20; i++ { // one minute
		for _, s := range []engine.State{engine.Syncing, engine.UpToDate} {
			st := running(s, func(a *engine.AccountStatus) { a.LastRelayed = last })
			if s == engine.Syncing {
				st.Engine.Accounts[0].Backlog = 1
			} else {
				last = clock
			}
			m := p.present(st, clock)
			if m.Headline != "All mail relayed" {
				t.Fatalf("at %v (%s) the verdict flapped to %q", clock.Sub(now), s, m.Headline)
			}
			menus = append(menus, strings.Join(m.Menu, "|"))
			clock = clock.Add(1500 * time.Millisecond)
		}
	}
	for _, m := range menus {
		if m != menus[0] {
			t.Fatalf("the tray menu changed: %q then %q", menus[0], m)
		}
	}

	// Relaying that lasts: held back settleBusy, shown after (the model
	// asks to be presented again when the hold ends).
	busy := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 40 })
	m := p.present(busy, clock)
	if m.Headline != "All mail relayed" || !m.Recheck.Equal(clock.Add(settleBusy)) {
		t.Fatalf("a fresh burst: %q, recheck %v", m.Headline, m.Recheck.Sub(clock))
	}
	if m = p.present(busy, clock.Add(settleBusy)); m.Headline != "Relaying about 40 messages…" {
		t.Fatalf("after the hold: %q", m.Headline)
	}

	// A dropped connection, reconnected at once, is no news; one that
	// stays down is shown once the hold ends.
	p = newPresenter()
	t0 := clock
	good := running(engine.UpToDate)
	p.present(good, t0)
	if m := p.present(running(engine.Offline), t0.Add(time.Second)); m.Headline != "All mail relayed" {
		t.Fatalf("a blip of the mail server: %q", m.Headline)
	}
	p.present(good, t0.Add(2*time.Second))
	p.present(running(engine.Offline), t0.Add(3*time.Second))
	if m := p.present(running(engine.Offline), t0.Add(3*time.Second+settleBusy)); m.Headline != "Mail server unreachable — will retry" {
		t.Fatalf("a server down for the hold: %q", m.Headline)
	}
	// The same for the platform.
	p = newPresenter()
	down := with(good, func(s *Status) { s.Engine.Platform.State = engine.PlatformUnreachable })
	p.present(good, t0)
	if m := p.present(down, t0.Add(time.Second)); m.Headline != "All mail relayed" || !m.Recheck.Equal(t0.Add(time.Second+settleBusy)) ||
		m.Platform.Line != words.PlatformState(engine.PlatformOK).Line {
		t.Fatalf("a blip of the platform: %q (platform %q), recheck %v", m.Headline, m.Platform.Line, m.Recheck)
	}
	if m := p.present(down, t0.Add(time.Second+settleBusy)); m.Headline != "Platform unreachable — will retry" {
		t.Fatalf("a platform down for the hold: %q", m.Headline)
	}
	// Resuming: the connections opened again are no "Connecting…".
	p = newPresenter()
	p.present(good, t0)
	p.present(with(running(engine.Paused), func(s *Status) { s.Paused = engine.PausedByUser }), t0.Add(time.Minute))
	if m := p.present(running(engine.Starting), t0.Add(2*time.Minute)); m.Headline != "All mail relayed" {
		t.Fatalf("on resuming: %q", m.Headline)
	}

	// A first sync (nothing shown up to date yet) is shown at once.
	if m := newPresenter().present(busy, clock); m.Headline != "Relaying about 40 messages…" {
		t.Fatalf("first sync: %q", m.Headline)
	}
}

// TestCoarseCount: the relaying count changes a few times per tenfold
// drop, never flips between two values around a boundary, and is exact
// below 10.
func TestCoarseCount(t *testing.T) {
	shown, changes := 0, 0
	for n := 12000; n > 0; n-- {
		c := coarse(n, shown)
		if c != shown {
			changes++
			shown = c
		}
	}
	if changes > 60 || shown != 1 {
		t.Fatalf("%d changes down from 12,000 (last %d)", changes, shown)
	}
	// Around a boundary: 950 ↔ 949 keeps what is shown.
	s := coarse(951, 0)
	for i := 0; i < 10; i++ {
		if got := coarse(949+i%3, s); got != s {
			t.Fatalf("flipped from %d to %d", s, got)
		}
	}
	for n, want := range map[int]string{1: "Relaying 1 message…", 7: "Relaying 7 messages…", 1204: "Relaying about 1,000 messages…", 56000: "Relaying about 60,000 messages…"} {
		if got := relayingWords(coarse(n, 0)); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
}

// TestAgo: relative times, and when they next change (the window's only
// timer, armed while it is shown).
func TestAgo(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
		next time.Duration // from now; 0: never
	}{
		{10 * time.Second, "just now", 50 * time.Second},
		{2*time.Minute + 5*time.Second, "2 min ago", 55 * time.Second},
		{3*time.Hour + 30*time.Minute, "3 h ago", 30 * time.Minute},
		{72 * time.Hour, "on " + now.Add(-72*time.Hour).Local().Format("2 Jan"), 0},
	} {
		at := now.Add(-c.d)
		if got := ago(at, now); got != c.want {
			t.Errorf("%v ago: %q, want %q", c.d, got, c.want)
		}
		next := agoChanges(at, now)
		if (c.next == 0) != next.IsZero() || (c.next != 0 && !next.Equal(now.Add(c.next))) {
			t.Errorf("%v ago: next change %v, want in %v", c.d, next, c.next)
		}
		if !next.IsZero() && ago(at, next) == ago(at, next.Add(-time.Second)) {
			t.Errorf("%v ago: the words do not change at %v", c.d, next)
		}
	}
}

// TestStallNote: a note when nothing was relayed for an hour while mail
// waited, and the model asks to be presented again when that hour ends
// (no polling needed to notice).
func TestStallNote(t *testing.T) {
	p := newPresenter()
	waiting := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 5 })
	m := p.present(waiting, now)
	if len(m.Notes) != 0 || m.Recheck.IsZero() || m.Recheck.Sub(now) > stallAfter+time.Second {
		t.Fatalf("notes %v, recheck in %v", m.Notes, m.Recheck.Sub(now))
	}
	if m := p.present(waiting, now.Add(59*time.Minute)); len(m.Notes) != 0 {
		t.Fatalf("stalled before an hour: %v", m.Notes)
	}
	m = p.present(waiting, now.Add(61*time.Minute))
	if len(m.Notes) != 1 || m.Notes[0].Title != "Nothing relayed for alice@acme.com" {
		t.Fatalf("notes %v", m.Notes)
	}
	progressed := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 5; a.Relayed++ })
	if m := p.present(progressed, now.Add(62*time.Minute)); len(m.Notes) != 0 {
		t.Fatalf("progress did not end the stall: %v", m.Notes)
	}
}

// TestToneIcons: every tone has its own tray icon, and problems share the
// attention one.
func TestToneIcons(t *testing.T) {
	want := map[tone]string{toneGood: assets.UpToDate, toneBusy: assets.Syncing, tonePaused: assets.Paused,
		toneOffline: assets.Offline, toneAction: assets.Attention, toneSetup: assets.Attention}
	for tn, icon := range want {
		if got := tn.icon(); got != icon {
			t.Errorf("tone %d: icon %q, want %q", tn, got, icon)
		}
	}
}

// TestDetailsForIT: the details name the version, each account's servers,
// folders and the engine's own error, and the verdict the user sees.
func TestDetailsForIT(t *testing.T) {
	st := running(engine.NeedsLogin, func(a *engine.AccountStatus) {
		a.LastError = "alice@acme.com: the mail server refused the login: [AUTHENTICATIONFAILED]"
		a.Folders = []engine.FolderStatus{{Role: "inbox", Name: "INBOX", State: engine.NeedsLogin}}
	})
	d := newPresenter().present(st, now).Details
	for _, want := range []string{"Inbox Relay ", "Verdict: Action needed: enter the password for alice@acme.com",
		"IMAP mail.acme.com:993 (tls)", "inbox (INBOX): needs login", "[AUTHENTICATIONFAILED]", "https://app.example.com/connector"} {
		if !strings.Contains(d, want) {
			t.Errorf("details lack %q:\n%s", want, d)
		}
	}
}

// TestPresenterHasNoFyne: the presenter is plain Go, testable and usable
// without a display.
func TestPresenterHasNoFyne(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "present.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "fyne.io/") {
			t.Errorf("present.go imports %s", p)
		}
	}
}
