package smtpsend

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/emersion/go-smtp"
)

// AmbiguousError means the connection broke after the whole message was
// handed over and before the server answered: it may or may not have been
// accepted. Never send it again without a person deciding.
type AmbiguousError struct{ Err error }

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("the connection broke after the message was handed over and before the server answered (%v): it may or may not have been sent", e.Err)
}

// Unwrap returns the network error.
func (e *AmbiguousError) Unwrap() error { return e.Err }

// Send submits msg (CRLF line ends) from from to every address of to, and
// returns the server's final reply on success. Errors: *smtp.SMTPError
// when the server refused (Temporary() tells 4xx from 5xx), *AmbiguousError
// when the outcome is unknown, anything else when the message was not
// handed over (safe to try again).
func (c *Client) Send(from string, to []string, msg []byte) (code int, text string, err error) {
	defer func() { text, err = c.red.String(text), c.redact(err) }()
	if len(to) == 0 {
		return 0, "", errors.New("the item has no recipient")
	}
	if err := c.c.Mail(from, nil); err != nil {
		return 0, "", err
	}
	for _, rcpt := range to {
		if err := c.c.Rcpt(rcpt, nil); err != nil {
			c.c.Reset()
			return 0, "", err
		}
	}
	w, err := c.c.Data()
	if err != nil {
		return 0, "", err
	}
	if _, err := w.Write(msg); err != nil {
		return 0, "", fmt.Errorf("write the message: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return 0, "", err
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "write" {
			// The final "." never left: the server cannot have accepted it.
			return 0, "", fmt.Errorf("write the message: %w", err)
		}
		return 0, "", &AmbiguousError{Err: err}
	}
	return 250, resp.StatusText, nil
}

// NormalizeCRLF returns msg with every line ending as CRLF, as SMTP needs
// (RFC 5321 2.3.8); msg itself is not changed.
func NormalizeCRLF(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("\n")) {
		return msg
	}
	var b bytes.Buffer
	b.Grow(len(msg) + len(msg)/40)
	for i, ch := range msg {
		if ch == '\n' && (i == 0 || msg[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(ch)
	}
	return b.Bytes()
}
