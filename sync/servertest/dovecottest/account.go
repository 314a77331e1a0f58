package dovecottest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// account is the Unix user every Dovecot process of a Server runs as, and
// owner of its directory.
type account struct {
	user, group string
	uid, gid    int
	// credential switches a child process to the account; nil when the
	// test process already runs as it.
	credential *syscall.Credential
}

// runAsWhenRoot is the user Dovecot runs as when the tests run as root: it
// exists on every Debian system and owns nothing, so Dovecot's mail
// processes may use it (they refuse UID 0).
const runAsWhenRoot = "nobody"

func currentAccount() (account, error) {
	var u *user.User
	var err error
	root := os.Geteuid() == 0
	if root {
		u, err = user.Lookup(runAsWhenRoot)
	} else {
		u, err = user.LookupId(strconv.Itoa(os.Geteuid()))
	}
	if err != nil {
		return account{}, fmt.Errorf("look up the user to run dovecot as: %w", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return account{}, fmt.Errorf("look up group %s of user %s: %w", u.Gid, u.Username, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	a := account{user: u.Username, group: g.Name, uid: uid, gid: gid}
	if root {
		a.credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	return a, nil
}

// prepareDir makes the directory layout, the certificates and an empty
// users file, owned by the account.
func (s *Server) prepareDir(opts Options) error {
	if s.account.credential != nil {
		if err := searchableByOthers(filepath.Dir(s.Dir)); err != nil {
			return err
		}
	}
	if err := s.chown(s.Dir); err != nil {
		return err
	}
	// Dovecot wants its base_dir readable by all (it would chmod it).
	for d, mode := range map[string]os.FileMode{"run": 0o755, "state": 0o700, "mail": 0o700} {
		if err := s.mkdir(filepath.Join(s.Dir, d), mode); err != nil {
			return err
		}
	}
	pki, err := newPKI(opts.SelfSigned)
	if err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}
	s.CAPEM, s.CertPEM, s.Fingerprint = pki.caPEM, pki.certPEM, pki.fingerprint
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	for name, data := range map[string][]byte{
		s.CAFile:                         pki.caPEM,
		filepath.Join(s.Dir, "cert.pem"): pki.certPEM,
		filepath.Join(s.Dir, "key.pem"):  pki.keyPEM,
	} {
		if err := s.writeFile(name, data); err != nil {
			return err
		}
	}
	if err := s.writePostLogin(); err != nil {
		return err
	}
	if err := s.writeAuthDictConf(); err != nil {
		return err
	}
	return s.writeUsers()
}

// searchableByOthers checks that "nobody" can reach dir: every directory on
// the way must be searchable by others.
func searchableByOthers(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dovecot runs as %q when tests run as root, and it cannot enter %s (mode %v): "+
				"set TMPDIR to a directory every user can enter, such as /tmp", runAsWhenRoot, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (s *Server) mkdir(path string, mode os.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil { // not masked by umask
		return err
	}
	return s.chown(path)
}

// writeFile replaces path atomically, so Dovecot never reads half a file.
func (s *Server) writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := s.chown(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s *Server) chown(path string) error {
	if s.account.credential == nil {
		return nil
	}
	return os.Lchown(path, s.account.uid, s.account.gid)
}
