package gui

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// Options configure the UI.
type Options struct {
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Quit ends the app; nil: the fyne app's Quit.
	Quit func()
	// StartDemo, when set, is offered on first run as "Try the demo": it
	// returns the backend of a demo home to switch to.
	StartDemo func(ctx context.Context) (Backend, error)
	// Autostart turns "start at login" on and off; nil hides the setting.
	Autostart Autostart
	// Metered, when set, reports whether the network connection is metered
	// (ok false: the OS does not say); nil hides the setting. The UI only
	// shows it: pausing on a metered network is the Runner's
	// (connector.Options.Metered).
	Metered func() (metered, ok bool)
	// PollEvery is how often the status is read when nothing signalled a
	// change, to keep relative times ("2 min ago") current; 0: 20 s.
	PollEvery time.Duration
	// Log receives what the window says only in plain words (the error
	// behind "the mailbox was not added"); nil: slog.Default().
	Log *slog.Logger
	// Do runs f on the fyne goroutine, without waiting; nil: fyne.Do.
	// Tests pass one that serializes with their own calls, since fyne's
	// test driver runs fyne.Do on the caller's goroutine.
	Do func(f func())
}

// Autostart turns starting at login on and off.
type Autostart interface {
	Enabled() bool
	SetEnabled(on bool) error
}

// UI is the tray app's user interface: the tray, the main window (setup
// or status) and the settings window. Create it with New and call Start;
// every method runs on the fyne goroutine unless its comment says
// otherwise.
type UI struct {
	app     fyne.App
	backend atomic.Pointer[backendBox]
	o       Options
	win     fyne.Window
	hasTray bool
	tray    trayPresenter
	notes   *notifier
	poke    chan struct{}

	mode     string // "", "setup" or "status"
	last     Status
	shown    string // the render key of the status view shown
	settings fyne.Window
	setup    *setupView
}

type backendBox struct{ Backend }

// New builds the UI on app (a real or a test app). tray is nil when the
// desktop has no tray: the window is then the app's only face.
func New(app fyne.App, b Backend, tray Tray, o Options) *UI {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 20 * time.Second
	}
	if o.Do == nil {
		o.Do = fyne.Do
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	u := &UI{app: app, o: o, hasTray: tray != nil, poke: make(chan struct{}, 1)}
	u.backend.Store(&backendBox{b})
	u.notes = newNotifier(app.SendNotification)
	u.win = app.NewWindow("Inbox Relay")
	u.win.SetIcon(appIcon())
	u.win.Resize(fyne.NewSize(640, 600))
	u.win.SetCloseIntercept(u.win.Hide)
	u.tray = trayPresenter{tray: tray, dark: app.Settings().ThemeVariant() == theme.VariantDark, act: trayActions{
		openWindow:   u.showWindow,
		openSettings: u.ShowSettings,
		syncNow:      func() { go u.b().SyncNow(); u.Refresh() },
		togglePause:  u.togglePause,
		quit:         u.quit,
	}}
	return u
}

func (u *UI) b() Backend { return u.backend.Load().Backend }

// logf logs the error behind a sentence the window shows; safe from any
// goroutine.
func (u *UI) logf(what string, err error) { u.o.Log.Warn(what, "err", err) }

// do runs f on the fyne goroutine; call it from other goroutines only.
func (u *UI) do(f func()) { u.o.Do(f) }

// doWait runs f on the fyne goroutine and waits for it; call it from
// other goroutines only.
func (u *UI) doWait(f func()) {
	done := make(chan struct{})
	u.o.Do(func() { f(); close(done) })
	<-done
}

// Window is the main window.
func (u *UI) Window() fyne.Window { return u.win }

// Start shows the first status (synchronously, so the tray menu is never
// empty), opens the window when setup is needed or there is no tray, and
// keeps everything up to date until ctx ends. Call it once, on the fyne
// goroutine (or before the app runs).
func (u *UI) Start(ctx context.Context) {
	// Subscribed before the first read, so no change falls in between.
	box := u.backend.Load()
	changes, unsubscribe := box.Subscribe()
	u.apply(box.Status())
	if u.mode != "status" || !u.hasTray {
		u.win.Show()
	}
	go u.poll(ctx, box, changes, unsubscribe)
}

// Refresh makes the UI read the status now rather than at the next tick.
// Safe from any goroutine.
func (u *UI) Refresh() {
	select {
	case u.poke <- struct{}{}:
	default:
	}
}

// redrawGap is the least time between two reads of the status: a burst
// of change signals makes at most four redraws a second.
const redrawGap = 250 * time.Millisecond

// poll reads the status and shows it on every change signal of the
// backend subscribed to (coalesced: see redrawGap), on Refresh, and every
// PollEvery. After SetBackend it subscribes to the new backend.
func (u *UI) poll(ctx context.Context, box *backendBox, changes <-chan struct{}, unsubscribe func()) {
	t := time.NewTicker(u.o.PollEvery)
	defer t.Stop()
	var readAt time.Time
	defer func() { unsubscribe() }()
	for {
		if b := u.backend.Load(); b != box {
			// SetBackend: subscribe, then read at once, so that no change
			// of the new backend falls in between.
			unsubscribe()
			box = b
			changes, unsubscribe = b.Subscribe()
		} else {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-u.poke:
			case <-changes:
			}
		}
		if wait := redrawGap - time.Since(readAt); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		readAt = time.Now()
		st := u.b().Status()
		u.do(func() { u.apply(st) })
	}
}

// apply shows a status everywhere: tray, notifications, window.
func (u *UI) apply(st Status) {
	now := u.o.Now()
	u.last = st
	u.tray.update(st, now)
	u.notes.observe(st, now)
	switch {
	case u.mode == "setup":
		// The wizard keeps its page until it is done or cancelled.
	case !st.Paired || len(st.Accounts) == 0:
		u.showSetup(false)
	default:
		u.showStatus(st, now)
	}
}

// ShowWindow brings the main window forward. Safe from any goroutine.
func (u *UI) ShowWindow() { u.do(u.showWindow) }

func (u *UI) showWindow() {
	u.win.Show()
	u.win.RequestFocus()
}

func (u *UI) togglePause() {
	paused := !userPaused(u.last)
	go func() { u.b().SetPaused(paused); u.Refresh() }()
}

func (u *UI) quit() {
	if u.o.Quit != nil {
		u.o.Quit()
		return
	}
	u.app.Quit()
}

// SetBackend switches to another backend (the demo's) and shows it.
func (u *UI) SetBackend(b Backend) {
	u.backend.Store(&backendBox{b})
	u.mode = ""
	u.shown = ""
	u.notes = newNotifier(u.app.SendNotification)
	u.apply(b.Status())
}
