package testrig

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

func TestMain(m *testing.M) { Main(m) }

// heartbeat sends one heartbeat with the rig's relay options.
func heartbeat(r *Rig) error {
	c, err := relay.New(r.RelayOptions())
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = c.Heartbeat(ctx, relay.Heartbeat{Version: version.Version, OS: runtime.GOOS,
		Accounts: []relay.AccountHeartbeat{{Email: r.Email, State: "idle"}}})
	return err
}

// login logs in to IMAP at the rig's IMAPAddr, as the connector would.
func login(t *testing.T, r *Rig) {
	t.Helper()
	c, err := imapclient.DialTLS(r.IMAPAddr(), &imapclient.Options{TLSConfig: r.Dovecot.TLSConfig()})
	if err != nil {
		t.Fatalf("dial IMAP at %s: %v", r.IMAPAddr(), err)
	}
	defer c.Close()
	if err := c.Login(r.Email, r.Password).Wait(); err != nil {
		t.Fatalf("login at %s: %v", r.IMAPAddr(), err)
	}
}

// smtpGreeting reads the submission server's greeting at SMTPAddr.
func smtpGreeting(t *testing.T, r *Rig) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.SMTPAddr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read the SMTP greeting at %s: %v", r.SMTPAddr(), err)
	}
	return line
}

func TestPairedHome(t *testing.T) {
	r := New(t, Options{})
	saved, err := r.Home.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(saved, r.Config) {
		t.Fatalf("config.json holds %+v, want %+v", saved, r.Config)
	}
	a := r.Config.Accounts[0]
	if a.Email != DefaultEmail || a.IMAP.Addr() != r.Dovecot.IMAPS || a.SMTP.Addr() != r.Dovecot.Submission ||
		r.Config.Platform.URL != r.Platform.URL() || r.Config.Platform.CAFile != r.Platform.CAFile {
		t.Fatalf("the config does not point at the servers: %+v", r.Config)
	}
	if tok, err := r.Keychain.Get(keychain.DeviceTokenKey); err != nil || tok != r.Token || tok == "" {
		t.Fatalf("device token in the keychain: %q, %v", tok, err)
	}
	if pw, err := r.Keychain.Get(keychain.AccountKey(r.Email)); err != nil || pw != DefaultPassword {
		t.Fatalf("password in the keychain: %v", err)
	}
	if d := r.Platform.Devices(); len(d) != 1 || d[0].ID != r.DeviceID {
		t.Fatalf("the platform's devices: %+v, want one with ID %q", d, r.DeviceID)
	}
	login(t, r)
	if g := smtpGreeting(t, r); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("SMTP greeting %q", g)
	}
	if err := heartbeat(r); err != nil {
		t.Fatalf("heartbeat with RelayOptions: %v", err)
	}
	if hb := r.Platform.Heartbeats(); len(hb) != 1 || hb[0].DeviceID != r.DeviceID {
		t.Fatalf("the platform's heartbeats: %+v", hb)
	}
	if r.IMAPProxy != nil || r.SMTPProxy != nil || r.PlatformProxy != nil {
		t.Fatal("proxies without Options.FaultProxies")
	}
}

// TestFaultProxies checks that with FaultProxies every connection the
// configured connector makes goes through a proxy: each counts it, and a
// proxy that refuses makes the connection fail.
func TestFaultProxies(t *testing.T) {
	r := New(t, Options{FaultProxies: true, Email: "bob@acme.test", Password: "another pass"})
	a := r.Config.Accounts[0]
	if a.IMAP.Addr() != r.IMAPProxy.Addr() || a.SMTP.Addr() != r.SMTPProxy.Addr() || r.Config.Platform.URL != r.PlatformURL() {
		t.Fatalf("the config does not point at the proxies: %+v", r.Config)
	}
	if r.PlatformURL() == r.Platform.URL() || !strings.HasSuffix(r.PlatformURL(), "/connector") {
		t.Fatalf("PlatformURL %q, platform %q", r.PlatformURL(), r.Platform.URL())
	}

	login(t, r)
	if n := r.IMAPProxy.Accepted(); n != 1 {
		t.Fatalf("the IMAP proxy accepted %d connections, want 1", n)
	}
	if g := smtpGreeting(t, r); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("SMTP greeting through the proxy: %q", g)
	}
	if n := r.SMTPProxy.Accepted(); n != 1 {
		t.Fatalf("the SMTP proxy accepted %d connections, want 1", n)
	}
	if err := heartbeat(r); err != nil {
		t.Fatalf("heartbeat through the proxy: %v", err)
	}
	if r.PlatformProxy.Accepted() == 0 || len(r.Platform.Heartbeats()) != 1 {
		t.Fatalf("the heartbeat did not go through the platform proxy (%d connections, %d heartbeats)",
			r.PlatformProxy.Accepted(), len(r.Platform.Heartbeats()))
	}

	r.PlatformProxy.Refuse(true)
	if err := heartbeat(r); err == nil {
		t.Fatal("a heartbeat succeeded with the platform proxy refusing connections")
	}
	r.IMAPProxy.Refuse(true)
	if _, err := imapclient.DialTLS(r.IMAPAddr(), &imapclient.Options{TLSConfig: r.Dovecot.TLSConfig()}); err == nil {
		t.Fatal("an IMAP dial succeeded with the IMAP proxy refusing connections")
	}
}

func TestUnpaired(t *testing.T) {
	r := New(t, Options{Unpaired: true})
	if r.Config != nil || r.Token != "" || r.DeviceID != "" {
		t.Fatalf("an unpaired rig has config %v, token %q, device %q", r.Config, r.Token, r.DeviceID)
	}
	if _, err := os.Stat(r.Home.ConfigPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("config.json of an unpaired home: %v", err)
	}
	if _, err := r.Keychain.Get(keychain.DeviceTokenKey); !errors.Is(err, keychain.ErrNotFound) {
		t.Fatalf("device token of an unpaired home: %v", err)
	}
	if len(r.Platform.Devices()) != 0 {
		t.Fatal("an unpaired rig paired a device")
	}
	login(t, r) // the Dovecot user exists all the same
	b, err := os.ReadFile(r.RootsFile(t))
	if err != nil || !strings.Contains(string(b), string(r.Platform.CAPEM())) || !strings.Contains(string(b), string(r.Dovecot.CAPEM)) {
		t.Fatalf("RootsFile does not hold both CAs (%v)", err)
	}
}

// TestCleanupDeletesSecrets checks that the home's keychain entries are
// gone after the test, whether New or the code under test made them.
func TestCleanupDeletesSecrets(t *testing.T) {
	var paired, unpaired *keychain.Store
	var email string
	t.Run("paired", func(t *testing.T) {
		r := New(t, Options{})
		paired, email = r.Keychain, r.Email
	})
	t.Run("unpaired", func(t *testing.T) {
		r := New(t, Options{Unpaired: true})
		unpaired = r.Keychain
		// What `inboxrelay pair` and `account add` would store.
		if err := r.Keychain.Set(keychain.DeviceTokenKey, "tok"); err != nil {
			t.Fatal(err)
		}
		if err := r.Keychain.Set(keychain.AccountKey(r.Email), "pw"); err != nil {
			t.Fatal(err)
		}
	})
	for _, kc := range []*keychain.Store{paired, unpaired} {
		for _, key := range []string{keychain.DeviceTokenKey, keychain.AccountKey(email)} {
			if _, err := kc.Get(key); !errors.Is(err, keychain.ErrNotFound) {
				t.Errorf("%s of %s after the test: %v, want not found", key, kc.Service(), err)
			}
		}
	}
}

// TestImportsNoEngine keeps the rig usable by the engine's and the
// connector's internal tests: an import of either would be a cycle there.
func TestImportsNoEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/sync/engine", "/sync/connector"} {
			if strings.HasSuffix(dep, banned) || strings.Contains(dep, banned+"/") {
				t.Errorf("testrig depends on %s", dep)
			}
		}
	}
}
