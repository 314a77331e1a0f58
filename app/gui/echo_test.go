//go:build linux

package gui

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/keychain/keyringtest"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestStatusShowsNoEchoedPassword: the engine runs an account whose IMAP
// server echoes the password; the status window (with "Details for IT"
// open) shows what went wrong and no form of the password.
func TestStatusShowsNoEchoedPassword(t *testing.T) {
	stop, err := keyringtest.Start()
	if err != nil {
		t.Fatalf("a private keychain: %v (make test installs dbus and gnome-keyring)", err)
	}
	t.Cleanup(stop)
	p := testrig.StartPlatform(t)
	const email = "alice@acme.test"
	for i, pw := range []string{`Echo"Pa\ss-1234`, "Echo-pässwörd-1234"} {
		for _, mode := range []hostile.EchoMode{hostile.EchoCommand, hostile.EchoPlain, hostile.EchoAfterLogin} {
			t.Run(fmt.Sprintf("%s/password%d", mode, i), func(t *testing.T) {
				home, err := config.OpenHome(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				id, token := p.Pair(t)
				kc, _ := keychain.New(home.Dir)
				t.Cleanup(func() { kc.Delete(keychain.DeviceTokenKey); kc.Delete(keychain.AccountKey(email)) })
				if err := kc.Set(keychain.DeviceTokenKey, token); err != nil {
					t.Fatal(err)
				}
				if err := kc.Set(keychain.AccountKey(email), pw); err != nil {
					t.Fatal(err)
				}
				is := hostile.StartEchoIMAP(t, email, pw, mode)
				ss := hostile.StartEchoSMTP(t, email, pw, mode, false)
				imapSrv, _ := config.ParseServer(is.Addr, config.SecurityTLS, 993)
				smtpSrv, _ := config.ParseServer(ss.Addr, config.SecurityTLS, 465)
				cfg := &config.Config{Platform: config.Platform{URL: p.URL(), DeviceID: id, CAFile: p.CAFile},
					Accounts: []config.Account{{Email: email, IMAP: imapSrv, SMTP: smtpSrv,
						Pins: []trust.Pin{{Server: is.Addr, Fingerprint: is.Cert.Fingerprint}, {Server: ss.Addr, Fingerprint: ss.Cert.Fingerprint}}}}}
				if err := home.Save(cfg); err != nil {
					t.Fatal(err)
				}
				r, err := connector.Open(home, connector.Options{KeepTrying: true})
				if err != nil {
					t.Fatal(err)
				}
				b := &runnerBackend{r: r}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); r.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done; r.Close() })

				deadline := time.Now().Add(30 * time.Second)
				var lastErr string
				for {
					st := b.Status()
					if len(st.Engine.Accounts) == 1 && st.Engine.Accounts[0].LastError != "" {
						lastErr = st.Engine.Accounts[0].LastError
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the engine reported no error within 30 s: %+v", st.Engine)
					}
					time.Sleep(20 * time.Millisecond)
				}
				if is.Echoed() == 0 {
					t.Fatal("the server never echoed the password: the test tests nothing")
				}
				u, _ := newUI(t, b, &fakeTray{})
				w := opened(u)
				waitFor(t, "the error's details", func() bool { return hasText(w, lastErr) })
				text := windowTexts(w)
				if leaks := hostile.Leaks(text, email, pw); len(leaks) > 0 {
					t.Fatalf("the window shows the password (%v):\n%s", leaks, text)
				}
				if hostile.Contains(text, token) {
					t.Fatalf("the window shows the device token:\n%s", text)
				}
			})
		}
	}
}
