package words

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
)

// TestProviders: the app-password advice comes with the big providers,
// by the address's domain or by the IMAP host (a company domain hosted
// there), and never for anyone else.
func TestProviders(t *testing.T) {
	for _, c := range []struct{ domain, host, name string }{
		{"gmail.com", "", "Gmail"},
		{"acme.com", "imap.gmail.com", "Gmail"},
		{"hotmail.com", "", "Outlook.com"},
		{"acme.com", "outlook.office365.com", "Outlook.com"},
		{"me.com", "", "iCloud Mail"},
		{"yahoo.com", "", "Yahoo Mail"},
		{"acme.com", "mail.acme.com", ""},
		{"notgmail.com", "imap.notgmail.com", ""},
	} {
		name, hint := Provider(c.domain, c.host)
		if name != c.name || (name != "") != strings.Contains(hint, "password") {
			t.Errorf("Provider(%q, %q) = %q, %q; want %q with advice", c.domain, c.host, name, hint, c.name)
		}
	}
}

// TestLookupWords: what the lookup found, in one line; a failed lookup
// says what to do, and tells a missing setting from a missing network;
// servers outside the domain are named with the risk; a guessed name that
// does not exist is not the person's spelling mistake.
func TestLookupWords(t *testing.T) {
	r := autoconfig.Result{IMAP: config.Server{Host: "imap.acme.com"}, SMTP: config.Server{Host: "smtp.acme.com"}, Source: "DNS SRV"}
	if got := Found("acme.com", r); got != "Found: acme.com — imap.acme.com, smtp.acme.com (from acme.com's DNS)" {
		t.Errorf("Found: %q", got)
	}
	if got := LookupFailed("acme.com", fmt.Errorf("x: %w", autoconfig.ErrNotFound)); !strings.Contains(got, "No settings were found for acme.com") {
		t.Errorf("not found: %q", got)
	}
	if got := LookupFailed("acme.com", context.DeadlineExceeded); !strings.Contains(got, "online") {
		t.Errorf("timed out: %q", got)
	}
	r.Outside = []string{"mail.elsewhere.net"}
	if got := ForeignServers("acme.com", r); !strings.Contains(got, "handled by mail.elsewhere.net, outside acme.com") || !strings.Contains(got, "password") {
		t.Errorf("ForeignServers: %q", got)
	}
	if got := GuessedNameMissing("imap.acme.com", "autoconfig"); strings.Contains(strings.ToLower(got), "spelling") || !strings.Contains(got, "IT department") {
		t.Errorf("GuessedNameMissing: %q", got)
	}
}
