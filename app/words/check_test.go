package words

import (
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/doctor"
)

// TestStepAdviceHasNoFlags: the doctor's advice that names command-line
// flags is reworded for the window, and advice this list does not know
// never shows a flag either.
func TestStepAdviceHasNoFlags(t *testing.T) {
	for _, c := range []struct {
		cause, advice string
		facts         []doctor.Fact
	}{
		{doctor.CauseTLSUntrusted, "If IT confirms the SHA-256 fingerprint ab, pin it: add the account with --trust-fingerprint ab.", []doctor.Fact{{Name: "sha256 fingerprint", Value: "ab"}}},
		{doctor.CauseTLSNameMismatch, "Use the server name the certificate carries, or, if IT confirms its SHA-256 fingerprint ab, pin it with --trust-fingerprint ab.", nil},
		{doctor.CauseTLSOldVersion, "Ask IT to enable TLS 1.2 or newer; only if that is impossible, add the account with --min-tls 1.0.", nil},
		{doctor.CauseTLSNotTLS, "This is probably a STARTTLS port: use --imap-security starttls (port 143).", nil},
		{doctor.CauseStartTLSMissing, "Use the TLS port instead (993 with --imap-security tls).", nil},
		{doctor.CauseStartTLSRefused, "Use the TLS port instead (465 with --smtp-security tls), or ask IT why STARTTLS fails.", nil},
		{doctor.CauseLoginCredentials, "Check the user name (--username if it is not the e-mail address) and enter the password again.", nil},
		{doctor.CauseNoSent, "Create a folder named Sent, then run diagnose again.", nil},
		{doctor.CauseProxyRefused, "Store the proxy's login with `inboxrelay proxy login`, or ask IT which login the proxy expects.", nil},
		{doctor.CauseProxyFailed, "Check the proxy setting with IT (the policy's proxy, or HTTPS_PROXY): this computer must be able to reach it.", nil},
		{"some.new_cause", "Run inboxrelay account add with --new-flag.", nil},
	} {
		t.Run(c.cause, func(t *testing.T) {
			d := StepDetail(doctor.Step{Target: doctor.TargetIMAP, ID: doctor.StepTLS, Status: doctor.Fail, Cause: c.cause,
				Summary: "it failed", Advice: c.advice, Facts: c.facts})
			if !strings.HasPrefix(d, "It failed. ") || len(d) <= len("It failed. ") {
				t.Fatalf("detail %q", d)
			}
			for _, bad := range []string{"--", "inboxrelay ", "diagnose", "add the account"} {
				if strings.Contains(d, bad) {
					t.Fatalf("detail %q holds %q", d, bad)
				}
			}
		})
	}
	// A proxy's refusal says it is the proxy, in the window's words.
	for _, cause := range []string{doctor.CauseProxyRefused, doctor.CauseProxyFailed} {
		d := StepDetail(doctor.Step{Target: doctor.TargetIMAP, ID: doctor.StepTCP, Status: doctor.Fail, Cause: cause,
			Summary: "it failed", Advice: "Store the proxy's login with `inboxrelay proxy login`."})
		if !strings.Contains(d, "company proxy") {
			t.Errorf("%s: detail %q does not say the proxy is the problem", cause, d)
		}
	}
	// Warnings say what to do too, without the flag.
	w := StepDetail(doctor.Step{Target: doctor.TargetSMTP, ID: doctor.StepTLS, Status: doctor.Warn, Cause: doctor.CauseTLSOldVersion,
		Summary: "the server offers only TLS 1.0, accepted because this account allows it (--min-tls)", Advice: "Ask IT."})
	if w == "" || strings.Contains(w, "--") {
		t.Fatalf("warning %q", w)
	}
	if got := StepTitle(doctor.TargetSMTP, doctor.StepTLS, "tls"); got != "Outgoing mail: TLS" {
		t.Fatalf("title %q", got)
	}
	if got := Sentence("mail.acme.com resolves to 10.0.0.1"); got != "mail.acme.com resolves to 10.0.0.1." {
		t.Fatalf("a host name was capitalized: %q", got)
	}
}
