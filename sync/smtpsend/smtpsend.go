// Package smtpsend is the connector's SMTP side: connecting to the
// account's submission server with implicit TLS or strict STARTTLS, and
// logging in only once the connection is encrypted.
package smtpsend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/redact"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Timeouts bound every step of an SMTP session; zero fields take the
// defaults shown. A server that says nothing for that long is given up on,
// and the error says which step it was.
type Timeouts struct {
	// Step bounds connecting, the TLS handshake, the greeting and each
	// command's answer: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, RSET, QUIT;
	// 60 s.
	Step time.Duration
	// Stall bounds the message body: it fails when the server takes no
	// byte for this long, however long the whole body takes; 60 s.
	Stall time.Duration
	// Final bounds the wait for the answer to the end of the message, when
	// the server may be scanning it: 10 min (RFC 5321 4.5.3.2.6).
	Final time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Step <= 0 {
		t.Step = time.Minute
	}
	if t.Stall <= 0 {
		t.Stall = time.Minute
	}
	if t.Final <= 0 {
		t.Final = 10 * time.Minute
	}
	return t
}

// Client is one authenticated SMTP connection. Not safe for concurrent use.
type Client struct {
	c      *smtp.Client
	conn   *deadlineConn
	server string
	t      Timeouts
	stop   func() bool
	broken bool            // the connection cannot carry another message
	red    *redact.Secrets // the login's password in every form; see redact.go
}

// Dial is DialTimeouts with the default Timeouts.
func Dial(ctx context.Context, acct config.Account, password string, pol *trust.Policy) (*Client, error) {
	return DialTimeouts(ctx, acct, password, pol, Timeouts{})
}

// DialTimeouts connects to the account's SMTP server, verifies it with
// pol and authenticates (PLAIN, else LOGIN) over TLS, each step bounded by
// t. The connection is closed when ctx ends. A refused login is an
// *imapsync.AuthError wrapping imapsync.ErrAuth, so callers classify both
// protocols alike.
func DialTimeouts(ctx context.Context, acct config.Account, password string, pol *trust.Policy, t Timeouts) (*Client, error) {
	t = t.withDefaults()
	srv := acct.SMTP
	cl, err := connect(ctx, srv, pol, t)
	if err != nil {
		return nil, classify(srv, err)
	}
	c := cl.c
	cl.red = redact.ForLogin(acct.Login(), password)
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
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if e := cl.explain("logging in", t.Step, err); e != err {
			return nil, e
		}
		return nil, fmt.Errorf("log in to %s: %s", srv.Addr(), cl.red.String(err.Error()))
	}
	// From here on go-smtp's own deadlines apply: Step for each command,
	// Final for the answer to the message's end.
	cl.conn.setMaxWait(t.Final)
	return cl, nil
}

// connect is the one place that dials: TCP, TLS (implicit or STARTTLS),
// greeting and EHLO, each bounded by t.Step.
func connect(ctx context.Context, srv config.Server, pol *trust.Policy, t Timeouts) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, t.Step)
	raw, err := netdial.Dial(dctx, srv.Addr())
	cancel()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	// Until the login is done no wait is longer than Step, whatever
	// go-smtp asks for (it gives its greeting and STARTTLS 5 minutes).
	dc := newDeadlineConn(raw, srv.Addr(), t.Stall, t.Step)
	cl := &Client{conn: dc, server: srv.Addr(), t: t}
	cfg := pol.Config(srv.Addr())
	var c *smtp.Client
	if srv.Security == config.SecurityStartTLS {
		c, err = smtp.NewClientStartTLS(dc, cfg)
		if err != nil {
			raw.Close()
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s refused STARTTLS (%s): %w (usually 465)", srv.Addr(), se.Message, trust.ErrUseImplicitTLS)
			}
			return nil, cl.explain("waiting for the greeting and STARTTLS", t.Step, err)
		}
	} else {
		tc := tls.Client(dc, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.Step)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return nil, &imapsync.NetError{Server: srv.Addr(), Kind: imapsync.Silent, Op: "negotiating TLS", Err: fmt.Errorf("nothing for %v", t.Step)}
			}
			return nil, err
		}
		c = smtp.NewClient(tc)
	}
	c.CommandTimeout, c.SubmissionTimeout = t.Step, t.Final
	cl.c = c
	// go-smtp handshakes after STARTTLS only on the next command, and
	// SupportsAuth hides that command's error: say EHLO now, so that an
	// untrusted certificate is reported as such.
	if err := c.Hello("localhost"); err != nil {
		c.Close()
		return nil, cl.explain("waiting for the greeting", t.Step, err)
	}
	return cl, nil
}

// explain turns a timeout, a reply too long or a broken connection while
// doing op ("sending RCPT TO", a phrase for a person) into words that name
// them, as an *imapsync.NetError where the connection failed; wait is the
// deadline that applied. Other errors pass unchanged.
func (c *Client) explain(op string, wait time.Duration, err error) error {
	var rt *ReplyTooLongError
	var ne net.Error
	switch {
	case errors.As(err, &rt):
		return rt
	case errors.Is(err, smtp.ErrTooLongLine):
		return fmt.Errorf("%s sent a line longer than 2000 bytes while %s, which no mail server does: the connection was dropped", c.server, op)
	case errors.As(err, &ne) && ne.Timeout():
		return &imapsync.NetError{Server: c.server, Kind: imapsync.Silent, Op: op, Err: fmt.Errorf("nothing for %v", wait)}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &imapsync.NetError{Server: c.server, Kind: imapsync.Closed, Op: op, Err: err}
	case errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return &imapsync.NetError{Server: c.server, Kind: imapsync.Broken, Op: op, Err: err}
	}
	return err
}

func classify(srv config.Server, err error) error {
	var ue *trust.UntrustedError
	if errors.As(err, &ue) {
		return err
	}
	var ne *imapsync.NetError
	if errors.As(err, &ne) {
		return err
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return &imapsync.NetError{Server: srv.Addr(), Err: err}
	}
	return fmt.Errorf("connect to %s: %w", srv.Addr(), err)
}

// Close says QUIT (waiting at most 5 s for the answer) and closes the
// connection. A session that ends badly loses nothing the caller still
// needs, so it returns nil.
func (c *Client) Close() error {
	if c.stop != nil {
		c.stop()
	}
	if !c.broken {
		c.c.CommandTimeout = min(c.t.Step, 5*time.Second)
		c.conn.setMaxWait(c.c.CommandTimeout)
		if c.c.Quit() == nil { // QUIT closes the connection when it succeeds
			return nil
		}
	}
	c.c.Close()
	return nil
}
