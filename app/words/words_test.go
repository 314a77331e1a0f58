package words

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// TestEveryStateHasWords: every value of the engine's enums has an entry
// in this package's tables, so a state added to the engine without words
// fails here instead of showing "in an unknown state" to someone. Each
// label is distinct (the tray must tell states apart), none is the
// engine's word for a state that needs the user, and every problem
// offers a repair.
func TestEveryStateHasWords(t *testing.T) {
	labels := map[string]engine.State{}
	for _, s := range engine.States() {
		w, ok := accountStates[s]
		if !ok {
			t.Errorf("engine state %v (%d) has no words", s, int(s))
			continue
		}
		if w.Label == "" {
			t.Errorf("state %v has no label", s)
		}
		if other, dup := labels[w.Label]; dup {
			t.Errorf("states %v and %v share the label %q", s, other, w.Label)
		}
		labels[w.Label] = s
		if (w.Problem == "") != (w.Fix == FixNone) {
			t.Errorf("state %v: problem %q with fix %v", s, w.Problem, w.Fix)
		}
		if w.Problem != "" && w.Label == s.String() {
			t.Errorf("state %v is labelled with the engine's own word %q", s, w.Label)
		}
		if w.Note.Title != "" && w.Note.Body == "" {
			t.Errorf("state %v: a notification without a body", s)
		}
	}
	if len(accountStates) != len(engine.States()) {
		t.Errorf("%d account words for %d engine states: a state was removed, remove its words", len(accountStates), len(engine.States()))
	}
	for _, s := range engine.PlatformStates() {
		if w, ok := platformStates[s]; !ok || w.Line == "" {
			t.Errorf("platform state %v (%d) has no words", s, int(s))
		}
	}
	if len(platformStates) != len(engine.PlatformStates()) {
		t.Errorf("%d platform words for %d platform states", len(platformStates), len(engine.PlatformStates()))
	}
	for _, r := range engine.PauseReasons() {
		if pauseReasons[r] == "" {
			t.Errorf("pause reason %v has no words", r)
		}
	}
}

// TestPausedSaysWhy: the headline of a pause names every reason, and says
// it ends on its own when the user did not pause.
func TestPausedSaysWhy(t *testing.T) {
	for _, c := range []struct {
		why  engine.PauseReason
		want []string
	}{
		{engine.PausedByUser, []string{"resume it when you are ready"}},
		{engine.PausedOnMetered, []string{"metered connection", "resumes on its own"}},
		{engine.PausedByUser | engine.PausedOnMetered, []string{"you paused it", "metered connection"}},
		{0, []string{"paused"}},
	} {
		got := Paused(c.why)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("Paused(%v) = %q, lacks %q", c.why, got, w)
			}
		}
		if c.why.Has(engine.PausedByUser) && strings.Contains(got, "on its own") {
			t.Errorf("Paused(%v) = %q: the user's pause does not end on its own", c.why, got)
		}
	}
}

// TestErrorsByType: errors are told apart by type and sentinel, wrapped
// however deep, never by their text; what the engine's text says does
// not leak into the sentence.
func TestErrorsByType(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("context: %w", fmt.Errorf("more: %w", err)) }
	stopped := []struct {
		err  error
		want string
	}{
		{connector.ErrNotPaired, "not paired"},
		{engine.ErrNoAccount, "No mailbox"},
		{connector.ErrNoToken, "missing from the keychain"},
		{errors.New("no account is set up yet"), "show the details to IT"}, // same text, not the sentinel
	}
	for _, c := range stopped {
		if got := Stopped(wrap(c.err)); !strings.Contains(got, c.want) {
			t.Errorf("Stopped(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	pairing := []struct {
		err  error
		want string
	}{
		{relay.ErrBadCode, "did not accept this code"},
		{relay.ErrNotPlatform, "is not your platform's connector address"},
		{&relay.TemporaryError{Err: &net.DNSError{Name: "app.exmaple.com", IsNotFound: true}}, "No server named app.exmaple.com exists"},
		{&relay.TemporaryError{Err: &net.DNSError{Name: "app.example.com", IsTemporary: true}}, "cannot reach the platform"},
		{&relay.TemporaryError{Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}}, "cannot reach the platform"},
		{&relay.TemporaryError{Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, "refused the connection"},
		{&relay.TemporaryError{Err: errors.New("dial tcp: refused")}, "cannot be reached"},
		{errors.New("the pairing code is wrong"), "Pairing failed"},
	}
	for _, c := range pairing {
		if got := Pairing(wrap(c.err)); !strings.Contains(got, c.want) {
			t.Errorf("Pairing(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if got := Password(wrap(imapsync.ErrAuth)); !strings.Contains(got, "still refuses") {
		t.Errorf("Password(ErrAuth) = %q", got)
	}
	if got := Password(errors.New("secret engine text")); strings.Contains(got, "secret engine text") {
		t.Errorf("Password shows the engine's text: %q", got)
	}
	if got := Setting(wrap(&settings.LockedError{Key: settings.BackfillDays})); !strings.Contains(got, "IT department") {
		t.Errorf("Setting(LockedError) = %q", got)
	}
}

// TestLogLevelsHaveWords fails when a log level is offered with no words.
func TestLogLevelsHaveWords(t *testing.T) {
	for _, l := range settings.LogLevels {
		if LogLevel(l) == l {
			t.Errorf("log level %q has no words", l)
		}
	}
}
