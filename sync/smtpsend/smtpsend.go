// Package smtpsend is the connector's SMTP side: connecting to the
// account's submission server with implicit TLS or strict STARTTLS, and
// logging in only once the connection is encrypted.
package smtpsend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/redact"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Client is one authenticated SMTP connection. Not safe for concurrent use.
type Client struct {
	c    *smtp.Client
	stop func() bool
	red  *redact.Secrets // the login's password in every form; see redact.go
}

// Dial connects to the account's SMTP server, verifies it with pol and
// authenticates (PLAIN, else LOGIN) over TLS. The connection is closed when
// ctx ends. A refused login is an *imapsync.AuthError-like error wrapping
// imapsync.ErrAuth, so callers classify both protocols alike.
func Dial(ctx context.Context, acct config.Account, password string, pol *trust.Policy) (*Client, error) {
	srv := acct.SMTP
	c, err := connect(ctx, srv, pol)
	if err != nil {
		return nil, classify(srv, err)
	}
	cl := &Client{c: c, red: redact.ForLogin(acct.Login(), password)}
	cl.stop = context.AfterFunc(ctx, func() { c.Close() })
	if _, ok := c.TLSConnectionState(); !ok {
		cl.Close()
		return nil, fmt.Errorf("%s: the connection is not encrypted; refusing to send the password", srv.Addr())
	}
	var auth sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		auth = sasl.NewPlainClient("", acct.Login(), password)
	case c.SupportsAuth(sasl.Login):
		auth = sasl.NewLoginClient(acct.Login(), password)
	default:
		cl.Close()
		return nil, fmt.Errorf("%s offers neither PLAIN nor LOGIN authentication: ask IT which login method the server accepts", srv.Addr())
	}
	if err := c.Auth(auth); err != nil {
		cl.Close()
		var se *smtp.SMTPError
		if errors.As(err, &se) && !se.Temporary() {
			code := fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
			return nil, &imapsync.AuthError{Server: srv.Addr(), Code: code, Text: cl.red.String(se.Message)}
		}
		return nil, fmt.Errorf("log in to %s: %s", srv.Addr(), cl.red.String(err.Error()))
	}
	return cl, nil
}

func connect(ctx context.Context, srv config.Server, pol *trust.Policy) (*smtp.Client, error) {
	raw, err := netdial.Dial(ctx, srv.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(60 * time.Second))
	cfg := pol.Config(srv.Addr())
	var c *smtp.Client
	if srv.Security == config.SecurityStartTLS {
		c, err = smtp.NewClientStartTLS(raw, cfg)
		if err != nil {
			raw.Close()
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s refused STARTTLS (%s): %w (usually 465)", srv.Addr(), se.Message, trust.ErrUseImplicitTLS)
			}
			return nil, err
		}
	} else {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		c = smtp.NewClient(tc)
	}
	// go-smtp handshakes after STARTTLS only on the next command, and
	// SupportsAuth hides that command's error: say EHLO now, so that an
	// untrusted certificate is reported as such.
	if err := c.Hello("localhost"); err != nil {
		c.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

func classify(srv config.Server, err error) error {
	var ue *trust.UntrustedError
	if errors.As(err, &ue) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return &imapsync.NetError{Server: srv.Addr(), Err: err}
	}
	return fmt.Errorf("connect to %s: %w", srv.Addr(), err)
}

// SMTP returns the underlying go-smtp client, for sending.
func (c *Client) SMTP() *smtp.Client { return c.c }

// Close says QUIT (bounded) and closes the connection. A session that
// ends badly loses nothing the caller still needs, so it returns nil.
func (c *Client) Close() error {
	if c.stop != nil {
		c.stop()
	}
	done := make(chan error, 1)
	go func() { done <- c.c.Quit() }() // QUIT closes the connection when it succeeds
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
	case <-time.After(2 * time.Second):
	}
	c.c.Close()
	return nil
}
