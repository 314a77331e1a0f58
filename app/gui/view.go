package gui

import (
	"fmt"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/assets"
	"github.com/inboxrelay/inboxrelay/sync/engine"
)

// The engine's account states, as engine.State.String spells them.
const (
	stStarting     = "starting"
	stUpToDate     = "up to date"
	stSyncing      = "syncing"
	stPaused       = "paused"
	stOffline      = "offline"
	stError        = "error"
	stNeedsTrust   = "needs trust"
	stNeedsLogin   = "needs login"
	stNeedsPairing = "needs pairing"
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
			a = engine.AccountStatus{Email: c.Email, State: stStarting}
			if !st.Running && st.Stopped != "" {
				a.State = stError
			}
		}
		out = append(out, a)
	}
	return out
}

// trayState is the one icon that sums up everything: the most urgent of
// the accounts' and the platform's states.
func trayState(st Status) string {
	if !st.Paired || len(st.Accounts) == 0 || (!st.Running && st.Stopped != "") {
		return assets.Attention
	}
	if st.Engine.Paused {
		return assets.Paused
	}
	if st.Engine.Platform.State == "needs pairing" {
		return assets.Attention
	}
	worst := assets.UpToDate
	for _, a := range accounts(st) {
		switch a.State {
		case stNeedsLogin, stNeedsTrust, stNeedsPairing, stError:
			return assets.Attention
		case stOffline:
			worst = assets.Offline
		case stStarting, stSyncing:
			if worst == assets.UpToDate {
				worst = assets.Syncing
			}
		}
	}
	if worst == assets.UpToDate && st.Engine.Platform.State == "unreachable" {
		worst = assets.Offline
	}
	return worst
}

// headline is the one sentence at the top of the window.
func headline(st Status) string {
	switch {
	case !st.Paired:
		return "This computer is not paired with the platform yet."
	case len(st.Accounts) == 0:
		return "No mailbox is set up yet."
	}
	switch trayState(st) {
	case assets.Paused:
		return "Relaying is paused; resume it when you are ready."
	case assets.Attention:
		if st.Engine.Platform.State == "needs pairing" {
			return "The platform no longer accepts this computer; pair it again."
		}
		if !st.Running && st.Stopped != "" {
			return st.Stopped
		}
		return "Something needs your attention below."
	case assets.Offline:
		return "Waiting for the network; Inbox Relay retries on its own."
	case assets.Syncing:
		return "Relaying your mail…"
	}
	return "Everything is relayed."
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
	if a.LastSync.IsZero() {
		return a.Email + " — " + a.State
	}
	return a.Email + " — " + a.State + ", " + ago(a.LastSync, now)
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

// fixKind is the repair a button offers for an account's problem.
type fixKind int

const (
	fixNone     fixKind = iota
	fixPassword         // enter the password again
	fixTrust            // review and trust the new certificate
	fixPair             // pair this computer again
	fixRetry            // try again now
)

// problem says in plain words what is wrong with an account and which fix
// applies; "" when nothing is.
func problem(a engine.AccountStatus) (string, fixKind) {
	switch a.State {
	case stNeedsLogin:
		return "The mail server refused the password; enter the current one to resume relaying.", fixPassword
	case stNeedsTrust:
		return "The mail server's certificate changed or is not trusted; check its fingerprint with IT before trusting it.", fixTrust
	case stNeedsPairing:
		return "The platform no longer accepts this computer; pair it again with a new code.", fixPair
	case stOffline:
		return "The mail server or the platform cannot be reached; Inbox Relay keeps retrying on its own.", fixRetry
	case stError:
		if a.LastError == "" {
			return "Relaying stopped; try again, and look at the log if it keeps failing.", fixRetry
		}
		return "Relaying failed: " + firstSentence(a.LastError) + ".", fixRetry
	}
	return "", fixNone
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
	switch st.Engine.Platform.State {
	case "needs pairing":
		return host + " — refuses this computer; pair again"
	case "unreachable":
		return host + " — cannot be reached; retrying"
	case "ok":
		return host + " — connected"
	}
	return host + " — not connected yet"
}
