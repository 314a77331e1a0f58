package smtpsend_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestNoPasswordInErrorsFromEchoingServer: an SMTP server that echoes the
// password (AUTH PLAIN's base64, AUTH LOGIN's, in clear, URL-encoded, or
// in an answer after the login) never puts it into an error.
func TestNoPasswordInErrorsFromEchoingServer(t *testing.T) {
	const user = "alice@acme.test"
	for _, pw := range []string{`Echo"Pa\ss-1234`, "Echo-pässwörd-1234"} {
		for _, loginOnly := range []bool{false, true} {
			for _, mode := range hostile.EchoModes {
				name := mode.String() + "/PLAIN/" + pw
				if loginOnly {
					name = mode.String() + "/LOGIN/" + pw
				}
				t.Run(name, func(t *testing.T) {
					s := hostile.StartEchoSMTP(t, user, pw, mode, loginOnly)
					srv, _ := config.ParseServer(s.Addr, config.SecurityTLS, 465)
					acct := config.Account{Email: user, SMTP: srv, Pins: []trust.Pin{{Server: s.Addr, Fingerprint: s.Cert.Fingerprint}}}
					pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					c, err := smtpsend.Dial(ctx, acct, pw, pol)
					if mode == hostile.EchoAfterLogin {
						if err != nil {
							t.Fatalf("login: %v", err)
						}
						msg := "Subject: x\r\n\r\nx\r\n"
						_, _, err = c.Send(user, []string{"bob@client.test"}, strings.NewReader(msg), int64(len(msg)))
						c.Close()
						var se *smtp.SMTPError
						if !errors.As(err, &se) || se.Code != 550 {
							t.Fatalf("a refused MAIL is not an SMTPError 550: %v", err)
						}
						if leaks := hostile.Leaks(se.Message, user, pw); len(leaks) > 0 {
							t.Fatalf("SMTPError.Message holds the password (%v): %q", leaks, se.Message)
						}
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
					if mode != hostile.EchoAfterLogin {
						var ae *imapsync.AuthError
						if !errors.As(err, &ae) || !errors.Is(err, imapsync.ErrAuth) || ae.Code != "535 5.7.8" {
							t.Fatalf("a refused login is not an AuthError: %v", err)
						}
					}
				})
			}
		}
	}
}
