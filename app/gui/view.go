package gui

import (
	"fmt"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/assets"
	"github.com/inboxrelay/inboxrelay/sync/engine"
)

// accounts returns one status per configured account: the engine's when
// it has one, else a placeholder saying the account has not synced yet.
func accounts(st Status) []engine.AccountStatus {
	byEmail := map[string]engine.AccountStatus{}
	for _, a := range st.Engine.Accounts {
		byEmail[strings.ToLower(a.Email)] = a
	}
	var out []engine.AccountStatus
	for _, c := range st.Accounts {
		a, ok := byEmail[strings.ToLower(c.Email)]
		if !ok {
			a = engine.AccountStatus{Email: c.Email, State: engine.Starting}
			if !st.Running && st.Stopped != nil {
				a.State = engine.Failing
			}
		}
		out = append(out, a)
	}
	return out
}

// trayState is the one icon that sums up everything: the most urgent of
// the accounts' and the platform's states.
func trayState(st Status) string {
	if !st.Paired || len(st.Accounts) == 0 || (!st.Running && st.Stopped != nil) {
		return assets.Attention
	}
	if st.Paused != 0 {
		return assets.Paused
	}
	if st.Engine.Platform.State == engine.PlatformNeedsPairing {
		return assets.Attention
	}
	worst := assets.UpToDate
	for _, a := range accounts(st) {
		switch a.State {
		case engine.NeedsLogin, engine.NeedsTrust, engine.NeedsPairing, engine.Failing:
			return assets.Attention
		case engine.Offline:
			worst = assets.Offline
		case engine.NotSynced, engine.Starting, engine.Syncing:
			if worst == assets.UpToDate {
				worst = assets.Syncing
			}
		}
	}
	if worst == assets.UpToDate && st.Engine.Platform.State == engine.PlatformUnreachable {
		worst = assets.Offline
	}
	return worst
}

// userPaused reports whether the user paused relaying: the pause command
// then offers to resume. A pause of another owner's (a metered network)
// leaves it offering to pause, which adds the user's own reason.
func userPaused(st Status) bool { return st.Paused.Has(engine.PausedByUser) }

// headline is the one sentence at the top of the window.
func headline(st Status) string {
	switch {
	case !st.Paired:
		return words.NotPaired
	case len(st.Accounts) == 0:
		return words.NoMailbox
	}
	switch trayState(st) {
	case assets.Paused:
		return words.Paused(st.Paused)
	case assets.Attention:
		if p := words.PlatformState(st.Engine.Platform.State); p.Problem != "" {
			return p.Problem
		}
		if !st.Running && st.Stopped != nil {
			return words.Stopped(st.Stopped)
		}
		return words.Attention
	case assets.Offline:
		return words.Waiting
	case assets.Syncing:
		return words.Relaying
	}
	return words.AllRelayed
}

// ago says how long ago t was, as a person would.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "not yet synced"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.Local().Format("2 Jan 15:04")
}

// accountLine is an account's line in the tray menu:
// "alice@acme.com — up to date, 2 min ago".
func accountLine(a engine.AccountStatus, now time.Time) string {
	label := words.Account(a.State).Label
	if a.LastSync.IsZero() {
		return a.Email + " — " + label
	}
	return a.Email + " — " + label + ", " + ago(a.LastSync, now)
}

// outboxLine says where the replies sent for the platform stand, "" when
// there are none: "2 waiting · 1 could not be sent (reason)".
func outboxLine(o engine.OutboxStatus) string {
	reason := ""
	if o.LastError != "" {
		reason = " (" + firstSentence(o.LastError) + ")"
	}
	// The last error explains the failures, else what waits to be retried.
	failedWhy, waitingWhy := "", ""
	switch {
	case o.Failed > 0:
		failedWhy = reason
	case o.Queued > 0:
		waitingWhy = reason
	}
	var parts []string
	add := func(n int, what, why string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s%s", n, what, why))
		}
	}
	add(o.Queued, "waiting", waitingWhy)
	add(o.Sending, "being sent", "")
	add(o.Failed, "could not be sent", failedWhy)
	add(o.Ambiguous, "may not have gone out (look in Sent before sending again)", "")
	add(o.Sent, "sent in the last 30 days", "")
	if reason != "" && o.Failed == 0 && o.Queued == 0 {
		parts = append(parts, "last problem"+reason)
	}
	return strings.Join(parts, " · ")
}

// problem says in plain words what is wrong with an account and which fix
// applies; "" when nothing is.
func problem(a engine.AccountStatus) (string, words.Fix) {
	w := words.Account(a.State)
	return w.Problem, w.Fix
}

// firstSentence keeps an error short enough for a status line; the full
// text stays in the log.
func firstSentence(s string) string {
	if i := strings.Index(s, "; "); i > 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:157] + "…"
	}
	return strings.TrimSuffix(s, ".")
}

// platformLine describes the platform connection.
func platformLine(st Status) string {
	if !st.Paired {
		return "Not paired"
	}
	host := strings.TrimPrefix(strings.TrimPrefix(st.PlatformURL, "https://"), "http://")
	return host + " — " + words.PlatformState(st.Engine.Platform.State).Line
}
