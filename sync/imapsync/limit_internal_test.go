package imapsync

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestLiteralAtEnd(t *testing.T) {
	for _, tc := range []struct {
		line       string
		size       int64
		body, isLi bool
	}{
		{"* 1 FETCH (UID 1 BODY[] {42}\r\n", 42, true, true},
		{"* 1 FETCH (UID 1 BODY[]<0> {42}\r\n", 42, true, true},
		{"* 1 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID)] {7}\r\n", 7, true, true},
		{"* 1 FETCH (RFC822 {9}\r\n", 9, true, true},
		{"* 1 FETCH (UID 3 RFC822.TEXT {9}\r\n", 9, true, true},
		{"* 1 FETCH (BINARY[1] ~{5}\r\n", 5, true, true},
		{"* LIST () \"/\" {12}\r\n", 12, false, true},
		{"* 1 FETCH (ENVELOPE (\"x\" {100}\r\n", 100, false, true},
		{"* 1 FETCH (UID 1 BODY[] {99999999999999999999}\r\n", -1, true, true},
		{"* OK all good {not a literal}\r\n", 0, false, false},
		{"* OK {12\r\n", 0, false, false},
	} {
		size, body, ok := literalAtEnd([]byte(tc.line))
		if ok != tc.isLi || size != tc.size || body != tc.body {
			t.Errorf("literalAtEnd(%q) = %d, %v, %v; want %d, %v, %v", tc.line, size, body, ok, tc.size, tc.body, tc.isLi)
		}
	}
}

// pipeServer returns a limitConn reading what write sends.
func pipeServer(t *testing.T, write func(w io.Writer)) *limitConn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() { write(b); b.Close() }()
	return newLimitConn(a)
}

// The framing: literals are skipped whole (their own CRLFs are not line
// ends), a line's bound depends on its kind, and a body literal of any
// size passes while a small one of the wrong kind does not.
func TestLimitConnFollowsTheFraming(t *testing.T) {
	long := strings.Repeat("x", MaxLine+10)
	for _, tc := range []struct {
		name, stream string
		want         string // "" for no error, else "line" or "literal"
	}{
		{"short lines", "* OK hi\r\n* CAPABILITY IMAP4rev1\r\nT1 OK done\r\n", ""},
		{"long status line", "* OK " + long + "\r\n", "line"},
		{"long FETCH line", "* 1 FETCH (ENVELOPE (\"" + long + "\"))\r\n", ""},
		{"long line inside a body literal", "* 1 FETCH (BODY[] {" + itoa(len(long)+2) + "}\r\n" + long + "\r\n)\r\nT1 OK\r\n", ""},
		{"big folder-name literal", "* LIST () \"/\" {" + itoa(MaxLiteral+1) + "}\r\n", "literal"},
		{"line after a literal counts on", "* LIST () \"/\" {3}\r\nabc " + long + "\r\n", "line"},
		{"many small literals in one response", "* 1 FETCH (ENVELOPE (NIL NIL (" + manyLiterals(MaxLiterals/(64<<10)+1, 64<<10) + ")))\r\n", "response"},
		{"as many literals over several responses", strings.Repeat("* 1 FETCH (ENVELOPE (NIL NIL ("+manyLiterals(MaxLiterals/(64<<10)/2, 64<<10)+")))\r\n", 3), ""},
		{"many small body literals in one response", "* 1 FETCH (BODY[1] {" + itoa(MaxLiterals) + "}\r\n" + strings.Repeat("x", MaxLiterals) + " BODY[2] {1}\r\nx)\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := pipeServer(t, func(w io.Writer) { io.WriteString(w, tc.stream) })
			_, err := io.Copy(io.Discard, l)
			var le *LimitError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want the stream read whole", err)
			case tc.want != "" && (!errors.As(err, &le) || le.What != tc.want):
				t.Fatalf("got %v, want a %s LimitError", err, tc.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// manyLiterals returns n addresses of an ENVELOPE whose names are literals
// of size bytes.
func manyLiterals(n, size int) string {
	one := "({" + itoa(size) + "}\r\n" + strings.Repeat("n", size) + " NIL \"b\" \"x.test\")"
	return strings.Repeat(one, n)
}

// FuzzLimitConn: whatever a server sends, the limiter does not panic and
// passes the bytes through unchanged until it stops the stream.
func FuzzLimitConn(f *testing.F) {
	f.Add([]byte("* OK hi\r\n* 1 FETCH (UID 1 BODY[] {5}\r\nab\r\nc)\r\nT1 OK done\r\n"))
	f.Add([]byte("* LIST () \"/\" {3}\r\nabc\r\n* SEARCH 1 2 3\r\n"))
	f.Add([]byte("* 1 FETCH (BODY[]<0> ~{99999999999999999999}\r\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		l := pipeServer(t, func(w io.Writer) { w.Write(stream) })
		got, err := io.ReadAll(l)
		var le *LimitError
		if err != nil && !errors.As(err, &le) {
			t.Fatalf("error %v", err)
		}
		if !bytes.HasPrefix(stream, got) {
			t.Fatalf("the limiter changed the bytes")
		}
		if err == nil && len(got) != len(stream) {
			t.Fatalf("read %d of %d bytes without an error", len(got), len(stream))
		}
	})
}
