package cli_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/proxytest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

// corp is a machine set up by IT: a Dovecot and a platform reachable only
// through a proxy (gates admit the proxy's address alone), a policy file
// naming them, and an empty home.
type corp struct {
	*world
	policyPath                       string
	platformGate, imapGate, smtpGate *proxytest.Gate
}

// newCorp writes a policy whose platform is behind a gate admitting only
// platformFrom and reached through platformProxy, and whose mail servers
// are behind gates admitting only mailFrom and reached through mailProxy;
// extra is appended to the file.
func newCorp(t *testing.T, platformFrom, mailFrom net.IP, platformProxy, mailProxy, extra string) *corp {
	t.Helper()
	login, err := policy.LoginName()
	if err != nil {
		t.Fatal(err)
	}
	// The account's address comes from the login name: {user}.
	r := testrig.New(t, testrig.Options{Unpaired: true, Email: login + "@acme.test", Password: "s3cret-Pa55word-" + t.Name()})
	w := &world{t: t, rig: r, dovecot: r.Dovecot, platform: r.Platform.Platform, caFile: r.Platform.CAFile,
		home: r.Home.Dir, email: r.Email, password: r.Password}
	c := &corp{world: w}
	u := strings.TrimPrefix(w.platform.URL(), "https://")
	hostport, path, _ := strings.Cut(u, "/")
	c.platformGate = proxytest.StartGate(t, "127.0.0.1", hostport, platformFrom)
	c.imapGate = proxytest.StartGate(t, "127.0.0.1", w.dovecot.IMAPS, mailFrom)
	c.smtpGate = proxytest.StartGate(t, "127.0.0.1", w.dovecot.Submission, mailFrom)
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	pol := fmt.Sprintf(`# written by %s
[platform]
url = "https://%s/%s"
pairing_code = %q
ca_file = %q
proxy = %q

[mail]
proxy = %q

[[account]]
email = "{user}@acme.test"
username = "{email}"
imap = "localhost:%s"
imap_security = "tls"
smtp = "localhost:%s"
smtp_security = "starttls"
trust_fingerprints = [%q]

[settings]
backfill_days = 3650
log_level = "debug"
locked = ["platform", "account", "backfill_days"]
%s`, t.Name(), c.platformGate.Addr, path, w.platform.NewPairingCode(), w.caFile, platformProxy, mailProxy,
		port(c.imapGate.Addr), port(c.smtpGate.Addr), w.dovecot.Fingerprint, extra)
	c.policyPath = filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(c.policyPath, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(policy.EnvPath, c.policyPath)
	return c
}

// noDirectTraffic fails if any gate saw a connection that did not come
// from the proxy.
func (c *corp) noDirectTraffic() {
	c.t.Helper()
	for name, g := range map[string]*proxytest.Gate{"platform": c.platformGate, "IMAP": c.imapGate, "SMTP": c.smtpGate} {
		if r := g.Refused(); len(r) > 0 {
			c.t.Errorf("the %s gate cut %d direct connections (from %v): something bypassed the proxy", name, len(r), r)
		}
	}
}

// startRun starts `inboxrelay run` as the user unit would; it is killed
// when the test ends.
func (c *corp) startRun() (*exec.Cmd, *bytes.Buffer) {
	c.t.Helper()
	cmd := exec.Command(binary, "--home", c.home, "run")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &errb
}

func stopRun(t *testing.T, cmd *exec.Cmd, errb *bytes.Buffer) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run exited with %v:\n%s", err, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not stop after SIGTERM:\n%s", errb.String())
	}
}

// The "done when", as a test: a policy with the platform, a
// pairing code, the account and a proxy; the password given once; `run`
// relays every message through the proxy, no other question asked, and the
// direct routes are refused all along.
func TestUnattendedEnrolmentThroughProxy(t *testing.T) {
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromHTTP, p.URL, p.URL, "")
	var want [][]byte
	for i := 0; i < 12; i++ {
		folder := "INBOX"
		if i%4 == 0 {
			folder = "Sent"
		}
		msg := message(i, 800+i*200)
		c.dovecot.Append(t, c.email, folder, msg, time.Now())
		want = append(want, msg)
	}

	// The one thing the user gives: the password, checked through the
	// proxy against the servers the policy names.
	r := c.mustRun(c.password+"\n", "account", "password", "--email", c.email, "--password-stdin")
	if !strings.Contains(r.stdout, "login ok") || !strings.Contains(r.stdout, "password of "+c.email+" stored") {
		t.Fatalf("account password: %s", r.stdout)
	}

	// A reply the platform wants sent: through the proxy to the
	// submission server, then filed in Sent (through the proxy too).
	reply := []byte("From: " + c.email + "\r\nTo: customer@client.test\r\nSubject: Re: Question 1\r\nMessage-ID: <reply1@acme.test>\r\n\r\nHere is the answer.\r\n")
	id := c.platform.Enqueue(refplatform.OutboxItem{Account: c.email, Raw: reply, From: c.email, To: []string{"customer@client.test"}})

	cmd, errb := c.startRun()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The inbox and sent mail, plus the reply's copy in Sent.
	if err := c.platform.Wait(ctx, func() bool { return len(c.platform.Messages()) >= len(want)+1 && len(c.platform.Results()[id]) > 0 }); err != nil {
		t.Fatalf("not relayed: %v\n%s", err, errb.String())
	}
	stopRun(t, cmd, errb)
	if res := c.platform.Results()[id]; len(res) != 1 || res[0].State != "sent" {
		t.Fatalf("outbox results %+v, want one sent", res)
	}
	if n := len(c.dovecot.Delivered()); n != 1 {
		t.Fatalf("the reply was delivered %d times, want once", n)
	}
	c.checkAllStoredOnce(append(want, sentCopy(t, c, reply)))
	if d := c.platform.Devices(); len(d) != 1 {
		t.Fatalf("%d devices paired, want 1", len(d))
	}
	tunnels := strings.Join(p.Tunnels(), " ")
	for _, g := range []*proxytest.Gate{c.platformGate, c.imapGate, c.smtpGate} {
		_, port, _ := net.SplitHostPort(g.Addr)
		if !strings.Contains(tunnels, ":"+port) {
			t.Errorf("no tunnel through the proxy to %s (tunnels: %s)", g.Addr, tunnels)
		}
	}
	c.noDirectTraffic()

	// A second start pairs no more: the code was used once.
	cmd, errb = c.startRun()
	c.dovecot.Append(t, c.email, "INBOX", message(99, 1000), time.Now())
	ctx2, cancel2 := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel2()
	if err := c.platform.Wait(ctx2, func() bool { return len(c.platform.Messages()) > len(want)+1 }); err != nil {
		t.Fatalf("the second run relays nothing: %v\n%s", err, errb.String())
	}
	stopRun(t, cmd, errb)
	if d := c.platform.Devices(); len(d) != 1 {
		t.Fatalf("%d devices after a restart, want 1", len(d))
	}
	for _, rej := range c.platform.Rejections() {
		t.Errorf("the platform refused a request: %+v", rej)
	}
	c.noDirectTraffic()
	c.checkNoSecretOnDisk()

	// Where everything came from.
	r = c.mustRun("", "policy", "--json")
	var rep struct {
		PolicyFile string `json:"policy_file"`
		Settings   []struct {
			Key, Value, Source, From string
			Locked                   bool
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("policy --json: %v\n%s", err, r.stdout)
	}
	got := map[string]string{}
	for _, s := range rep.Settings {
		got[s.Key] = fmt.Sprintf("%s|%s|%v", s.Source, s.Value, s.Locked)
	}
	for key, want := range map[string]string{
		"platform.url":       "policy_locked|https://" + c.platformGate.Addr,
		"platform.proxy":     "policy_locked|" + p.URL + "|true",
		"mail.proxy":         "policy_locked|" + p.URL,
		"account " + c.email: "policy_locked|IMAP localhost",
		"backfill_days":      "policy_locked|3650|true",
		"log_level":          "policy_default|debug|false",
		"relay_domains":      "default|",
		"platform.pairing":   "policy_default|paired as device",
	} {
		if !strings.HasPrefix(got[key], want) {
			t.Errorf("policy: %s = %q, want it to start with %q", key, got[key], want)
		}
	}
	if rep.PolicyFile != c.policyPath || strings.Contains(r.stdout, "pairing_code") {
		t.Errorf("policy file %q; the report must name it and never show the code", rep.PolicyFile)
	}
}

// sentCopy returns the copy of reply the platform stored from Sent (the
// engine files it with its own line ends): the one message the test did
// not write itself.
func sentCopy(t *testing.T, c *corp, reply []byte) []byte {
	t.Helper()
	for _, m := range c.platform.Messages() {
		if m.Mailbox != "sent" {
			continue
		}
		f, err := m.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if bytes.Contains(b, []byte("Message-ID: <reply1@acme.test>")) {
			return b
		}
	}
	t.Fatal("the reply's copy in Sent never reached the platform")
	return nil
}

// A pairing code is sent once: a second home with the same policy finds it
// used, says to ask IT, and never sends it again however often it starts.
func TestSpentPairingCodeIsNotSentAgain(t *testing.T) {
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromHTTP, p.URL, p.URL, "")
	c.mustRun(c.password+"\n", "account", "password", "--email", c.email, "--password-stdin")
	// Another machine used the code first.
	code := policyCode(t, c.policyPath)
	if _, _, err := relayPair(c.platform.URL(), c.caFile, code); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := c.run("", "run")
		if r.code == 0 || !strings.Contains(r.stderr, "refused the pairing code of the policy "+c.policyPath) || !strings.Contains(r.stderr, "ask IT for a new code") {
			t.Fatalf("run %d with a spent code: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	pairs := 0
	for _, rej := range c.platform.Rejections() {
		if strings.HasSuffix(rej.Path, "/v1/pair") {
			pairs++
		}
	}
	if pairs != 1 {
		t.Fatalf("the spent code was sent %d times, want once", pairs)
	}
	if r := c.mustRun("", "policy"); !strings.Contains(r.stdout, "refused the pairing code") {
		t.Errorf("policy does not say why it is not paired:\n%s", r.stdout)
	}
}

// relayPair pairs a device directly, as another machine would.
func relayPair(url, caFile, code string) (string, string, error) {
	c, err := relay.New(relay.Options{BaseURL: url, CAFile: caFile})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Pair(ctx, code, relay.Device{Name: "other", OS: "linux", Version: "test"})
}

func policyCode(t *testing.T, path string) string {
	t.Helper()
	p, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p.Platform.PairingCode
}

// IMAP and SMTP through a SOCKS5 proxy (Dante) while the platform is
// reached through an HTTP proxy: `sync --once` relays and sends.
func TestMailThroughSOCKS5(t *testing.T) {
	hp := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	sp := proxytest.StartSOCKS(t)
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromSOCKS, hp.URL, sp.URL, "")
	msg := message(1, 2000)
	c.dovecot.Append(t, c.email, "INBOX", msg, time.Now())
	c.mustRun(c.password+"\n", "account", "password", "--email", c.email, "--password-stdin")
	c.mustRun("", "sync", "--once")
	c.checkAllStoredOnce([][]byte{msg})
	c.noDirectTraffic()
	if c.imapGate.Passed() == 0 || c.smtpGate.Passed() == 0 {
		t.Fatalf("IMAP gate passed %d, SMTP gate %d", c.imapGate.Passed(), c.smtpGate.Passed())
	}
}

// What the policy locks, the command line refuses, naming the file.
func TestLockedSettingsAreRefused(t *testing.T) {
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromHTTP, p.URL, p.URL, "")
	for _, args := range [][]string{
		{"pair", "--platform", c.platform.URL(), "--code", c.platform.NewPairingCode(), "--ca-file", c.caFile},
		{"account", "add", "--email", "other@acme.test", "--imap", c.dovecot.IMAPS, "--smtp", c.dovecot.Submission, "--password-stdin"},
		// Refused before its servers are looked up (the domain has none).
		{"account", "add", "--email", "other@example.invalid", "--password-stdin"},
		{"account", "remove", c.email},
	} {
		r := c.run("pw\n", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "IT department's policy ("+c.policyPath+")") {
			t.Errorf("%v: exit %d, stderr %q; want a refusal naming the policy file", args, r.code, r.stderr)
		}
	}
	if r := c.mustRun("", "account", "list", "--json"); !strings.Contains(r.stdout, c.email) {
		t.Errorf("the policy's account is not listed: %s", r.stdout)
	}
	// The window the policy locks is the one listed, not the default.
	if r := c.mustRun("", "account", "list"); !strings.Contains(r.stdout, "backfill window: the last 3650 days for every account (set by IT's policy "+c.policyPath+")") {
		t.Errorf("account list does not give the policy's locked backfill window: %s", r.stdout)
	}
	if len(c.platform.Devices()) != 0 {
		t.Error("a refused pair paired")
	}
}

// A policy that cannot be used stops every command, naming its line.
func TestMalformedPolicyStops(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	path := filepath.Join(t.TempDir(), "policy.toml")
	os.WriteFile(path, []byte("[platform]\nurl = \"https://app.example.com\"\n\n[settings]\nlocked = [\"platfrom\"]\n"), 0o644)
	t.Setenv(policy.EnvPath, path)
	for _, args := range [][]string{{"status"}, {"run"}, {"account", "list"}} {
		r := w.run("", args...)
		if r.code != 1 || !strings.Contains(r.stderr, path+", line 5") || !strings.Contains(r.stderr, "platfrom") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 naming the file, line 5 and the bad name", args, r.code, r.stderr)
		}
	}
	if r := w.mustRun("", "version"); !strings.HasPrefix(r.stdout, "inboxrelay ") {
		t.Errorf("version: %q", r.stdout)
	}
}

// The support bundle says what support needs and nothing secret: no
// mailbox password, device token, proxy login, pairing code or message
// content, even with debug logs and a proxy that wants a login.
func TestSupportBundleHasNoSecret(t *testing.T) {
	const proxyUser, proxyPassword = "jdoe-proxy", "Pr0xy-Secret-0451"
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{User: proxyUser, Password: proxyPassword})
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromHTTP, p.URL, p.URL, "")
	code := policyCode(t, c.policyPath)
	marker := "BODY-MARKER-" + fmt.Sprint(time.Now().UnixNano())
	msg := []byte("From: customer@client.test\r\nTo: " + c.email + "\r\nSubject: Question\r\nMessage-ID: <m1@client.test>\r\n\r\n" + marker + "\r\n")
	c.dovecot.Append(t, c.email, "INBOX", msg, time.Now())

	c.mustRun(proxyPassword+"\n", "proxy", "login", "--username", proxyUser, "--password-stdin")
	c.mustRun(c.password+"\n", "account", "password", "--email", c.email, "--password-stdin")
	c.mustRun("", "sync", "--once")
	c.checkAllStoredOnce([][]byte{msg})
	c.noDirectTraffic()

	out := filepath.Join(t.TempDir(), "bundle.zip")
	r := c.mustRun("", "support-bundle", out)
	if !strings.Contains(r.stdout, "wrote "+out) {
		t.Fatalf("support-bundle: %s", r.stdout)
	}
	files := unzip(t, out)
	token := ""
	if kc := c.rig.Keychain; kc != nil {
		token, _ = kc.Get("device-token")
	}
	if token == "" {
		t.Fatal("no device token in the keychain after pairing")
	}
	secrets := map[string]string{"the mailbox password": c.password, "the device token": token, "the proxy's password": proxyPassword,
		"the pairing code": code, "the message body": marker}
	for name, data := range files {
		for what, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds %s", name, what)
			}
		}
	}
	// And it holds what support needs.
	for name, want := range map[string]string{
		"about.txt":     "Inbox Relay ",
		"settings.json": `"key": "platform.proxy"`,
		"config.json":   c.email,
		"policy.toml":   "pairing_code = \"(removed from the support bundle)\"",
		"status.json":   c.email,
		"diagnose-" + strings.ToLower(c.email) + ".json": `"step": "login"`,
		"logs/inboxrelay.log":                            "level=INFO msg=relaying",
	} {
		if !bytes.Contains(files[name], []byte(want)) {
			t.Errorf("%s does not hold %q:\n%s", name, want, files[name])
		}
	}
	var rep struct{ Status string }
	json.Unmarshal(files["diagnose-"+strings.ToLower(c.email)+".json"], &rep)
	if rep.Status == "fail" {
		t.Errorf("the bundle's connection check failed through the proxy:\n%s", files["diagnose-"+strings.ToLower(c.email)+".json"])
	}
}

func unzip(t *testing.T, path string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name] = b
	}
	return files
}

// The policy's ca_file is what makes the platform trusted (its CA is in
// no system store here); without it pairing fails on the certificate, and
// the code is not spent by that failure.
func TestPolicyCAFileForThePlatform(t *testing.T) {
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromHTTP, p.URL, p.URL, "")
	b, err := os.ReadFile(c.policyPath)
	if err != nil {
		t.Fatal(err)
	}
	without := regexp.MustCompile(`(?m)^ca_file = .*$`).ReplaceAll(b, nil)
	if bytes.Equal(without, b) {
		t.Fatal("the policy has no ca_file to remove")
	}
	os.WriteFile(c.policyPath, without, 0o644)
	r := c.run("", "run")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("run without the platform's CA: exit %d\n%s", r.code, r.stderr)
	}
	if len(c.platform.Devices()) != 0 {
		t.Fatal("paired with an untrusted platform")
	}
	os.WriteFile(c.policyPath, b, 0o644)
	c.mustRun(c.password+"\n", "account", "password", "--email", c.email, "--password-stdin")
	c.mustRun("", "sync", "--once")
	if len(c.platform.Devices()) != 1 {
		t.Fatalf("with the CA file: %d devices, want 1 (the code was not spent by the failure)", len(c.platform.Devices()))
	}
}

// A proxy login given when pairing goes to the keychain, never to
// config.json; the engine then reaches the platform through the proxy
// with it.
func TestPairProxyLoginGoesToTheKeychain(t *testing.T) {
	const user, password = "bob", "Pr0xy-Pa55-for-pairing"
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{User: user, Password: password})
	w := newWorld(t, dovecottest.Options{})
	w.mustRun("", "pair", "--platform", w.platform.URL(), "--code", w.platform.NewPairingCode(), "--ca-file", w.caFile,
		"--proxy", proxytest.ProxyURL(p.URL, user, password))
	cfg, err := os.ReadFile(filepath.Join(w.home, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte(password)) || !bytes.Contains(cfg, []byte(p.Addr)) {
		t.Fatalf("config.json holds the proxy's password, or not the proxy:\n%s", cfg)
	}
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	msg := message(1, 900)
	w.dovecot.Append(t, w.email, "INBOX", msg, time.Now())
	refusedBefore := p.Refusals()
	w.mustRun("", "sync", "--once")
	w.checkAllStoredOnce([][]byte{msg})
	if len(p.Tunnels()) < 2 || p.Refusals() != refusedBefore {
		t.Fatalf("tunnels %v, refusals %d: the engine did not go through the proxy with the stored login", p.Tunnels(), p.Refusals())
	}
	w.checkNoSecretOnDisk()
	filepath.WalkDir(w.home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(password)) {
				t.Errorf("%s holds the proxy's password", path)
			}
		}
		return nil
	})
}

// `proxy login` without --proxy stores the login of the proxy in use: with
// the policy's mail connections direct, that is the platform's proxy (not
// a proxy named "direct").
func TestProxyLoginWithDirectMail(t *testing.T) {
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	c := newCorp(t, proxytest.FromHTTP, proxytest.FromHTTP, p.URL, "direct", "")
	r := c.mustRun("Pr0xy-Pa55-direct-mail\n", "proxy", "login", "--username", "jdoe", "--password-stdin")
	if !strings.Contains(r.stdout, "login of jdoe for the proxy "+p.Addr+" stored") {
		t.Fatalf("proxy login stored it for another proxy than the platform's %s: %s", p.Addr, r.stdout)
	}
}

// IT reads the effective settings where no keychain runs (a shell over
// ssh): the platform's proxy is shown without asking the keychain for its
// login, which the report would not show anyway.
func TestPolicyReportWithoutKeychain(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	path := filepath.Join(t.TempDir(), "policy.toml")
	os.WriteFile(path, []byte("[platform]\nurl = \"https://app.example.com/connector\"\nproxy = \"http://proxy.corp.example:3128\"\n"), 0o644)
	t.Setenv(policy.EnvPath, path)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	r := w.run("", "policy")
	if r.code != 0 || !strings.Contains(r.stdout, "http://proxy.corp.example:3128") {
		t.Fatalf("policy without a keychain: exit %d\nstdout %s\nstderr %s\nwant the report with the policy's proxy", r.code, r.stdout, r.stderr)
	}
}
