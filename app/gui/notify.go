package gui

import (
	"fyne.io/fyne/v2"
)

// notifier sends one notification per problem of the model: when the
// problem appears, never again while it lasts, and again only if it comes
// back after being solved. Not safe for concurrent use: the UI calls it
// from the fyne goroutine.
type notifier struct {
	send   func(*fyne.Notification)
	active map[string]bool // problems already notified and still present
}

func newNotifier(send func(*fyne.Notification)) *notifier {
	return &notifier{send: send, active: map[string]bool{}}
}

// render notifies the problems of m that are new.
func (n *notifier) render(m model) {
	present := map[string]bool{}
	for _, p := range m.Notes {
		present[p.Key] = true
		if !n.active[p.Key] {
			n.active[p.Key] = true
			n.send(fyne.NewNotification(p.Title, p.Body))
		}
	}
	for key := range n.active {
		if !present[key] {
			delete(n.active, key)
		}
	}
}
