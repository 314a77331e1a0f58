// Package couriertest starts a private Courier-IMAP 5.0 (Debian's
// courier-imap) for tests, with the real Courier authentication daemon.
//
// Courier conflicts with Dovecot as a Debian package, so it is never
// installed: its packages are fetched with `apt-get download` and unpacked
// with `dpkg-deb -x` into a cache under the temporary directory (see
// Binaries). Courier's programs have their paths compiled in (the
// authdaemon socket at /run/courier/authdaemon/socket, the configuration
// and user database under /etc/courier, the authentication modules under
// /usr/lib/courier-authlib), so the server runs in a private mount
// namespace in which read-only overlays put the unpacked /usr and a
// private /etc/courier over the system's, and a writable overlay whose
// upper layer is in the test's directory covers /etc and /run: nothing
// outside the namespace sees or keeps any of it, and the namespace ends
// with its last process. This needs root; Start skips the test otherwise.
//
// Inside it run the real authdaemond with the authuserdb module over a
// private userdb built with Courier's own userdb, userdbpw and makeuserdb,
// and couriertcpd with couriertls (implicit TLS, a test certificate),
// imaplogin and imapd, configured from Debian's own imapd and imapd-ssl
// files. Mailboxes are maildirs owned by "nobody" in a temporary directory;
// folders are under "INBOX." with "." as delimiter, as Courier always has.
package couriertest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/sync/servertest/cyrustest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/procgroup"
)

// Packages are the Debian packages unpacked to run Courier-IMAP.
var Packages = []string{"courier-imap", "courier-base", "courier-authlib", "courier-authdaemon", "courier-authlib-userdb"}

// mailUID and mailGID own every mailbox: "nobody", as on Debian.
const mailUID, mailGID = 65534, 65534

var unpack struct {
	sync.Mutex
	root string
}

// Binaries returns the root of the unpacked packages, downloading and
// unpacking them on first use into $TMPDIR/inboxrelay-debs/courier (kept
// between runs).
func Binaries() (string, error) {
	unpack.Lock()
	defer unpack.Unlock()
	if unpack.root != "" {
		return unpack.root, nil
	}
	root, err := cyrustest.UnpackDebs("courier", Packages, "usr/lib/courier/courier-authlib/authdaemond")
	if err != nil {
		return "", err
	}
	unpack.root = root
	return root, nil
}

// Server is a running private Courier-IMAP. Its fields never change; its
// methods may be called from several goroutines.
type Server struct {
	IMAPS       string // host:port of the implicit-TLS listener
	Fingerprint string // SHA-256 of the server certificate, as trust pins it
	Pool        *x509.CertPool
	Dir         string // everything the server keeps, removed at cleanup

	mu   sync.Mutex // serialises changes to the user database
	cmd  *exec.Cmd
	proc *procgroup.Group
}

// startScript runs as root in the new mount namespace: $D is the test
// directory, $R the unpacked packages, $LISTEN_PORT the port (the
// Debian files sourced set PORT).
const startScript = `set -e
mount -t overlay overlay -o "lowerdir=$R/usr:/usr" /usr
mount -t overlay overlay -o "lowerdir=$D/etc:$R/etc:/etc,upperdir=$D/upper/etc,workdir=$D/work/etc" /etc
mount -t overlay overlay -o "lowerdir=/run,upperdir=$D/upper/run,workdir=$D/work/run" /run
mkdir -p /run/courier/authdaemon
umask 077
: > /etc/courier/userdb
makeuserdb
umask 022
# authdaemond ends with its parent, the couriertcpd this shell becomes.
setpriv --pdeathsig TERM /usr/lib/courier/courier-authlib/authdaemond &
while [ ! -S /run/courier/authdaemon/socket ]; do sleep 0.02; done
set -a
. /etc/courier/imapd
. /etc/courier/imapd-ssl
IMAP_TLS=1
TLS_CERTFILE=/etc/courier/imapd.pem
TLS_CACHEFILE=
set +a
exec couriertcpd -address=127.0.0.1 -maxprocs=$MAXDAEMONS -maxperip=$MAXPERIP $TCPDOPTS \
	$LISTEN_PORT $COURIERTLS -server -tcpd /usr/lib/courier/courier/imaplogin /usr/bin/imapd $MAILDIRPATH
`

// Start starts Courier-IMAP and waits until it greets; t.Cleanup stops
// every process it started and removes its directory. It skips the test
// when not run as root (a mount namespace needs it).
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("couriertest: Courier-IMAP needs root here: its paths are compiled in, so it runs in a private mount namespace (run the tests as root, as `make test` in CI does)")
	}
	root, err := Binaries()
	if err != nil {
		t.Fatalf("couriertest: %v", err)
	}
	dir, err := os.MkdirTemp("", "couriertest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Maildirs are reached as "nobody".
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir}
	for _, d := range []string{"etc/courier", "upper/etc", "upper/run", "work/etc", "work/run", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cert := hostile.NewCert(t, hostile.CertOptions{})
	s.Fingerprint, s.Pool = cert.Fingerprint, cert.Pool
	keyDER, _ := x509.MarshalPKCS8PrivateKey(cert.TLS.PrivateKey)
	pemFile := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, c := range cert.TLS.Certificate {
		pemFile = append(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	files := map[string]string{
		"imapd.pem": string(pemFile),
		"authdaemonrc": "authmodulelist=\"authuserdb\"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n" +
			"DEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, "etc/courier", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.IMAPS = l.Addr().String()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	s.cmd = exec.Command("/bin/sh", "-c", startScript)
	s.cmd.Dir = dir // nothing lands in the caller's working directory
	s.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "D=" + dir, "R=" + root, "LISTEN_PORT=" + port}
	logf, err := os.Create(filepath.Join(dir, "courier.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Go makes the new namespace's mounts private (no propagation back).
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	began := time.Now()
	if s.proc, err = procgroup.Start(s.cmd, func() { logf.Close() }); err != nil {
		t.Fatalf("couriertest: start: %v", err)
	}
	t.Cleanup(s.stop)
	for {
		err := s.greets()
		if err == nil {
			break
		}
		select {
		case <-s.proc.Done():
			log, _ := os.ReadFile(filepath.Join(dir, "courier.log"))
			t.Fatalf("couriertest: Courier exited: %s", log)
		default:
		}
		if time.Since(began) > 20*time.Second {
			log, _ := os.ReadFile(filepath.Join(dir, "courier.log"))
			t.Fatalf("couriertest: no greeting on %s: %v\n%s", s.IMAPS, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("couriertest: Courier-IMAP on %s ready in %v", s.IMAPS, time.Since(began).Round(time.Millisecond))
	return s
}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: s.Pool, ServerName: "localhost"}
}

func (s *Server) greets() error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", s.IMAPS, s.tlsConfig())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil {
		return err
	}
	if string(buf) != "* OK " {
		return fmt.Errorf("greeting %q", buf)
	}
	return nil
}

// stop ends the shell (by then couriertcpd), authdaemond and every
// connection's couriertls and imapd: they all share one process group.
func (s *Server) stop() { s.proc.Stop() }

// inside runs script with sh in the server's mount namespace, as root.
func (s *Server) inside(script string, env ...string) ([]byte, error) {
	cmd := exec.Command("nsenter", "--mount=/proc/"+strconv.Itoa(s.proc.Pid())+"/ns/mnt", "--", "/bin/sh", "-c", script)
	cmd.Dir = s.Dir
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	return cmd.CombinedOutput()
}

// AddUser adds login with password to Courier's user database (with
// Courier's userdb, userdbpw and makeuserdb) and makes its maildir, with
// INBOX.Sent, owned by "nobody". Safe for concurrent use.
func (s *Server) AddUser(t testing.TB, login, password string) {
	t.Helper()
	if strings.ContainsAny(login, "/ \t\n|") || strings.ContainsAny(password, "\n") {
		t.Fatalf("couriertest: login %q or its password cannot go in a userdb", login)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	home := filepath.Join(s.Dir, "mail", login)
	const script = `set -e
maildirmake.courier "$HOME_DIR/Maildir"
maildirmake.courier -f Sent "$HOME_DIR/Maildir"
chown -R ` + "65534:65534" + ` "$HOME_DIR"
userdb "$LOGIN" set uid=$MAIL_UID gid=$MAIL_GID home="$HOME_DIR" mail="$HOME_DIR/Maildir"
printf '%s\n' "$PASSWORD" | userdbpw -md5 | userdb "$LOGIN" set systempw
makeuserdb
`
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := s.inside(script, "HOME_DIR="+home, "LOGIN="+login, "PASSWORD="+password,
		"MAIL_UID="+strconv.Itoa(mailUID), "MAIL_GID="+strconv.Itoa(mailGID))
	if err != nil {
		t.Fatalf("couriertest: add user %s: %v: %s", login, err, out)
	}
}

// Append logs in as login and appends msg to folder ("INBOX",
// "INBOX.Sent").
func (s *Server) Append(t testing.TB, login, password, folder string, msg []byte, date time.Time) {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: s.tlsConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(login, password).Wait(); err != nil {
		t.Fatalf("couriertest: login: %v", err)
	}
	cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Time: date})
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("couriertest: append to %s: %v", folder, err)
	}
	c.Logout().Wait()
}
