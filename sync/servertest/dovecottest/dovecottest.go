// Package dovecottest starts a private Dovecot (Debian's dovecot-imapd and
// dovecot-submissiond 2.3) for tests, so the engine is tested against a real
// IMAP server rather than a fake.
//
// Each Server lives in its own temporary directory with its own
// configuration, sockets, logs, mail and users, and listens on free loopback
// ports. Nothing under /etc/dovecot is read and the system service is never
// touched, so several Servers coexist in one test process.
//
// The listeners are on 127.0.0.2, not 127.0.0.1: Dovecot treats a connection
// whose remote and local addresses are equal as secure and would then accept
// LOGIN before STARTTLS. A client dialing 127.0.0.2 leaves from 127.0.0.1, so
// Dovecot sees an ordinary remote client and enforces TLS as in production.
//
// Dovecot refuses to give mail access to UID 0. When the tests run as root
// the whole server (master and every service) runs as the unprivileged
// system user "nobody", which owns the temporary directory; otherwise it runs
// as the current user. The configuration is the same in both cases.
package dovecottest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// listenHost is the loopback address every listener binds; see the package
// comment for why it is not 127.0.0.1.
const listenHost = "127.0.0.2"

// Options changes the server Start builds. The zero value is a server with
// the default namespace, a \Sent "Sent" folder and IDLE.
type Options struct {
	// Namespace is the prefix of the personal namespace. "" gives no prefix
	// and "/" as separator; "INBOX." nests every folder under INBOX with "."
	// as separator (Courier style), so Sent is "INBOX.Sent".
	Namespace string
	// NoSpecialUse leaves the Sent folder without the \Sent SPECIAL-USE
	// attribute (RFC 6154).
	NoSpecialUse bool
	// NoIDLE removes IDLE from the advertised capabilities. Dovecot still
	// answers the command: only the advertisement is gone.
	NoIDLE bool
	// SelfSigned makes the server certificate self-signed instead of issued
	// by the test CA in Server.CAPEM, so verification against CAPEM fails
	// and only Server.Fingerprint identifies the server.
	SelfSigned bool
	// MaxUserIPConnections is Dovecot's mail_max_userip_connections, the
	// number of IMAP sessions one user may have from one address. 0 keeps
	// Dovecot's default of 10.
	MaxUserIPConnections int
}

// Server is a running private Dovecot started by Start. Its exported fields
// are set by Start and never change, Restart included. Its methods are safe
// for concurrent use; they report failures through the testing.TB they are
// given and must be called from the test's goroutines like any t.Fatal.
type Server struct {
	// IMAPS is host:port of the implicit-TLS IMAP listener (RFC 8314).
	IMAPS string
	// IMAP is host:port of the plaintext IMAP listener. It offers STARTTLS
	// and refuses LOGIN and AUTHENTICATE before it (LOGINDISABLED,
	// PRIVACYREQUIRED).
	IMAP string
	// Submission is host:port of Dovecot's submission service (RFC 6409,
	// STARTTLS, AUTH after TLS only). It relays every accepted message to an
	// SMTP sink in this process; see Delivered.
	Submission string
	// CAPEM is the PEM of the test CA. Unless Options.SelfSigned, it issued
	// the server certificate: use it for a cert pool or SSL_CERT_FILE.
	CAPEM []byte
	// CAFile is the path of a file holding CAPEM.
	CAFile string
	// CertPEM is the PEM of the server (leaf) certificate.
	CertPEM []byte
	// Fingerprint is the lowercase hex SHA-256 of the server certificate's
	// DER, the value a user would pin.
	Fingerprint string
	// Dir is the server's private directory, removed when the test ends.
	Dir string

	opts    Options
	account account
	bin     binaries
	sink    *sink
	ports   [3]int // imap, imaps, submission

	mu      sync.Mutex
	users   map[string]string // email -> password
	folders []folderUse       // extra special-use folders, see CreateFolder
	proc    *process          // nil when stopped
	frozen  []int             // imap processes stopped by FreezeSessions
	// thawAtEnd is set once a cleanup that thaws frozen sessions is registered.
	thawAtEnd bool
}

type folderUse struct{ name, use string }

type binaries struct{ dovecot, doveadm string }

// process is one run of the Dovecot master, in its own process group so that
// it and all its children are signalled together.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the master has been waited for
	err  error         // the master's exit status, valid after done
}

// Start starts a private Dovecot as described in the package comment,
// waits until it answers on its IMAPS, IMAP and submission ports and returns
// it. It registers t.Cleanup to stop it, to dump the last log lines when the
// test failed, and to remove Dir. It fails the test when dovecot is not
// installed or does not start.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	began := time.Now()
	bin, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	acct, err := currentAccount()
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	s := &Server{opts: opts, account: acct, bin: bin, users: map[string]string{}}

	// Not t.TempDir(): its parent is private to the test process's user,
	// which "nobody" cannot traverse, and its long name can push socket
	// paths past the 108-byte limit of sun_path.
	dir, err := os.MkdirTemp("", "dovecottest-")
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s.Dir = dir
	if err := s.prepareDir(opts); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}

	s.sink, err = startSink()
	if err != nil {
		t.Fatalf("dovecottest: start SMTP sink: %v", err)
	}
	t.Cleanup(s.sink.close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecottest: last lines of %s:\n%s", s.logPath(), s.logTail(50))
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("dovecottest: stop: %v", err)
		}
	})

	// The ports are chosen by binding :0 and closing, so another process
	// can take one before Dovecot binds it: try again with new ports.
	for attempt := 1; ; attempt++ {
		if s.ports, err = freePorts(); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		s.IMAP = net.JoinHostPort(listenHost, strconv.Itoa(s.ports[0]))
		s.IMAPS = net.JoinHostPort(listenHost, strconv.Itoa(s.ports[1]))
		s.Submission = net.JoinHostPort(listenHost, strconv.Itoa(s.ports[2]))
		if err = s.writeConfig(); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
		err = s.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			t.Fatalf("dovecottest: start dovecot: %v", err) // the cleanup dumps the log
		}
	}
	t.Logf("dovecottest: dovecot ready in %v on imaps %s, imap %s, submission %s (dir %s)",
		time.Since(began).Round(time.Millisecond), s.IMAPS, s.IMAP, s.Submission, s.Dir)
	return s
}

// Stop stops Dovecot as a server going down would: every session ends (the
// imap processes get SIGTERM and say BYE) and nothing listens on the ports
// until Restart, which finds the users and mail as they were. It returns once
// every Dovecot process of this Server has exited. Stopping a stopped Server
// does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("dovecottest: stop: %v", err)
	}
}

// Restart stops Dovecot if it runs and starts it again on the same ports with
// the same users and mail, returning when it answers again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("dovecottest: stop: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("dovecottest: restart dovecot: %v", err) // the cleanup dumps the log
	}
}

var errAddrInUse = errors.New("address already in use")

// startedGroups records every master's process group, for the tests.
var startedGroups struct {
	sync.Mutex
	ids []int
}

// start runs the master in the foreground and waits until it is ready.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	stderr, err := os.OpenFile(filepath.Join(s.Dir, "dovecot.stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	// A master killed without its cleanup leaves master.pid behind; a new
	// process could by chance reuse that PID and make Dovecot refuse to start.
	_ = os.Remove(filepath.Join(s.Dir, "run", "master.pid"))

	cmd := exec.Command(s.bin.dovecot, "-F", "-c", s.configPath())
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the test binary dies without its cleanups (a panic in
		// another goroutine, a -timeout), the master shuts Dovecot down.
		Pdeathsig:  syscall.SIGTERM,
		Credential: s.account.credential,
	}
	// Pdeathsig fires when the thread that forked exits, not the process: the
	// forking goroutine keeps its thread locked for as long as the master runs.
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Unlock before leaving: a goroutine that exits locked ends its
		// thread, and with it every Pdeathsig child that thread forked
		// before, such as a keyringtest daemon.
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return err
	}
	startedGroups.Lock()
	startedGroups.ids = append(startedGroups.ids, cmd.Process.Pid)
	startedGroups.Unlock()
	s.proc = p

	if err := s.waitReady(p, 10*time.Second); err != nil {
		s.proc = nil
		_ = killGroup(p, 0)
		stderr, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.stderr"))
		if bytes.Contains(append(stderr, s.logBytes()...), []byte("Address already in use")) {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	return nil
}

// stop shuts Dovecot down; see killGroup. It returns once every process of
// the group is gone.
func (s *Server) stop() error {
	s.mu.Lock()
	// A stopped process would only die by the SIGKILL after the grace time.
	s.thawLocked()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return killGroup(p, 5*time.Second)
}

// killGroup stops the master and every process it started (its process
// group), SIGKILLing what is left after grace.
//
// A SIGTERM to the master alone makes it poll for its children with sleeps of
// a second or more, and a SIGTERM to the whole group races with the master,
// which restarts the services that die before it handles its own signal
// (the auth process then lives until a 5 s timeout). So the master is frozen
// (SIGSTOP) first, the others get SIGTERM, which makes imap processes send
// "* BYE Server shutting down" as at any shutdown, and the master, with
// nothing left but its pid file and sockets, gets SIGKILL. Start removes the
// stale pid file and Dovecot replaces stale sockets.
func killGroup(p *process, grace time.Duration) error {
	master := p.cmd.Process.Pid
	_ = syscall.Kill(master, syscall.SIGSTOP)
	_ = syscall.Kill(-master, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for groupAlive(master, master) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-master, syscall.SIGKILL)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	deadline = time.Now().Add(5 * time.Second)
	for groupAlive(master, 0) {
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot processes of group %d still alive after SIGKILL", master)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// groupAlive reports whether a process other than except and other than a
// zombie is in process group pgid. Zombies count as gone: once the master
// exits its children are reparented, and reaping them is their new parent's
// business.
func groupAlive(pgid, except int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			return true
		}
	}
	return false
}

func findBinaries() (binaries, error) {
	var b binaries
	for _, c := range []struct {
		name string
		dst  *string
	}{{"dovecot", &b.dovecot}, {"doveadm", &b.doveadm}} {
		p, err := exec.LookPath(c.name)
		if err != nil {
			// /usr/sbin is often not in a normal user's PATH.
			for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
				if _, serr := os.Stat(filepath.Join(dir, c.name)); serr == nil {
					p, err = filepath.Join(dir, c.name), nil
					break
				}
			}
		}
		if err != nil {
			return b, fmt.Errorf("%s not found: run `make test`, which installs dovecot-imapd", c.name)
		}
		*c.dst = p
	}
	return b, nil
}

// freePorts returns three distinct free TCP ports on listenHost.
func freePorts() ([3]int, error) {
	var ports [3]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
		if err != nil {
			return ports, fmt.Errorf("pick a free port on %s: %w", listenHost, err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
