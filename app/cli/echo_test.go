package cli_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestEchoedPasswordGoesNowhere: the account's IMAP and SMTP servers echo
// its password in every form, at login and after it. A sync with an
// outbox item to send writes no form of it, nor the device token, into
// any file of the home (status.json, the log, the settings), the output,
// the heartbeats or the outbox results sent to the platform.
func TestEchoedPasswordGoesNowhere(t *testing.T) {
	for i, pw := range []string{`Echo"Pa\ss-1234`, "Echo-pässwörd-1234"} {
		for _, mode := range hostile.EchoModes {
			t.Run(fmt.Sprintf("%s/password%d", mode, i), func(t *testing.T) {
				w := newWorld(t, dovecottest.Options{})
				w.pair()
				is := hostile.StartEchoIMAP(t, w.email, pw, mode)
				ss := hostile.StartEchoSMTP(t, w.email, pw, mode, false)
				home := config.Home{Dir: w.home}
				cfg, err := home.Load()
				if err != nil {
					t.Fatal(err)
				}
				imapSrv, _ := config.ParseServer(is.Addr, config.SecurityTLS, 993)
				smtpSrv, _ := config.ParseServer(ss.Addr, config.SecurityTLS, 465)
				cfg.Accounts = []config.Account{{Email: w.email, IMAP: imapSrv, SMTP: smtpSrv,
					Pins: []trust.Pin{{Server: is.Addr, Fingerprint: is.Cert.Fingerprint}, {Server: ss.Addr, Fingerprint: ss.Cert.Fingerprint}}}}
				if err := home.Save(cfg); err != nil {
					t.Fatal(err)
				}
				kc, _ := keychain.New(w.home)
				if err := kc.Set(keychain.AccountKey(w.email), pw); err != nil {
					t.Fatal(err)
				}
				token, err := kc.Get(keychain.DeviceTokenKey)
				if err != nil {
					t.Fatal(err)
				}
				if mode == hostile.EchoAfterLogin {
					// The SMTP server echoes in its refusal of the message,
					// which goes back to the platform as the item's result.
					// (A refused SMTP login is retried with backoff for
					// minutes by sync --once: the smtpsend and doctor tests
					// cover that echo.)
					w.platform.Enqueue(refplatform.OutboxItem{Account: w.email, From: w.email, To: []string{"customer@client.test"},
						Raw: []byte("From: " + w.email + "\r\nTo: customer@client.test\r\nSubject: Re\r\n\r\nHello.\r\n")})
				}

				began := time.Now()
				r := w.run("", "sync", "--once")
				t.Logf("sync --once: exit %d after %v", r.code, time.Since(began))
				st := w.run("", "status")
				stj := w.run("", "status", "--json")
				if is.Echoed() == 0 {
					t.Fatal("the IMAP server never echoed the password: the test tests nothing")
				}
				check := func(where, text string) {
					t.Helper()
					if leaks := hostile.Leaks(text, w.email, pw); len(leaks) > 0 {
						t.Errorf("%s holds the password (%v):\n%s", where, leaks, text)
					}
					if hostile.Contains(text, token) {
						t.Errorf("%s holds the device token", where)
					}
				}
				check("sync's output", r.stdout+r.stderr)
				check("status", st.stdout+st.stderr+stj.stdout)
				filepath.WalkDir(w.home, func(p string, d fs.DirEntry, err error) error {
					if err == nil && !d.IsDir() {
						b, _ := os.ReadFile(p)
						check(p, string(b))
					}
					return nil
				})
				hb, _ := json.Marshal(w.platform.Heartbeats())
				check("the heartbeats", string(hb))
				res, _ := json.Marshal(w.platform.Results())
				check("the outbox results", string(res))
				if !hostile.Contains(string(hb), w.email) {
					t.Errorf("no heartbeat reported the account: %s", hb)
				}
				if mode == hostile.EchoAfterLogin && (ss.Echoed() == 0 || !hostile.Contains(string(res), `"failed"`)) {
					t.Errorf("the outbox item was not refused by the echoing SMTP server: %s", res)
				}
			})
		}
	}
}
