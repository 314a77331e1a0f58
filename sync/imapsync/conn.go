// Package imapsync is the connector's IMAP side: connecting safely, finding
// the folders to sync, and reading them without changing anything.
//
// A Conn has one owner goroutine. go-imap v2 has no context: Dial binds the
// connection to its context by closing it when the context ends, which
// fails every pending command.
package imapsync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/redact"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// ErrAuth means the server refused the login name or password.
var ErrAuth = errors.New("the mail server refused the login")

// AuthError is a refused login, with the server's words.
type AuthError struct {
	Server string
	Code   string // the response code (RFC 5530), such as AUTHENTICATIONFAILED; may be empty
	Text   string // the server's explanation, may be empty
}

// Error names the server and its words, and asks for the password again.
func (e *AuthError) Error() string {
	s := fmt.Sprintf("%s refused the password", e.Server)
	if e.Text != "" {
		s += fmt.Sprintf(" (%q)", e.Text)
	}
	return s + ": check it and enter it again"
}

// Unwrap makes errors.Is(err, ErrAuth) true.
func (e *AuthError) Unwrap() error { return ErrAuth }

// NetError is a failure to reach the server or a connection that broke:
// worth retrying later. Kind and Op say which, so that a person is not sent
// to the firewall for a server that closed the connection on one message.
type NetError struct {
	Server string
	Kind   NetKind
	Op     string // what was under way, for a person ("fetching message UID 42"); may be empty
	Err    error
}

// NetKind is how a connection failed.
type NetKind int

// The kinds of network failure.
const (
	Unreachable NetKind = iota // the connection could not be made
	Closed                     // the server closed the connection
	Silent                     // the server stopped answering; the connector dropped the connection
	Broken                     // the connection broke (reset, timeout of the operating system)
)

// Error says how the connection failed and while doing what: "cannot
// reach" only for a connection that could not be made.
func (e *NetError) Error() string {
	op := ""
	if e.Op != "" {
		op = " while " + e.Op
	}
	switch e.Kind {
	case Closed:
		return fmt.Sprintf("%s closed the connection%s", e.Server, op)
	case Silent:
		return fmt.Sprintf("%s stopped answering%s: %v", e.Server, op, e.Err)
	case Broken:
		return fmt.Sprintf("the connection to %s broke%s: %v", e.Server, op, e.Err)
	}
	return fmt.Sprintf("cannot reach %s: %v", e.Server, e.Err)
}

// Unwrap returns the network error.
func (e *NetError) Unwrap() error { return e.Err }

// Conn is one authenticated IMAP connection. Not safe for concurrent use:
// one goroutine owns it.
type Conn struct {
	c       *imapclient.Client
	server  string
	changed chan struct{} // signalled (buffer one) when the server reports new or expunged messages
	stop    func() bool
	// exists counts the open folder's messages: EXAMINE's EXISTS, then the
	// server's updates. imapclient's Mailbox() is not used for it: it is
	// set only after Select's Wait returns (go-imap v2.0.0-beta.8), so
	// right after EXAMINE it may still describe the previous folder.
	exists atomic.Uint32   // unknownCount while EXAMINE runs
	open   bool            // a folder is open (EXAMINE succeeded); owner's goroutine only
	watch  *watch          // deadlines on the TCP connection; nil until connected
	limit  *limitConn      // bounds on what the server sends; nil until connected
	red    *redact.Secrets // the login's password in every form; see wrap
}

// DialOptions tune Dial; the zero value is the default.
type DialOptions struct {
	// Silence is how long the server may stay silent while the connector
	// waits for it, before the connection is dropped; DefaultSilence when 0.
	Silence time.Duration
}

// Dial connects to the account's IMAP server with the account's security
// (implicit TLS or strict STARTTLS; never plaintext), verifies the server
// with pol, and logs in. The connection is closed when ctx ends. Every step
// has a deadline (see DialOptions.Silence).
func Dial(ctx context.Context, acct config.Account, password string, pol *trust.Policy) (*Conn, error) {
	return DialWith(ctx, acct, password, pol, DialOptions{})
}

// DialWith is Dial with options.
func DialWith(ctx context.Context, acct config.Account, password string, pol *trust.Policy, do DialOptions) (*Conn, error) {
	srv := acct.IMAP
	conn := &Conn{server: srv.Addr(), changed: make(chan struct{}, 1), red: redact.ForLogin(acct.Login(), password)}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			// Runs on the reader goroutine: only record and signal.
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					conn.exists.Store(*d.NumMessages)
					conn.signal()
				}
			},
			Expunge: func(uint32) {
				// A deletion is news too: a message the connector keeps a
				// record of may have gone (see the engine's undeliverable
				// messages).
				defer conn.signal()
				for {
					n := conn.exists.Load()
					if n == 0 || n == unknownCount || conn.exists.CompareAndSwap(n, n-1) {
						return
					}
				}
			},
		},
	}
	// wrap is the one place where the TCP connection is wrapped, under TLS
	// and go-imap: deadlines that follow the bytes (watch.go).
	wrap := func(raw net.Conn) net.Conn {
		conn.watch = newWatch(raw, do.Silence)
		return conn.watch
	}
	// above wraps the decrypted connection, under go-imap: bounds on every
	// line and literal the server sends (limit.go).
	above := func(tc net.Conn) net.Conn {
		conn.limit = newLimitConn(tc)
		return conn.limit
	}
	c, err := connect(ctx, srv, pol, opts, wrap, above)
	if err != nil {
		if le := conn.limitErr("greeting"); le != nil {
			return nil, le
		}
		if conn.watch != nil {
			if step, ok := conn.watch.silent(); ok {
				return nil, &NetError{Server: srv.Addr(), Kind: Silent, Op: step, Err: silentFor(conn.watch.silence)}
			}
		}
		return nil, classifyDial(srv, err)
	}
	conn.c = c
	conn.stop = context.AfterFunc(ctx, func() { conn.c.Close() })
	conn.watch.rest()
	if err := conn.login(acct.Login(), password); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return conn, nil
}

func connect(ctx context.Context, srv config.Server, pol *trust.Policy, opts *imapclient.Options, wrap, above func(net.Conn) net.Conn) (*imapclient.Client, error) {
	raw, err := netdial.Dial(ctx, srv.Addr())
	if err != nil {
		return nil, err
	}
	raw = wrap(raw)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	cfg := pol.Config(srv.Addr())
	cfg.NextProtos = []string{"imap"}
	o := *opts
	o.TLSConfig = cfg
	switch srv.Security {
	case config.SecurityStartTLS:
		// raw is the watch, which owns the deadlines (it ignores
		// SetDeadline): every read of the greeting, the STARTTLS answer and
		// the handshake must come within the silence.
		c, err := startTLS(raw, &o, above) // limit.go: go-imap's own would hide the plain text from above
		if err != nil {
			raw.Close()
			var ie *imap.Error
			if errors.As(err, &ie) {
				return nil, fmt.Errorf("the server refused STARTTLS (%s): %w (usually 993)", ie.Text, trust.ErrUseImplicitTLS)
			}
			// go-imap hands bytes that follow the STARTTLS OK to the TLS
			// layer: plaintext there means someone injected it.
			var rh tls.RecordHeaderError
			if errors.As(err, &rh) {
				return nil, fmt.Errorf("%s sent unencrypted data after agreeing to STARTTLS, so someone may be tampering with the connection: refused; %w (usually 993)", srv.Addr(), trust.ErrUseImplicitTLS)
			}
			if strings.Contains(err.Error(), "PREAUTH") {
				return nil, fmt.Errorf("%s answered PREAUTH before encryption (RFC 3501 7.1.4), so someone may be tampering with the connection: refused; %w (usually 993)", srv.Addr(), trust.ErrUseImplicitTLS)
			}
			return nil, err
		}
		return c, nil
	default:
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		c := imapclient.New(above(tc), &o)
		if err := c.WaitGreeting(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

func classifyDial(srv config.Server, err error) error {
	var ue *trust.UntrustedError
	if errors.As(err, &ue) {
		return err
	}
	var ve tls.AlertError
	if errors.As(err, &ve) && (ve == 70 || ve == 71) { // protocol_version, insufficient_security
		return fmt.Errorf("%s: %w (%v)", srv.Addr(), trust.ErrTLSTooOld, err)
	}
	if strings.Contains(err.Error(), "protocol version not supported") || strings.Contains(err.Error(), "server selected unsupported protocol version") {
		return fmt.Errorf("%s: %w (%v)", srv.Addr(), trust.ErrTLSTooOld, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) {
		return &NetError{Server: srv.Addr(), Kind: Unreachable, Err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &NetError{Server: srv.Addr(), Kind: Closed, Op: "greeting", Err: err}
	}
	return fmt.Errorf("connect to %s: %w", srv.Addr(), err)
}

func (c *Conn) login(user, password string) error {
	if c.c.Caps().Has(imap.CapLoginDisabled) {
		return fmt.Errorf("%s does not allow logging in on this connection (LOGINDISABLED)", c.server)
	}
	defer c.await("logging in")()
	if err := c.c.Login(user, password).Wait(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			return &AuthError{Server: c.server, Code: string(ie.Code), Text: c.red.String(ie.Text)}
		}
		return c.wrap("logging in", err)
	}
	return nil
}

func (c *Conn) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// await arms the connection's deadlines for one step (see watch) and
// returns the function that disarms them. what names the step for a
// person: "searching the folder".
func (c *Conn) await(what string) (done func()) {
	return c.watch.await(what)
}

// wrap turns a broken connection into a *NetError that says how it broke
// (closed by the server, silent, broken) and adds what was being done to
// other errors. what is the step for a person ("fetching messages").
// It is the one place a server's words leave the Conn: every error it
// returns has the password removed in every form (package redact), so an
// echoing server cannot put it into a status, a log, a heartbeat or a
// window.
func (c *Conn) wrap(what string, err error) (out error) {
	if err == nil {
		return nil
	}
	defer func() { out = c.red.Error(out) }()
	if le := c.limitErr(what); le != nil {
		return le
	}
	if _, ok := c.watch.silent(); ok {
		return &NetError{Server: c.server, Kind: Silent, Op: what, Err: silentFor(c.watch.silence)}
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: %w", what, err) // the server answered: the connection is fine
	}
	// go-imap fails a command with anything but an *imap.Error only when
	// its reader stopped (flattening the cause to text): the connection is
	// gone, or about to be.
	select {
	case <-c.c.Closed():
	case <-time.After(time.Second):
		var ne net.Error
		if !errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if _, ok := c.watch.silent(); ok {
		return &NetError{Server: c.server, Kind: Silent, Op: what, Err: silentFor(c.watch.silence)}
	}
	if s := err.Error(); errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe") {
		return &NetError{Server: c.server, Kind: Broken, Op: what, Err: err}
	}
	return &NetError{Server: c.server, Kind: Closed, Op: what, Err: err}
}

// silentFor is the Err of a Silent NetError.
func silentFor(d time.Duration) error {
	return fmt.Errorf("nothing came for %v, so the connection was dropped", d)
}

// Caps returns the server's capabilities.
func (c *Conn) Caps() imap.CapSet { return c.c.Caps() }

// Close logs out politely (bounded) and closes the connection. Safe to
// call twice.
func (c *Conn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	done := make(chan struct{})
	go func() {
		c.c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return c.c.Close()
}
