package gui

// The presenter: what the app says, computed once from the backend's
// Status and the clock, and rendered alike by the tray, the window and the
// notifications. Nothing here imports fyne (a test checks); the render
// functions only copy these words into long-lived widgets.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/assets"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// tone is what a verdict means to the person: it picks the tray icon and
// the headline's colour.
type tone int

// The tones, from calm to urgent.
const (
	toneGood    tone = iota // everything relayed
	toneBusy                // relaying, connecting
	tonePaused              // paused on purpose
	toneOffline             // cannot reach a server; retrying on its own
	toneAction              // the person must do something
	toneSetup               // not set up yet
)

// icon is the tray icon of a tone.
func (t tone) icon() string {
	switch t {
	case toneGood:
		return assets.UpToDate
	case toneBusy:
		return assets.Syncing
	case tonePaused:
		return assets.Paused
	case toneOffline:
		return assets.Offline
	}
	return assets.Attention
}

// model is everything the app shows at one moment.
type model struct {
	Tone tone
	// Headline is the verdict, the same words in the tray's first line,
	// its tooltip, the window's headline and the notifications:
	// "All mail relayed", "Relaying about 1,200 messages…", "Action needed:
	// enter the password for alice@acme.com", "Paused", "Offline — will
	// retry".
	Headline string
	// Since follows the headline in the window only ("2 min ago"): it
	// changes with the clock, which must not rebuild the tray.
	Since string
	// SinceChanges is when Since will read differently (zero: never).
	SinceChanges time.Time
	// Explain is one sentence under the headline: what happened and what
	// to do; "" when the headline says it all.
	Explain string
	// Fix is the repair for the headline's problem, for FixEmail ("" for
	// the platform).
	Fix      words.Fix
	FixEmail string

	Paused   bool // the pause button says "Resume"
	Platform platformModel
	Accounts []accountModel
	// Menu is the tray menu's lines above its commands: the headline, then
	// one line per account.
	Menu    []string
	Tooltip string
	// Notes are the problems a notification is sent for when they appear,
	// each under a key that stays the same while the problem lasts.
	Notes []note
	// Details is the text "Copy details for IT" copies.
	Details string
	// Recheck is when time alone changes the model other than Since (a
	// state held back by hysteresis, a stall): the UI presents again then.
	// Zero: nothing to wait for.
	Recheck time.Time
}

// platformModel is the platform's line in the window.
type platformModel struct {
	Host    string // "app.example.com"
	Line    string // "connected"
	Problem string // one sentence, "" when none
	Device  string // this computer's name
}

// accountModel is one mailbox in the window and the tray.
type accountModel struct {
	Email string
	Tone  tone
	// Menu is its tray line, with no number or time in it: "alice@acme.com
	// — up to date".
	Menu string
	// State is the window's line under the address: "Up to date · last
	// message relayed 2 min ago".
	State    string
	Relayed  string // "12 today · 340 in total"
	Waiting  string // "3 messages", "" when none
	Sending  string // the outbox, "" when nothing
	Rejected string // "1 message refused by the platform", "" when none
	// Rejections are the platform's refusals, one line each.
	Rejections []string
	// Undeliverable says how many messages the mail server cannot deliver
	// to Inbox Relay ("" when none), and Unreadable lists them.
	Undeliverable string
	Unreadable    []string
	Problem       string // one sentence, "" when none
	Fix           words.Fix
	// Details is the engine's own error, for IT ("" when none).
	Details string
}

// note is one desktop notification.
type note struct{ Key, Title, Body string }

// Hysteresis and stall limits.
const (
	// settleBusy is how long an account that was up to date must stay busy
	// before it is shown as relaying: a message every few seconds keeps
	// "All mail relayed · just now" instead of flapping.
	settleBusy = 10 * time.Second
	// stallAfter is how long nothing may be relayed while mail waits before
	// the user is told.
	stallAfter = time.Hour
)

// presenter turns statuses into models. It is a function of the sequence
// of (Status, time) it is given, with no clock or goroutine of its own;
// what it remembers between calls is the hysteresis: which accounts were
// shown up to date and since when they are busy, the relaying count shown
// and, per account, when it last made progress. Not safe for concurrent
// use: the UI calls it from the fyne goroutine.
type presenter struct {
	shownGood     map[string]bool      // accounts last shown up to date
	busySince     map[string]time.Time // accounts busy or offline since, while held back
	platGood      bool                 // the platform was last shown answering
	platDownSince time.Time            // the platform unreachable since, while held back
	count         int                  // the relaying count last shown
	progress      map[string]progressMark
}

type progressMark struct {
	at      time.Time
	relayed int
}

func newPresenter() *presenter {
	return &presenter{shownGood: map[string]bool{}, busySince: map[string]time.Time{}, progress: map[string]progressMark{}}
}

// busy reports whether an account state means work under way.
func busy(s engine.State) bool {
	return s == engine.NotSynced || s == engine.Starting || s == engine.Syncing
}

// present computes the model for st at now.
func (p *presenter) present(st Status, now time.Time) model {
	m := model{Paused: userPaused(st)}
	m.Platform = platformModel{Host: hostOf(st.PlatformURL), Device: st.DeviceName,
		Line: words.PlatformState(st.Engine.Platform.State).Line, Problem: words.PlatformState(st.Engine.Platform.State).Problem}
	if !st.Paired {
		m.Platform.Line = "not paired yet"
	}
	accts := accounts(st)
	platRefuses := st.Engine.Platform.State == engine.PlatformNeedsPairing
	platDown := st.Engine.Platform.State == engine.PlatformUnreachable
	stopped := stoppedNow(st)
	var recheck []time.Time

	// A platform that was answering and stops is shown unreachable only
	// once that lasts: one failed request, retried at once, is no news.
	if platDown && p.platGood {
		if p.platDownSince.IsZero() {
			p.platDownSince = now
		}
		if now.Sub(p.platDownSince) < settleBusy {
			platDown = false
			recheck = append(recheck, p.platDownSince.Add(settleBusy))
			m.Platform.Line = words.PlatformState(engine.PlatformOK).Line // held with the verdict
		} else {
			p.platGood = false
		}
	} else {
		p.platDownSince = time.Time{}
		p.platGood = st.Engine.Platform.State == engine.PlatformOK
	}

	// Each account, its state held back while it settles: an account shown
	// up to date that starts relaying or loses its connection stays so for
	// settleBusy, so that a message every few seconds, a reconnection or a
	// resume does not flip the tray; a problem for the person shows at
	// once.
	var lastRelayed time.Time
	backlog := 0
	seen := map[string]bool{}
	for _, a := range accts {
		key := strings.ToLower(a.Email)
		seen[key] = true
		shown := a.State
		switch {
		case (busy(a.State) || a.State == engine.Offline) && p.shownGood[key] && !stopped:
			since, ok := p.busySince[key]
			if !ok {
				since = now
				p.busySince[key] = since
			}
			if now.Sub(since) < settleBusy {
				shown = engine.UpToDate
				recheck = append(recheck, since.Add(settleBusy))
			} else {
				p.shownGood[key] = false
			}
		case a.State == engine.Paused:
			// What it was before the pause still holds on resuming.
			delete(p.busySince, key)
		default:
			delete(p.busySince, key)
			p.shownGood[key] = a.State == engine.UpToDate
		}
		if a.LastRelayed.After(lastRelayed) {
			lastRelayed = a.LastRelayed
		}
		backlog += a.Backlog
		am := p.account(a, shown, st, now)
		if platRefuses && am.Tone != toneAction {
			am.Tone, am.Menu = toneAction, a.Email+" — waiting for this computer to be paired again"
			am.State = "Waiting: the platform no longer accepts this computer"
		}
		m.Accounts = append(m.Accounts, am)
		if stalled, at := p.stall(a, st, now); !at.IsZero() {
			recheck = append(recheck, at)
		} else if stalled {
			m.Notes = append(m.Notes, note{"stalled:" + key, "Nothing relayed for " + a.Email,
				"Mail has been waiting for over an hour; open Inbox Relay to see what is wrong."})
		}
	}
	for k := range p.shownGood {
		if !seen[k] {
			delete(p.shownGood, k)
			delete(p.busySince, k)
			delete(p.progress, k)
		}
	}

	// The verdict: the most urgent thing first.
	var action []accountModel
	for _, a := range m.Accounts {
		if a.Tone == toneAction && a.Fix != words.FixNone {
			action = append(action, a)
		}
	}
	tones := func(t tone) (n int) {
		for _, a := range m.Accounts {
			if a.Tone == t {
				n++
			}
		}
		return n
	}
	switch {
	case !st.Paired:
		m.Tone, m.Headline = toneSetup, "Not set up yet"
		m.Explain = "Pair this computer with your platform, then add your mailbox."
	case len(st.Accounts) == 0:
		m.Tone, m.Headline = toneSetup, "No mailbox yet"
		m.Explain = "Add your mailbox to start relaying."
	case stopped && errors.Is(st.Stopped, connector.ErrNoToken), platRefuses:
		m.Tone, m.Headline, m.Fix = toneAction, "Action needed: pair this computer again", words.FixPair
		m.Explain = words.PlatformState(engine.PlatformNeedsPairing).Problem
		if stopped {
			m.Explain = words.Stopped(st.Stopped)
		}
	case stopped:
		m.Tone, m.Headline, m.Fix = toneAction, "Action needed: relaying stopped", words.FixRetry
		m.Explain = words.Stopped(st.Stopped)
	case len(action) > 0:
		a := action[0]
		m.Tone, m.Fix, m.FixEmail, m.Explain = toneAction, a.Fix, a.Email, a.Problem
		m.Headline = "Action needed: " + actionWords(a.Fix, a.Email)
		if len(action) > 1 {
			m.Headline = fmt.Sprintf("Action needed for %d mailboxes", len(action))
			m.Fix, m.FixEmail = words.FixNone, ""
			m.Explain = "Each mailbox below says what it needs."
		}
	case st.Paused != 0:
		m.Tone, m.Headline, m.Explain = tonePaused, "Paused", words.Paused(st.Paused)
	case platDown || tones(toneOffline) > 0:
		m.Tone, m.Fix = toneOffline, words.FixRetry
		mailDown := tones(toneOffline)
		switch {
		case platDown && mailDown == len(m.Accounts):
			m.Headline = "Offline — will retry"
			m.Explain = "Neither the mail server nor the platform can be reached; Inbox Relay tries again on its own, and nothing is lost meanwhile."
		case platDown:
			m.Headline = "Platform unreachable — will retry"
			m.Explain = "The platform does not answer; mail waits on this computer and is relayed as soon as it does."
		default:
			m.Headline = "Mail server unreachable — will retry"
			if len(m.Accounts) > 1 {
				m.Headline = "A mail server is unreachable — will retry"
			}
			m.Explain = "The mail server cannot be reached; Inbox Relay tries again on its own."
		}
	case tones(toneBusy) > 0 || !st.Running:
		m.Tone = toneBusy
		switch {
		case backlog > 0:
			p.count = coarse(backlog, p.count)
			m.Headline = relayingWords(p.count)
		case !st.Running || anyState(st, engine.Starting, engine.NotSynced):
			m.Headline = "Connecting…"
		default:
			m.Headline = "Checking for new mail…"
		}
	default:
		m.Tone, m.Headline = toneGood, "All mail relayed"
		if !lastRelayed.IsZero() {
			m.Since, m.SinceChanges = ago(lastRelayed, now), agoChanges(lastRelayed, now)
		}
	}
	if m.Tone != toneBusy || backlog == 0 {
		p.count = 0
	}

	if n := words.PlatformState(st.Engine.Platform.State).Note; st.Paired && n.Title != "" {
		m.Notes = append(m.Notes, note{"platform:" + st.Engine.Platform.State.String(), n.Title, n.Body})
	}
	for _, a := range accts {
		if n := words.Account(a.State).Note; n.Title != "" && !platRefuses {
			m.Notes = append(m.Notes, note{a.State.String() + ":" + strings.ToLower(a.Email), n.Title + a.Email, n.Body})
		}
	}

	// The headline first, always: one line the eye finds in the same place.
	// With two mailboxes or more, each says where it stands below it.
	m.Menu = append(m.Menu, m.Headline)
	if len(m.Accounts) > 1 {
		for _, a := range m.Accounts {
			m.Menu = append(m.Menu, a.Menu)
		}
	}
	m.Tooltip = "Inbox Relay: " + m.Headline
	m.Details = details(st, m, now)
	for _, t := range recheck {
		if m.Recheck.IsZero() || t.Before(m.Recheck) {
			m.Recheck = t
		}
	}
	return m
}

// stoppedNow reports whether relaying is stopped by an error that still
// holds: the engine stopped for want of a platform or an account is
// about to start again once the setup just done gave it one.
func stoppedNow(st Status) bool {
	if st.Running || st.Stopped == nil {
		return false
	}
	if errors.Is(st.Stopped, engine.ErrNoAccount) && len(st.Accounts) > 0 || errors.Is(st.Stopped, connector.ErrNotPaired) && st.Paired {
		return false
	}
	return true
}

// userPaused reports whether the user paused relaying: the pause command
// then offers to resume. A pause of another owner's (a metered network)
// leaves it offering to pause, which adds the user's own reason.
func userPaused(st Status) bool { return st.Paused.Has(engine.PausedByUser) }

// anyState reports whether an account of st is in one of the states.
func anyState(st Status, states ...engine.State) bool {
	for _, a := range accounts(st) {
		if slices.Contains(states, a.State) {
			return true
		}
	}
	return false
}

// actionWords ends "Action needed: …" for a fix.
func actionWords(f words.Fix, email string) string {
	switch f {
	case words.FixPassword:
		return "enter the password for " + email
	case words.FixTrust:
		return "check the certificate of " + email + "'s server"
	case words.FixPair:
		return "pair this computer again"
	}
	return "relaying from " + email + " stopped"
}

// relayingWords is the busy headline for n messages (already coarse).
func relayingWords(n int) string {
	switch {
	case n == 1:
		return "Relaying 1 message…"
	case n < 10:
		return fmt.Sprintf("Relaying %d messages…", n)
	}
	return "Relaying about " + count(n) + " messages…"
}

// coarse is the count the headline shows for n messages waiting, given
// the one it shows now: exact below 10, else one significant figure, kept
// while n stays within 15% of it, so the tray changes a few times per
// tenfold drop of a backlog rather than with every message.
func coarse(n, shown int) int {
	if n < 10 {
		return n
	}
	if shown >= 10 && n*100 >= shown*85 && n*100 <= shown*115 {
		return shown
	}
	p := 1
	for n/p >= 10 {
		p *= 10
	}
	return (n + p/2) / p * p
}

// count writes n with thousands separators: 1,204.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// account presents one account shown in state shown (its own, or held
// back by hysteresis).
func (p *presenter) account(a engine.AccountStatus, shown engine.State, st Status, now time.Time) accountModel {
	w := words.Account(shown)
	am := accountModel{Email: a.Email, Problem: w.Problem, Fix: w.Fix}
	label := w.Label
	switch shown {
	case engine.UpToDate:
		am.Tone = toneGood
	case engine.NotSynced, engine.Starting, engine.Syncing:
		am.Tone = toneBusy
	case engine.Paused:
		am.Tone = tonePaused
	case engine.Offline:
		am.Tone = toneOffline
	default:
		am.Tone = toneAction
	}
	if st.Paused != 0 && am.Tone != toneAction {
		am.Tone, label, am.Problem, am.Fix = tonePaused, words.Account(engine.Paused).Label, "", words.FixNone
	}
	am.Menu = a.Email + " — " + label
	am.State = capital(label)
	switch {
	case shown == engine.Syncing && a.Backlog > 0 && am.Tone == toneBusy:
		am.State = "Relaying " + plural(a.Backlog, "message") + "…"
	case !a.LastRelayed.IsZero():
		am.State += " · last message relayed " + ago(a.LastRelayed, now)
	case shown == engine.UpToDate:
		am.State += " · nothing relayed yet"
	}
	am.Relayed = fmt.Sprintf("%s today · %s in total", count(a.RelayedToday), count(a.Relayed))
	if a.Backlog > 0 && !strings.HasPrefix(am.State, "Relaying ") {
		am.Waiting = plural(a.Backlog, "message")
	}
	am.Sending = outboxLine(a.Outbox)
	if a.Rejected > 0 {
		am.Rejected = plural(a.Rejected, "message") + " refused by the platform"
	}
	for _, r := range a.Rejections {
		what := r.MessageID
		if what == "" {
			what = fmt.Sprintf("message %d", r.UID)
		}
		am.Rejections = append(am.Rejections, fmt.Sprintf("%s in %s: %s", what, r.Folder, r.Reason))
	}
	if a.Undeliverable > 0 {
		am.Undeliverable = plural(a.Undeliverable, "message") + " the mail server cannot deliver; tried again daily"
	}
	for _, u := range a.UndeliverableMessages {
		am.Unreadable = append(am.Unreadable, fmt.Sprintf("message %d in %s: %s", u.UID, u.Folder, u.Reason))
	}
	if a.LastError != "" && am.Tone != toneGood {
		am.Details = a.LastError
	}
	return am
}

// stall notes an account's progress at now. It reports whether the
// account is stalled (nothing relayed for stallAfter while mail waited),
// and else when it would be if nothing changes (zero: it cannot be, as
// nothing waits or relaying is paused).
func (p *presenter) stall(a engine.AccountStatus, st Status, now time.Time) (stalled bool, at time.Time) {
	if len(st.Engine.Accounts) == 0 {
		return false, time.Time{} // the engine has not reported yet: no counters to judge
	}
	key := strings.ToLower(a.Email)
	m, seen := p.progress[key]
	if !seen || a.Backlog == 0 || a.Relayed != m.relayed || st.Paused != 0 {
		p.progress[key] = progressMark{at: now, relayed: a.Relayed}
		if a.Backlog == 0 || st.Paused != 0 {
			return false, time.Time{}
		}
		return false, now.Add(stallAfter + time.Second)
	}
	if now.Sub(m.at) > stallAfter {
		return true, time.Time{}
	}
	return false, m.at.Add(stallAfter + time.Second)
}

// ago says how long ago t was, as a person would.
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return "on " + t.Local().Format("2 Jan")
}

// agoChanges is when ago(t, ·) next reads differently after now.
func agoChanges(t, now time.Time) time.Time {
	d := now.Sub(t)
	switch {
	case d < time.Hour:
		return t.Add(d.Truncate(time.Minute) + time.Minute)
	case d < 48*time.Hour:
		return t.Add(d.Truncate(time.Hour) + time.Hour)
	}
	return time.Time{}
}

// capital starts s with a capital letter.
func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// plural says "1 message" or "1,204 messages".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return count(n) + " " + one + "s"
}

func hostOf(url string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
	return strings.TrimSuffix(h, "/")
}

// details is the text for IT: what the window shows, plus the engine's
// own words (errors, folder states), with no secret (the status holds
// none).
func details(st Status, m model, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Inbox Relay %s on %s, %s\n", version.Version, st.DeviceName, now.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "Verdict: %s", m.Headline)
	if m.Since != "" {
		fmt.Fprintf(&b, " · %s", m.Since)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Platform: %s (%s)", st.PlatformURL, st.Engine.Platform.State)
	if st.Engine.Platform.Error != "" {
		fmt.Fprintf(&b, ": %s", st.Engine.Platform.Error)
	}
	b.WriteString("\n")
	if st.Stopped != nil {
		fmt.Fprintf(&b, "Engine stopped: %v\n", st.Stopped)
	}
	if st.Paused != 0 {
		fmt.Fprintf(&b, "Paused for: %s\n", st.Paused)
	}
	byEmail := map[string]engine.AccountStatus{}
	for _, a := range st.Engine.Accounts {
		byEmail[strings.ToLower(a.Email)] = a
	}
	for _, c := range st.Accounts {
		a := byEmail[strings.ToLower(c.Email)]
		fmt.Fprintf(&b, "%s: %s; IMAP %s (%s), SMTP %s (%s)\n", c.Email, a.State, c.IMAP.Addr(), c.IMAP.Security, c.SMTP.Addr(), c.SMTP.Security)
		fmt.Fprintf(&b, "  relayed %d (%d today), waiting %d, rejected %d, skipped %d", a.Relayed, a.RelayedToday, a.Backlog, a.Rejected, a.Skipped)
		if !a.LastRelayed.IsZero() {
			fmt.Fprintf(&b, ", last relayed %s", a.LastRelayed.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
		for _, f := range a.Folders {
			fmt.Fprintf(&b, "  %s (%s): %s, waiting %d", f.Role, f.Name, f.State, f.Backlog)
			if f.Error != "" {
				fmt.Fprintf(&b, ": %s", f.Error)
			}
			b.WriteString("\n")
		}
		if a.Outbox != (engine.OutboxStatus{}) {
			o := a.Outbox
			fmt.Fprintf(&b, "  outbox: queued %d, sending %d, failed %d, ambiguous %d, sent %d", o.Queued, o.Sending, o.Failed, o.Ambiguous, o.Sent)
			if o.LastError != "" {
				fmt.Fprintf(&b, ": %s", o.LastError)
			}
			b.WriteString("\n")
		}
		if a.LastError != "" {
			fmt.Fprintf(&b, "  last error: %s\n", a.LastError)
		}
	}
	return b.String()
}
