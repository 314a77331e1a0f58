// Package testrig is the one test rig the engine, CLI, connector, doctor and
// desktop tests share: a private keychain for the test process, a real
// Dovecot with a user, the reference platform over TLS with its CA in a
// file, a paired home, and optionally fault proxies (faultproxy) in front of
// IMAP, SMTP and the platform.
//
// A package's tests start the keychain once:
//
//	func TestMain(m *testing.M) { testrig.Main(m) }
//
// and each test builds what it needs:
//
//	r := testrig.New(t, testrig.Options{FaultProxies: true})
//	r.Append(t, "INBOX", msg, time.Now())
//	// run the engine on r.Home with r.Config, r.Keychain and r.RelayOptions()
//	r.IMAPProxy.Freeze()
//
// It imports neither sync/engine nor sync/connector, so the engine's own
// (internal) tests can use it.
package testrig

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/keychain/keyringtest"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/faultproxy"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Default account of a Rig, used when Options leave them empty.
const (
	DefaultEmail    = "alice@acme.test"
	DefaultPassword = "correct horse battery"
)

// DefaultBackfillDays is the home's backfill window (the user's setting)
// in the Config New writes.
const DefaultBackfillDays = 30

// Main is a TestMain for packages whose tests use the keychain (every
// package that uses New): it starts the process-wide private keychain
// (keyringtest), runs the tests, stops the keychain and exits with the
// tests' code.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has more to do before or after the tests:
// it starts the private keychain, runs m, stops the keychain and returns
// m's exit code. A keychain that cannot start is reported on standard
// error and returned as code 1, without running the tests.
func Run(m *testing.M) int {
	stop, err := keyringtest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrig: start a private keychain:", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// Platform is the reference platform served over TLS on 127.0.0.1, with
// its CA certificate written to a file.
type Platform struct {
	*refplatform.Platform
	// CAFile is a PEM file holding the platform's CA: give it to relay
	// (relay.Options.CAFile, config.Platform.CAFile, --ca-file).
	CAFile string
}

// StartPlatform starts a reference platform over TLS on 127.0.0.1 and a
// free port, writes its CA file, and closes the platform when the test
// ends.
func StartPlatform(t testing.TB) *Platform {
	t.Helper()
	p, err := refplatform.New(t.TempDir())
	if err != nil {
		t.Fatalf("testrig: %v", err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("testrig: start the platform: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	caFile := filepath.Join(t.TempDir(), "platform-ca.pem")
	if err := os.WriteFile(caFile, p.CAPEM(), 0o600); err != nil {
		t.Fatalf("testrig: %v", err)
	}
	return &Platform{Platform: p, CAFile: caFile}
}

// Pair pairs a new device with the platform, directly (not through any
// proxy), as `inboxrelay pair` would, and returns its ID and token.
func (p *Platform) Pair(t testing.TB) (deviceID, token string) {
	t.Helper()
	c, err := relay.New(relay.Options{BaseURL: p.URL(), CAFile: p.CAFile})
	if err != nil {
		t.Fatalf("testrig: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deviceID, token, err = c.Pair(ctx, p.NewPairingCode(), relay.Device{Name: "test", OS: "linux", Version: "test"})
	if err != nil {
		t.Fatalf("testrig: pair with the platform: %v", err)
	}
	return deviceID, token
}

// Options changes the rig New builds. The zero value is a Dovecot with the
// default options and user, a platform, and a home paired with it holding
// that one account, with no fault proxies.
type Options struct {
	// Dovecot is passed to dovecottest.Start.
	Dovecot dovecottest.Options
	// Email and Password are the Dovecot user's and the home's account;
	// empty means DefaultEmail and DefaultPassword.
	Email, Password string
	// Unpaired leaves the home empty: no config.json and no secrets, for
	// tests that pair and add the account themselves (CLI, desktop app).
	// The keychain entries those make for the home are still removed when
	// the test ends.
	Unpaired bool
	// FaultProxies puts a faultproxy in front of Dovecot's IMAPS and
	// submission ports and the platform; the Config, IMAPAddr, SMTPAddr and
	// PlatformURL then point at the proxies.
	FaultProxies bool
}

// Rig is what New started for one test. Its fields are set by New; the
// servers and proxies are stopped, the temporary directories removed and
// the home's keychain entries deleted when the test ends.
type Rig struct {
	// Dovecot is the mail server; Email holds its user.
	Dovecot *dovecottest.Server
	// Platform is the reference platform.
	Platform *Platform
	// Email and Password are the account's.
	Email, Password string
	// Home is the connector's home directory. Unless Options.Unpaired, its
	// config.json holds Config and the keychain (Keychain) holds the
	// device token and the account password.
	Home config.Home
	// Keychain is the home's keychain store.
	Keychain *keychain.Store
	// Config is the configuration of a paired home with the one account
	// (IMAPS, submission with STARTTLS, Dovecot's certificate pinned for
	// IMAPAddr and SMTPAddr, DefaultBackfillDays); nil when
	// Options.Unpaired. Tests may change it and call SaveConfig.
	Config *config.Config
	// DeviceID and Token are the paired device's; empty when
	// Options.Unpaired.
	DeviceID, Token string
	// IMAPProxy, SMTPProxy and PlatformProxy stand in front of Dovecot's
	// IMAPS, its submission port and the platform with
	// Options.FaultProxies; nil otherwise.
	IMAPProxy, SMTPProxy, PlatformProxy *faultproxy.Proxy
}

// New starts a Dovecot with one user, a platform and, as Options say, fault
// proxies and a paired home. Tests using it need the private keychain:
// their package's TestMain calls Main or Run.
func New(t testing.TB, opts Options) *Rig {
	t.Helper()
	r := &Rig{Email: opts.Email, Password: opts.Password}
	if r.Email == "" {
		r.Email = DefaultEmail
	}
	if r.Password == "" {
		r.Password = DefaultPassword
	}
	r.Dovecot = dovecottest.Start(t, opts.Dovecot)
	r.Dovecot.AddUser(t, r.Email, r.Password)
	r.Platform = StartPlatform(t)
	if opts.FaultProxies {
		r.IMAPProxy = faultproxy.Start(t, r.Dovecot.IMAPS)
		r.SMTPProxy = faultproxy.Start(t, r.Dovecot.Submission)
		u, err := url.Parse(r.Platform.URL())
		if err != nil {
			t.Fatalf("testrig: platform URL: %v", err)
		}
		r.PlatformProxy = faultproxy.Start(t, u.Host)
	}

	var err error
	if r.Home, err = config.OpenHome(t.TempDir()); err != nil {
		t.Fatalf("testrig: %v", err)
	}
	if r.Keychain, err = keychain.New(r.Home.Dir); err != nil {
		t.Fatalf("testrig: %v", err)
	}
	t.Cleanup(func() {
		_ = r.Keychain.Delete(keychain.AccountKey(r.Email))
		_ = r.Keychain.Delete(keychain.DeviceTokenKey)
	})
	if opts.Unpaired {
		return r
	}

	r.DeviceID, r.Token = r.Platform.Pair(t)
	if err := r.Keychain.Set(keychain.DeviceTokenKey, r.Token); err != nil {
		t.Fatalf("testrig: store the device token: %v", err)
	}
	if err := r.Keychain.Set(keychain.AccountKey(r.Email), r.Password); err != nil {
		t.Fatalf("testrig: store the account password: %v", err)
	}
	imapSrv, err := config.ParseServer(r.IMAPAddr(), config.SecurityTLS, 993)
	if err != nil {
		t.Fatalf("testrig: %v", err)
	}
	smtpSrv, err := config.ParseServer(r.SMTPAddr(), config.SecurityStartTLS, 587)
	if err != nil {
		t.Fatalf("testrig: %v", err)
	}
	acct := config.Account{Email: r.Email, IMAP: imapSrv, SMTP: smtpSrv}
	for _, srv := range []string{r.IMAPAddr(), r.SMTPAddr()} {
		if _, err := acct.AddPin(trust.Pin{Server: srv, Fingerprint: r.Dovecot.Fingerprint}); err != nil {
			t.Fatalf("testrig: pin %s: %v", srv, err)
		}
	}
	r.Config = &config.Config{
		Platform: config.Platform{URL: r.PlatformURL(), DeviceID: r.DeviceID, CAFile: r.Platform.CAFile},
		Accounts: []config.Account{acct},
		Settings: settings.Values{BackfillDays: settings.Int(DefaultBackfillDays)},
	}
	r.SaveConfig(t)
	return r
}

// IMAPAddr is the host:port of implicit-TLS IMAP the connector should use:
// the IMAP proxy's with Options.FaultProxies, else Dovecot's.
func (r *Rig) IMAPAddr() string {
	if r.IMAPProxy != nil {
		return r.IMAPProxy.Addr()
	}
	return r.Dovecot.IMAPS
}

// SMTPAddr is the host:port of submission (STARTTLS) the connector should
// use: the SMTP proxy's with Options.FaultProxies, else Dovecot's.
func (r *Rig) SMTPAddr() string {
	if r.SMTPProxy != nil {
		return r.SMTPProxy.Addr()
	}
	return r.Dovecot.Submission
}

// PlatformURL is the platform's base URL the connector should use: through
// the platform proxy with Options.FaultProxies, else the platform's own.
func (r *Rig) PlatformURL() string {
	if r.PlatformProxy != nil {
		return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(r.PlatformProxy.Port())) + refplatform.Prefix
	}
	return r.Platform.URL()
}

// RelayOptions returns the options of a platform client for the paired
// device: PlatformURL, the CA file and the token.
func (r *Rig) RelayOptions() relay.Options {
	return relay.Options{BaseURL: r.PlatformURL(), CAFile: r.Platform.CAFile, Token: r.Token}
}

// SaveConfig writes Config to the home's config.json.
func (r *Rig) SaveConfig(t testing.TB) {
	t.Helper()
	if r.Config == nil {
		t.Fatal("testrig: SaveConfig on an unpaired rig: set Config first")
	}
	if err := r.Home.Save(r.Config); err != nil {
		t.Fatalf("testrig: save config: %v", err)
	}
}

// Append stores msg in the account's folder on Dovecot (see
// dovecottest.Server.Append) and returns its UID.
func (r *Rig) Append(t testing.TB, folder string, msg []byte, date time.Time, flags ...string) uint32 {
	t.Helper()
	return r.Dovecot.Append(t, r.Email, folder, msg, date, flags...)
}

// WaitStored waits until the platform holds at least n messages, failing
// the test after within.
func (r *Rig) WaitStored(t testing.TB, n int, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := r.Platform.Wait(ctx, func() bool { return len(r.Platform.Messages()) >= n }); err != nil {
		t.Fatalf("the platform holds %d messages, want %d: %v", len(r.Platform.Messages()), n, err)
	}
}

// RootsFile writes a PEM file holding both the platform's and Dovecot's CA
// certificates, for a process that trusts one bundle (SSL_CERT_FILE), and
// returns its path.
func (r *Rig) RootsFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(p, append(append([]byte{}, r.Platform.CAPEM()...), r.Dovecot.CAPEM...), 0o600); err != nil {
		t.Fatalf("testrig: %v", err)
	}
	return p
}
