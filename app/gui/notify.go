package gui

import (
	"strings"
	"time"

	"fyne.io/fyne/v2"

	"github.com/inboxrelay/inboxrelay/app/words"
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
	if n := words.PlatformState(st.Engine.Platform.State).Note; st.Paired && n.Title != "" {
		present["platform:"+st.Engine.Platform.State.String()] = fyne.NewNotification(n.Title, n.Body)
	}
	for _, a := range accounts(st) {
		key := strings.ToLower(a.Email)
		if n := words.Account(a.State).Note; n.Title != "" {
			present[a.State.String()+":"+key] = fyne.NewNotification(n.Title+a.Email, n.Body)
		}
		if len(st.Engine.Accounts) == 0 {
			continue // the engine has not reported yet: no counters to judge
		}
		m, seen := n.progress[key]
		if !seen || a.Backlog == 0 || a.Relayed != m.relayed || st.Paused != 0 {
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
