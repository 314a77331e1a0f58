package imapsync

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// go-imap reads every line and every literal that is not a message body
// into memory without a bound: a hostile server's 64 MiB greeting made the
// client allocate 379 MiB. limitConn sits between TLS and go-imap, follows
// the server's framing (lines, and the literals announced at their end,
// RFC 3501 §4.3) and fails the read as soon as one passes its bound.

// The bounds on what a server sends.
const (
	// MaxLine bounds a line (without its literals), except the two kinds
	// below. Greetings, status answers, capabilities and folder lists are
	// far shorter.
	MaxLine = 64 << 10
	// MaxLongLine bounds a FETCH, SEARCH or ESEARCH line: an ENVELOPE with
	// thousands of recipients, or the UIDs of a very large folder from a
	// server without ESEARCH (some 500 000 of them). go-imap turns a
	// SEARCH line into some 16 times its size in allocations.
	MaxLongLine = 4 << 20
	// MaxLiteral bounds a literal that go-imap keeps in memory: a folder
	// name, an address, a header field. Message bodies (BODY[...],
	// BINARY[...], RFC822...) are streamed to the spool and not bounded
	// here.
	MaxLiteral = 1 << 20
	// MaxLiterals bounds the literals go-imap keeps in memory from one
	// response, in all: each is bounded by MaxLiteral, but one ENVELOPE
	// may hold thousands of them (an address's name, its mailbox, its
	// host), each costing the line a few bytes only.
	MaxLiterals = 4 << 20
)

// LimitError means the server sent a line or a literal longer than the
// connector reads; the connection is dropped. A working server never does.
type LimitError struct {
	Server string // host:port
	What   string // "line", "literal" or "response" (its literals, in all)
	Limit  int64  // bytes
	Op     string // what was being done, for a person ("logging in"); may be empty
}

// Error names the server, what it sent too long and during which step,
// and says to tell IT if it happens again.
func (e *LimitError) Error() string {
	op := ""
	if e.Op != "" {
		op = " while " + e.Op
	}
	return fmt.Sprintf("the server %s sent a %s longer than %s%s, more than any mail server needs, so the connection was dropped: if it happens again, tell IT (the server may be broken or under someone else's control)",
		e.Server, e.What, sizeWords(e.Limit), op)
}

func sizeWords(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// tailSize is how much of a line's end is kept, at least, to read a
// literal's size and what it holds.
const tailSize = 256

// limitConn is a net.Conn whose reads fail once the server's data passes
// a bound. Reads come from one goroutine (go-imap's reader); err may be
// read from any.
type limitConn struct {
	net.Conn

	lineLen  int64 // bytes of the current line, literals not counted
	lineMax  int64 // the current line's bound, known from its start
	litTotal int64 // bytes of the current line's literals kept in memory
	head     []byte
	litLeft  int64 // bytes left of the current literal
	tail     []byte
	mu       sync.Mutex
	exceeded *LimitError // Server and Op are filled in by the Conn
}

func newLimitConn(c net.Conn) *limitConn { return &limitConn{Conn: c, lineMax: MaxLine} }

// limitErr returns the *LimitError of a bound the server passed, naming
// the server and what was being done; nil when none was passed.
func (c *Conn) limitErr(op string) error {
	if c.limit == nil {
		return nil
	}
	if e := c.limit.err(); e != nil {
		le := *e
		le.Server, le.Op = c.server, op
		return &le
	}
	return nil
}

// err returns the bound that was passed, if one was.
func (l *limitConn) err() *LimitError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exceeded
}

func (l *limitConn) fail(what string, limit int64) (int, error) {
	l.mu.Lock()
	if l.exceeded == nil {
		l.exceeded = &LimitError{What: what, Limit: limit}
	}
	e := *l.exceeded
	l.mu.Unlock()
	l.Conn.Close() // nothing more is read from this server
	return 0, &e
}

func (l *limitConn) Read(p []byte) (int, error) {
	if e := l.err(); e != nil {
		return 0, e
	}
	n, err := l.Conn.Read(p)
	for i := 0; i < n; {
		if l.litLeft > 0 {
			k := int64(n - i)
			if k > l.litLeft {
				k = l.litLeft
			}
			l.litLeft -= k
			i += int(k)
			continue
		}
		b := p[i]
		i++
		if len(l.head) < 32 && l.lineLen == int64(len(l.head)) {
			l.head = append(l.head, b)
			if len(l.head) == 32 || b == '\n' {
				l.lineMax = lineBound(l.head)
			}
		}
		l.lineLen++
		if len(l.tail) == 2*tailSize { // keep the last tailSize bytes, amortised
			l.tail = l.tail[:copy(l.tail, l.tail[tailSize:])]
		}
		l.tail = append(l.tail, b)
		if b != '\n' {
			if l.lineLen > l.lineMax {
				return l.fail("line", l.lineMax)
			}
			continue
		}
		size, body, ok := literalAtEnd(l.tail)
		if !ok {
			l.lineLen, l.head, l.lineMax, l.litTotal = 0, l.head[:0], MaxLine, 0
			l.tail = l.tail[:0]
			continue
		}
		if size < 0 || (!body && size > MaxLiteral) {
			return l.fail("literal", MaxLiteral)
		}
		if !body {
			if l.litTotal += size; l.litTotal > MaxLiterals {
				return l.fail("response", MaxLiterals)
			}
		}
		l.litLeft = size
		l.tail = l.tail[:0]
	}
	return n, err
}

// lineBound is the bound of a line that starts with head: FETCH, SEARCH
// and ESEARCH lines may be long.
func lineBound(head []byte) int64 {
	f := strings.Fields(string(head))
	switch {
	case len(f) >= 2 && f[0] == "*" && (strings.EqualFold(f[1], "SEARCH") || strings.EqualFold(f[1], "ESEARCH")):
		return MaxLongLine
	case len(f) >= 3 && f[0] == "*" && isDigits(f[1]) && strings.EqualFold(f[2], "FETCH"):
		return MaxLongLine
	case len(f) == 2 && f[0] == "*" && isDigits(f[1]) && len(head) == 32:
		return MaxLongLine // "* 123456 " then more than fits: maybe FETCH, judged by the bound anyway
	}
	return MaxLine
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// literalAtEnd reads "{N}" (or "~{N}", or "{N+}") at the end of a line
// (tail ends with LF), and whether the literal is a message body: what
// precedes it is BODY[...], BINARY[...] (with an optional <origin>) or
// RFC822, RFC822.TEXT or RFC822.HEADER. size is -1 when N does not fit.
func literalAtEnd(tail []byte) (size int64, body, ok bool) {
	s := strings.TrimSuffix(strings.TrimSuffix(string(tail), "\n"), "\r")
	if !strings.HasSuffix(s, "}") {
		return 0, false, false
	}
	open := strings.LastIndexByte(s, '{')
	if open < 0 {
		return 0, false, false
	}
	num := strings.TrimSuffix(s[open+1:len(s)-1], "+")
	if !isDigits(num) {
		return 0, false, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		n = -1
	}
	before := strings.TrimSuffix(strings.TrimSuffix(s[:open], "~"), " ")
	if i := strings.LastIndexByte(before, '<'); i > 0 && strings.HasSuffix(before, ">") && before[i-1] == ']' {
		before = before[:i] // BODY[]<0>
	}
	upper := strings.ToUpper(before)
	if strings.HasSuffix(upper, "]") {
		if j := strings.LastIndexByte(upper, '['); j >= 0 {
			name := upper[:j]
			if k := strings.LastIndexAny(name, " ("); k >= 0 {
				name = name[k+1:]
			}
			body = name == "BODY" || name == "BINARY" || name == "BODY.PEEK" || name == "BINARY.PEEK"
		}
	} else {
		for _, w := range []string{" RFC822", "(RFC822", " RFC822.TEXT", "(RFC822.TEXT", " RFC822.HEADER", "(RFC822.HEADER"} {
			body = body || strings.HasSuffix(upper, w)
		}
	}
	return n, body, true
}

// startTLS is imapclient.NewStartTLS with the server's data bounded after
// the handshake as before it: go-imap would put TLS under its reader where
// no wrapper can see the plain text. It reads the greeting (refusing
// PREAUTH before encryption, RFC 3501 §7.1.4), asks STARTTLS, hands what
// follows the server's OK to TLS as it came (so that injected plain text
// fails the handshake as a tls.RecordHeaderError), and gives go-imap the
// encrypted connection, bounded, with a greeting of its own: capabilities
// heard before TLS must not be trusted after it (RFC 3501 §6.2.1).
func startTLS(raw net.Conn, o *imapclient.Options, above func(net.Conn) net.Conn) (*imapclient.Client, error) {
	br := bufio.NewReaderSize(raw, 4096)
	line := func() (string, error) {
		var b []byte
		for {
			part, more, err := br.ReadLine()
			if err != nil {
				return "", err
			}
			if len(b)+len(part) > MaxLine {
				return "", &LimitError{What: "line", Limit: MaxLine, Op: "greeting"}
			}
			b = append(b, part...)
			if !more {
				return string(b), nil
			}
		}
	}
	greeting, err := line()
	if err != nil {
		return nil, err
	}
	switch f := strings.Fields(greeting); {
	case len(f) >= 2 && f[0] == "*" && strings.EqualFold(f[1], "PREAUTH"):
		return nil, errors.New("the server answered PREAUTH before encryption")
	case len(f) >= 2 && f[0] == "*" && strings.EqualFold(f[1], "BYE"):
		return nil, fmt.Errorf("the server refused the connection: %s", strings.Join(f[2:], " "))
	case len(f) < 2 || f[0] != "*" || !strings.EqualFold(f[1], "OK"):
		return nil, fmt.Errorf("the server did not greet as an IMAP server (%q)", printable(greeting))
	}
	if _, err := io.WriteString(raw, "S1 STARTTLS\r\n"); err != nil {
		return nil, err
	}
	for {
		l, err := line()
		if err != nil {
			return nil, err
		}
		tag, rest, _ := strings.Cut(l, " ")
		if tag == "*" {
			continue // untagged data before the answer (CAPABILITY, say)
		}
		if tag != "S1" {
			return nil, fmt.Errorf("the server answered STARTTLS with %q", printable(l))
		}
		status, text, _ := strings.Cut(rest, " ")
		if !strings.EqualFold(status, "OK") {
			return nil, &imap.Error{Type: imap.StatusResponseType(strings.ToUpper(status)), Text: printable(text)}
		}
		break
	}
	var plain net.Conn = raw
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		plain = &prefixConn{Conn: raw, r: io.MultiReader(bytes.NewReader(append([]byte(nil), early...)), raw)}
	}
	tc := tls.Client(plain, o.TLSConfig)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	c := imapclient.New(above(&replayConn{Conn: tc, prefix: []byte("* OK TLS is up\r\n")}), o)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// prefixConn reads r (bytes already read from Conn, then Conn).
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// replayConn reads prefix, then Conn.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// printable shortens a server's line for an error message.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
