package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// lines is a line-oriented view of a connection for the doctor's own small
// exchanges (greeting, CAPABILITY, ID, EHLO, STARTTLS). Logins never go
// through it: they use the engine's own clients.
type lines struct {
	c  net.Conn
	br *bufio.Reader
}

func newLines(c net.Conn, timeout time.Duration) *lines {
	c.SetDeadline(time.Now().Add(timeout))
	return &lines{c: c, br: bufio.NewReaderSize(c, 4096)}
}

func (l *lines) read() (string, error) {
	var b []byte
	for {
		part, isPrefix, err := l.br.ReadLine()
		if err != nil {
			return "", err
		}
		if len(b)+len(part) > 64<<10 {
			return "", errors.New("the server sent a line longer than 64 KiB")
		}
		b = append(b, part...)
		if !isPrefix {
			return string(b), nil
		}
	}
}

func (l *lines) write(s string) error {
	_, err := l.c.Write([]byte(s + "\r\n"))
	return err
}

// imapCommand sends tag+cmd and returns the untagged lines and the tagged
// status line.
func (l *lines) imapCommand(tag, cmd string) (untagged []string, status string, err error) {
	if err := l.write(tag + " " + cmd); err != nil {
		return nil, "", err
	}
	for {
		line, err := l.read()
		if err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(line, tag+" ") {
			return untagged, strings.TrimPrefix(line, tag+" "), nil
		}
		untagged = append(untagged, line)
	}
}

// capsOf extracts the capabilities of CAPABILITY responses.
func capsOf(untagged []string) []string {
	var caps []string
	for _, u := range untagged {
		if f := strings.Fields(u); len(f) > 1 && f[0] == "*" && strings.EqualFold(f[1], "CAPABILITY") {
			caps = append(caps, f[2:]...)
		}
	}
	return caps
}

func hasCap(caps []string, c string) bool {
	for _, x := range caps {
		if strings.EqualFold(x, c) {
			return true
		}
	}
	return false
}

func (r *runner) checkIMAP(ctx context.Context, pol *trust.Policy) {
	acct := r.o.Account
	srv := acct.IMAP
	server := srv.Addr()
	rest := []string{StepTCP, StepTLS, StepGreeting, StepLogin, StepFolders}
	addrs, ok := r.resolve(ctx, TargetIMAP, srv.Host, server)
	if !ok {
		r.skip(TargetIMAP, server, rest...)
		return
	}
	raw, dialAddr, ok := r.connect(ctx, TargetIMAP, server, addrs, srv.Port, "IMAP")
	if !ok {
		r.skip(TargetIMAP, server, rest[1:]...)
		return
	}

	// TLS, after the plaintext exchange for STARTTLS.
	s := r.begin(TargetIMAP, StepTLS, titles[StepTLS], server)
	s.fact("security", string(srv.Security))
	var plainGreeting string
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
		g, err := imapStartTLS(c, r.o.StepTimeout)
		if err != nil {
			c.Close()
			return nil, err
		}
		plainGreeting = g
		return c, nil
	}
	tc, ok := r.handshake(ctx, &s, pol, srv.Host, srv.Port, "imap", open, string(srv.Security))
	r.end(s)
	if !ok {
		r.skip(TargetIMAP, server, rest[2:]...)
		return
	}

	// Greeting and capabilities, over TLS.
	s = r.begin(TargetIMAP, StepGreeting, titles[StepGreeting], server)
	caps, ok := r.imapGreeting(&s, tc, plainGreeting)
	tc.Close()
	r.end(s)
	if !ok {
		r.skip(TargetIMAP, server, rest[3:]...)
		return
	}

	// Login, exactly as the engine does it.
	s = r.begin(TargetIMAP, StepLogin, titles[StepLogin], server)
	s.fact("user", acct.Login())
	if hasCap(caps, string(imap.CapLoginDisabled)) {
		r.fail(&s, CauseLoginPlaintext, fmt.Sprintf("%s refuses passwords on this connection although it is encrypted (LOGINDISABLED)", server),
			"Ask IT to allow password logins over TLS on this port; the server may sit behind a TLS proxy it does not trust.")
		r.end(s)
		r.skip(TargetIMAP, server, StepFolders)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 3*r.o.StepTimeout)
	defer cancel()
	conn, err := imapsync.Dial(lctx, acct, r.o.Password, pol)
	if err != nil {
		cause, summary, advice := classifyLogin(server, acct.Login(), err)
		r.fail(&s, cause, summary, advice)
		r.end(s)
		r.skip(TargetIMAP, server, StepFolders)
		return
	}
	defer conn.Close()
	after := conn.Caps()
	var list []string
	for c := range after {
		list = append(list, string(c))
	}
	sortStrings(list)
	s.fact("capabilities after login", strings.Join(list, " "))
	feature := func(name string, c imap.Cap, yes, no string) {
		if after.Has(c) {
			s.fact(name, "yes"+yes)
		} else {
			s.fact(name, "no"+no)
		}
	}
	feature("IDLE", imap.CapIdle, ": new mail arrives at once", ": new mail is found by polling every minute")
	feature("SPECIAL-USE", imap.CapSpecialUse, ": Sent is found by its \\Sent attribute", ": Sent is found by its name")
	feature("UIDPLUS", imap.CapUIDPlus, "", "")
	feature("CONDSTORE", imap.CapCondStore, "", "")
	feature("NAMESPACE", imap.CapNamespace, "", "")
	s.Summary = fmt.Sprintf("logged in as %s", acct.Login())
	r.end(s)

	// Folders.
	s = r.begin(TargetIMAP, StepFolders, titles[StepFolders], server)
	sel, err := conn.Examine("INBOX")
	if err != nil {
		r.fail(&s, CauseNoInbox, fmt.Sprintf("INBOX cannot be opened: %v", err), "Ask IT to check the mailbox; every IMAP account must have an INBOX.")
		r.end(s)
		return
	}
	s.fact("INBOX", fmt.Sprintf("INBOX (%d messages, UIDVALIDITY %d)", sel.Messages, sel.UIDValidity))
	sent, err := conn.FindSent()
	if err != nil {
		r.fail(&s, CauseNoSent, err.Error(), "Create a folder named Sent (or mark the sent-mail folder as \\Sent on the server), then run diagnose again.")
		r.end(s)
		return
	}
	s.fact("Sent", sent.Name)
	s.fact("Sent found", sent.How)
	if ssel, err := conn.Examine(sent.Name); err == nil {
		s.fact("Sent messages", strconv.FormatUint(uint64(ssel.Messages), 10))
	}
	s.Summary = fmt.Sprintf("INBOX and Sent (%q, found %s) are there", sent.Name, sent.How)
	r.end(s)
}

// imapStartTLS does the plaintext part of STARTTLS (RFC 3501 6.2.1,
// RFC 2595) and refuses what an attacker could do to it: PREAUTH before
// encryption (RFC 3501 7.1.4), STARTTLS stripped or refused, and data
// injected after the server's OK (RFC 3207 and RFC 2595 section 3.1 ask the
// client to discard it; the doctor refuses it). It returns the plaintext
// greeting.
func imapStartTLS(c net.Conn, timeout time.Duration) (string, error) {
	l := newLines(c, timeout)
	greeting, err := l.read()
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(greeting, "* PREAUTH"):
		return greeting, &plainError{CausePreauthPlaintext, "the server logged this connection in before it was encrypted (PREAUTH on a plaintext connection)",
			"Refused, since a device on the network may be forging the server's answers: ask IT to check the network, or use the implicit TLS port (993)."}
	case strings.HasPrefix(greeting, "* BYE"):
		return greeting, &plainError{CauseGreetingRefused, fmt.Sprintf("the server refused the connection: %q", greeting),
			"Ask IT whether this computer may connect to the mail server."}
	case !strings.HasPrefix(greeting, "* OK"):
		return greeting, &plainError{CauseGreetingBad, fmt.Sprintf("this is not an IMAP server greeting: %q", trunc(greeting)),
			"Check the server address and port (IMAP uses 993 for TLS, 143 for STARTTLS)."}
	}
	untagged, status, err := l.imapCommand("d1", "CAPABILITY")
	if err != nil {
		return greeting, err
	}
	if !strings.HasPrefix(status, "OK") || !hasCap(capsOf(untagged), "STARTTLS") {
		return greeting, &plainError{CauseStartTLSMissing, "the server does not offer STARTTLS, so the connection cannot be encrypted",
			"Use the TLS port instead (993 with --imap-security tls); if the server should offer STARTTLS, a device on your network may be removing it: tell IT."}
	}
	_, status, err = l.imapCommand("d2", "STARTTLS")
	if err != nil {
		return greeting, err
	}
	if !strings.HasPrefix(status, "OK") {
		return greeting, &plainError{CauseStartTLSRefused, fmt.Sprintf("the server refused STARTTLS: %q", trunc(status)),
			"Use the TLS port instead (993 with --imap-security tls), or ask IT why STARTTLS fails."}
	}
	if l.br.Buffered() > 0 {
		return greeting, &plainError{CauseStartTLSInjection, "the server sent unencrypted data right after agreeing to STARTTLS, before encryption began",
			"Refused, since someone on the network may be injecting commands: ask IT to check it, or use the TLS port (993)."}
	}
	c.SetDeadline(time.Time{})
	return greeting, nil
}

// imapGreeting reads the greeting (implicit TLS) or takes the plaintext one
// (STARTTLS), then asks CAPABILITY and ID over TLS.
func (r *runner) imapGreeting(s *stepStart, tc net.Conn, greeting string) ([]string, bool) {
	l := newLines(tc, r.o.StepTimeout)
	if greeting == "" {
		var err error
		if greeting, err = l.read(); err != nil {
			r.fail(s, CauseGreetingBad, fmt.Sprintf("the server sent no greeting: %v", err), "Check the server address and port (IMAP over TLS uses 993).")
			return nil, false
		}
		switch {
		case strings.HasPrefix(greeting, "* BYE"):
			r.fail(s, CauseGreetingRefused, fmt.Sprintf("the server refused the connection: %q", trunc(greeting)), "Ask IT whether this computer may connect to the mail server.")
			return nil, false
		case !strings.HasPrefix(greeting, "* OK") && !strings.HasPrefix(greeting, "* PREAUTH"):
			r.fail(s, CauseGreetingBad, fmt.Sprintf("this is not an IMAP server greeting: %q", trunc(greeting)), "Check the server address and port (IMAP over TLS uses 993).")
			return nil, false
		}
	}
	s.fact("greeting", trunc(greeting))
	untagged, status, err := l.imapCommand("d3", "CAPABILITY")
	if err != nil || !strings.HasPrefix(status, "OK") {
		r.fail(s, CauseGreetingBad, fmt.Sprintf("the server did not answer CAPABILITY (%v %s)", err, trunc(status)), "Ask IT whether this is an IMAP server.")
		return nil, false
	}
	caps := capsOf(untagged)
	var id map[string]string
	if hasCap(caps, "ID") {
		if untagged, status, err := l.imapCommand("d4", `ID ("name" "Inbox Relay diagnose")`); err == nil && strings.HasPrefix(status, "OK") {
			id = parseID(untagged)
		}
	}
	l.imapCommand("d5", "LOGOUT")
	s.fact("software", software(greeting, id))
	s.fact("capabilities", strings.Join(caps, " "))
	var mechs []string
	for _, c := range caps {
		if m, ok := strings.CutPrefix(strings.ToUpper(c), "AUTH="); ok {
			mechs = append(mechs, m)
		}
	}
	s.fact("auth mechanisms", strings.Join(mechs, " ")+" (LOGIN command)")
	s.Summary = "the server greets and lists its capabilities"
	return caps, true
}

var idPair = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"\s+(?:"((?:[^"\\]|\\.)*)"|NIL)`)

// parseID reads `* ID ("name" "Dovecot" ...)` (RFC 2971).
func parseID(untagged []string) map[string]string {
	for _, u := range untagged {
		if !strings.HasPrefix(strings.ToUpper(u), "* ID ") {
			continue
		}
		out := map[string]string{}
		for _, m := range idPair.FindAllStringSubmatch(u[5:], -1) {
			out[strings.ToLower(m[1])] = m[2]
		}
		return out
	}
	return nil
}

var knownSoftware = []struct{ re, name string }{
	{`(?i)dovecot`, "Dovecot"},
	{`(?i)cyrus`, "Cyrus IMAP"},
	{`(?i)courier`, "Courier-IMAP"},
	{`(?i)microsoft exchange|outlook`, "Microsoft Exchange"},
	{`(?i)gimap|gmail`, "Gmail"},
	{`(?i)zimbra`, "Zimbra"},
	{`(?i)hmailserver`, "hMailServer"},
	{`(?i)kerio`, "Kerio Connect"},
	{`(?i)mdaemon`, "MDaemon"},
	{`(?i)uw imap|panda imap`, "UW IMAP"},
	{`(?i)postfix`, "Postfix"},
	{`(?i)exim`, "Exim"},
	{`(?i)sendmail`, "Sendmail"},
	{`(?i)go-imap|go-smtp`, "go-imap/go-smtp"},
}

// software names the server from its ID answer, else its greeting.
func software(greeting string, id map[string]string) string {
	if id["name"] != "" {
		s := id["name"]
		if id["version"] != "" {
			s += " " + id["version"]
		}
		return s + " (from ID)"
	}
	for _, k := range knownSoftware {
		if regexp.MustCompile(k.re).MatchString(greeting) {
			return k.name + " (from the greeting)"
		}
	}
	return "not told"
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// classifyLogin turns the engine's login error into what a person can act
// on. IMAP response codes (RFC 5530) come first, then the words big
// providers use.
func classifyLogin(server, user string, err error) (cause, summary, advice string) {
	var ae *imapsync.AuthError
	if !errors.As(err, &ae) {
		var ne *imapsync.NetError
		if errors.As(err, &ne) {
			return CauseLoginFailed, fmt.Sprintf("the connection broke during the login: %v", err), "Try again; if it keeps failing, ask IT to check the server's logs."
		}
		if strings.Contains(err.Error(), "neither PLAIN nor LOGIN") {
			return CauseLoginNoMechanism, err.Error(), "Ask IT to enable PLAIN or LOGIN authentication over TLS for this server."
		}
		if strings.Contains(err.Error(), "LOGINDISABLED") {
			return CauseLoginPlaintext, err.Error(), "Ask IT to allow password logins over TLS on this port."
		}
		return CauseLoginFailed, fmt.Sprintf("the login failed: %v", err), "Ask IT to check the server's logs for this login."
	}
	text := strings.ToLower(ae.Code + " " + ae.Text)
	said := ""
	if ae.Text != "" {
		said = fmt.Sprintf(" (it said %q)", trunc(ae.Text))
	}
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(text, w) {
				return true
			}
		}
		return false
	}
	code := strings.ToUpper(ae.Code)
	switch {
	case code == string(imap.ResponseCodePrivacyRequired) || has("plaintext authentication", "plaintext login", "must issue a starttls", "encryption required", "5.7.0 must issue"):
		return CauseLoginPlaintext, fmt.Sprintf("%s refuses the password on a connection it considers unencrypted%s", server, said),
			"Ask IT to allow password logins over TLS on this port (the server may sit behind a TLS proxy)."
	case code == string(imap.ResponseCodeExpired) || has("password expired", "password has expired"):
		return CauseLoginExpired, fmt.Sprintf("the password of %s has expired%s", user, said),
			"Change the password (in webmail or with IT), then add the account again with the new one."
	case has("application-specific password", "app password", "application password", "web login required", "less secure",
		"third-party", "third party", "imap access is disabled", "imap is disabled", "not enabled for imap", "smtpclientauthentication is disabled",
		"basic authentication is disabled", "5.7.9", "5.7.139"):
		return CauseLoginAppBlocked, fmt.Sprintf("%s does not allow password logins from mail apps for %s%s", server, user, said),
			"Enable IMAP/SMTP access or create an app password in the account's security settings (or ask IT to allow it), then add the account again."
	case code == string(imap.ResponseCodeContactAdmin) || has("locked", "suspended", "disabled", "blocked"):
		return CauseLoginLocked, fmt.Sprintf("%s says the account %s is locked or disabled%s", server, user, said),
			"Ask IT to unlock the account; the password is probably right."
	case code == string(imap.ResponseCodeUnavailable) || has("temporar", "try again"):
		return CauseLoginUnavailable, fmt.Sprintf("%s cannot check logins right now%s", server, said),
			"Try again in a few minutes; if it persists, tell IT."
	}
	return CauseLoginCredentials, fmt.Sprintf("%s refused the user name %s or its password%s", server, user, said),
		"Check the user name (--username if it is not the e-mail address) and enter the password again."
}
