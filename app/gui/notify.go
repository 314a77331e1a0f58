package gui

import (
	"strings"
	"time"

	"fyne.io/fyne/v2"
)

// stallAfter is how long nothing may be relayed while mail waits before
// the user is told.
const stallAfter = time.Hour

// notifier sends one notification per problem: when the problem appears,
// never again while it lasts, and again only if it comes back after being
// solved. Not safe for concurrent use: the UI calls it from the fyne
// goroutine.
type notifier struct {
	send   func(*fyne.Notification)
	active map[string]bool // problems already notified and still present

	// progress is, per account, when it last relayed something or had
	// nothing waiting, and how many it had relayed then.
	progress map[string]progressMark
}

type progressMark struct {
	at      time.Time
	relayed int
}

func newNotifier(send func(*fyne.Notification)) *notifier {
	return &notifier{send: send, active: map[string]bool{}, progress: map[string]progressMark{}}
}

// observe looks at a status taken at now and notifies new problems.
func (n *notifier) observe(st Status, now time.Time) {
	present := map[string]*fyne.Notification{}
	if st.Paired && st.Engine.Platform.State == "needs pairing" {
		present["pair"] = fyne.NewNotification("Pair Inbox Relay again",
			"The platform no longer accepts this computer; open Inbox Relay and pair it again.")
	}
	for _, a := range accounts(st) {
		key := strings.ToLower(a.Email)
		switch a.State {
		case stNeedsLogin:
			present["login:"+key] = fyne.NewNotification("Password needed for "+a.Email,
				"The mail server refused the password; open Inbox Relay and enter the current one.")
		case stNeedsTrust:
			present["trust:"+key] = fyne.NewNotification("Certificate changed for "+a.Email,
				"The mail server's certificate is not trusted; open Inbox Relay to review it with IT.")
		}
		if len(st.Engine.Accounts) == 0 {
			continue // the engine has not reported yet: no counters to judge
		}
		m, seen := n.progress[key]
		if !seen || a.Backlog == 0 || a.Relayed != m.relayed || st.Engine.Paused {
			n.progress[key] = progressMark{at: now, relayed: a.Relayed}
		} else if now.Sub(m.at) > stallAfter {
			present["stalled:"+key] = fyne.NewNotification("Nothing relayed for "+a.Email,
				"Mail has been waiting for over an hour; open Inbox Relay to see what is wrong.")
		}
	}
	// "pair" covers every account's "needs pairing": one problem, one
	// notification.
	for key, msg := range present {
		if !n.active[key] {
			n.active[key] = true
			n.send(msg)
		}
	}
	for key := range n.active {
		if present[key] == nil {
			delete(n.active, key)
		}
	}
}
