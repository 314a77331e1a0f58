package doctor

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// smtpReply reads one SMTP reply (RFC 5321 4.2), all its lines.
func (l *lines) smtpReply() (code string, text []string, err error) {
	for {
		line, err := l.read()
		if err != nil {
			return "", nil, err
		}
		if len(line) < 3 {
			return "", nil, fmt.Errorf("malformed SMTP reply %q", trunc(line))
		}
		code = line[:3]
		if len(line) > 4 {
			text = append(text, line[4:])
		} else {
			text = append(text, "")
		}
		if len(line) == 3 || line[3] == ' ' {
			return code, text, nil
		}
	}
}

func (r *runner) checkSMTP(ctx context.Context, pol *trust.Policy) {
	acct := r.o.Account
	srv := acct.SMTP
	server := srv.Addr()
	rest := []string{StepTCP, StepTLS, StepGreeting, StepLogin}
	addrs, ok := r.resolve(ctx, TargetSMTP, srv.Host, server)
	if !ok {
		r.skip(TargetSMTP, server, rest...)
		return
	}
	raw, dialAddr, ok := r.connect(ctx, TargetSMTP, server, addrs, srv.Port, "SMTP")
	if !ok {
		r.skip(TargetSMTP, server, rest[1:]...)
		return
	}

	s := r.begin(TargetSMTP, StepTLS, titles[StepTLS], server)
	s.fact("security", string(srv.Security))
	var banner string
	open := func(ctx context.Context, first bool) (net.Conn, error) {
		c := raw
		if !first {
			var err error
			if c, err = r.dial(ctx, dialAddr); err != nil {
				return nil, err
			}
		}
		if srv.Security != config.SecurityStartTLS {
			return c, nil
		}
		b, err := smtpStartTLS(c, r.o.StepTimeout)
		if err != nil {
			c.Close()
			return nil, err
		}
		banner = b
		return c, nil
	}
	tc, ok := r.handshake(ctx, &s, pol, srv.Host, srv.Port, "", open, string(srv.Security))
	r.end(s)
	if !ok {
		r.skip(TargetSMTP, server, rest[2:]...)
		return
	}

	s = r.begin(TargetSMTP, StepGreeting, titles[StepGreeting], server)
	ok = r.smtpGreeting(&s, tc, banner)
	tc.Close()
	r.end(s)
	if !ok {
		r.skip(TargetSMTP, server, StepLogin)
		return
	}

	s = r.begin(TargetSMTP, StepLogin, titles[StepLogin], server)
	s.fact("user", acct.Login())
	lctx, cancel := context.WithTimeout(ctx, 3*r.o.StepTimeout)
	defer cancel()
	c, err := smtpsend.Dial(lctx, acct, r.o.Password, pol)
	if err != nil {
		cause, summary, advice := classifyLogin(server, acct.Login(), err)
		r.fail(&s, cause, summary, advice)
		r.end(s)
		return
	}
	c.Close()
	s.Summary = fmt.Sprintf("logged in as %s", acct.Login())
	r.end(s)
}

// smtpStartTLS does the plaintext part of STARTTLS (RFC 3207) and refuses
// a stripped or refused STARTTLS and data injected after the 220.
func smtpStartTLS(c net.Conn, timeout time.Duration) (string, error) {
	l := newLines(c, timeout)
	code, text, err := l.smtpReply()
	if err != nil {
		return "", err
	}
	banner := strings.Join(text, " ")
	if code != "220" {
		return banner, &plainError{CauseGreetingRefused, fmt.Sprintf("the server refused the connection: %s %q", code, trunc(banner)),
			"Ask IT whether this computer may send mail through this server."}
	}
	if err := l.write("EHLO localhost"); err != nil {
		return banner, err
	}
	code, ext, err := l.smtpReply()
	if err != nil {
		return banner, err
	}
	if code != "250" || !hasExt(ext, "STARTTLS") {
		return banner, &plainError{CauseStartTLSMissing, "the server does not offer STARTTLS, so the connection cannot be encrypted",
			"Use the TLS port instead (465 with --smtp-security tls); if the server should offer STARTTLS, a device on your network may be removing it: tell IT."}
	}
	if err := l.write("STARTTLS"); err != nil {
		return banner, err
	}
	code, text, err = l.smtpReply()
	if err != nil {
		return banner, err
	}
	if code != "220" {
		return banner, &plainError{CauseStartTLSRefused, fmt.Sprintf("the server refused STARTTLS: %s %q", code, trunc(strings.Join(text, " "))),
			"Use the TLS port instead (465 with --smtp-security tls), or ask IT why STARTTLS fails."}
	}
	if l.br.Buffered() > 0 {
		return banner, &plainError{CauseStartTLSInjection, "the server sent unencrypted data right after agreeing to STARTTLS, before encryption began",
			"Refused, since someone on the network may be injecting commands: ask IT to check it, or use the TLS port (465)."}
	}
	c.SetDeadline(time.Time{})
	return banner, nil
}

func hasExt(ext []string, name string) bool {
	for _, e := range ext {
		if f := strings.Fields(e); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

// smtpGreeting reads the banner (implicit TLS) and the EHLO extensions
// over TLS.
func (r *runner) smtpGreeting(s *stepStart, tc net.Conn, banner string) bool {
	l := newLines(tc, r.o.StepTimeout)
	if banner == "" {
		code, text, err := l.smtpReply()
		if err != nil {
			r.fail(s, CauseGreetingBad, fmt.Sprintf("the server sent no greeting: %v", err), "Check the server address and port (SMTP over TLS uses 465).")
			return false
		}
		banner = strings.Join(text, " ")
		if code != "220" {
			r.fail(s, CauseGreetingRefused, fmt.Sprintf("the server refused the connection: %s %q", code, trunc(banner)), "Ask IT whether this computer may send mail through this server.")
			return false
		}
	}
	s.fact("greeting", trunc(banner))
	s.fact("software", software(banner, nil))
	if err := l.write("EHLO localhost"); err != nil {
		r.fail(s, CauseGreetingBad, fmt.Sprintf("EHLO failed: %v", err), "Ask IT whether this is an SMTP submission server.")
		return false
	}
	code, ext, err := l.smtpReply()
	if err != nil || code != "250" {
		r.fail(s, CauseGreetingBad, fmt.Sprintf("the server did not accept EHLO (%v %s)", err, code), "Ask IT whether this is an SMTP submission server.")
		return false
	}
	l.write("QUIT")
	if len(ext) > 1 {
		ext = ext[1:] // the first line is the greeting of EHLO
	}
	s.fact("extensions", strings.Join(ext, "; "))
	mechs := "none"
	for _, e := range ext {
		if f := strings.Fields(e); len(f) > 0 && strings.EqualFold(f[0], "AUTH") {
			mechs = strings.Join(f[1:], " ")
		}
	}
	s.fact("auth mechanisms", mechs)
	s.Summary = "the server greets and lists its extensions"
	if mechs == "none" {
		r.fail(s, CauseLoginNoMechanism, "the server offers no login (AUTH) over this connection",
			"Ask IT to enable authenticated submission (AUTH PLAIN or LOGIN over TLS) on this port.")
		return false
	}
	return true
}
