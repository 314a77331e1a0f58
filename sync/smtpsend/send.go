package smtpsend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/imapsync"
)

// AmbiguousError means the connection broke after the whole message was
// handed over and before the server answered: it may or may not have been
// accepted. Never send it again without a person deciding.
type AmbiguousError struct{ Err error }

// Error says the message may or may not have been sent, and what broke.
func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("the connection broke after the message was handed over and before the server answered (%v): it may or may not have been sent", e.Err)
}

// Unwrap returns the network error.
func (e *AmbiguousError) Unwrap() error { return e.Err }

// RefusedError means this server can never take the message as it is,
// found on this side before the server was asked: bigger than the size it
// announced (RFC 1870), international addresses without SMTPUTF8 (RFC
// 6531), an address go-smtp will not write. Never retry it.
type RefusedError struct{ Reason string }

// Error returns the reason, for a person.
func (e *RefusedError) Error() string { return e.Reason }

// Send submits the message read from msg, size bytes with CRLF line ends,
// from from to every address of to, and returns the server's final reply
// on success. The message is streamed; a server that stops taking it for
// Timeouts.Stall is given up on. Errors:
//   - *smtp.SMTPError: the server refused (Temporary() tells 4xx from
//     5xx); the transaction was reset (RSET) and the connection can carry
//     the next message unless Broken says otherwise;
//   - *RefusedError: the message can never go through this server;
//   - *AmbiguousError: the outcome is unknown;
//   - anything else: the message was not handed over (safe to try again);
//     the connection is Broken.
func (c *Client) Send(from string, to []string, msg io.Reader, size int64) (code int, text string, err error) {
	defer func() { text, err = c.red.String(text), c.redact(err) }()
	if c.broken {
		return 0, "", &imapsync.NetError{Server: c.server, Kind: imapsync.Broken, Op: "sending", Err: errors.New("an earlier step broke it")}
	}
	if len(to) == 0 {
		return 0, "", &RefusedError{Reason: "the message has no recipient"}
	}
	if limit, ok := c.c.MaxMessageSize(); ok && limit > 0 && size > int64(limit) {
		return 0, "", &RefusedError{Reason: fmt.Sprintf("the message is %s and %s accepts messages of at most %s", mb(size), c.server, mb(int64(limit)))}
	}
	opts := &smtp.MailOptions{Size: size}
	if !ascii(from) || !allASCII(to) {
		if ok, _ := c.c.Extension("SMTPUTF8"); !ok {
			return 0, "", &RefusedError{Reason: fmt.Sprintf("an address has non-ASCII characters and %s does not take international addresses (SMTPUTF8)", c.server)}
		}
		opts.UTF8 = true
	}
	if err := c.c.Mail(from, opts); err != nil {
		return 0, "", c.failed("sending MAIL FROM", err)
	}
	for _, rcpt := range to {
		if err := c.c.Rcpt(rcpt, nil); err != nil {
			return 0, "", c.failed(fmt.Sprintf("sending RCPT TO <%s>", rcpt), err)
		}
	}
	w, err := c.c.Data()
	if err != nil {
		return 0, "", c.failed("sending DATA", err)
	}
	c.conn.clearWriteFail()
	n, err := io.Copy(w, msg)
	if err == nil && n != size {
		err = fmt.Errorf("the stored message is %d bytes, not %d", n, size)
	}
	if err != nil {
		// The end of the message never left: once the connection is
		// closed the server drops what it got.
		c.abandon()
		if c.conn.writeFailed() {
			return 0, "", c.explain(fmt.Sprintf("taking the message (after %s of %s)", mb(n), mb(size)), c.t.Stall, err)
		}
		return 0, "", fmt.Errorf("read the message to send: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			c.reset() // the transaction is over (RFC 5321 4.1.1.4); RSET is harmless and says so
			return 0, "", err
		}
		c.abandon()
		if c.conn.writeFailed() {
			return 0, "", c.explain("taking the end of the message", c.t.Stall, err)
		}
		return 0, "", &AmbiguousError{Err: c.explain("answering the end of the message", c.t.Final, err)}
	}
	return 250, resp.StatusText, nil
}

// failed handles a command of the transaction that did not succeed: a
// refusal resets the transaction, anything else ends the connection.
func (c *Client) failed(step string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if se.Code == 503 || se.Code == 530 {
			// "Bad sequence" or "log in first": the session is not what
			// it should be, the message is not at fault.
			c.abandon()
			return &imapsync.NetError{Server: c.server, Kind: imapsync.Broken, Op: step, Err: fmt.Errorf("it answered %d %s out of turn", se.Code, se.Message)}
		}
		c.reset()
		return err
	}
	if connError(err) {
		c.abandon()
		return c.explain(step, c.t.Step, err)
	}
	// go-smtp's own checks: nothing was sent.
	return &RefusedError{Reason: fmt.Sprintf("%s: %v", step, err)}
}

// reset ends the transaction with RSET, so that the connection can carry
// the next message (RFC 5321 4.1.1.5). go-smtp forgets the EHLO on RSET and
// would say it again before the next MAIL: it is said now, so that a
// server refusing it costs this connection, not the next message.
func (c *Client) reset() {
	if c.c.Reset() != nil || c.c.Hello("localhost") != nil {
		c.abandon()
	}
}

// abandon closes a connection that cannot carry another message.
func (c *Client) abandon() {
	c.broken = true
	c.c.Close()
}

// Broken reports whether the connection can no longer carry a message; the
// caller closes it and dials again.
func (c *Client) Broken() bool { return c.broken }

// connError tells a connection's failure from a refusal on this side.
func connError(err error) bool {
	var ne net.Error
	var rt *ReplyTooLongError
	var pe textproto.ProtocolError
	var nerr *imapsync.NetError
	return errors.As(err, &ne) || errors.As(err, &rt) || errors.As(err, &pe) || errors.As(err, &nerr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, smtp.ErrTooLongLine)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !ascii(s) {
			return false
		}
	}
	return true
}

// mb writes a size for people.
func mb(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KB", (n+1023)>>10)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

// CRLFWriter writes to W with every line end made CRLF, as SMTP needs
// (RFC 5321 2.3.8): a bare LF or a bare CR becomes CRLF, so no line end
// that some server reads differently (SMTP smuggling) can reach it. Close
// writes a CR held back at the end; it does not close W.
type CRLFWriter struct {
	W   io.Writer
	cr  bool // the last byte was a CR, not written yet
	out []byte
}

// Write writes p with its line ends made CRLF; a CR at its end is held
// back until the next Write or Close tells whether an LF follows. It
// returns len(p) unless W fails. Not safe for concurrent use.
func (w *CRLFWriter) Write(p []byte) (int, error) {
	const piece = 32 << 10
	for done := 0; done < len(p); {
		chunk := p[done:min(len(p), done+piece)]
		w.out = w.out[:0]
		for _, c := range chunk {
			if w.cr {
				w.cr = false
				w.out = append(w.out, '\r', '\n')
				if c == '\n' {
					continue
				}
			}
			switch c {
			case '\r':
				w.cr = true
			case '\n':
				w.out = append(w.out, '\r', '\n')
			default:
				w.out = append(w.out, c)
			}
		}
		if _, err := w.W.Write(w.out); err != nil {
			return done, err
		}
		done += len(chunk)
	}
	return len(p), nil
}

// Close writes the CR held back, if any, as CRLF.
func (w *CRLFWriter) Close() error {
	if !w.cr {
		return nil
	}
	w.cr = false
	_, err := w.W.Write([]byte("\r\n"))
	return err
}
