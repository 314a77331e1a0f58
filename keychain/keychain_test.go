//go:build linux

package keychain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dbus "github.com/godbus/dbus/v5"

	"github.com/inboxrelay/inboxrelay/keychain/keyringtest"
)

// helperEnv, when set, makes this test binary a helper subprocess (see
// TestHelperProcess) that runs against whatever bus its parent chose, so
// TestMain must not start the private keyring.
const helperEnv = "INBOXRELAY_KEYCHAIN_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run())
	}
	stop, err := keyringtest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// newStore returns a Store for a fresh home, so tests never share secrets.
func newStore(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := New(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustGet(t *testing.T, s *Store, key, want string) {
	t.Helper()
	got, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Get(%q) = %d bytes %.20q…, want %d bytes %.20q…", key, len(got), got, len(want), want)
	}
}

func mustNotFound(t *testing.T, s *Store, key string) {
	t.Helper()
	got, err := s.Get(key)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) || got != "" {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name, key, secret, replacement string
	}{
		{"device token", DeviceTokenKey, "tok_3f9a8b7c6d5e4f", "tok_rotated"},
		{"account password", AccountKey("Alice@Example.COM"), "correct horse battery staple", "hunter2"},
		{"unicode key and secret", AccountKey("Jörg@Exämple.de"), "pässwörd ✓ 密码", "ascii"},
		{"secret with newlines and quotes", "k", "line1\nline2\t'\"\\", "x"},
		{"largest secret", "big", strings.Repeat("s", MaxSecretLen), strings.Repeat("t", MaxSecretLen-1)},
		{"longest key", strings.Repeat("k", MaxKeyLen), "v", "w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.Set(tt.key, tt.secret); err != nil {
				t.Fatalf("Set: %v", err)
			}
			mustGet(t, s, tt.key, tt.secret)
			if err := s.Set(tt.key, tt.replacement); err != nil {
				t.Fatalf("Set replacement: %v", err)
			}
			mustGet(t, s, tt.key, tt.replacement)
			if err := s.Delete(tt.key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			mustNotFound(t, s, tt.key)
		})
	}
}

func TestNotFound(t *testing.T) {
	s := newStore(t)
	mustNotFound(t, s, DeviceTokenKey)
	// A secret under another key of the same Store is not a match.
	if err := s.Set(AccountKey("a@example.com"), "pw"); err != nil {
		t.Fatal(err)
	}
	mustNotFound(t, s, AccountKey("b@example.com"))
}

func TestDeleteAbsent(t *testing.T) {
	s := newStore(t)
	for i := range 2 {
		if err := s.Delete(DeviceTokenKey); err != nil {
			t.Fatalf("Delete #%d of an absent key: %v", i+1, err)
		}
	}
	if err := s.Set(DeviceTokenKey, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Delete(DeviceTokenKey); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	mustNotFound(t, s, DeviceTokenKey)
}

func TestHomesIsolated(t *testing.T) {
	homeA, homeB := t.TempDir(), t.TempDir()
	a, _ := New(homeA)
	b, _ := New(homeB)
	if a.Service() == b.Service() {
		t.Fatalf("two homes share service %q", a.Service())
	}
	key := AccountKey("same@example.com")
	if err := a.Set(key, "secret-of-a"); err != nil {
		t.Fatal(err)
	}
	mustNotFound(t, b, key)
	if err := b.Set(key, "secret-of-b"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, key, "secret-of-a")
	mustGet(t, b, key, "secret-of-b")
	if err := b.Delete(key); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, key, "secret-of-a")

	// The same home spelled differently is the same Store.
	again, _ := New(filepath.Join(homeA, "sub", "..") + "/")
	if again.Service() != a.Service() {
		t.Fatalf("Service() = %q for %s/sub/../, want %q", again.Service(), homeA, a.Service())
	}
	mustGet(t, again, key, "secret-of-a")
}

func TestService(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := New("home")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(filepath.Join(dir, "home")))
	if want := "inboxrelay/" + hex.EncodeToString(sum[:8]); s.Service() != want {
		t.Fatalf("Service() = %q, want %q", s.Service(), want)
	}
	if _, err := New(""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New(\"\") error = %v, want ErrInvalid", err)
	}
}

func TestAccountKey(t *testing.T) {
	tests := []struct{ email, want string }{
		{"alice@example.com", "account:alice@example.com"},
		{"Alice@Example.COM", "account:alice@example.com"},
		{"JÖRG@exämple.de", "account:jörg@exämple.de"},
	}
	for _, tt := range tests {
		if got := AccountKey(tt.email); got != tt.want {
			t.Errorf("AccountKey(%q) = %q, want %q", tt.email, got, tt.want)
		}
	}
}

// secretMarker is in every secret the failure tests try to store, so they
// can check it never reaches an error message.
const secretMarker = "S3CRET-MARKER-do-not-print"

func TestInvalidArguments(t *testing.T) {
	s := newStore(t)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"set empty key", func() error { return s.Set("", secretMarker) }, "empty key"},
		{"get empty key", func() error { _, err := s.Get(""); return err }, "empty key"},
		{"delete empty key", func() error { return s.Delete("") }, "empty key"},
		{"set key too long", func() error { return s.Set(strings.Repeat("k", MaxKeyLen+1), secretMarker) }, "more than 256"},
		{"set key not UTF-8", func() error { return s.Set("account:\xff", secretMarker) }, "not valid UTF-8"},
		{"get key with NUL", func() error { _, err := s.Get("a\x00b"); return err }, "not valid UTF-8"},
		{"set secret too big", func() error { return s.Set("big", secretMarker+strings.Repeat("x", MaxSecretLen)) }, "more than the 2000"},
		{"set empty secret", func() error { return s.Set("empty", "") }, "empty secret"},
		{"zero Store", func() error { var z Store; return z.Set("k", secretMarker) }, "not created with New"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secretMarker) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
	// Nothing rejected was stored.
	mustNotFound(t, s, "big")
	mustNotFound(t, s, "empty")
}

func TestRedact(t *testing.T) {
	echo := fmt.Errorf("keychain: set %q: %w", "k", unavailable("backend said: bad value %q", secretMarker))
	err := redact(echo, secretMarker)
	if strings.Contains(err.Error(), secretMarker) {
		t.Fatalf("redacted error %q contains the secret", err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redacted error %v no longer wraps ErrUnavailable", err)
	}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), secretMarker) {
			t.Fatalf("an error wrapped by the redacted one contains the secret: %q", e)
		}
	}
	if clean := errors.New("nothing to hide"); redact(clean, secretMarker) != clean {
		t.Fatal("redact replaced an error that did not contain the secret")
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("account:user%d@example.com", i)
			secret := fmt.Sprintf("secret-%d", i)
			if err := s.Set(key, secret); err != nil {
				errs <- err
				return
			}
			got, err := s.Get(key)
			if err != nil || got != secret {
				errs <- fmt.Errorf("Get(%q) = %q, %v; want %q", key, got, err, secret)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDefaultTimeoutMessage(t *testing.T) {
	s := newStore(t)
	want := "the keychain did not answer within 10s; unlock it (it may be waiting for a password prompt) and try again"
	if err := s.timeoutError(); err.Error() != want || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("timeout error = %q, want %q wrapping ErrUnavailable", err, want)
	}
}

// TestTimeout freezes the real gnome-keyring-daemon with SIGSTOP: it keeps
// owning org.freedesktop.secrets on the bus but never answers, which is
// what a keyring waiting for an unlock prompt looks like to us.
func TestTimeout(t *testing.T) {
	conn, err := dbus.Connect(os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, "org.freedesktop.secrets").Store(&pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(pid), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(int(pid), syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	const timeout = 300 * time.Millisecond
	s := newStore(t, WithTimeout(timeout))
	want := "did not answer within 300ms; unlock it (it may be waiting for a password prompt) and try again"
	calls := []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, err := s.Get(DeviceTokenKey); return err }},
		// The Get above is still pending: these wait for it and time out too.
		{"set", func() error { return s.Set(DeviceTokenKey, secretMarker) }},
		{"delete", func() error { return s.Delete(DeviceTokenKey) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		elapsed := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s error = %v, want ErrUnavailable saying %q", c.name, err, want)
		}
		if strings.Contains(err.Error(), secretMarker) {
			t.Fatalf("%s error %q contains the secret", c.name, err)
		}
		if elapsed < timeout || elapsed > timeout+2*time.Second {
			t.Fatalf("%s returned after %v, want about %v", c.name, elapsed, timeout)
		}
	}

	// Once the keychain answers again, the abandoned call finishes and the
	// Store works without being recreated.
	resume()
	if err := s.Set(DeviceTokenKey, "after"); err != nil {
		t.Fatalf("Set after the keychain came back: %v", err)
	}
	mustGet(t, s, DeviceTokenKey, "after")
}

// helperReport is what TestHelperProcess prints for its parent.
type helperReport struct {
	Results []helperResult
	BusEnv  *string // DBUS_SESSION_BUS_ADDRESS after the calls, nil if unset
}

type helperResult struct {
	Op          string
	Err         string
	Unavailable bool
	NotFound    bool
}

const reportPrefix = "HELPER-REPORT: "

// TestHelperProcess is not a test: TestNoKeychainFailsClosed runs the test
// binary again with helperEnv set, so the calls below use a fresh godbus
// session connection on the bus the parent chose (godbus caches one per
// process).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper for TestNoKeychainFailsClosed; runs only as its subprocess")
	}
	var rep helperReport
	record := func(op string, err error) {
		r := helperResult{Op: op, Unavailable: errors.Is(err, ErrUnavailable), NotFound: errors.Is(err, ErrNotFound)}
		if err != nil {
			r.Err = err.Error()
		}
		rep.Results = append(rep.Results, r)
	}
	if mode == "silent-then-real" {
		// A session bus that accepts connections and never answers (a
		// frozen dbus-daemon): the first call fails in time, and calls on
		// the real bus that follows do not wait for it.
		sock := filepath.Join(t.TempDir(), "silent-bus")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close() // held open, never answered
			}
		}()
		os.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock)
		silent, _ := New(t.TempDir(), WithTimeout(2*time.Second))
		_, err = silent.Get(DeviceTokenKey)
		record("get on the silent bus", err)
		stop, err := keyringtest.Start() // a real bus and keyring, in DBUS_SESSION_BUS_ADDRESS
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	if mode == "locked" {
		stop, err := keyringtest.Start()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		lockLogin(t)
	}
	s, err := New(t.TempDir(), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	record("set", s.Set(DeviceTokenKey, secretMarker))
	_, err = s.Get(DeviceTokenKey)
	record("get", err)
	record("delete", s.Delete(DeviceTokenKey))
	if v, ok := os.LookupEnv("DBUS_SESSION_BUS_ADDRESS"); ok {
		rep.BusEnv = &v
	}
	b, _ := json.Marshal(rep)
	fmt.Printf("\n%s%s\n", reportPrefix, b)
}

// lockLogin locks the private keyring's login collection, as a screen lock
// or a fresh login without PAM unlocking would.
func lockLogin(t *testing.T) {
	t.Helper()
	conn, err := dbus.Connect(os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	login := dbus.ObjectPath("/org/freedesktop/secrets/collection/login")
	err = conn.Object("org.freedesktop.secrets", "/org/freedesktop/secrets").
		Call("org.freedesktop.Secret.Service.Lock", 0, []dbus.ObjectPath{login}).Store(&locked, &prompt)
	if err != nil || len(locked) != 1 || prompt != "/" {
		t.Fatalf("lock login collection: locked %v, prompt %v, %v", locked, prompt, err)
	}
}

// runHelper runs TestHelperProcess in mode with DBUS_SESSION_BUS_ADDRESS set
// to busAddr, or unset when busAddr is empty.
func runHelper(t *testing.T, mode, busAddr string) helperReport {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=60s", "-test.v")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"="+mode)
	if busAddr != "" {
		cmd.Env = append(cmd.Env, "DBUS_SESSION_BUS_ADDRESS="+busAddr)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", mode, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), reportPrefix); ok {
			var rep helperReport
			if err := json.Unmarshal([]byte(line), &rep); err != nil {
				t.Fatalf("helper %s report %q: %v", mode, line, err)
			}
			return rep
		}
	}
	t.Fatalf("helper %s printed no report:\n%s", mode, out)
	return helperReport{}
}

// TestNoKeychainFailsClosed checks that without a usable keychain every call
// fails with ErrUnavailable and a message saying what to do, and that
// nothing falls back to storing the secret elsewhere.
func TestNoKeychainFailsClosed(t *testing.T) {
	bareBus, stopBus, err := keyringtest.StartBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopBus)

	tests := []struct {
		name, mode, bus string
		skip            string
		want            []string
	}{
		{
			name: "bus socket missing", mode: "call",
			bus:  "unix:path=" + filepath.Join(t.TempDir(), "missing-bus"),
			want: []string{"cannot connect to the D-Bus session bus", "no such file or directory", "gnome-keyring"},
		},
		{
			name: "no session bus at all", mode: "call",
			skip: userBusSkip(),
			want: []string{"no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set", "dbus-run-session", "gnome-keyring"},
		},
		{
			name: "session bus without Secret Service", mode: "call", bus: bareBus,
			want: []string{msgNoSecretService},
		},
		{
			name: "locked keyring", mode: "locked",
			want: []string{"login keyring is locked", "unlock"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			rep := runHelper(t, tt.mode, tt.bus)
			if len(rep.Results) != 3 {
				t.Fatalf("helper returned %d results, want 3: %+v", len(rep.Results), rep)
			}
			for _, r := range rep.Results {
				if !r.Unavailable || r.NotFound {
					t.Errorf("%s: error %q; want it to wrap ErrUnavailable only", r.Op, r.Err)
				}
				for _, w := range tt.want {
					if !strings.Contains(r.Err, w) {
						t.Errorf("%s: error %q does not say %q", r.Op, r.Err, w)
					}
				}
				if strings.Contains(r.Err, secretMarker) {
					t.Errorf("%s: error %q contains the secret", r.Op, r.Err)
				}
			}
			if tt.bus == "" && tt.mode == "call" && rep.BusEnv != nil {
				// godbus sets it after autolaunching dbus-launch, which
				// would have left a dbus-daemon running.
				t.Errorf("DBUS_SESSION_BUS_ADDRESS became %q: a session bus was autolaunched", *rep.BusEnv)
			}
		})
	}
}

// userBusSkip explains why the no-bus case cannot run on a machine where
// godbus would find the user's bus in /run/user/UID.
func userBusSkip() string {
	u, err := user.Current()
	if err != nil {
		return "cannot tell the current user: " + err.Error()
	}
	for _, f := range []string{"bus", "dbus-session"} {
		p := filepath.Join("/run/user", u.Uid, f)
		if _, err := os.Stat(p); err == nil {
			return p + " exists, so godbus would use that bus"
		}
	}
	return ""
}

// TestSilentBusHoldsUpNoOtherKeychain: a session bus that accepts the
// connection and never answers makes a call fail within its timeout,
// saying so, and leaves nothing pending that would make later calls on
// another bus wait and time out too.
func TestSilentBusHoldsUpNoOtherKeychain(t *testing.T) {
	rep := runHelper(t, "silent-then-real", "")
	if len(rep.Results) != 4 {
		t.Fatalf("helper results %+v", rep.Results)
	}
	first := rep.Results[0]
	if !first.Unavailable || !strings.Contains(first.Err, "did not answer within 1s") {
		t.Fatalf("the silent bus: %+v; want unavailable, saying the bus did not answer", first)
	}
	for _, r := range rep.Results[1:] {
		if r.Err != "" {
			t.Fatalf("%s on the real bus after the silent one: %s", r.Op, r.Err)
		}
	}
}
