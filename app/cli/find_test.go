package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
)

func noXML(string, string) []string { return nil }

// TestFindServersRefusesDNSOutsideTheDomain: account add without --imap
// and --smtp looks the servers up; servers DNS names inside the domain
// are used and shown, servers outside it are not (RFC 6186 §6): the error
// names them and the flags that confirm them.
func TestFindServersRefusesDNSOutsideTheDomain(t *testing.T) {
	res := hostile.StartDNS(t, map[string][]hostile.SRV{
		"_imaps._tcp.acme.test.":        {{Port: 993, Target: "mail.acme.test."}},
		"_submission._tcp.acme.test.":   {{Port: 587, Target: "smtp.eu.acme.test."}},
		"_imaps._tcp.other.test.":       {{Port: 993, Target: "mail.attacker.test."}},
		"_submissions._tcp.other.test.": {{Port: 465, Target: "mail.other.test."}},
	})
	var out bytes.Buffer
	e := &env{stdout: &out, finder: &autoconfig.Finder{Resolver: res, AutoconfigURLs: noXML, Timeout: 5 * time.Second}}

	sf := addServerFlags(flags("account add"))
	*sf.email = "alice@acme.test"
	if err := e.findServers(sf); err != nil {
		t.Fatal(err)
	}
	if *sf.imap != "mail.acme.test:993" || *sf.imapSec != "tls" || *sf.smtp != "smtp.eu.acme.test:587" || *sf.smtpSec != "starttls" {
		t.Fatalf("filled in %s (%s), %s (%s)", *sf.imap, *sf.imapSec, *sf.smtp, *sf.smtpSec)
	}
	if !strings.Contains(out.String(), "found by DNS SRV: --imap mail.acme.test:993") {
		t.Errorf("output %q does not say what was found", out.String())
	}

	sf = addServerFlags(flags("account add"))
	*sf.email = "bob@other.test"
	err := e.findServers(sf)
	if err == nil || !strings.Contains(err.Error(), "outside other.test (mail.attacker.test)") ||
		!strings.Contains(err.Error(), "--imap mail.attacker.test:993 --imap-security tls --smtp mail.other.test:465") {
		t.Fatalf("got %v; want the foreign server named and the flags to confirm it", err)
	}
	if *sf.imap != "" {
		t.Fatalf("the foreign server was filled in: %s", *sf.imap)
	}

	sf = addServerFlags(flags("account add"))
	*sf.email = "carol@nowhere.test"
	var ue usageError
	if err := e.findServers(sf); !errors.As(err, &ue) {
		t.Fatalf("nothing found: %v; want a usage error asking for --imap and --smtp", err)
	}
}
