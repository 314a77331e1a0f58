package gui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/inboxrelay/inboxrelay/app/autostart"
	"github.com/inboxrelay/inboxrelay/app/instance"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/support"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// AppID is the desktop app's identifier (notifications, preferences,
// FyneApp.toml).
const AppID = "com.inboxrelay.app"

// IsGUI reports whether a command line asks for the desktop app: no
// command at all, only --home DIR.
func IsGUI(args []string) bool {
	for len(args) > 0 {
		switch {
		case (args[0] == "--home" || args[0] == "-home") && len(args) > 1:
			args = args[2:]
		case strings.HasPrefix(args[0], "--home="):
			args = args[1:]
		default:
			return false
		}
	}
	return true
}

// Main runs the desktop app for the command line args (see IsGUI) and
// returns the process exit code. When the home is already in use by
// another tray app, it brings that one's window forward and returns 0.
// It returns when the user quits, after the engine stopped (at most 5 s).
func Main(args []string, stderr io.Writer) int {
	home, err := homeFromArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if runtime.GOOS == "linux" && os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		fmt.Fprintln(stderr, "There is no graphical session here, so the desktop app cannot start; use `inboxrelay run` to relay from a terminal (see inboxrelay --help).")
		return 2
	}
	// IT's policy: one that cannot be used stops the app, naming its line.
	it, err := policy.Current()
	if err == nil {
		_, err = connector.ApplyPolicy(home, it)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	r, err := connector.Open(home, connector.Options{IT: it, KeepTrying: true, Metered: meteredNow})
	if errors.Is(err, config.ErrRunning) {
		if instance.Show(home.Dir) == nil {
			fmt.Fprintln(stderr, "Inbox Relay is already running; its window was brought forward.")
			return 0
		}
		fmt.Fprintln(stderr, "Inbox Relay already runs for this home from the command line (`inboxrelay run`); stop it, then start the app again.")
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The metadata `fyne package` would embed from FyneApp.toml: the tray
	// item's title and the notifications' sender are the app's name.
	app.SetMetadata(fyne.AppMetadata{ID: AppID, Name: "Inbox Relay", Version: version.Version, Icon: appIcon()})
	a := app.NewWithID(AppID)
	a.SetIcon(appIcon())
	migratePrefs(a.Preferences(), r)
	backend := &runnerBackend{r: r}
	// The Runner supervises the engine: when it cannot run yet (not
	// paired, no mailbox), it waits for the setup to be done.
	rctx, stopUser := context.WithCancel(ctx)
	defer func() { stopUser() }()
	supervised := make(chan struct{})
	go func() { defer close(supervised); r.Run(rctx) }()

	// fyne's loop rests while nothing happens (rest.go); everything the
	// app runs on the fyne goroutine goes through rest.Do, which wakes it.
	rest := newRest()
	atStart := mappedFiles() // before any window loads the GL driver
	rest.onRest = func() { releaseCaches(a, atStart, r.Log()) }
	// The tray item is always offered: a panel that starts later (or
	// restarts) picks it up, and watchTrayHost tells the UI.
	tray := newTray(a, rest.Do)
	hasTray := tray != nil && trayHostPresent()
	if !hasTray {
		r.Log().Info("no system tray on this desktop (yet); the window is the app")
	}
	var demo *demoSession
	exe, _ := os.Executable()
	var ui *UI
	opts := Options{
		Autostart: autostart.Entry{ID: AppID, Name: "Inbox Relay", Exec: exe, Args: homeArgs(args)},
		Metered:   meteredNow,
		Log:       r.Log(),
		Do:        rest.Do,
		Quit:      func() { rest.stop(); a.Quit() },
		StartDemo: func(dctx context.Context) (Backend, error) {
			d, err := startDemo(ctx)
			if err != nil {
				return nil, err
			}
			// The demo replaces the user's engine for this session, so the
			// two never relay at once.
			stopUser()
			demo = d
			return d.backend, nil
		},
		LeaveDemo: func() Backend {
			if demo != nil {
				demo.close()
				demo = nil
			}
			// The user's own engine again, supervised anew.
			<-supervised
			var rc context.Context
			rc, stopUser = context.WithCancel(ctx)
			done := make(chan struct{})
			supervised = done
			go func() { defer close(done); r.Run(rc) }()
			return backend
		},
	}
	opts.SupportBundle = func(path string) error {
		// Its connection checks take up to a minute; the Runner's open
		// state database gives the platform's settings.
		bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		o := support.Options{Home: home, IT: it}
		if st, err := r.Store().Settings(); err == nil {
			layer := st.Layer()
			o.Platform = &layer
		}
		return support.WriteFile(bctx, path, o)
	}
	if n := newDesktopNotifier(ctx, "Inbox Relay", iconFile(), func() { ui.ShowWindow() }); n != nil {
		opts.Notify = n.send
	}
	applyStartAtLogin(opts.Autostart, r)
	ui = New(a, backend, tray, opts)
	if !hasTray {
		ui.SetTray(false)
	}
	ui.SetPanelDark(panelDark())
	go watchTrayHost(ctx, func(present bool) {
		rest.Do(func() {
			ui.SetTray(present)
			ui.SetPanelDark(panelDark())
		})
	})
	if err := instance.Listen(ctx, home.Dir, ui.ShowWindow); err != nil {
		r.Log().Warn("a second launch cannot bring this window forward", "err", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sig; ok {
			rest.stop()
			rest.Do(a.Quit)
		}
	}()
	defer signal.Stop(sig)
	ui.Start(ctx)
	if restingLoop {
		rest.start(ui.stillness)
	}
	r.Log().Info("Inbox Relay app started", "home", home.Dir, "tray", tray != nil)
	a.Run()

	// Quit: stop the engines; every checkpoint is already durable, so
	// giving up after 5 s loses nothing.
	cancel()
	stopped := make(chan struct{})
	go func() {
		<-supervised
		if demo != nil {
			demo.close()
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		r.Log().Warn("the engine did not stop within 5 s; exiting anyway")
	}
	r.Log().Info("Inbox Relay app stopped")
	r.Close()
	return 0
}

// iconFile writes the app icon where the notification server can read it
// and returns its path ("" when it cannot be written).
func iconFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(dir, "inboxrelay", "app.png")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return ""
	}
	if err := os.WriteFile(p, appIcon().Content(), 0o600); err != nil {
		return ""
	}
	return p
}

func homeArgs(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return args
}

func homeFromArgs(args []string) (config.Home, error) {
	dir := ""
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--home" || args[i] == "-home":
			dir = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--home="):
			dir = strings.TrimPrefix(args[i], "--home=")
		}
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return config.Home{}, err
		}
		return config.OpenHome(abs)
	}
	return config.DefaultHome()
}

// applyStartAtLogin makes the login item follow start_at_login when IT's
// policy or the platform sets it; the user's own choice is the login item
// itself, changed in the settings window.
func applyStartAtLogin(a Autostart, r *connector.Runner) {
	eff, err := r.Settings()
	if err != nil || a == nil || eff.UserWins(settings.StartAtLogin) || a.Enabled() == eff.StartAtLogin {
		return
	}
	if err := a.SetEnabled(eff.StartAtLogin); err != nil {
		r.Log().Warn("start at login, as the policy sets it, could not be applied", "err", err)
	}
}
