package relay

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseSettings: whatever a heartbeat's answer holds, reading it
// does not panic, and what it returns is consistent: domains only when
// relay_domains was given, send_as in lower case (accounts and addresses).
func FuzzParseSettings(f *testing.F) {
	f.Add([]byte(`{"settings":{"backfill_days":30,"relay_domains":["customer.com","Sub.Example.ORG."],"send_as":{"Alice@Acme.com":["support@acme.com"]}}}`))
	f.Add([]byte(`{"settings":{"relay_domains":[]}}`))
	f.Add([]byte(`{"settings":{"relay_domains":null,"backfill_days":-1}}`))
	f.Add([]byte(`{"settings":null}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"settings":{"relay_domains":"x"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := parseSettings(bounded(bytes.NewReader(body), MaxAnswer, "heartbeat answer"))
		if err != nil {
			return // refused with an error: fine
		}
		if s == nil {
			return
		}
		if !s.DomainsGiven && len(s.RelayDomains) > 0 {
			t.Fatalf("domains %q without DomainsGiven", s.RelayDomains)
		}
		for acct, addrs := range s.SendAs {
			if acct != strings.ToLower(acct) {
				t.Fatalf("send_as key %q not lower case", acct)
			}
			for _, a := range addrs {
				if a != strings.ToLower(a) {
					t.Fatalf("send_as address %q of %q not lower case", a, acct)
				}
			}
		}
	})
}

// A heartbeat answer past MaxAnswer is refused as too long, not cut and
// half-read.
func TestParseSettingsTooLong(t *testing.T) {
	body := `{"settings":{"relay_domains":["` + strings.Repeat("a", MaxAnswer) + `"]}}`
	_, err := parseSettings(bounded(strings.NewReader(body), MaxAnswer, "heartbeat answer"))
	var tl *tooLongError
	if !errors.As(err, &tl) {
		t.Fatalf("got %v, want too long", err)
	}
}
