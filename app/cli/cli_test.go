package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

var binary string

// TestMain builds the real binary and gives it (and the test) a private
// keychain.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "inboxrelay-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "inboxrelay")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/inboxrelay/inboxrelay").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build inboxrelay: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// A policy file installed on this machine must not change these
	// tests: an empty one stands in (tests of the policy set their own).
	if os.Getenv(policy.EnvPath) == "" {
		os.Setenv(policy.EnvPath, os.DevNull)
	}
	code := testrig.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is a Dovecot and a platform the binary is pointed at, as a user
// would: by command-line flags only.
type world struct {
	t        *testing.T
	rig      *testrig.Rig
	dovecot  *dovecottest.Server
	platform *refplatform.Platform
	caFile   string
	home     string
	email    string
	password string
}

func newWorld(t *testing.T, opts dovecottest.Options) *world {
	t.Helper()
	r := testrig.New(t, testrig.Options{Dovecot: opts, Unpaired: true,
		Email: "bob@acme.test", Password: "s3cret-Pa55word-" + t.Name()})
	return &world{t: t, rig: r, dovecot: r.Dovecot, platform: r.Platform.Platform, caFile: r.Platform.CAFile,
		home: r.Home.Dir, email: r.Email, password: r.Password}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the binary with the world's home; stdin may be empty.
func (w *world) run(stdin string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--home", w.home}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("run %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func (w *world) mustRun(stdin string, args ...string) result {
	w.t.Helper()
	r := w.run(stdin, args...)
	if r.code != 0 {
		w.t.Fatalf("inboxrelay %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func (w *world) pair() {
	w.t.Helper()
	w.mustRun("", "pair", "--platform", w.platform.URL(), "--code", w.platform.NewPairingCode(), "--ca-file", w.caFile)
}

func (w *world) addAccount(extra ...string) result {
	w.t.Helper()
	args := append([]string{"account", "add", "--email", w.email,
		"--imap", w.dovecot.IMAPS, "--smtp", w.dovecot.Submission, "--smtp-security", "starttls",
		"--password-stdin"}, extra...)
	return w.run(w.password+"\n", args...)
}

func message(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: customer%d@client.test\r\nTo: bob@acme.test\r\nSubject: Question %d\r\nMessage-ID: <q%d@client.test>\r\n\r\n", i, i, i)
	for b.Len() < size {
		fmt.Fprintf(&b, "Body of question %d, padded to size.\r\n", i)
	}
	return b.Bytes()
}

func keyOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkAllStoredOnce fails unless the platform holds each of want exactly
// once, byte for byte.
func (w *world) checkAllStoredOnce(want [][]byte) {
	w.t.Helper()
	got := map[string]refplatform.Message{}
	for _, m := range w.platform.Messages() {
		got[m.Key] = m
	}
	if len(got) != len(want) {
		w.t.Fatalf("the platform holds %d messages, want %d", len(got), len(want))
	}
	for _, b := range want {
		m, ok := got[keyOf(b)]
		if !ok {
			w.t.Fatalf("a message of %d bytes never reached the platform", len(b))
		}
		f, err := m.Open()
		if err != nil {
			w.t.Fatal(err)
		}
		stored, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(stored, b) {
			w.t.Fatalf("UID %d: stored bytes differ", m.UID)
		}
	}
}

// checkNoSecretOnDisk fails if the password or the device token appears
// in any file under the home.
func (w *world) checkNoSecretOnDisk() {
	w.t.Helper()
	kc, err := keychain.New(w.home)
	if err != nil {
		w.t.Fatal(err)
	}
	token, err := kc.Get(keychain.DeviceTokenKey)
	if err != nil {
		w.t.Fatalf("the device token is not in the keychain: %v", err)
	}
	secrets := []string{w.password, token}
	filepath.WalkDir(w.home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				w.t.Errorf("a secret is written in %s", path)
			}
		}
		return nil
	})
}

func TestPairAddSyncStatus(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	var want [][]byte
	for i := 0; i < 30; i++ {
		folder := "INBOX"
		if i%3 == 0 {
			folder = "Sent"
		}
		msg := message(i, 500+i*300)
		w.dovecot.Append(t, w.email, folder, msg, time.Now())
		want = append(want, msg)
	}
	w.pair()
	r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint)
	if r.code != 0 {
		t.Fatalf("account add: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `Sent "Sent"`) {
		t.Errorf("account add does not say which Sent folder it found: %s", r.stdout)
	}
	w.mustRun("", "sync", "--once")
	w.checkAllStoredOnce(want)

	r = w.mustRun("", "status", "--json")
	var snap struct {
		Running  bool
		Accounts []struct {
			Email, State     string
			Relayed, Backlog int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if snap.Running || len(snap.Accounts) != 1 || snap.Accounts[0].Relayed != 30 || snap.Accounts[0].Backlog != 0 || snap.Accounts[0].State != "up to date" {
		t.Fatalf("status %+v, want one account up to date with 30 relayed, not running", snap)
	}
	if r := w.mustRun("", "status"); !strings.Contains(r.stdout, w.email+": up to date") {
		t.Errorf("status text: %s", r.stdout)
	}
	_, imapPort, _ := strings.Cut(w.dovecot.IMAPS, ":")
	if r := w.mustRun("", "account", "list", "--json"); !strings.Contains(r.stdout, `"email": "`+w.email) || !strings.Contains(r.stdout, `"port": `+imapPort) {
		t.Errorf("account list --json: %s", r.stdout)
	}
	w.checkNoSecretOnDisk()
}

func TestSystemRootsViaSSLCertFile(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	// No pin: the server's CA is trusted as a system root would be.
	t.Setenv("SSL_CERT_FILE", w.dovecot.CAFile)
	if r := w.addAccount(); r.code != 0 {
		t.Fatalf("account add with SSL_CERT_FILE: %d %s", r.code, r.stderr)
	}
}

func TestWrongPasswordStoresNothing(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	good := w.password
	w.password = "wrong-password-123"
	r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint)
	w.password = good
	if r.code != 1 || !strings.Contains(r.stderr, "refused the password") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("account add with a wrong password: exit %d, stderr %q; want 1 and one line saying the password was refused", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "wrong-password-123") {
		t.Errorf("the password appears in the error: %s", r.stderr)
	}
	if r := w.mustRun("", "account", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("an account was stored: %s", r.stdout)
	}
	kc, _ := keychain.New(w.home)
	if _, err := kc.Get(keychain.AccountKey(w.email)); !errors.Is(err, keychain.ErrNotFound) {
		t.Errorf("the keychain holds a password after a failed add: %v", err)
	}
}

func TestSelfSignedRefusedThenPinned(t *testing.T) {
	w := newWorld(t, dovecottest.Options{SelfSigned: true})
	w.pair()
	r := w.addAccount()
	if r.code != 1 || !strings.Contains(r.stderr, w.dovecot.Fingerprint) || !strings.Contains(r.stderr, "--trust-fingerprint") {
		t.Fatalf("self-signed without a pin: exit %d, stderr %q; want the fingerprint and how to pin it", r.code, r.stderr)
	}
	// Pinned as openssl prints it: upper case with colons.
	var colons []string
	fp := strings.ToUpper(w.dovecot.Fingerprint)
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, fp[i:i+2])
	}
	if r := w.addAccount("--trust-fingerprint", strings.Join(colons, ":")); r.code != 0 {
		t.Fatalf("pinned: exit %d %s", r.code, r.stderr)
	}
	msg := message(1, 1000)
	w.dovecot.Append(t, w.email, "INBOX", msg, time.Now())
	w.mustRun("", "sync", "--once")
	w.checkAllStoredOnce([][]byte{msg})
}

func TestBadPairingCode(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	r := w.run("", "pair", "--platform", w.platform.URL(), "--code", "NOT-A-CODE", "--ca-file", w.caFile)
	if r.code != 1 || !strings.Contains(r.stderr, "pairing code is wrong") {
		t.Fatalf("bad code: exit %d stderr %q", r.code, r.stderr)
	}
	if r := w.run("", "sync", "--once"); r.code != 1 || !strings.Contains(r.stderr, "not paired") {
		t.Fatalf("sync unpaired: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestRevokedTokenSaysPairAgain(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	w.platform.RevokeAll()
	w.dovecot.Append(t, w.email, "INBOX", message(1, 500), time.Now())
	r := w.run("", "sync", "--once")
	if r.code != 1 || !strings.Contains(r.stderr, "pair it again") {
		t.Fatalf("revoked: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestKillMidSyncLosesNothing kills `run` with SIGKILL at several moments of
// a backfill and checks that the next start relays every message, each
// stored once.
func TestKillMidSyncLosesNothing(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	var want [][]byte
	for i := 0; i < 200; i++ {
		msg := message(i, 2000+i*50)
		w.dovecot.Append(t, w.email, "INBOX", msg, time.Now())
		want = append(want, msg)
	}
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, at := range []int{1, 40, 120} {
		cmd := exec.Command(binary, "--home", w.home, "run")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := w.platform.Wait(ctx, func() bool { return len(w.platform.Messages()) >= at })
		cancel()
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if err != nil {
			t.Fatalf("never reached %d stored before the kill: %v\n%s", at, err, errb.String())
		}
		t.Logf("killed with %d of %d stored", len(w.platform.Messages()), len(want))
	}
	w.mustRun("", "sync", "--once")
	w.checkAllStoredOnce(want)
}

func TestOneProcessPerHomeAndCleanStop(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cmd := exec.Command(binary, "--home", w.home, "run")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.mustRun("", "status").stdout, "up to date") {
		if time.Now().After(deadline) {
			t.Fatalf("run never got up to date:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := w.run("", "sync", "--once"); r.code != 1 || !strings.Contains(r.stderr, "already running") {
		t.Fatalf("second process: exit %d stderr %q", r.code, r.stderr)
	}
	if r := w.mustRun("", "status"); !strings.Contains(r.stdout, "Inbox Relay running") {
		t.Errorf("status does not say it runs: %s", r.stdout)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run exited with %v after SIGTERM:\n%s", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10 s of SIGTERM")
	}
	t.Logf("stopped in %v", time.Since(start))
}

func TestNoKeychainFailsClosed(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint)
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "secret service") {
		t.Fatalf("no keychain: exit %d stderr %q; want a clear keychain error", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(w.home, "config.json")); bytes.Contains(b, []byte(w.email)) {
		t.Errorf("the account was stored without a keychain")
	}
}

func TestDemoRelaysSampleMailbox(t *testing.T) {
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--home", home, "demo", "--duration", "6s", "--new-mail-every", "500ms").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	s := string(out)
	// The sample mailbox holds 46 inbox and 15 sent messages; new mail
	// keeps arriving while the demo runs.
	// The sample mailbox holds 15 sent messages, and the demo's reply
	// makes 16.
	if strings.Count(s, "relayed inbox") < 47 || strings.Count(s, "relayed sent") != 16 || !strings.Contains(s, "outbox: the reply was sent (SMTP 250)") || !strings.Contains(s, "stopped; the platform stored") {
		t.Fatalf("demo output:\n%s", s)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("the demo wrote into the user's home: %v", entries)
	}
}

func TestOutboxThroughRealSubmission(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	raw := []byte("From: bob@acme.test\r\nTo: customer@client.test\r\nSubject: Re: your question\r\n\r\nHere is the answer.\r\n")
	id := w.platform.Enqueue(refplatform.OutboxItem{Account: w.email, Raw: raw, From: w.email, To: []string{"customer@client.test"}})
	w.mustRun("", "sync", "--once")
	w.mustRun("", "sync", "--once") // a second run sends nothing again
	if n := len(w.dovecot.Delivered()); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
	res := w.platform.Results()[id]
	if len(res) != 1 || res[0].State != "sent" || res[0].SentUID == 0 {
		t.Fatalf("results %+v, want one sent", res)
	}
	if r := w.mustRun("", "status"); !strings.Contains(r.stdout, "outbox: 0 queued, 0 sending, 1 sent") {
		t.Errorf("status does not show the outbox: %s", r.stdout)
	}
	sentCopies := 0
	for _, m := range w.platform.Messages() {
		if m.Mailbox == "sent" && m.UID == res[0].SentUID {
			sentCopies++
		}
	}
	if sentCopies != 1 {
		t.Fatalf("the Sent copy reached the platform %d times, want once", sentCopies)
	}
}

func TestDiagnose(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := w.mustRun("", "diagnose", "--email", w.email, "--json")
	var rep struct {
		Schema, Status string
		Steps          []struct{ Target, Step, Status string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("diagnose --json: %v\n%s", err, r.stdout)
	}
	seen := map[string]bool{}
	for _, s := range rep.Steps {
		if s.Status != "ok" && s.Status != "warn" {
			t.Errorf("step %s/%s is %s", s.Target, s.Step, s.Status)
		}
		seen[s.Target+"/"+s.Step] = true
	}
	for _, want := range []string{"imap/dns", "imap/tcp", "imap/tls", "imap/greeting", "imap/login", "imap/folders", "smtp/login", "platform/pairing"} {
		if !seen[want] {
			t.Errorf("no %s step in %+v", want, rep.Steps)
		}
	}
	if rep.Schema != "inboxrelay.diagnose/1" || rep.Status == "fail" {
		t.Errorf("schema %q status %q", rep.Schema, rep.Status)
	}
	if strings.Contains(r.stdout, w.password) {
		t.Error("the report holds the password")
	}

	// Before an account exists, on a port where nothing listens: the TCP
	// step fails and says so; exit 1.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	r = w.run("pw\n", "diagnose", "--email", "new@acme.test", "--imap", closed, "--smtp", closed, "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(strings.ToLower(r.stdout), "refused") {
		t.Fatalf("diagnose on a closed port: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
