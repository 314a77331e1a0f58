package gui

import (
	"fmt"
	"strings"

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
			if stoppedNow(st) {
				a.State = engine.Failing
			}
		}
		out = append(out, a)
	}
	return out
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

// firstSentence keeps an error short enough for a status line; the full
// text stays in the log and in the details for IT.
func firstSentence(s string) string {
	if i := strings.Index(s, "; "); i > 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:157] + "…"
	}
	return strings.TrimSuffix(s, ".")
}
