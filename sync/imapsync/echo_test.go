package imapsync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// echoPasswords make go-imap send the password IMAP-quoted with escapes
// and as a literal (non-ASCII).
var echoPasswords = []string{`Echo"Pa\ss-1234`, "Echo-pässwörd-1234"}

// TestNoPasswordInErrorsFromEchoingServer: whatever form an IMAP server
// echoes the password in, in the login's answer or a later one, the error
// does not hold it, and still says what happened.
func TestNoPasswordInErrorsFromEchoingServer(t *testing.T) {
	const user = "alice@acme.test"
	for _, pw := range echoPasswords {
		for _, mode := range hostile.EchoModes {
			t.Run(mode.String()+"/"+pw, func(t *testing.T) {
				s := hostile.StartEchoIMAP(t, user, pw, mode)
				srv, _ := config.ParseServer(s.Addr, config.SecurityTLS, 993)
				acct := config.Account{Email: user, IMAP: srv, Pins: []trust.Pin{{Server: s.Addr, Fingerprint: s.Cert.Fingerprint}}}
				pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := imapsync.Dial(ctx, acct, pw, pol)
				if mode == hostile.EchoAfterLogin {
					if err != nil {
						t.Fatalf("login: %v", err)
					}
					_, err = c.Examine("INBOX")
					c.Close()
				}
				if err == nil {
					t.Fatal("no error from a server that refused")
				}
				if s.Echoed() == 0 {
					t.Fatal("the server never echoed the password: the test tests nothing")
				}
				if leaks := hostile.Leaks(err.Error(), user, pw); len(leaks) > 0 {
					t.Fatalf("the error holds the password (%v): %v", leaks, err)
				}
				var ae *imapsync.AuthError
				switch mode {
				case hostile.EchoPlain, hostile.EchoBase64, hostile.EchoURL:
					if !errors.As(err, &ae) || !errors.Is(err, imapsync.ErrAuth) || ae.Code != "AUTHENTICATIONFAILED" {
						t.Fatalf("a refused login is not an AuthError: %v", err)
					}
					if leaks := hostile.Leaks(ae.Text, user, pw); len(leaks) > 0 {
						t.Fatalf("AuthError.Text holds the password (%v): %q", leaks, ae.Text)
					}
				case hostile.EchoCommand, hostile.EchoAfterLogin:
					if errors.As(err, &ae) {
						t.Fatalf("BAD or a later NO taken for a refused password: %v", err)
					}
				}
			})
		}
	}
}
