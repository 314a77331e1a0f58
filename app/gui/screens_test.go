package gui

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// screen is one screen of the app, set up on a fresh UI.
type screen struct {
	name  string
	st    Status
	tray  bool // a tray is there (else the window offers Quit)
	setup func(t *testing.T, u *UI, b *fakeBackend)
}

// screens are every screen of the app, in the states the issue names.
func screens() []screen {
	relayed := func(a *engine.AccountStatus) { a.LastRelayed = now.Add(-2 * time.Minute) }
	paused := with(running(engine.Paused, relayed), func(s *Status) { s.Paused = engine.PausedByUser })
	offline := with(running(engine.Offline, relayed, func(a *engine.AccountStatus) {
		a.LastError = "IMAP mail.acme.com:993: dial tcp 10.0.0.7:993: connect: network is unreachable"
	}), func(s *Status) { s.Engine.Platform.State = engine.PlatformUnreachable })
	refused := with(running(engine.UpToDate, relayed), func(s *Status) { s.Engine.Platform.State = engine.PlatformNeedsPairing })
	login := running(engine.NeedsLogin, relayed, func(a *engine.AccountStatus) {
		a.Backlog = 3
		a.LastError = "alice@acme.com: the mail server refused the login: [AUTHENTICATIONFAILED] Authentication failed."
		a.Outbox = engine.OutboxStatus{Queued: 2, Failed: 1, LastError: "the server refused the recipient bob@nowhere.test: 550 5.1.1 no such user"}
	})
	busy := running(engine.Syncing, func(a *engine.AccountStatus) { a.Backlog = 1204; a.RelayedToday = 310 })
	two := running(engine.UpToDate, relayed)
	two.Accounts = append(two.Accounts, bob)
	two.Engine.Accounts = append(two.Engine.Accounts, engine.AccountStatus{Email: bob.Email, State: engine.NeedsTrust, Relayed: 51, RelayedToday: 2})
	const oldFP = "ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03ef03"
	const newFP = "cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02cd02"
	trustSt := running(engine.NeedsTrust, relayed)
	pinned := alice
	pinned.Pins = []trust.Pin{{Server: "mail.acme.com:993", Fingerprint: oldFP, Certificate: &trust.CertInfo{Subject: "CN=mail.acme.com",
		Issuer: "CN=Acme internal CA", Names: []string{"mail.acme.com"}, NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(0, 0, -3)}}}
	trustSt.Accounts = []config.Account{pinned}
	locked := with(running(engine.UpToDate, relayed), func(s *Status) {
		s.Settings = settings.Resolve(settings.Layers{Locked: settings.Values{BackfillDays: settings.Int(90), LogLevel: settings.String("info")}})
		s.PolicyPath = "/etc/inboxrelay/policy.toml"
	})
	found := func(t *testing.T, u *UI, b *fakeBackend) {
		serial(func() {
			u.setup.email.SetText("alice@acme.com")
			u.setup.password.SetText("s3cret")
		})
		waitFor(t, "the lookup", func() bool { return u.setup.imap.Text != "" })
		tap(button(t, u.win, "Test connection"))
		waitFor(t, "the test", func() bool { return u.setup.tested != nil })
	}
	return []screen{
		{name: "welcome", st: Status{DeviceName: "alice-laptop"}, tray: true},
		{name: "add-mailbox", st: Status{Paired: true, PlatformURL: "https://app.example.com/connector"}, tray: true},
		{name: "add-mailbox-tested", st: Status{Paired: true, PlatformURL: "https://app.example.com/connector"}, tray: true, setup: found},
		{name: "add-mailbox-gmail", st: Status{Paired: true, PlatformURL: "https://app.example.com/connector"}, tray: true,
			setup: func(t *testing.T, u *UI, b *fakeBackend) {
				b.with(func() {
					b.findReply = autoconfig.Result{IMAP: config.Server{Host: "imap.gmail.com", Port: 993, Security: config.SecurityTLS},
						SMTP: config.Server{Host: "smtp.gmail.com", Port: 465, Security: config.SecurityTLS}, Source: "known provider"}
				})
				serial(func() { u.setup.email.SetText("alice@gmail.com") })
				waitFor(t, "the lookup", func() bool { return u.setup.imap.Text != "" })
			}},
		{name: "add-mailbox-manual", st: Status{Paired: true, PlatformURL: "https://app.example.com/connector"}, tray: true,
			setup: func(t *testing.T, u *UI, b *fakeBackend) {
				b.with(func() { b.findErr = autoconfig.ErrNotFound })
				serial(func() {
					u.setup.email.SetText("alice@example.com")
					u.setup.password.SetText("s3cret")
				})
				waitFor(t, "the lookup", func() bool { return u.setup.servers.shown })
				serial(func() { u.setup.imap.SetText("mail.example.com") })
			}},
		{name: "status-all-relayed", st: running(engine.UpToDate, relayed), tray: true},
		{name: "status-relaying", st: busy, tray: true},
		{name: "status-password", st: login, tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			serial(func() { u.view.detailsBox.Open(0) })
		}},
		{name: "status-offline", st: offline, tray: true},
		{name: "status-paused", st: paused, tray: true},
		{name: "status-platform-refuses", st: refused, tray: true},
		{name: "status-two-mailboxes", st: two, tray: true},
		{name: "status-no-tray", st: running(engine.UpToDate, relayed), tray: false},
		{name: "dialog-certificate-changed", st: trustSt, tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			b.with(func() {
				b.certErr = &trust.UntrustedError{Server: "mail.acme.com:993", Host: "mail.acme.com", Fingerprint: newFP}
			})
			tap(button(t, u.win, "Review certificate…"))
			waitFor(t, "the dialog", func() bool { return hasText(u.win, "CD:02") })
		}},
		{name: "dialog-password", st: login, tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			tap(button(t, u.win, "Enter password…"))
		}},
		{name: "dialog-pair-again", st: refused, tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			b.with(func() {
				b.platform = connector.PairOptions{URL: "https://app.example.com/connector", CAFile: "/etc/acme/ca.pem", Proxy: "http://proxy.acme.com:3128"}
			})
			tap(button(t, u.win, "Pair again…"))
		}},
		{name: "dialog-remove", st: running(engine.UpToDate, relayed), tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			tap(button(t, u.win, "Remove…"))
		}},
		{name: "dialog-about", st: running(engine.UpToDate, relayed), tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			tap(button(t, u.win, "About"))
		}},
		{name: "settings-locked", st: locked, tray: true, setup: func(t *testing.T, u *UI, b *fakeBackend) {
			serial(u.ShowSettings)
		}},
	}
}

// TestScreens renders every screen in the light and the dark theme and
// compares it with its reviewable image under testdata/screens (run with
// INBOXRELAY_UPDATE_SCREENS=1 to write them after a deliberate change,
// then look at each).
func TestScreens(t *testing.T) {
	update := os.Getenv("INBOXRELAY_UPDATE_SCREENS") != ""
	for _, sc := range screens() {
		for _, variant := range []string{"light", "dark"} {
			t.Run(sc.name+"-"+variant, func(t *testing.T) {
				b := newFake(sc.st)
				b.findReply = autoconfig.Result{IMAP: config.Server{Host: "imap.acme.com", Port: 993, Security: config.SecurityTLS},
					SMTP: config.Server{Host: "smtp.acme.com", Port: 587, Security: config.SecurityStartTLS}, Source: "DNS SRV"}
				var tray Tray
				if sc.tray {
					tray = &fakeTray{}
				}
				u, _ := newUI(t, b, tray, func(o *Options) {
					o.Autostart = fakeAutostart{}
					o.Metered = func() (bool, bool) { return false, false }
					o.SupportBundle = func(string) error { return nil }
				})
				serial(func() {
					u.showWindow() // the status view is built when the window opens
					if variant == "dark" {
						u.app.Settings().SetTheme(theme.DarkTheme())
					} else {
						u.app.Settings().SetTheme(theme.LightTheme())
					}
					u.win.Resize(fyne.NewSize(720, 600))
				})
				if sc.setup != nil {
					sc.setup(t, u, b)
				}
				time.Sleep(300 * time.Millisecond) // dialogs focus their field a moment after opening
				w := u.win
				serial(func() {
					if u.settings != nil {
						w = u.settings
						w.Resize(fyne.NewSize(600, 520))
					}
				})
				name := filepath.Join("screens", sc.name+"-"+variant+".png")
				serial(func() {
					capture := w.Canvas().Capture()
					if update {
						p := filepath.Join("testdata", name)
						if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
							t.Fatal(err)
						}
						f, err := os.Create(p)
						if err != nil {
							t.Fatal(err)
						}
						defer f.Close()
						if err := png.Encode(f, capture); err != nil {
							t.Fatal(err)
						}
						return
					}
					test.AssertImageMatches(t, name, capture)
				})
			})
		}
	}
}

type fakeAutostart struct{}

func (fakeAutostart) Enabled() bool         { return true }
func (fakeAutostart) SetEnabled(bool) error { return nil }
