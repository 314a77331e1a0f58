package doctor

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/imapsync"
)

// The wordings below are what servers answer in the field; no server that
// runs here produces most of them, so the classifier is checked on them
// directly.
func TestClassifyLogin(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code, text string
		want       string
	}{
		{"dovecot wrong password", "AUTHENTICATIONFAILED", "Authentication failed.", CauseLoginCredentials},
		{"gmail app password", "ALERT", "Application-specific password required: https://support.google.com/mail/?p=InvalidSecondFactor", CauseLoginAppBlocked},
		{"gmail less secure apps", "", "Please log in via your web browser (less secure apps)", CauseLoginAppBlocked},
		{"m365 basic auth off (SMTP)", "535 5.7.139", "Authentication unsuccessful, basic authentication is disabled.", CauseLoginAppBlocked},
		{"m365 SMTP AUTH off", "535 5.7.139", "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", CauseLoginAppBlocked},
		{"imap off for the mailbox", "", "IMAP access is disabled for this account", CauseLoginAppBlocked},
		{"expired by code", "EXPIRED", "Password expired", CauseLoginExpired},
		{"expired by words", "", "Your password has expired", CauseLoginExpired},
		{"locked by code", "CONTACTADMIN", "Contact your administrator", CauseLoginLocked},
		{"locked by words", "", "Account locked after too many failed attempts", CauseLoginLocked},
		{"suspended", "", "This account has been suspended", CauseLoginLocked},
		{"temporary", "UNAVAILABLE", "Temporary authentication failure", CauseLoginUnavailable},
		{"privacy required", "PRIVACYREQUIRED", "Connection is not secure", CauseLoginPlaintext},
		{"plaintext refused", "", "Plaintext authentication disallowed on non-secure connections", CauseLoginPlaintext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cause, summary, advice := classifyLogin("mail.acme.test:993", "alice@acme.test", &imapsync.AuthError{Server: "mail.acme.test:993", Code: tc.code, Text: tc.text})
			if cause != tc.want || summary == "" || advice == "" {
				t.Fatalf("cause %q (%q / %q), want %q", cause, summary, advice, tc.want)
			}
		})
	}
}

func TestClassifyDNSAndTCP(t *testing.T) {
	if c, _, _ := classifyDNS("mail.acme.test", &net.DNSError{Err: "no such host", Name: "mail.acme.test", IsNotFound: true}); c != CauseDNSNotFound {
		t.Errorf("NXDOMAIN: %q", c)
	}
	if c, _, _ := classifyDNS("mail.acme.test", &net.DNSError{Err: "i/o timeout", IsTimeout: true}); c != CauseDNSFailed {
		t.Errorf("DNS timeout: %q", c)
	}
	op := func(errno error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{op(syscall.ECONNREFUSED), CauseTCPRefused},
		{op(syscall.ENETUNREACH), CauseTCPUnreachable},
		{op(syscall.EHOSTUNREACH), CauseTCPUnreachable},
		{context.DeadlineExceeded, CauseTCPTimeout},
		{errors.New("something else"), CauseTCPFailed},
	} {
		if c, _, advice := classifyTCP("192.0.2.1", 993, "IMAP", "15s", tc.err); c != tc.want || advice == "" {
			t.Errorf("%v: %q, want %q", tc.err, c, tc.want)
		}
	}
}
