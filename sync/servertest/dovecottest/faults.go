package dovecottest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// This file holds the faults a test can inflict on a running server: a
// message the server cannot read, sessions that hang, and the count of
// logins to tell a reconnect from a reused session.

// MakeUnreadable makes the message with that UID in the user's folder
// unreadable by Dovecot, as a damaged disk or a broken restore leaves one on
// a real server: its maildir file gets mode 000. Dovecot still lists the
// message (UID, flags, size come from its index), but a FETCH of its body
// sends the messages before it, then "* n FETCH (UID u)" without the body,
// then "* BYE FETCH failed: Internal error occurred. Refer to server log
// for more information." and closes the connection, with no tagged answer;
// its log says "Permission denied" (see TestMakeUnreadable). MakeReadable
// undoes it; the files go with Dir.
func (s *Server) MakeUnreadable(t testing.TB, email, folder string, uid uint32) {
	t.Helper()
	s.chmodMessage(t, email, folder, uid, 0)
}

// MakeReadable gives a message made unreadable by MakeUnreadable its mode
// back (0600), so Dovecot serves it again.
func (s *Server) MakeReadable(t testing.TB, email, folder string, uid uint32) {
	t.Helper()
	s.chmodMessage(t, email, folder, uid, 0o600)
}

func (s *Server) chmodMessage(t testing.TB, email, folder string, uid uint32, mode os.FileMode) {
	t.Helper()
	path, err := s.messagePath(email, folder, uid)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
}

// messagePath finds the maildir file of a message. For maildir, Dovecot's
// message GUID is the file's base name (the part before ":2,").
func (s *Server) messagePath(email, folder string, uid uint32) (string, error) {
	out, err := s.doveadm("-f", "flow", "fetch", "-u", email, "guid", "mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", fmt.Errorf("find message UID %d of %q: %w", uid, folder, err)
	}
	guid, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "guid=")
	if !ok || guid == "" || strings.ContainsAny(guid, "/ \n") {
		return "", fmt.Errorf("no message UID %d in %q of %s (doveadm said %q)", uid, folder, email, out)
	}
	var found []string
	root := filepath.Join(s.Dir, "mail", email)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if !d.IsDir() && (name == guid || strings.HasPrefix(name, guid+":")) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find message UID %d of %q: %w", uid, folder, err)
	}
	if len(found) != 1 {
		return "", fmt.Errorf("message UID %d of %q (GUID %s): %d files under %s, want 1", uid, folder, guid, len(found), root)
	}
	return found[0], nil
}

// FreezeSessions stops (SIGSTOP) every imap process serving the user now,
// as a hung server would: their connections stay open and nothing more is
// said on them, whatever the client sends. Logins made afterwards get new
// processes and work. It returns how many sessions it froze. ThawSessions,
// Stop, Restart and the test's end continue them.
func (s *Server) FreezeSessions(t testing.TB, email string) int {
	t.Helper()
	pids, err := s.sessionPIDs(email)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatal("dovecottest: FreezeSessions on a stopped server")
	}
	if !s.thawAtEnd {
		s.thawAtEnd = true
		t.Cleanup(s.thaw)
	}
	n := 0
	for _, pid := range pids {
		// The PID comes from Dovecot's own count; check it is still one of
		// this server's processes before signalling it.
		if processGroup(pid) != s.proc.cmd.Process.Pid {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			continue // it ended meanwhile
		}
		s.frozen = append(s.frozen, pid)
		n++
	}
	return n
}

// ThawSessions continues (SIGCONT) the sessions FreezeSessions stopped; what
// clients sent meanwhile is then answered.
func (s *Server) ThawSessions(t testing.TB) {
	t.Helper()
	s.thaw()
}

func (s *Server) thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
}

// thawLocked continues the frozen sessions. The caller holds s.mu.
func (s *Server) thawLocked() {
	for _, pid := range s.frozen {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	s.frozen = nil
}

// sessionPIDs returns the PIDs of the user's imap processes, from
// `doveadm who -1` (one line per connection: user, service, pid, address).
func (s *Server) sessionPIDs(email string) ([]int, error) {
	out, err := s.doveadm("who", "-1", email)
	if err != nil {
		return nil, fmt.Errorf("who %s: %w", email, err)
	}
	var pids []int
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != email || f[1] != "imap" {
			continue
		}
		pid, err := strconv.Atoi(strings.Trim(f[2], "()"))
		if err != nil {
			return nil, fmt.Errorf("who %s: unexpected line %q", email, line)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// processGroup returns the process group of pid, or -1.
func processGroup(pid int) int {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return -1
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return g
}

// Logins returns how many IMAP logins of the user have succeeded on this
// Server so far, Restarts included. The count is exact the moment a client
// has the answer to its LOGIN: Dovecot's post-login script records each one
// before the session's imap process starts, and the session's OK comes from
// that process.
func (s *Server) Logins(t testing.TB, email string) int {
	t.Helper()
	f, err := os.Open(s.loginsPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == email {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("dovecottest: read %s: %v", s.loginsPath(), err)
	}
	return n
}

func (s *Server) loginsPath() string    { return filepath.Join(s.Dir, "logins") }
func (s *Server) postLoginPath() string { return filepath.Join(s.Dir, "postlogin.sh") }

// writePostLogin writes the post-login script (run by script-login for
// every IMAP login, as the mail user, with USER set): it records the login
// and becomes the session's imap process.
func (s *Server) writePostLogin() error {
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$USER\" >> %s\nexec \"$@\"\n", s.loginsPath())
	if err := s.writeFile(s.postLoginPath(), []byte(script)); err != nil {
		return err
	}
	return os.Chmod(s.postLoginPath(), 0o755)
}
