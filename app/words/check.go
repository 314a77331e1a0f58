package words

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/inboxrelay/inboxrelay/sync/doctor"
)

// The words of "Test connection": the connection doctor's steps and
// advice, said for the setup window. The doctor speaks to the command
// line (its advice names flags); these say the same with the window's
// fields and questions.

// Target names a doctor target as a person reads it: "Incoming mail".
func Target(target string) string {
	switch target {
	case doctor.TargetIMAP:
		return "Incoming mail"
	case doctor.TargetSMTP:
		return "Outgoing mail"
	}
	return "Platform"
}

// stepNames are the doctor's steps as a person reads them.
var stepNames = map[string]string{
	doctor.StepDNS: "Server name", doctor.StepTCP: "Connection", doctor.StepTLS: "TLS",
	doctor.StepGreeting: "Greeting", doctor.StepLogin: "Login", doctor.StepFolders: "Inbox and Sent",
}

// StepTitle names a doctor step as a person reads it: "Incoming mail:
// TLS"; title is the doctor's own, for a step this table does not know.
func StepTitle(target, id, title string) string {
	if n, ok := stepNames[id]; ok {
		title = n
	}
	return Target(target) + ": " + title
}

// StepDetail is what a finished step shows under its title: what was
// found when it passed; what happened and what to do when it failed or
// warned.
func StepDetail(ds doctor.Step) string {
	switch ds.Status {
	case doctor.OK:
		return Sentence(ds.Summary)
	case doctor.Warn, doctor.Fail:
		return Sentence(stepSummary(ds)) + " " + stepAdvice(ds)
	}
	return ""
}

// Sentence starts s with a capital (unless it starts with a name such as
// a host or an address) and ends it with a full stop.
func Sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	first, _, _ := strings.Cut(s, " ")
	if !strings.ContainsAny(first, ".:@0123456789") {
		r, n := utf8.DecodeRuneInString(s)
		s = string(unicode.ToUpper(r)) + s[n:]
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// stepSummary is the doctor's summary without the command line's flags.
func stepSummary(ds doctor.Step) string {
	return strings.ReplaceAll(ds.Summary, " (--min-tls)", "")
}

// stepAdvice says what to do, in the words of the setup window: the
// doctor's advice names the command line's flags where setup has fields
// and questions of its own.
func stepAdvice(ds doctor.Step) string {
	port := "993"
	if ds.Target == doctor.TargetSMTP {
		port = "465"
	}
	var a string
	switch ds.Cause {
	case doctor.CauseTLSUntrusted:
		if ds.Fact("sha256 fingerprint") != "" {
			a = "Compare its fingerprint with the one your IT team gives you before you trust it in the question that follows."
		}
	case doctor.CauseTLSNameMismatch:
		a = "Enter the server name the certificate carries, or trust this certificate once your IT team confirms its fingerprint."
	case doctor.CauseTLSOldVersion:
		a = "Ask IT to enable TLS 1.2 or newer on the server: older versions have known weaknesses."
	case doctor.CauseTLSNotTLS:
		a = "This is probably a STARTTLS port: choose STARTTLS for this server, or use SSL/TLS on port " + port + "."
	case doctor.CauseStartTLSMissing:
		a = "Choose SSL/TLS on port " + port + " instead; if the server should offer STARTTLS, a device on your network may be removing it: tell IT."
	case doctor.CauseStartTLSRefused:
		a = "Choose SSL/TLS on port " + port + " instead, or ask IT why STARTTLS fails."
	case doctor.CauseLoginCredentials:
		a = "Check the password, and the login name if it is not the e-mail address, then test again."
	case doctor.CauseLoginExpired, doctor.CauseLoginAppBlocked:
		a = strings.ReplaceAll(ds.Advice, "add the account again", "test again")
	case doctor.CauseNoSent:
		a = "Create a folder named Sent (or ask IT to mark the sent-mail folder as \\Sent on the server), then test again."
	case doctor.CauseProxyRefused:
		a = "The company proxy refused the connection or wants a login: ask IT to allow this server through it, or for the proxy's login."
	case doctor.CauseProxyFailed:
		a = "The company proxy cannot be reached, or could not connect to the server: check the proxy setting with IT."
	}
	if a == "" {
		a = ds.Advice
	}
	if strings.Contains(a, "--") || strings.Contains(a, "inboxrelay ") || strings.Contains(a, "diagnose") || strings.Contains(a, "add the account") {
		// A sentence for the command line this table does not know yet.
		a = "Show this step to your IT team; it names the server setting to fix."
	}
	return a
}
