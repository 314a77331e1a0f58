package mailserver

import (
	"io"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var (
	// RFC 4954 section 6; go-smtp's own ErrAuthRequired is a 502.
	errAuthRequired = &smtp.SMTPError{
		Code:         530,
		EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message:      "Authentication required",
	}
	errSenderRefused = &smtp.SMTPError{
		Code:         553,
		EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message:      "Sender address is not owned by the authenticated user",
	}
	errNeedMail = &smtp.SMTPError{
		Code:         503,
		EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message:      "MAIL FROM first",
	}
)

// smtpSession is one SMTP submission session (RFC 6409): AUTH PLAIN with
// the user's credentials, then messages from the user's own address. The
// listener is implicit TLS and AllowInsecureAuth is off, so the password
// never crosses the wire in clear. go-smtp calls one session's methods from
// one goroutine.
type smtpSession struct {
	srv    *Server
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

// AuthMechanisms implements smtp.AuthSession.
func (ss *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth implements smtp.AuthSession. Failures are a permanent 535 5.7.8
// (RFC 4954 section 6): go-smtp would turn a plain error into a temporary 454.
func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		if !ss.srv.checkLogin(username, password) {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	if !strings.EqualFold(from, ss.srv.email) {
		return errSenderRefused
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	if ss.from == "" {
		return errNeedMail
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	if !ss.authed {
		return errAuthRequired
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.srv.record(Delivery{From: ss.from, To: ss.to, Data: b, Received: ss.srv.now()})
	ss.from, ss.to = "", nil
	return nil
}

func (ss *smtpSession) Reset() { ss.from, ss.to = "", nil }

func (ss *smtpSession) Logout() error { return nil }
