package hostile

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EchoMode is the form in which an echoing server sends the password back.
type EchoMode int

// The forms an echoing server uses. Each is an answer seen from real
// servers or one a careless server could give.
const (
	// EchoCommand answers the login BAD quoting the command as received:
	// for IMAP `BAD Error in IMAP command LOGIN "alice" "secret"` (the
	// password IMAP-quoted with its escapes, or as the literal's bytes);
	// for SMTP the AUTH line with its base64 SASL PLAIN message.
	EchoCommand EchoMode = iota
	// EchoPlain refuses the login with the password in clear, quoted:
	// `NO [AUTHENTICATIONFAILED] wrong password "secret" for alice`.
	EchoPlain
	// EchoBase64 refuses the login with the base64 of the SASL PLAIN
	// message (NUL alice NUL secret), as a server logging its input does.
	EchoBase64
	// EchoURL refuses the login with the password URL-encoded, as a
	// server behind a web single-sign-on does.
	EchoURL
	// EchoAfterLogin accepts the login and refuses the next command (IMAP
	// EXAMINE, SMTP MAIL) with the password in clear.
	EchoAfterLogin
)

// String names the mode in test names ("base64").
func (m EchoMode) String() string {
	return [...]string{"command", "plain", "base64", "url", "after login"}[m]
}

// EchoModes lists every EchoMode.
var EchoModes = []EchoMode{EchoCommand, EchoPlain, EchoBase64, EchoURL, EchoAfterLogin}

// EchoServer is a running echoing IMAP or SMTP server: implicit TLS on
// 127.0.0.1 with a self-signed certificate (pin Cert.Fingerprint).
type EchoServer struct {
	Addr string
	Cert *Cert
	// Echoed counts the answers that carried the password.
	echoed   int
	mu       sync.Mutex
	user, pw string
	mode     EchoMode
}

// Echoed returns how many answers carried the password so far.
func (s *EchoServer) Echoed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echoed
}

func (s *EchoServer) count() {
	s.mu.Lock()
	s.echoed++
	s.mu.Unlock()
}

// echo is the server's answer text carrying the password in the mode's
// form; cmd is the login command as received.
func (s *EchoServer) echo(cmd string) string {
	s.count()
	switch s.mode {
	case EchoCommand:
		return "Error in command " + strings.TrimSpace(cmd)
	case EchoBase64:
		return "authentication failed for " + base64.StdEncoding.EncodeToString([]byte("\x00"+s.user+"\x00"+s.pw))
	case EchoURL:
		return "see https://sso.example/login?user=" + url.QueryEscape(s.user) + "&password=" + url.QueryEscape(s.pw)
	}
	return fmt.Sprintf("wrong password %q for %s", s.pw, s.user)
}

func (s *EchoServer) listen(t testing.TB, serve func(c net.Conn, br *bufio.Reader)) {
	t.Helper()
	s.Cert = NewCert(t, CertOptions{SelfSigned: true})
	l, err := tls.Listen("tcp", net.JoinHostPort(Host, "0"), &tls.Config{Certificates: []tls.Certificate{s.Cert.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	serveEach(t, l, time.Minute, func(c net.Conn) { serve(c, bufio.NewReader(c)) })
}

// StartEchoIMAP starts an IMAP server for user and password that echoes
// the password as mode says. Its capabilities are IMAP4rev1 and LITERAL+.
func StartEchoIMAP(t testing.TB, user, password string, mode EchoMode) *EchoServer {
	t.Helper()
	s := &EchoServer{user: user, pw: password, mode: mode}
	s.listen(t, s.serveIMAP)
	return s
}

var literalAtEnd = regexp.MustCompile(`\{(\d+)(\+?)\}$`)

// readIMAPCommand reads one command, literals included (RFC 7888: a
// synchronising literal is answered with a continuation first).
func readIMAPCommand(c net.Conn, br *bufio.Reader) (string, error) {
	var cmd strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		cmd.WriteString(line)
		m := literalAtEnd.FindStringSubmatch(line)
		if m == nil {
			return cmd.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		if n > 1<<16 {
			return "", fmt.Errorf("literal of %d bytes", n)
		}
		if m[2] == "" {
			io.WriteString(c, "+ go ahead\r\n")
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		cmd.WriteString("\r\n")
		cmd.Write(buf)
	}
}

func (s *EchoServer) serveIMAP(c net.Conn, br *bufio.Reader) {
	w := func(format string, args ...any) { fmt.Fprintf(c, format+"\r\n", args...) }
	w("* OK [CAPABILITY IMAP4rev1 LITERAL+] echo server ready")
	for {
		cmd, err := readIMAPCommand(c, br)
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(cmd, " ")
		verb, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(verb) {
		case "CAPABILITY":
			w("* CAPABILITY IMAP4rev1 LITERAL+")
			w("%s OK done", tag)
		case "LOGIN":
			switch s.mode {
			case EchoAfterLogin:
				w("%s OK [CAPABILITY IMAP4rev1 LITERAL+] logged in", tag)
			case EchoCommand:
				w("%s BAD %s", tag, s.echo(rest))
			default:
				w("%s NO [AUTHENTICATIONFAILED] %s", tag, s.echo(rest))
			}
		case "LOGOUT":
			w("* BYE bye")
			w("%s OK bye", tag)
			return
		case "NOOP":
			w("%s OK noop", tag)
		default:
			if s.mode == EchoAfterLogin {
				w("%s NO [SERVERBUG] %s", tag, s.echo(rest))
			} else {
				w("%s BAD not now", tag)
			}
		}
	}
}

// StartEchoSMTP starts an SMTP submission server for user and password
// that echoes the password as mode says. It offers AUTH PLAIN and LOGIN,
// or LOGIN only when loginOnly.
func StartEchoSMTP(t testing.TB, user, password string, mode EchoMode, loginOnly bool) *EchoServer {
	t.Helper()
	s := &EchoServer{user: user, pw: password, mode: mode}
	s.listen(t, func(c net.Conn, br *bufio.Reader) { s.serveSMTP(c, br, loginOnly) })
	return s
}

func (s *EchoServer) serveSMTP(c net.Conn, br *bufio.Reader, loginOnly bool) {
	w := func(format string, args ...any) { fmt.Fprintf(c, format+"\r\n", args...) }
	read := func() (string, bool) {
		line, err := br.ReadString('\n')
		return strings.TrimRight(line, "\r\n"), err == nil
	}
	w("220 echo.localhost ESMTP")
	for {
		line, ok := read()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			mechs := "PLAIN LOGIN"
			if loginOnly {
				mechs = "LOGIN"
			}
			w("250-echo.localhost")
			w("250 AUTH %s", mechs)
		case "AUTH":
			received := line
			if mech, ir, hasIR := strings.Cut(arg, " "); strings.EqualFold(mech, "LOGIN") {
				u := ir
				if !hasIR { // the user name comes after a prompt, or with AUTH (go-sasl)
					w("334 VXNlcm5hbWU6")
					if u, ok = read(); !ok {
						return
					}
				}
				w("334 UGFzc3dvcmQ6")
				p, ok := read()
				if !ok {
					return
				}
				received = "AUTH LOGIN " + u + " " + p
			} else if !strings.Contains(arg, " ") { // PLAIN without an initial response
				w("334 ")
				p, ok := read()
				if !ok {
					return
				}
				received = line + " " + p
			}
			if s.mode == EchoAfterLogin {
				w("235 2.7.0 accepted")
				continue
			}
			w("535 5.7.8 %s", s.echo(received))
		case "MAIL":
			w("550 5.7.1 %s", s.echo(line))
		case "RSET", "NOOP":
			w("250 ok")
		case "QUIT":
			w("221 bye")
			return
		default:
			w("502 not here")
		}
	}
}

// EchoForms returns the forms of password the echoing servers send, by
// name, for tests to look for in whatever the connector writes or shows:
// the password itself, IMAP-quoted, Go-quoted, URL-encoded and the base64
// of the SASL PLAIN message and of the password alone (SASL LOGIN).
func EchoForms(user, password string) map[string]string {
	forms := map[string]string{
		"plain":       password,
		"IMAP-quoted": strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(password),
		"Go-quoted":   strings.Trim(strconv.Quote(password), `"`),
		"URL-encoded": url.QueryEscape(password),
		"SASL PLAIN":  base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password)),
		"SASL LOGIN":  base64.StdEncoding.EncodeToString([]byte(password)),
	}
	// Quoted again, as a JSON file or a %q of a message holding it would.
	for _, name := range []string{"plain", "IMAP-quoted", "Go-quoted"} {
		forms[name+", quoted again"] = strings.Trim(strconv.Quote(forms[name]), `"`)
	}
	return forms
}

// Leaks returns the names of the forms of password (EchoForms) found in
// text.
func Leaks(text, user, password string) []string {
	var found []string
	for name, f := range EchoForms(user, password) {
		if f != "" && strings.Contains(text, f) {
			found = append(found, name)
		}
	}
	return found
}

// Contains reports whether text holds secret (a device token, say) as
// is; an empty secret is never found.
func Contains(text, secret string) bool { return secret != "" && strings.Contains(text, secret) }
