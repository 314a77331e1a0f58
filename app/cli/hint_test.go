package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestHintsByType: the engine's errors name no command; the command line
// adds its own, recognising each error by its type however deep it is
// wrapped, never by its text.
func TestHintsByType(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{connector.ErrNotPaired, "inboxrelay pair --platform URL --code CODE"},
		{engine.ErrNoAccount, "inboxrelay account add"},
		{connector.ErrNoToken, "inboxrelay pair"},
		{connector.ErrAccountExists, "inboxrelay account remove"},
		{engine.ErrNoPassword, "inboxrelay account"},
		{config.ErrRunning, "--home"},
		{trust.ErrUseImplicitTLS, "--imap-security tls"},
		{trust.ErrTLSTooOld, "--min-tls"},
		{&trust.UntrustedError{Server: "mail.acme.com:993", Fingerprint: "ab12", Reason: errors.New("unknown authority")}, "--trust-fingerprint mail.acme.com:993=ab12"},
		{&netdial.ProxyError{Proxy: "http://proxy.corp:3128", Target: "mail.acme.com:993", Status: 407}, "inboxrelay proxy login"},
		{&connector.SpentCodeError{Path: "/etc/inboxrelay/policy.toml", Refused: true}, "inboxrelay pair --platform URL --code CODE"},
	} {
		err := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", c.err))
		if strings.Contains(c.err.Error(), "--") || strings.Contains(c.err.Error(), "inboxrelay ") {
			t.Errorf("%T %q names a command itself", c.err, c.err)
		}
		if got := hint(err); !strings.Contains(got, c.want) {
			t.Errorf("hint(%v) = %q, want %q", err, got, c.want)
		}
		if got := hint(errors.New(err.Error())); got != "" {
			t.Errorf("an error with the same text but not the type got the hint %q", got)
		}
	}
}
