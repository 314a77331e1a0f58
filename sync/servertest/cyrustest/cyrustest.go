// Package cyrustest starts a private Cyrus IMAP 3.6 (Debian's cyrus-imapd)
// for tests.
//
// Cyrus conflicts with Dovecot as a Debian package (both provide
// imap-server), so it is never installed: its two packages are fetched
// with `apt-get download` and unpacked with `dpkg-deb -x` into a cache under
// the temporary directory (see Binaries), and run from there with a private
// configuration, SASL database, spool and sockets in a temporary
// directory, on a free loopback port. The libraries they link to are
// ordinary Debian packages that `make test` installs (DEPS_TEST).
//
// Cyrus runs as "nobody" when the tests run as root, as dovecottest does.
package cyrustest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/procgroup"
)

// Packages are the Debian packages unpacked to run Cyrus.
var Packages = []string{"cyrus-common", "cyrus-imapd"}

var unpack struct {
	sync.Mutex
	root string
}

// Binaries returns the root of the unpacked packages, downloading and
// unpacking them on first use into $TMPDIR/inboxrelay-debs/cyrus (kept
// between runs). A system-wide installation is used as it is.
func Binaries() (string, error) {
	if _, err := os.Stat("/usr/lib/cyrus/bin/master"); err == nil {
		return "/", nil
	}
	unpack.Lock()
	defer unpack.Unlock()
	if unpack.root != "" {
		return unpack.root, nil
	}
	root, err := UnpackDebs("cyrus", Packages, "usr/lib/cyrus/bin/master")
	if err != nil {
		return "", err
	}
	unpack.root = root
	return root, nil
}

// UnpackDebs downloads pkgs with apt-get and unpacks them into
// $TMPDIR/inboxrelay-debs/name, unless marker (a path inside it) already
// exists. Every directory on the way is made traversable by all, so that
// an unprivileged server user can run what is there.
func UnpackDebs(name string, pkgs []string, marker string) (string, error) {
	base := filepath.Join(os.TempDir(), "inboxrelay-debs")
	root := filepath.Join(base, name)
	if _, err := os.Stat(filepath.Join(root, marker)); err == nil {
		return root, nil
	}
	dl, err := os.MkdirTemp("", "debs-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dl)
	cmd := exec.Command("apt-get", append([]string{"download", "-q"}, pkgs...)...)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s failed (%v): %s; run `make test`, which fetches them", strings.Join(pkgs, " "), err, bytes.TrimSpace(out))
	}
	tmp, err := os.MkdirTemp(base+"-tmp", "")
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(base+"-tmp", 0o755); err == nil {
			tmp, err = os.MkdirTemp(base+"-tmp", "")
		}
	}
	if err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	for _, d := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", d, tmp).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", filepath.Base(d), err, out)
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	os.Chmod(base, 0o755)
	os.Chmod(tmp, 0o755)
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	return root, nil
}

// Server is a running private Cyrus. Its fields never change.
type Server struct {
	IMAPS       string // host:port of the implicit-TLS listener
	Fingerprint string // of the server certificate
	Pool        *x509.CertPool
	Dir         string

	root string
	uid  int
	gid  int
	cred *syscall.Credential
	cmd  *exec.Cmd
	proc *procgroup.Group
}

// Start starts Cyrus and waits until it greets; t.Cleanup stops it and
// removes its directory.
func Start(t testing.TB) *Server {
	t.Helper()
	root, err := Binaries()
	if err != nil {
		t.Fatalf("cyrustest: %v", err)
	}
	s := &Server{root: root, uid: os.Getuid(), gid: os.Getgid()}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid), Groups: []uint32{}}
	}
	dir, err := os.MkdirTemp("", "cyrustest-")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	cert := hostile.NewCert(t, hostile.CertOptions{})
	s.Fingerprint, s.Pool = cert.Fingerprint, cert.Pool
	keyDER, _ := x509.MarshalPKCS8PrivateKey(cert.TLS.PrivateKey)
	var chain []byte
	for _, c := range cert.TLS.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.IMAPS = l.Addr().String()
	l.Close()
	bin := filepath.Join(root, "usr/lib/cyrus/bin")
	conf := filepath.Join(dir, "imapd.conf")
	files := map[string]string{
		"cert.pem": string(chain),
		"key.pem":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		"imapd.conf": strings.ReplaceAll(`configdirectory: D/conf
partition-default: D/spool
defaultpartition: default
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: D/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
tls_server_cert: D/cert.pem
tls_server_key: D/key.pem
autocreate_quota: 0
autocreate_inbox_folders: Sent
servername: localhost
lmtpsocket: D/socket/lmtp
idlesocket: D/socket/idle
notifysocket: D/socket/notify
syslog_prefix: cyrustest
`, "D/", dir+"/"),
		"cyrus.conf": fmt.Sprintf("START {\n  recover cmd=\"%s/ctl_cyrusdb -C %s -r\"\n}\nSERVICES {\n  imaps cmd=\"%s/imapd -s -C %s\" listen=\"%s\" prefork=0\n}\nEVENTS {\n}\n",
			bin, conf, bin, conf, s.IMAPS),
	}
	if u, err := user.LookupId(strconv.Itoa(s.uid)); err == nil {
		files["imapd.conf"] += "cyrus_user: " + u.Username + "\n"
	}
	for _, d := range []string{"conf", "spool", "socket", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.chownAll(t)

	s.cmd = exec.Command(filepath.Join(bin, "master"), "-C", conf, "-M", filepath.Join(dir, "cyrus.conf"), "-p", filepath.Join(dir, "run/master.pid"), "-D")
	s.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH=" + s.libPath()}
	logf, _ := os.Create(filepath.Join(dir, "master.log"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if s.proc, err = procgroup.Start(s.cmd, func() { logf.Close() }); err != nil {
		t.Fatalf("cyrustest: start master: %v", err)
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", s.IMAPS, &tls.Config{RootCAs: s.Pool, ServerName: "localhost"})
		if err == nil {
			buf := make([]byte, 5)
			c.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(buf)
			c.Close()
			if err == nil && string(buf) == "* OK " {
				break
			}
		}
		select {
		case <-s.proc.Done():
			log, _ := os.ReadFile(filepath.Join(dir, "master.log"))
			t.Fatalf("cyrustest: master exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cyrustest: no greeting on %s: %v", s.IMAPS, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

func (s *Server) libPath() string {
	return filepath.Join(s.root, "usr/lib/x86_64-linux-gnu") + ":" + filepath.Join(s.root, "usr/lib")
}

func (s *Server) chownAll(t testing.TB) {
	if s.cred == nil {
		return
	}
	filepath.Walk(s.Dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, s.uid, s.gid)
		}
		return nil
	})
}

// stop ends the master and every process of its group (imapd children
// included).
func (s *Server) stop() { s.proc.Stop() }

// AddUser adds a login with its password to the SASL database; its INBOX
// and Sent are created at its first login.
func (s *Server) AddUser(t testing.TB, login, password string) {
	t.Helper()
	cmd := exec.Command("saslpasswd2", "-f", filepath.Join(s.Dir, "sasldb2"), "-p", "-c", "-u", "localhost", login)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cyrustest: saslpasswd2 (from sasl2-bin): %v: %s", err, out)
	}
	s.chownAll(t)
}

// Append logs in as login and appends msg to folder.
func (s *Server) Append(t testing.TB, login, password, folder string, msg []byte, date time.Time) {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: s.Pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(login, password).Wait(); err != nil {
		t.Fatalf("cyrustest: login: %v", err)
	}
	cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Time: date})
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("cyrustest: append to %s: %v", folder, err)
	}
	c.Logout().Wait()
}
