//go:build linux

package keyringtest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	dbus "github.com/godbus/dbus/v5"
)

// readyTimeout bounds how long Start waits for each daemon to come up.
const readyTimeout = 15 * time.Second

// busConfig is a session bus configuration with no <servicedir>: nothing
// can be D-Bus-activated on it, so a missing Secret Service stays missing
// instead of starting a system-wide gnome-keyring-daemon with the real
// user's data directories.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

var (
	activeMu sync.Mutex
	active   bool
)

// Start launches a private D-Bus session bus (dbus-daemon --session with its
// own configuration and socket in a temporary directory) and
// gnome-keyring-daemon (--foreground --unlock --components=secrets, a random
// password on stdin) with fresh HOME and XDG_* directories in that temporary
// directory. It sets DBUS_SESSION_BUS_ADDRESS in this process's environment,
// so go-keyring and every child process started with the inherited
// environment use the private Secret Service, and returns once the login
// collection exists and is unlocked.
//
// stop kills both daemons, waits for them, restores DBUS_SESSION_BUS_ADDRESS
// and removes the temporary directory. It is idempotent and safe to call
// from several goroutines; call it before the process exits (TestMain:
// code := m.Run(); stop(); os.Exit(code)). If the process dies without
// calling it, the daemons get SIGKILL with their parent (Pdeathsig) and only
// the temporary directory stays behind.
//
// Preconditions: call Start before anything in the process has connected to
// the session bus (godbus caches its shared session connection, so a
// connection made earlier keeps talking to the previous bus), and call it
// at most once at a time per process; a second concurrent Start fails. XDG_*
// variables of this process are left alone, so unrelated code under test
// keeps its own directories. Works as root or as a normal user, with or
// without an existing session bus (the existing bus and keyring are never
// contacted).
func Start() (stop func(), err error) {
	activeMu.Lock()
	defer activeMu.Unlock()
	if active {
		return nil, errors.New("keyringtest: Start called while a previous keyring is still running; call its stop function first")
	}
	gkd, err := lookPath("gnome-keyring-daemon", "gnome-keyring")
	if err != nil {
		return nil, err
	}
	b, err := startBus()
	if err != nil {
		return nil, err
	}
	k, err := startKeyring(gkd, b)
	if err != nil {
		b.stop()
		return nil, err
	}

	prev, hadPrev := os.LookupEnv("DBUS_SESSION_BUS_ADDRESS")
	os.Setenv("DBUS_SESSION_BUS_ADDRESS", b.addr)
	active = true

	var once sync.Once
	return func() {
		once.Do(func() {
			k.kill()
			b.stop()
			activeMu.Lock()
			defer activeMu.Unlock()
			if hadPrev {
				os.Setenv("DBUS_SESSION_BUS_ADDRESS", prev)
			} else {
				os.Unsetenv("DBUS_SESSION_BUS_ADDRESS")
			}
			active = false
		})
	}, nil
}

// StartBus launches a private D-Bus session bus with nothing on it and no
// service activation, for tests of what happens without a Secret Service.
// It does not change this process's environment: pass addr to a child
// process as DBUS_SESSION_BUS_ADDRESS. stop kills the bus and removes its
// temporary directory; it is idempotent. Safe to call concurrently and
// alongside Start.
func StartBus() (addr string, stop func(), err error) {
	b, err := startBus()
	if err != nil {
		return "", nil, err
	}
	return b.addr, b.stop, nil
}

// bus is a running private dbus-daemon and the temporary directory that
// holds its socket and the keyring daemon's directories.
type bus struct {
	dir  string
	addr string
	d    *daemon
	once sync.Once
}

func (b *bus) stop() {
	b.once.Do(func() {
		b.d.kill()
		os.RemoveAll(b.dir)
	})
}

func startBus() (*bus, error) {
	exe, err := lookPath("dbus-daemon", "dbus-daemon")
	if err != nil {
		return nil, err
	}
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	b := &bus{dir: dir}
	conf := filepath.Join(dir, "bus.conf")
	sock := filepath.Join(dir, "bus")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, sock)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("keyringtest: write bus config: %w", err)
	}

	cmd := exec.Command(exe, "--config-file="+conf, "--nofork", "--nopidfile", "--nosyslog", "--print-address=1")
	cmd.Env = privateEnv(dir, "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("keyringtest: dbus-daemon: %w", err)
	}
	d, err := startDaemon(cmd)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b.d = d

	// --print-address writes the address once the socket is listening:
	// that line is the readiness signal.
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
		io.Copy(io.Discard, out)
	}()
	select {
	case b.addr = <-line:
		if b.addr == "" {
			b.stop()
			return nil, d.failure("dbus-daemon exited before listening")
		}
	case <-time.After(readyTimeout):
		b.stop()
		return nil, d.failure(fmt.Sprintf("dbus-daemon did not start listening within %s", readyTimeout))
	}
	return b, nil
}

func startKeyring(exe string, b *bus) (*daemon, error) {
	var pw [16]byte
	rand.Read(pw[:])
	cmd := exec.Command(exe, "--foreground", "--unlock", "--components=secrets")
	cmd.Env = privateEnv(b.dir, b.addr)
	// The daemon reads the login keyring password until EOF.
	cmd.Stdin = strings.NewReader(hex.EncodeToString(pw[:]))
	// It prints GNOME_KEYRING_CONTROL=... on stdout; nobody needs it.
	cmd.Stdout = io.Discard
	d, err := startDaemon(cmd)
	if err != nil {
		return nil, err
	}
	if err := waitSecretService(b.addr, d); err != nil {
		d.kill()
		return nil, err
	}
	return d, nil
}

// waitSecretService returns once org.freedesktop.secrets is owned on addr
// and its login collection exists and is unlocked: go-keyring writes there.
func waitSecretService(addr string, d *daemon) error {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return fmt.Errorf("keyringtest: connect to private bus %s: %w", addr, err)
	}
	defer conn.Close()
	login := conn.Object("org.freedesktop.secrets", "/org/freedesktop/secrets/collection/login")
	deadline := time.Now().Add(readyTimeout)
	for {
		var owned bool
		err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.secrets").Store(&owned)
		if err != nil {
			return fmt.Errorf("keyringtest: ask private bus for org.freedesktop.secrets: %w", err)
		}
		if owned {
			v, err := login.GetProperty("org.freedesktop.Secret.Collection.Locked")
			if locked, ok := v.Value().(bool); err == nil && ok && !locked {
				return nil
			}
		}
		select {
		case <-d.done:
			return d.failure("gnome-keyring-daemon exited before its login keyring was ready")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return d.failure(fmt.Sprintf("gnome-keyring-daemon did not provide an unlocked login keyring on the private bus within %s", readyTimeout))
		}
	}
}

// daemon is a started child process that is waited for exactly once.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed once the process has exited and been reaped
	once   sync.Once
}

func startDaemon(cmd *exec.Cmd) (*daemon, error) {
	d := &daemon{
		name:   filepath.Base(cmd.Path),
		cmd:    cmd,
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	cmd.Stderr = d.stderr
	// If the test binary dies without calling stop, take the daemon with it.
	// Pdeathsig follows the forking OS thread, not the process, and the Go
	// runtime ends a thread when a goroutine exits while locked to it (other
	// test harnesses lock threads): fork from a goroutine that keeps its
	// thread for as long as the daemon lives, so no one else can end it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("keyringtest: start %s: %w", d.name, err)
	}
	return d, nil
}

// kill stops the process and waits until it has been reaped, so no daemon
// and no zombie outlives stop.
func (d *daemon) kill() {
	d.once.Do(func() {
		d.cmd.Process.Kill()
		<-d.done
	})
}

func (d *daemon) failure(what string) error {
	msg := strings.TrimSpace(d.stderr.String())
	if msg == "" {
		return fmt.Errorf("keyringtest: %s (no output)", what)
	}
	return fmt.Errorf("keyringtest: %s: %s", what, msg)
}

// privateEnv is the whole environment of a daemon: nothing is inherited but
// PATH, so neither daemon can find the real session bus, display, keyring
// control socket or data directories.
func privateEnv(dir, busAddr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"),
		"LANG=C.UTF-8",
	}
	if busAddr != "" {
		env = append(env, "DBUS_SESSION_BUS_ADDRESS="+busAddr)
	}
	return env
}

// tempDir makes the private root with the directories privateEnv names.
// A unix socket path is limited to 107 bytes, so a long TMPDIR falls back
// to /tmp.
func tempDir() (string, error) {
	dir, err := os.MkdirTemp("", "keyringtest-")
	if err == nil && len(dir) > 80 {
		os.RemoveAll(dir)
		dir, err = os.MkdirTemp("/tmp", "keyringtest-")
	}
	if err != nil {
		return "", fmt.Errorf("keyringtest: make temporary directory: %w", err)
	}
	for _, sub := range []string{"home", "data", "config", "cache", "run"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("keyringtest: make temporary directory: %w", err)
		}
	}
	return dir, nil
}

func lookPath(exe, debPackage string) (string, error) {
	p, err := exec.LookPath(exe)
	if err != nil {
		return "", fmt.Errorf("keyringtest: %s not found: run `make test`, which installs it (Debian package %s)", exe, debPackage)
	}
	return p, nil
}

// lockedBuffer collects a daemon's stderr for error messages; os/exec
// writes it from its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the tail bounded: only the last few kilobytes explain a failure.
	if b.buf.Len() > 64<<10 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
