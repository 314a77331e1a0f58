package smtpsink

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/trust"
)

func dial(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	c, err := smtp.DialTLS(s.Addr, &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		if trust.Fingerprint(cs.PeerCertificates[0]) != s.Fingerprint {
			return errors.New("not the pinned certificate")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSink: mail is refused before AUTH and with a wrong password, and
// recorded exactly as sent after AUTH PLAIN with the right one.
func TestSink(t *testing.T) {
	s := Start(t, "alice", "secret")
	c := dial(t, s)
	var se *smtp.SMTPError
	if err := c.Mail("alice@acme.test", nil); !errors.As(err, &se) || se.Code < 500 {
		t.Fatalf("MAIL before AUTH: %v, want a refusal", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wrong")); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatalf("auth: %v", err)
	}
	msg := "Subject: hi\r\n\r\nhello\r\n"
	if err := c.SendMail("alice@acme.test", []string{"bob@client.test"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	d := s.Delivered()
	if len(d) != 1 || d[0].From != "alice@acme.test" || len(d[0].To) != 1 || d[0].To[0] != "bob@client.test" || string(d[0].Data) != msg {
		t.Fatalf("delivered %+v", d)
	}
	if s.Logins() != 1 {
		t.Fatalf("%d logins, want 1", s.Logins())
	}
}
