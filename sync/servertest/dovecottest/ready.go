package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// waitReady polls the three listeners until each answers with its greeting.
// An IMAP greeting counts only once the auth process is up: before that
// Dovecot first sends "* OK Waiting for authentication process to respond..".
func (s *Server) waitReady(p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	checks := []struct {
		addr  string
		check func(net.Conn) error
	}{
		{s.IMAPS, func(c net.Conn) error { return imapGreeting(tls.Client(c, s.pinnedTLS())) }},
		{s.IMAP, imapGreeting},
		{s.Submission, smtpGreeting},
	}
	for _, c := range checks {
		for {
			err := dialCheck(c.addr, deadline, c.check)
			if err == nil {
				break
			}
			select {
			case <-p.done:
				stderr, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.stderr"))
				return fmt.Errorf("dovecot exited (%v) before answering on %s: %s", p.err, c.addr, bytes.TrimSpace(stderr))
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no greeting on %s within %v: %w", c.addr, timeout, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

func dialCheck(addr string, deadline time.Time, check func(net.Conn) error) error {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	return check(c)
}

var errAuthNotReady = errors.New("auth process not ready yet")

func imapGreeting(c net.Conn) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	switch {
	case strings.Contains(line, "Waiting for authentication"):
		return errAuthNotReady
	case !strings.HasPrefix(line, "* OK "):
		return fmt.Errorf("unexpected IMAP greeting %q", line)
	}
	_, err = c.Write([]byte("r LOGOUT\r\n"))
	return err
}

func smtpGreeting(c net.Conn) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220 ") {
		return fmt.Errorf("unexpected SMTP greeting %q", line)
	}
	_, err = c.Write([]byte("QUIT\r\n"))
	return err
}

// pinnedTLS trusts exactly this server's certificate, whatever issued it
// (a certificate in the roots is trusted as itself): the harness's own
// connections must work with Options.SelfSigned too.
func (s *Server) pinnedTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CertPEM)
	return &tls.Config{ServerName: listenHost, RootCAs: pool}
}

// logBytes returns Dovecot's log file, or nil.
func (s *Server) logBytes() []byte {
	b, _ := os.ReadFile(s.logPath())
	return b
}

// logTail returns the last n lines of Dovecot's log.
func (s *Server) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(string(s.logBytes()), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
