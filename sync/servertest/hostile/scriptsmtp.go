package hostile

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// SMTPScript says how a ScriptedSMTP misbehaves. The zero value is a
// well-behaved submission server that takes any login.
type SMTPScript struct {
	// Password, when set, is the only password AUTH PLAIN accepts.
	Password string
	// Size is the SIZE announced in the EHLO answer (RFC 1870); 0 for none.
	Size int64
	// Rcpt answers RCPT TO for an address: "" accepts it, else the whole
	// reply line, such as "452 4.5.3 Mailbox full".
	Rcpt func(addr string) string
	// Data answers the DATA command, before any message byte: "" invites
	// the message (354), else the reply line. The transaction stays open
	// after a refusal, as Postfix keeps it, so that a client must RSET.
	Data func(from string, to []string) string
	// End answers the end of a message: "" accepts it (250), else the
	// reply line. Either way the transaction is over.
	End func(m SMTPMessage) string
	// StallAfter, when positive, makes the server stop reading a message
	// after that many bytes, and never answer: it goes silent mid-DATA.
	StallAfter int
	// HugeEHLO, when positive, is how many bytes of "250-" lines the
	// server sends in answer to EHLO before the last line.
	HugeEHLO int
	// HugeEnd, when positive, is the length of the single line the server
	// answers the end of a message with.
	HugeEnd int
	// SilentAt names the step at which the server goes silent for good:
	// "TLS" (it never answers the TLS handshake), "GREETING" (TLS done, it
	// never greets), or a command verb (EHLO, AUTH, MAIL, RCPT, DATA, RSET,
	// QUIT) it reads and never answers.
	SilentAt string
}

// SMTPMessage is one message a ScriptedSMTP received in full.
type SMTPMessage struct {
	From string
	To   []string
	Data []byte // dot-unstuffed, CRLF line ends as sent
}

// ScriptedSMTP is an SMTP server over implicit TLS that speaks the part of
// RFC 5321 a submission client uses, by hand, so that it can misbehave on
// cue. Where real servers are strict it is strict too: a MAIL inside an
// open transaction gets "503 nested MAIL command", as Postfix answers.
// Its methods are safe for concurrent use.
type ScriptedSMTP struct {
	Addr        string // 127.0.0.1:port, implicit TLS
	Host        string
	Port        int
	Fingerprint string // of the self-signed certificate, for pinning

	mu       sync.Mutex
	script   SMTPScript
	accepted []SMTPMessage // answered 250 after the end
	received int           // messages read to the end, whatever the answer
	commands []string
	logins   int
	stalled  int
	written  int64 // bytes of huge answers written before the client hung up
	conns    map[net.Conn]bool
	done     chan struct{} // closed when the server stops
}

// StartScriptedSMTP starts a server following s; t.Cleanup stops it.
func StartScriptedSMTP(t testing.TB, s SMTPScript) *ScriptedSMTP {
	t.Helper()
	cert := NewCert(t, CertOptions{SelfSigned: true})
	l, err := tls.Listen("tcp", net.JoinHostPort(Host, "0"), &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &ScriptedSMTP{Addr: l.Addr().String(), Host: Host, Port: l.Addr().(*net.TCPAddr).Port, Fingerprint: cert.Fingerprint,
		script: s, conns: map[net.Conn]bool{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			srv.mu.Lock()
			srv.conns[c] = true
			srv.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.serve(c)
				c.Close()
				srv.mu.Lock()
				delete(srv.conns, c)
				srv.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(srv.done)
		srv.mu.Lock()
		for c := range srv.conns {
			c.Close()
		}
		srv.mu.Unlock()
		wg.Wait()
	})
	return srv
}

// SetScript changes the script for the commands that follow.
func (s *ScriptedSMTP) SetScript(sc SMTPScript) {
	s.mu.Lock()
	s.script = sc
	s.mu.Unlock()
}

// Accepted returns the messages answered 250 after their end, oldest
// first.
func (s *ScriptedSMTP) Accepted() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SMTPMessage, len(s.accepted))
	for i, m := range s.accepted {
		out[i] = SMTPMessage{From: m.From, To: append([]string(nil), m.To...), Data: bytes.Clone(m.Data)}
	}
	return out
}

// Received returns how many messages were read to their end, whatever the
// answer.
func (s *ScriptedSMTP) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// Commands returns every command received, in order, on all connections
// (the verb and its argument; AUTH's are left out).
func (s *ScriptedSMTP) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Logins returns how many logins succeeded.
func (s *ScriptedSMTP) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Stalled returns how many messages the server stopped reading
// (SMTPScript.StallAfter).
func (s *ScriptedSMTP) Stalled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled
}

// HugeWritten returns how many bytes of huge answers (HugeEHLO, HugeEnd)
// the server managed to write before the client hung up.
func (s *ScriptedSMTP) HugeWritten() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

func (s *ScriptedSMTP) current() SMTPScript {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script
}

func (s *ScriptedSMTP) note(cmd string) {
	s.mu.Lock()
	s.commands = append(s.commands, cmd)
	s.mu.Unlock()
}

// writeHuge writes n bytes of lines made by line (which ends in CRLF),
// counting what got through.
func (s *ScriptedSMTP) writeHuge(w io.Writer, n int, line string) error {
	chunk := []byte(strings.Repeat(line, max(1, (64<<10)/len(line))))
	for sent := 0; sent < n; {
		k, err := w.Write(chunk[:min(len(chunk), n-sent)])
		sent += k
		s.mu.Lock()
		s.written += int64(k)
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *ScriptedSMTP) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriter(c)
	reply := func(lines ...string) error {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		return w.Flush()
	}
	switch s.current().SilentAt {
	case "TLS":
		<-s.done
		return
	case "GREETING":
		if tc, ok := c.(*tls.Conn); ok && tc.Handshake() != nil {
			return
		}
		<-s.done
		return
	}
	if reply("220 scripted.localhost ESMTP ready") != nil {
		return
	}
	var (
		authed, inTx bool
		from         string
		to           []string
	)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(string(line), "\r\n")
		verb, arg, _ := strings.Cut(cmd, " ")
		verb = strings.ToUpper(verb)
		if verb != "AUTH" {
			s.note(cmd)
		} else {
			s.note("AUTH")
		}
		sc := s.current()
		if sc.SilentAt == verb {
			<-s.done
			return
		}
		switch verb {
		case "EHLO", "HELO":
			inTx, from, to = false, "", nil
			if sc.HugeEHLO > 0 {
				w.WriteString("250-scripted.localhost\r\n")
				if s.writeHuge(w, sc.HugeEHLO, "250-X-PADDING "+strings.Repeat("x", 60)+"\r\n") != nil || w.Flush() != nil {
					return
				}
			}
			ext := []string{"250-scripted.localhost", "250-AUTH PLAIN", "250-8BITMIME", "250-ENHANCEDSTATUSCODES"}
			if sc.Size > 0 {
				ext = append(ext, fmt.Sprintf("250-SIZE %d", sc.Size))
			}
			ext = append(ext, "250 PIPELINING")
			if sc.HugeEHLO > 0 {
				ext = ext[1:]
			}
			err = reply(ext...)
		case "AUTH":
			mech, ir, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				err = reply("504 5.5.4 Unrecognized authentication type")
				break
			}
			if ir == "" {
				if reply("334 ") != nil {
					return
				}
				l, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				ir = strings.TrimRight(string(l), "\r\n")
			}
			b, _ := base64.StdEncoding.DecodeString(ir)
			parts := strings.Split(string(b), "\x00")
			if len(parts) != 3 || (sc.Password != "" && parts[2] != sc.Password) {
				err = reply("535 5.7.8 Authentication credentials invalid")
				break
			}
			authed = true
			s.mu.Lock()
			s.logins++
			s.mu.Unlock()
			err = reply("235 2.7.0 Authentication successful")
		case "MAIL":
			switch {
			case !authed:
				err = reply("530 5.7.0 Authentication required")
			case inTx:
				err = reply("503 5.5.1 Error: nested MAIL command")
			default:
				inTx, from, to = true, addrOf(arg), nil
				err = reply("250 2.1.0 Ok")
			}
		case "RCPT":
			if !inTx {
				err = reply("503 5.5.1 Error: need MAIL command")
				break
			}
			addr := addrOf(arg)
			if sc.Rcpt != nil {
				if rep := sc.Rcpt(addr); rep != "" {
					err = reply(rep)
					break
				}
			}
			to = append(to, addr)
			err = reply("250 2.1.5 Ok")
		case "DATA":
			if !inTx || len(to) == 0 {
				err = reply("503 5.5.1 Error: need RCPT command")
				break
			}
			if sc.Data != nil {
				if rep := sc.Data(from, to); rep != "" {
					err = reply(rep)
					break
				}
			}
			if reply("354 End data with <CR><LF>.<CR><LF>") != nil {
				return
			}
			data, ok := s.readMessage(r, sc.StallAfter)
			if !ok {
				return
			}
			m := SMTPMessage{From: from, To: to, Data: data}
			inTx, from, to = false, "", nil
			s.mu.Lock()
			s.received++
			s.mu.Unlock()
			if sc.HugeEnd > 0 {
				w.WriteString("250 ")
				if s.writeHuge(w, sc.HugeEnd, strings.Repeat("y", 1023)+"z") != nil || reply("") != nil {
					return
				}
				break
			}
			rep := ""
			if sc.End != nil {
				rep = sc.End(m)
			}
			if rep == "" {
				s.mu.Lock()
				s.accepted = append(s.accepted, m)
				s.mu.Unlock()
				rep = "250 2.0.0 Ok: queued"
			}
			err = reply(rep)
		case "RSET":
			inTx, from, to = false, "", nil
			err = reply("250 2.0.0 Ok")
		case "NOOP":
			err = reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			err = reply("502 5.5.2 Error: command not recognized")
		}
		if err != nil {
			return
		}
	}
}

// readMessage reads a message up to its end (a line holding a single
// dot), dot-unstuffed. With stallAfter > 0 it stops reading after that
// many bytes and says nothing more until the server stops: ok is then
// false.
func (s *ScriptedSMTP) readMessage(r *bufio.Reader, stallAfter int) (data []byte, ok bool) {
	var b bytes.Buffer
	start := true // at the start of a line
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return nil, false
		}
		if stallAfter > 0 && b.Len() >= stallAfter {
			s.mu.Lock()
			s.stalled++
			s.mu.Unlock()
			<-s.done
			return nil, false
		}
		if start && err == nil && string(line) == ".\r\n" {
			return b.Bytes(), true
		}
		if start && line[0] == '.' {
			line = line[1:]
		}
		b.Write(line)
		start = err == nil
	}
}

func addrOf(arg string) string {
	_, v, ok := strings.Cut(arg, ":")
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '>'); strings.HasPrefix(v, "<") && i > 0 {
		return v[1:i]
	}
	return v
}
