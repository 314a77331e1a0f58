package dovecottest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// AddUser adds a mail account with that login (conventionally an email
// address) and password. It can log in as soon as AddUser returns; its INBOX
// and Sent exist from its first login. Adding an existing user fails the test.
func (s *Server) AddUser(t testing.TB, email, password string) {
	t.Helper()
	s.setUser(t, email, password, false)
}

// SetPassword changes an existing user's password. New logins must use it as
// soon as SetPassword returns; sessions already logged in stay.
func (s *Server) SetPassword(t testing.TB, email, password string) {
	t.Helper()
	s.setUser(t, email, password, true)
}

func (s *Server) setUser(t testing.TB, email, password string, exists bool) {
	t.Helper()
	if email == "" || strings.ContainsAny(email, "/\n\r\t ") || email[0] == '.' {
		t.Fatalf("dovecottest: login %q must be non-empty, not start with '.', and hold no '/' or white space", email)
	}
	if strings.ContainsRune(password, 0) {
		t.Fatalf("dovecottest: a password cannot hold NUL")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[email]; ok != exists {
		if exists {
			t.Fatalf("dovecottest: no user %q", email)
		}
		t.Fatalf("dovecottest: user %q already exists", email)
	}
	s.users[email] = password
	if err := s.writeUsers(); err != nil {
		t.Fatalf("dovecottest: write users file: %v", err)
	}
}

func (s *Server) password(t testing.TB, email string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.users[email]
	if !ok {
		t.Fatalf("dovecottest: no user %q: call AddUser first", email)
	}
	return p
}

// TLSConfig returns a TLS configuration that trusts the test CA (CAPEM) and
// nothing else, with the server name of the listeners. With
// Options.SelfSigned, verification with it fails, as it would for a user.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &tls.Config{RootCAs: pool, ServerName: listenHost, MinVersion: tls.VersionTLS12}
}

// Login opens an IMAP session for the user over implicit TLS, pinned to the
// server's certificate (so it works with Options.SelfSigned), and logs in
// with the password given to AddUser or SetPassword. opts may be nil; its
// TLSConfig is replaced. The session is closed when the test ends; the caller
// may Logout or Close it earlier.
func (s *Server) Login(t testing.TB, email string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := s.login(email, s.password(t, email), opts)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *Server) login(email, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	o := imapclient.Options{}
	if opts != nil {
		o = *opts
	}
	o.TLSConfig = s.pinnedTLS()
	c, err := imapclient.DialTLS(s.IMAPS, &o)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.IMAPS, err)
	}
	if err := c.Login(email, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", email, err)
	}
	return c, nil
}

// Append stores msg in the user's folder with IMAP APPEND over its own
// short session (closed before Append returns), with date as internal date
// (the zero time for now) and flags such as `\Seen`, and returns the UID the
// server gave it (UIDPLUS, RFC 4315). msg should use CRLF line ends: a FETCH
// of BODY[] then returns it byte for byte.
func (s *Server) Append(t testing.TB, email, folder string, msg []byte, date time.Time, flags ...string) uint32 {
	t.Helper()
	c, err := s.login(email, s.password(t, email), nil)
	if err != nil {
		t.Fatalf("dovecottest: append: %v", err)
	}
	defer c.Close()
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	cmd := c.Append(folder, int64(len(msg)), opts)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatalf("dovecottest: append to %q: %v", folder, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("dovecottest: append to %q: %v", folder, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("dovecottest: append to %q: %v", folder, err)
	}
	if data.UID == 0 {
		t.Fatalf("dovecottest: append to %q: no APPENDUID in the response", folder)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("dovecottest: logout after append: %v", err)
	}
	return uint32(data.UID)
}

// Expunge deletes the message with that UID from the user's folder as a
// mail client does, over its own short session: it flags the message
// \Deleted and expunges it alone (UID EXPUNGE, RFC 4315). The user's other
// sessions hear of it as any client's deletion (EXPUNGE while they idle).
// It fails the test when the folder holds no such message.
func (s *Server) Expunge(t testing.TB, email, folder string, uid uint32) {
	t.Helper()
	c, err := s.login(email, s.password(t, email), nil)
	if err != nil {
		t.Fatalf("dovecottest: expunge: %v", err)
	}
	defer c.Close()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatalf("dovecottest: expunge: select %q: %v", folder, err)
	}
	set := imap.UIDSetNum(imap.UID(uid))
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := c.Store(set, store, nil).Close(); err != nil {
		t.Fatalf("dovecottest: expunge: flag UID %d of %q deleted: %v", uid, folder, err)
	}
	gone, err := c.UIDExpunge(set).Collect()
	if err != nil {
		t.Fatalf("dovecottest: expunge UID %d of %q: %v", uid, folder, err)
	}
	if len(gone) != 1 {
		t.Fatalf("dovecottest: expunge UID %d of %q: %d messages expunged, want 1", uid, folder, len(gone))
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("dovecottest: logout after expunge: %v", err)
	}
}

// CreateFolder creates and subscribes a folder for the user. folder is the
// full name as a client sees it, namespace prefix included ("INBOX.Archive"
// with Options.Namespace "INBOX."). specialUse, such as `\Archive`, may be
// "": Dovecot 2.3 has no CREATE-SPECIAL-USE, so it is set in the
// configuration, which is reloaded, and applies to a folder of that name of
// every user of this Server. CreateFolder returns once a new session sees it.
func (s *Server) CreateFolder(t testing.TB, email, folder string, specialUse string) {
	t.Helper()
	s.password(t, email) // the user must exist
	if specialUse != "" {
		if !strings.HasPrefix(specialUse, `\`) || strings.ContainsAny(specialUse, " \n\"") {
			t.Fatalf("dovecottest: special use %q is not an attribute such as \\Archive", specialUse)
		}
		s.mu.Lock()
		s.folders = append(s.folders, folderUse{name: folder, use: specialUse})
		err := s.writeConfig()
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		s.reload(t)
	}
	if _, err := s.doveadm("mailbox", "create", "-s", "-u", email, "--", folder); err != nil {
		t.Fatalf("dovecottest: create folder %q: %v", folder, err)
	}
	if specialUse != "" {
		s.waitSpecialUse(t, email, folder, specialUse)
	}
}

// reload makes the master re-read the configuration (SIGHUP); sessions
// already open keep the old one.
func (s *Server) reload(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return // Restart reads the new configuration
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("dovecottest: reload dovecot: %v", err)
	}
}

// waitSpecialUse waits until a new session lists folder with the attribute:
// the master applies a reload asynchronously.
func (s *Server) waitSpecialUse(t testing.TB, email, folder, use string) {
	t.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if !running {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// While the master restarts its services a login may fail: retry.
		var list []*imap.ListData
		c, err := s.login(email, s.password(t, email), nil)
		if err == nil {
			list, err = c.List("", folder, &imap.ListOptions{ReturnSpecialUse: true}).Collect()
			c.Close()
		}
		if err == nil && len(list) == 1 && slices.Contains(list[0].Attrs, imap.MailboxAttr(use)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecottest: folder %q does not show %s after a configuration reload (%v)", folder, use, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// UIDValidity returns the folder's UIDVALIDITY, read with doveadm (no IMAP
// session is opened).
func (s *Server) UIDValidity(t testing.TB, email, folder string) uint32 {
	t.Helper()
	v, err := s.uidValidity(email, folder)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	return v
}

func (s *Server) uidValidity(email, folder string) (uint32, error) {
	out, err := s.doveadm("-f", "flow", "mailbox", "status", "-u", email, "uidvalidity", "--", folder)
	if err != nil {
		return 0, fmt.Errorf("uidvalidity of %q: %w", folder, err)
	}
	// flow format: "NAME uidvalidity=N"; NAME may hold spaces.
	f := strings.Fields(string(out))
	var v string
	ok := len(f) > 0
	if ok {
		v, ok = strings.CutPrefix(f[len(f)-1], "uidvalidity=")
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if !ok || err != nil {
		return 0, fmt.Errorf("uidvalidity of %q: unexpected doveadm output %q", folder, out)
	}
	return uint32(n), nil
}

// ResetUIDValidity gives the folder a new UIDVALIDITY (the old one plus one)
// with `doveadm mailbox update --uid-validity`, keeping its messages, as a
// server does after rebuilding its index. Clients must then forget the
// folder's UIDs (RFC 3501 section 2.3.1.1).
func (s *Server) ResetUIDValidity(t testing.TB, email, folder string) {
	t.Helper()
	old, err := s.uidValidity(email, folder)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	next := old + 1
	if next == 0 {
		next = 1
	}
	if _, err := s.doveadm("mailbox", "update", "-u", email, "--uid-validity", strconv.FormatUint(uint64(next), 10), "--", folder); err != nil {
		t.Fatalf("dovecottest: reset uidvalidity of %q: %v", folder, err)
	}
	if got, err := s.uidValidity(email, folder); err != nil || got != next {
		t.Fatalf("dovecottest: reset uidvalidity of %q: now %d (%v), want %d", folder, got, err, next)
	}
}

// Connections returns the number of IMAP sessions the user has now, as
// Dovecot counts them (`doveadm who`). Dovecot registers a session a moment
// after its LOGIN succeeds and forgets it a moment after it ends: poll.
func (s *Server) Connections(t testing.TB, email string) int {
	t.Helper()
	n, err := s.connections(email)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	return n
}

func (s *Server) connections(email string) (int, error) {
	out, err := s.doveadm("who", "-1", email)
	if err != nil {
		return 0, fmt.Errorf("who %s: %w", email, err)
	}
	n := 0
	// Lines: "username proto pid ip" after a header line.
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == email && f[1] == "imap" {
			n++
		}
	}
	return n, nil
}

// KickUser drops all the user's sessions as a server closing them would
// (`doveadm kick`: each gets "* BYE Server shutting down" and EOF) and
// returns once Dovecot counts none.
func (s *Server) KickUser(t testing.TB, email string) {
	t.Helper()
	if _, err := s.doveadm("kick", email); err != nil {
		t.Fatalf("dovecottest: kick %s: %v", email, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := s.connections(email)
		if err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecottest: %s still has %d sessions after kick", email, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exTempFail is doveadm's exit status for a temporary failure (EX_TEMPFAIL),
// such as a user lookup while the master restarts the auth service after
// a configuration reload.
const exTempFail = 75

// doveadm runs doveadm with this server's configuration, as the account
// Dovecot runs as, and returns its standard output. A temporary failure is
// retried for a few seconds.
func (s *Server) doveadm(args ...string) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		cmd := exec.Command(s.bin.doveadm, append([]string{"-c", s.configPath()}, args...)...)
		cmd.Dir = s.Dir
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.account.credential}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			return stdout.Bytes(), nil
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exTempFail || time.Now().After(deadline) {
			return nil, fmt.Errorf("doveadm %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
