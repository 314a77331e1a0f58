package dovecottest

import (
	"strconv"
	"strings"
	"testing"
)

// SetUIDValidity gives the user's folder the UIDVALIDITY v (`doveadm
// mailbox update --uid-validity`), keeping its messages and UIDs: with
// another folder's value, two folders a client cannot tell apart by it.
func (s *Server) SetUIDValidity(t testing.TB, email, folder string, v uint32) {
	t.Helper()
	if _, err := s.doveadm("mailbox", "update", "-u", email, "--uid-validity", strconv.FormatUint(uint64(v), 10), "--", folder); err != nil {
		t.Fatalf("dovecottest: set the uidvalidity of %q: %v", folder, err)
	}
	if got, err := s.uidValidity(email, folder); err != nil || got != v {
		t.Fatalf("dovecottest: set the uidvalidity of %q: now %d (%v), want %d", folder, got, err, v)
	}
}

// SetSpecialUse gives an existing folder a special-use attribute such as
// `\Sent` (RFC 6154), as CreateFolder does for a new one: in the
// configuration, for a folder of that name of every user of this Server.
// It returns once a new session sees it.
func (s *Server) SetSpecialUse(t testing.TB, email, folder, use string) {
	t.Helper()
	if !strings.HasPrefix(use, `\`) || strings.ContainsAny(use, " \n\"") {
		t.Fatalf("dovecottest: special use %q is not an attribute such as \\Sent", use)
	}
	s.mu.Lock()
	s.folders = append(s.folders, folderUse{name: folder, use: use})
	err := s.writeConfig()
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	s.reload(t)
	s.waitSpecialUse(t, email, folder, use)
}
