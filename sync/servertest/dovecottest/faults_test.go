package dovecottest_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// rawSession is an IMAP session spoken by hand, to see exactly what
// Dovecot sends, tagged answer or not.
type rawSession struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

func rawLogin(t *testing.T, s *dovecottest.Server) *rawSession {
	t.Helper()
	conn, err := tls.Dial("tcp", s.IMAPS, s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second)) // a hang guard only
	rs := &rawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	rs.line() // greeting
	rs.command("a1", fmt.Sprintf("LOGIN %q %q", alice, alicePW))
	return rs
}

func (rs *rawSession) line() string {
	rs.t.Helper()
	l, err := rs.r.ReadString('\n')
	if err != nil {
		rs.t.Fatalf("read: %v", err)
	}
	return l
}

// command sends a command and reads up to its tagged OK.
func (rs *rawSession) command(tag, cmd string) {
	rs.t.Helper()
	fmt.Fprintf(rs.conn, "%s %s\r\n", tag, cmd)
	for {
		l := rs.line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				rs.t.Fatalf("%s: %s", cmd, l)
			}
			return
		}
	}
}

// TestMakeUnreadable shows what a message whose file Dovecot cannot read
// does: it is still listed, a FETCH of its body sends the messages before
// it and then the connection ends without a tagged answer; the other
// messages stay readable, and MakeReadable restores it.
func TestMakeUnreadable(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	var uids []uint32
	for _, subj := range []string{"one", "two", "three"} {
		uids = append(uids, s.Append(t, alice, "INBOX", message(subj), time.Time{}))
	}
	s.MakeUnreadable(t, alice, "INBOX", uids[1])

	rs := rawLogin(t, s)
	rs.command("a2", "SELECT INBOX")
	fmt.Fprintf(rs.conn, "a3 UID SEARCH ALL\r\n")
	if l := rs.line(); l != fmt.Sprintf("* SEARCH %d %d %d\r\n", uids[0], uids[1], uids[2]) {
		t.Fatalf("SEARCH with an unreadable message: %q", l)
	}
	rs.line() // a3 OK
	fmt.Fprintf(rs.conn, "a4 UID FETCH %d:%d (BODY.PEEK[])\r\n", uids[0], uids[2])
	rest, err := io.ReadAll(rs.r)
	if err != nil {
		t.Fatalf("after a FETCH of an unreadable message: %v (want the connection closed)", err)
	}
	t.Logf("Dovecot's answer to the FETCH:\n%s", rest)
	if !bytes.Contains(rest, message("one")) {
		t.Error("the message before the unreadable one was not sent")
	}
	if !bytes.Contains(rest, []byte("\r\n* BYE FETCH failed: Internal error occurred.")) {
		t.Error("Dovecot did not say BYE with its internal error")
	}
	if bytes.Contains(rest, []byte("a4 ")) {
		t.Error("Dovecot answered the FETCH with a tagged response; want the connection closed without one")
	}
	if bytes.Contains(rest, message("two")) || bytes.Contains(rest, message("three")) {
		t.Error("Dovecot sent the unreadable message or the one after it")
	}

	// The others are readable in a new session.
	c := dialTLS(t, s, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fetch := func(uid uint32) ([]byte, error) {
		msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			return nil, err
		}
		if len(msgs) != 1 {
			return nil, fmt.Errorf("%d messages", len(msgs))
		}
		return msgs[0].FindBodySection(&imap.FetchItemBodySection{Peek: true}), nil
	}
	if b, err := fetch(uids[2]); err != nil || !bytes.Equal(b, message("three")) {
		t.Fatalf("the message after the unreadable one: %q, %v", b, err)
	}

	s.MakeReadable(t, alice, "INBOX", uids[1])
	if b, err := fetch(uids[1]); err != nil || !bytes.Equal(b, message("two")) {
		t.Fatalf("after MakeReadable: %q, %v", b, err)
	}
}

func TestMakeUnreadableUnknownUID(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	s.Append(t, alice, "INBOX", message("one"), time.Time{})
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		s.MakeUnreadable(ft, alice, "INBOX", 99)
	}()
	if !ft.failed {
		t.Fatal("MakeUnreadable of a UID that does not exist did not fail the test")
	}
}

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.TB.Logf("(expected) "+format, args...)
	panic("fatal")
}
func (f *fakeT) Fatal(args ...any) {
	f.failed = true
	panic("fatal")
}

// TestFreezeSessions: a frozen session says nothing but stays open, new
// sessions work meanwhile, and thawing answers what was asked.
func TestFreezeSessions(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	c := dialTLS(t, s, nil)
	waitConnections(t, s, 1)
	if n := s.FreezeSessions(t, alice); n != 1 {
		t.Fatalf("FreezeSessions froze %d sessions, want 1", n)
	}
	answered := make(chan error, 1)
	go func() { answered <- c.Noop().Wait() }()
	select {
	case err := <-answered:
		t.Fatalf("a frozen session answered NOOP (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	select {
	case <-c.Closed():
		t.Fatal("the frozen session was closed")
	default:
	}

	c2 := dialTLS(t, s, nil)
	if err := c2.Noop().Wait(); err != nil {
		t.Fatalf("a session opened after the freeze: %v", err)
	}
	waitConnections(t, s, 2)

	s.ThawSessions(t)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("NOOP after thawing: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the thawed session did not answer")
	}
}

// TestFreezeSessionsLeftFrozen leaves a session frozen: the server must
// still stop at the end of the test (TestMain checks that no process is
// left), and Restart thaws it first.
func TestFreezeSessionsLeftFrozen(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	dialTLS(t, s, nil)
	waitConnections(t, s, 1)
	if n := s.FreezeSessions(t, alice); n != 1 {
		t.Fatalf("froze %d", n)
	}
	began := time.Now()
	s.Restart(t)
	// Stopping takes the grace time (5 s) only if a stopped process had to
	// be killed; a thawed one ends at SIGTERM. A lower bound is no timing
	// assertion: a thawed server can never take longer than killing does.
	if took := time.Since(began); took >= 5*time.Second {
		t.Fatalf("Restart with a frozen session took %v: it was killed, not thawed", took)
	}
	dialTLS(t, s, nil)
	s.FreezeSessions(t, alice)
}

// TestLogins counts successful IMAP logins exactly, per user, across
// restarts.
func TestLogins(t *testing.T) {
	s := startWithAlice(t, dovecottest.Options{})
	const bob, bobPW = "bob@example.com", "bob's password"
	s.AddUser(t, bob, bobPW)
	if n := s.Logins(t, alice); n != 0 {
		t.Fatalf("%d logins before any", n)
	}
	dialTLS(t, s, nil)
	if n := s.Logins(t, alice); n != 1 { // no wait: the count is exact once LOGIN is answered
		t.Fatalf("%d logins after one, want 1", n)
	}
	s.Append(t, alice, "INBOX", message("one"), time.Time{}) // its own session
	if n := s.Logins(t, alice); n != 2 {
		t.Fatalf("%d logins after Append, want 2", n)
	}

	c, err := tls.Dial("tcp", s.IMAPS, s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n')
	fmt.Fprintf(c, "a1 LOGIN %q %q\r\n", alice, "wrong")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "a1 NO") {
		t.Fatalf("a wrong password: %q", l)
	}
	if n := s.Logins(t, alice); n != 2 {
		t.Fatalf("%d logins after a failed one, want 2", n)
	}

	s.Restart(t)
	s.Append(t, bob, "INBOX", message("for bob"), time.Time{})
	if a, b := s.Logins(t, alice), s.Logins(t, bob); a != 2 || b != 1 {
		t.Fatalf("after Restart: alice %d, bob %d logins; want 2 and 1", a, b)
	}
}
