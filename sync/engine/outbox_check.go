package engine

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
)

// maxHeader bounds the header of an outbox message, which is read whole to
// check its sender and add a Message-ID or a Date.
const maxHeader = 1 << 20

// checkAddress says what is wrong with an envelope address, "" if
// nothing: it must be a plain local@domain (RFC 5321 4.1.2) that cannot
// carry another SMTP command or parameter (no CR, LF or other control
// characters, no space, no angle brackets), at most 254 bytes.
func checkAddress(a string) string {
	switch {
	case a == "":
		return "is empty"
	case len(a) > 254:
		return "is longer than 254 characters"
	case !utf8.ValidString(a):
		return "is not valid UTF-8"
	}
	for _, r := range a {
		switch {
		case r == '\r' || r == '\n':
			return "contains a line break"
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return "contains a control character"
		case r == ' ' || r == '\t':
			return "contains a space"
		case strings.ContainsRune(`<>()[]\,;:"`, r):
			return fmt.Sprintf("contains %q, which a plain address does not", r)
		}
	}
	at := strings.LastIndexByte(a, '@')
	switch {
	case at <= 0 || at == len(a)-1:
		return "is not of the form name@domain"
	case strings.Count(a, "@") > 1:
		return "has more than one @"
	case at > 64:
		return "has a local part longer than 64 characters"
	case strings.Contains(a[at+1:], "..") || strings.HasPrefix(a[at+1:], ".") || strings.HasSuffix(a[at+1:], "."):
		return "has an empty label in its domain"
	}
	return ""
}

// quoteAddr shows an address from the platform in an error, safely.
func quoteAddr(a string) string {
	if len(a) > 80 {
		a = a[:80] + "…"
	}
	return fmt.Sprintf("%q", a)
}

// checkEnvelope says why the platform's envelope cannot be sent from
// account (as itself or one of aliases), "" when it can.
func checkEnvelope(account, from string, to []string, aliases []string, maxRcpt int) string {
	if why := checkAddress(from); why != "" {
		return fmt.Sprintf("the envelope sender %s %s", quoteAddr(from), why)
	}
	if !mayUse(account, aliases, from) {
		return fmt.Sprintf("the envelope sender %s is neither the account's address (%s) nor an alias the platform lists for it (send_as)", from, account)
	}
	switch {
	case len(to) == 0:
		return "the envelope has no recipient"
	case len(to) > maxRcpt:
		return fmt.Sprintf("the envelope has %d recipients, more than the %d allowed", len(to), maxRcpt)
	}
	for i, a := range to {
		if why := checkAddress(a); why != "" {
			return fmt.Sprintf("recipient %d, %s, %s", i+1, quoteAddr(a), why)
		}
	}
	return ""
}

// mayUse reports whether addr is the account's own address or one of its
// aliases (compared without regard to case).
func mayUse(account string, aliases []string, addr string) bool {
	if strings.EqualFold(addr, account) {
		return true
	}
	for _, a := range aliases {
		if strings.EqualFold(addr, a) {
			return true
		}
	}
	return false
}

// headerAddresses decodes the display names of RFC 2047 words in any
// charset (only the addresses matter here).
var headerAddresses = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, in io.Reader) (io.Reader, error) { return in, nil },
}}

// checkHeader says why a message whose header is head (CRLF, without the
// empty line) may not be sent from account: its From (exactly one field,
// every address) and its Sender, if any, must be the account's address or
// an alias.
func checkHeader(head []byte, account string, aliases []string) string {
	msg, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(head), strings.NewReader("\r\n")))
	if err != nil {
		return fmt.Sprintf("the message's header cannot be read (%v)", err)
	}
	froms := msg.Header["From"]
	switch len(froms) {
	case 0:
		return "the message has no From header"
	case 1:
	default:
		return "the message has more than one From header"
	}
	for _, field := range []string{"From", "Sender"} {
		vals := msg.Header[field]
		if len(vals) == 0 {
			continue
		}
		if len(vals) > 1 {
			return fmt.Sprintf("the message has more than one %s header", field)
		}
		list, err := headerAddresses.ParseList(vals[0])
		if err != nil || len(list) == 0 {
			return fmt.Sprintf("the message's %s header holds no address that can be read", field)
		}
		for _, a := range list {
			if !mayUse(account, aliases, a.Address) {
				return fmt.Sprintf("the message's %s header names %s, which is neither the account's address (%s) nor an alias the platform lists for it (send_as)", field, quoteAddr(a.Address), account)
			}
		}
	}
	return ""
}

// prepared is a message made ready to send.
type prepared struct {
	MessageID string
	Size      int64
	Refused   string // why it may not be sent; then no file is left
}

// prepareFile reads the message in src and writes dst (mode 0600,
// atomically, synced) with CRLF line ends and a Message-ID and a Date
// added when the header has none (RFC 5322 3.6), streaming: only the
// header is held. check judges the header; a refusal leaves no dst. from
// gives the domain of a new Message-ID.
func prepareFile(src, dst, from string, now time.Time, check func(head []byte) string) (prepared, error) {
	in, err := os.Open(src)
	if err != nil {
		return prepared{}, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "prepare-*.tmp")
	if err != nil {
		return prepared{}, fmt.Errorf("outbox folder: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	var p prepared
	sp := &headerSplitter{out: bw, onHead: func(head []byte) ([]byte, error) {
		if why := check(head); why != "" {
			p.Refused = why
			return nil, errRefused
		}
		id := strings.TrimSpace(headerValue(head, "Message-ID"))
		var add bytes.Buffer
		if id == "" {
			domain := "inboxrelay.invalid"
			if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
				domain = from[at+1:]
			}
			id = fmt.Sprintf("<%s@%s>", rand.Text(), domain)
			fmt.Fprintf(&add, "Message-ID: %s\r\n", id)
		}
		if headerValue(head, "Date") == "" {
			fmt.Fprintf(&add, "Date: %s\r\n", now.Format(time.RFC1123Z))
		}
		p.MessageID = id
		return add.Bytes(), nil
	}}
	crlf := &smtpsend.CRLFWriter{W: sp}
	if _, err = io.Copy(crlf, in); err == nil {
		if err = crlf.Close(); err == nil {
			err = sp.Close()
		}
	}
	switch {
	case errors.Is(err, errRefused):
		return p, nil
	case errors.Is(err, errHeaderTooBig):
		return prepared{Refused: fmt.Sprintf("the message's header is larger than %d KiB or never ends", maxHeader>>10)}, nil
	case err != nil:
		return prepared{}, fmt.Errorf("prepare the message: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return prepared{}, fmt.Errorf("prepare the message: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return prepared{}, fmt.Errorf("prepare the message: %w", err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return prepared{}, err
	}
	if err := tmp.Close(); err != nil {
		return prepared{}, fmt.Errorf("prepare the message: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return prepared{}, fmt.Errorf("prepare the message: %w", err)
	}
	p.Size = fi.Size()
	return p, nil
}

var (
	errRefused      = errors.New("refused")
	errHeaderTooBig = errors.New("header too big")
)

// headerSplitter holds what is written to it until the end of the header
// (the first empty line), asks onHead what to put before it, then passes
// everything on to out. Its input has CRLF line ends.
type headerSplitter struct {
	out    io.Writer
	onHead func(head []byte) (prefix []byte, err error)
	buf    bytes.Buffer
	done   bool
}

func (h *headerSplitter) Write(p []byte) (int, error) {
	if h.done {
		return h.out.Write(p)
	}
	from := max(0, h.buf.Len()-3)
	h.buf.Write(p)
	b := h.buf.Bytes()
	end := -1
	if bytes.HasPrefix(b, []byte("\r\n")) {
		end = 0 // no header at all
	} else if i := bytes.Index(b[from:], []byte("\r\n\r\n")); i >= 0 {
		end = from + i + 2
	}
	if end < 0 {
		if h.buf.Len() > maxHeader {
			return 0, errHeaderTooBig
		}
		return len(p), nil
	}
	if err := h.flush(b[:end]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends a message that is all header.
func (h *headerSplitter) Close() error {
	if h.done {
		return nil
	}
	return h.flush(h.buf.Bytes())
}

func (h *headerSplitter) flush(head []byte) error {
	if len(head) > maxHeader {
		return errHeaderTooBig
	}
	prefix, err := h.onHead(head)
	if err != nil {
		return err
	}
	h.done = true
	if _, err := h.out.Write(prefix); err != nil {
		return err
	}
	_, err = h.out.Write(h.buf.Bytes())
	h.buf = bytes.Buffer{}
	return err
}

// headerValue returns the unfolded value of the first header field name in
// head, "" when absent.
func headerValue(head []byte, name string) string {
	lines := strings.Split(string(head), "\r\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue
		}
		for _, cont := range lines[i+1:] {
			if !strings.HasPrefix(cont, " ") && !strings.HasPrefix(cont, "\t") {
				break
			}
			v += cont
		}
		return strings.TrimSpace(v)
	}
	return ""
}
