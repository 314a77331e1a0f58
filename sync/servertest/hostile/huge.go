package hostile

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// HugeMode is where a huge server puts its huge answer.
type HugeMode int

// The places of a huge answer. Each is one line or literal of the size
// given to StartHugeIMAP; everything else the server says is ordinary.
const (
	// HugeGreeting greets with a line of that size.
	HugeGreeting HugeMode = iota
	// HugeLoginAnswer answers LOGIN OK with a text of that size.
	HugeLoginAnswer
	// HugeFolderName lists a folder whose name is a literal of that size.
	HugeFolderName
	// HugeSearch answers a search with one SEARCH line of that size.
	HugeSearch
	// HugeEnvelope answers a FETCH of ENVELOPE with a subject of that
	// size, quoted.
	HugeEnvelope
	// HugeBody answers a FETCH of BODY[] with a message body of that size:
	// the one huge thing a server may legitimately send, to be streamed.
	HugeBody
	// HugeAddressNames answers a FETCH of ENVELOPE with a To list whose
	// addresses have names sent as literals of 64 KiB each (under the
	// bound of one literal), that size of them in all: the line itself
	// stays short.
	HugeAddressNames
)

// String names the mode in test names ("login answer").
func (m HugeMode) String() string {
	return [...]string{"greeting", "login answer", "folder name", "search", "envelope", "body", "address names"}[m]
}

// HugeModes lists every HugeMode.
var HugeModes = []HugeMode{HugeGreeting, HugeLoginAnswer, HugeFolderName, HugeSearch, HugeEnvelope, HugeBody, HugeAddressNames}

// HugeIMAP is a running IMAP server (implicit TLS, self-signed: pin
// Cert.Fingerprint) that sends one huge line or literal. It accepts any
// login and holds one message, UID 1, in INBOX and a Sent folder (or
// several: see StartCrowdIMAP).
type HugeIMAP struct {
	Addr string
	Cert *Cert

	mode  HugeMode
	size  int64
	crowd int // messages with crowded envelopes; 0 for the huge modes

	mu   sync.Mutex
	sent int64 // bytes of the huge part written so far
}

// HugeSent returns how many bytes of the huge part the server has written.
func (s *HugeIMAP) HugeSent() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// StartHugeIMAP starts a server that sends size bytes where mode says.
func StartHugeIMAP(t testing.TB, mode HugeMode, size int64) *HugeIMAP {
	t.Helper()
	s := &HugeIMAP{mode: mode, size: size}
	s.start(t)
	return s
}

// start listens (implicit TLS, a self-signed certificate) and serves.
func (s *HugeIMAP) start(t testing.TB) {
	t.Helper()
	s.Cert = NewCert(t, CertOptions{SelfSigned: true})
	l, err := tls.Listen("tcp", net.JoinHostPort(Host, "0"), &tls.Config{Certificates: []tls.Certificate{s.Cert.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	serveEach(t, l, 2*time.Minute, s.serve)
}

// CrowdDomain is the domain of the last address of each crowded envelope
// (see StartCrowdIMAP); every other address has a domain of its own.
const CrowdDomain = "corp.example"

// StartCrowdIMAP starts a server whose INBOX holds n messages (UIDs 1 to
// n), each with an ENVELOPE of about perMessage bytes (keep it under the
// client's bound of a FETCH line) whose To list is crowded with short
// addresses, each in a domain of its own ("u@d1.x.test", "u@d2.x.test",
// …), the last one at CrowdDomain. A FETCH of ENVELOPE answers every
// message, whatever it asks for.
func StartCrowdIMAP(t testing.TB, n int, perMessage int64) *HugeIMAP {
	t.Helper()
	s := &HugeIMAP{mode: -1, size: perMessage, crowd: n}
	s.start(t)
	return s
}

// crowdFetch answers a FETCH of facts with every crowded message.
func (s *HugeIMAP) crowdFetch(bw *bufio.Writer, tag string) bool {
	const date = `"01-Jan-2025 10:00:00 +0000"`
	for i := 1; i <= s.crowd; i++ {
		fmt.Fprintf(bw, `* %d FETCH (UID %d FLAGS () INTERNALDATE %s RFC822.SIZE 10 ENVELOPE (%s "crowd" ((NIL NIL "a" "x.test")) NIL NIL (`, i, i, date, date)
		var n int64
		for d := 1; n < s.size; d++ {
			k, err := fmt.Fprintf(bw, `(NIL NIL "u" "d%d.x.test")`, d)
			if err != nil {
				return false // the client went away
			}
			n += int64(k)
		}
		fmt.Fprintf(bw, `(NIL NIL "boss" "%s")) NIL NIL NIL "<%d@x.test>"))`+"\r\n", CrowdDomain, i)
		if bw.Flush() != nil {
			return false
		}
		s.mu.Lock()
		s.sent += n
		s.mu.Unlock()
	}
	fmt.Fprintf(bw, "%s OK done\r\n", tag)
	return bw.Flush() == nil
}

// huge writes the huge part: size bytes of filler (digits and spaces for
// a search, letters otherwise), stopping when the client goes away.
func (s *HugeIMAP) huge(w io.Writer) error { return s.hugeN(w, s.size) }

// hugeN writes size bytes of filler.
func (s *HugeIMAP) hugeN(w io.Writer, size int64) error {
	unit := "a"
	if s.mode == HugeSearch {
		unit = "1 "
	}
	chunk := []byte(strings.Repeat(unit, (64<<10)/len(unit)))
	for left := size; left > 0; {
		n := min(left, int64(len(chunk)))
		if _, err := w.Write(chunk[:n]); err != nil {
			return err
		}
		left -= n
		s.mu.Lock()
		s.sent += n
		s.mu.Unlock()
	}
	return nil
}

func (s *HugeIMAP) serve(c net.Conn) {
	bw := bufio.NewWriter(c)
	w := func(format string, args ...any) bool {
		fmt.Fprintf(bw, format, args...)
		return bw.Flush() == nil
	}
	if s.mode == HugeGreeting {
		if !w("* OK ") || s.huge(bw) != nil || !w("\r\n") {
			return
		}
	} else if !w("* OK [CAPABILITY IMAP4rev1 LITERAL+] huge server ready\r\n") {
		return
	}
	br := bufio.NewReader(c)
	for {
		cmd, err := readIMAPCommand(c, br)
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(cmd, " ")
		verb, args, _ := strings.Cut(rest, " ")
		verb = strings.ToUpper(verb)
		if verb == "UID" {
			verb, args, _ = strings.Cut(args, " ")
			verb = strings.ToUpper(verb)
		}
		var ok bool
		switch verb {
		case "CAPABILITY":
			ok = w("* CAPABILITY IMAP4rev1 LITERAL+\r\n%s OK done\r\n", tag)
		case "LOGIN":
			if s.mode == HugeLoginAnswer {
				ok = w("%s OK ", tag) && s.huge(bw) == nil && w("\r\n")
			} else {
				ok = w("%s OK logged in\r\n", tag)
			}
		case "LIST":
			if s.mode == HugeFolderName {
				ok = w("* LIST () \"/\" {%d}\r\n", s.size) && s.huge(bw) == nil && w("\r\n%s OK done\r\n", tag)
			} else {
				ok = w("* LIST () \"/\" INBOX\r\n* LIST (\\Sent) \"/\" Sent\r\n%s OK done\r\n", tag)
			}
		case "EXAMINE", "SELECT":
			n := max(s.crowd, 1)
			ok = w("* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT %d] ok\r\n%s OK [READ-ONLY] done\r\n", n, n+1, tag)
		case "SEARCH":
			if s.mode == HugeSearch {
				ok = w("* SEARCH ") && s.huge(bw) == nil && w("\r\n%s OK done\r\n", tag)
			} else {
				ok = w("* SEARCH 1\r\n%s OK done\r\n", tag)
			}
		case "FETCH":
			if s.crowd > 0 && strings.Contains(strings.ToUpper(args), "ENVELOPE") {
				ok = s.crowdFetch(bw, tag)
			} else {
				ok = s.fetch(w, bw, tag, strings.ToUpper(args))
			}
		case "NOOP", "CLOSE", "UNSELECT":
			ok = w("%s OK done\r\n", tag)
		case "LOGOUT":
			w("* BYE bye\r\n%s OK bye\r\n", tag)
			return
		default:
			ok = w("%s BAD not here\r\n", tag)
		}
		if !ok {
			return
		}
	}
}

// fetch answers a FETCH of message 1 (UID 1) as args ask.
func (s *HugeIMAP) fetch(w func(string, ...any) bool, bw *bufio.Writer, tag, args string) bool {
	const date = `"01-Jan-2025 10:00:00 +0000"`
	if !strings.Contains(args, "BODY") && !strings.Contains(args, "RFC822") || strings.Contains(args, "ENVELOPE") {
		subject := `"hello"`
		if s.mode == HugeAddressNames && strings.Contains(args, "ENVELOPE") {
			if !w(`* 1 FETCH (UID 1 FLAGS () INTERNALDATE %s RFC822.SIZE 10 ENVELOPE (%s "hello" ((NIL NIL "a" "x.test")) NIL NIL (`, date, date) {
				return false
			}
			const name = 64 << 10
			for left := s.size; left > 0; left -= name {
				if !w("({%d}\r\n", name) || s.hugeN(bw, name) != nil || !w(` NIL "b" "x.test")`) {
					return false
				}
			}
			return w(`) NIL NIL NIL "<1@x.test>"))`+"\r\n%s OK done\r\n", tag)
		}
		if s.mode == HugeEnvelope && strings.Contains(args, "ENVELOPE") {
			if !w(`* 1 FETCH (UID 1 FLAGS () INTERNALDATE %s RFC822.SIZE 10 ENVELOPE (%s "`, date, date) || s.huge(bw) != nil {
				return false
			}
			subject = `"`
			return w(`%s ((NIL NIL "a" "x.test")) NIL NIL ((NIL NIL "b" "x.test")) NIL NIL NIL "<1@x.test>"))`+"\r\n%s OK done\r\n", subject, tag)
		}
		return w(`* 1 FETCH (UID 1 FLAGS () INTERNALDATE %s RFC822.SIZE 10 ENVELOPE (%s %s ((NIL NIL "a" "x.test")) NIL NIL ((NIL NIL "b" "x.test")) NIL NIL NIL "<1@x.test>"))`+"\r\n%s OK done\r\n", date, date, subject, tag)
	}
	if s.mode != HugeBody {
		body := "Subject: hello\r\n\r\nhi\r\n"
		return w("* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n%s OK done\r\n", len(body), body, tag)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "* 1 FETCH (UID 1 BODY[] {%d}\r\n", s.size)
	return w("%s", b.String()) && s.huge(bw) == nil && w(")\r\n%s OK done\r\n", tag)
}
