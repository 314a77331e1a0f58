package gui

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
)

// Options configure the UI.
type Options struct {
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// After calls f once, after d, on a goroutine of its own, and returns a
	// function that cancels the call if it has not happened yet; nil: a
	// time.AfterFunc. Tests pass one driven by their clock.
	After func(d time.Duration, f func()) (stop func())
	// Quit ends the app; nil: the fyne app's Quit.
	Quit func()
	// StartDemo, when set, is offered on first run as "Try the demo": it
	// returns the backend of a demo home to switch to.
	StartDemo func(ctx context.Context) (Backend, error)
	// LeaveDemo, when set, ends the demo and returns the user's own
	// backend.
	LeaveDemo func() Backend
	// Autostart turns "start at login" on and off; nil hides the setting.
	Autostart Autostart
	// Metered, when set, reports whether the network connection is metered
	// (ok false: the OS does not say); nil hides the setting.
	Metered func() (metered, ok bool)
	// Do runs f on the fyne goroutine, without waiting; nil: fyne.Do.
	// Tests pass one that serializes with their own calls, since fyne's
	// test driver runs fyne.Do on the caller's goroutine.
	Do func(f func())
	// SupportBundle, when set, writes a support bundle (logs, settings,
	// status; no secret) to path: "Save support bundle…" in the settings.
	SupportBundle func(path string) error
	// Notify, when set, shows a desktop notification that opens the window
	// when clicked; nil: the fyne app's SendNotification.
	Notify func(n *fyne.Notification)
	// Log receives what the app says (the verdict each time it changes),
	// for the log file and support bundles; nil: nowhere.
	Log *slog.Logger
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
//
// It reads the backend's Status only on a change signal (coalesced, see
// redrawGap) and presents it once (presenter) for the tray, the window
// and the notifications. No timer runs while nothing can change: time
// alone changes the model only for a state held back by hysteresis or a
// stall (model.Recheck, one timer), and the window's "2 min ago" (one
// timer, only while the window is shown).
type UI struct {
	app     fyne.App
	backend atomic.Pointer[backendBox]
	o       Options
	win     fyne.Window
	hasTray bool
	demo    bool // the backend is the demo's
	tray    trayView
	notes   *notifier
	poke    chan struct{}
	pres    *presenter
	visible bool // the main window is shown
	started bool // Start was called: there is a status to show

	mode       string // "", "setup" or "status"
	last       Status
	model      model
	view       *statusView // in the window (placed) or not built (nil)
	placed     bool        // view.content is the window's content
	said       string      // the status view's verdict last logged
	settings   fyne.Window
	setup      *setupView
	stopTimer  func() // the pending Recheck
	timerAt    time.Time
	stopSince  func() // the pending refresh of "2 min ago"
	sinceAt    time.Time
	aboutShown bool
}

type backendBox struct{ Backend }

// New builds the UI on app (a real or a test app). tray is nil when the
// desktop has no tray yet: the window is then the app's face, with a Quit
// button, until SetTray says a tray appeared.
func New(app fyne.App, b Backend, tray Tray, o Options) *UI {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = func(d time.Duration, f func()) func() { t := time.AfterFunc(d, f); return func() { t.Stop() } }
	}
	if o.Do == nil {
		o.Do = fyne.Do
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	u := &UI{app: app, o: o, hasTray: tray != nil, poke: make(chan struct{}, 1), pres: newPresenter()}
	u.backend.Store(&backendBox{b})
	u.notes = newNotifier(u.notify)
	u.win = u.newWindow()
	// The window's icon follows the app's theme (the tray's follows the
	// panel).
	app.Settings().AddListener(func(fyne.Settings) {
		fyne.Do(func() {
			if u.view != nil {
				u.view.render(u.model)
			}
		})
	})
	u.tray = trayView{tray: tray, act: trayActions{
		openWindow:   u.showWindow,
		openSettings: u.ShowSettings,
		syncNow:      u.syncNow,
		togglePause:  u.togglePause,
		quit:         u.quit,
	}}
	return u
}

func (u *UI) b() Backend { return u.backend.Load().Backend }

// do runs f on the fyne goroutine; call it from other goroutines only.
func (u *UI) do(f func()) { u.o.Do(f) }

// doWait runs f on the fyne goroutine and waits for it; call it from
// other goroutines only.
func (u *UI) doWait(f func()) {
	done := make(chan struct{})
	u.o.Do(func() { f(); close(done) })
	<-done
}

func (u *UI) notify(n *fyne.Notification) {
	if u.o.Notify != nil {
		u.o.Notify(n)
		return
	}
	u.app.SendNotification(n)
}

func (u *UI) log(msg string, args ...any) { u.o.Log.Info(msg, args...) }

// logf logs the error behind a sentence the window shows; safe from any
// goroutine.
func (u *UI) logf(what string, err error) { u.o.Log.Warn(what, "err", err) }

// Window is the main window. Closing it in the status view replaces it
// with a new one (hideWindow): ask again after that.
func (u *UI) Window() fyne.Window { return u.win }

// newWindow makes a main window, not shown. A fyne window that was never
// shown has no OpenGL context and draws nothing.
func (u *UI) newWindow() fyne.Window {
	w := u.app.NewWindow("Inbox Relay")
	w.SetIcon(appIcon())
	w.Resize(fyne.NewSize(720, 560))
	w.SetCloseIntercept(u.hideWindow)
	w.Canvas().SetOnTypedKey(u.statusKeys)
	for _, mod := range []fyne.KeyModifier{fyne.KeyModifierShortcutDefault, fyne.KeyModifierControl} {
		w.Canvas().AddShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyQ, Modifier: mod}, func(fyne.Shortcut) { u.quit() })
	}
	return w
}

// stillness says how still the app's windows are now, for fyne's loop to
// rest accordingly (rest.go): none shown; only the status window, with no
// dialog over it (nothing there moves unless the status changes or the
// user acts); or anything else (a setup page, a dialog, the settings:
// entries blink, progress bars move), when the loop runs as fyne made it.
func (u *UI) stillness() stillness {
	switch {
	case u.settings != nil:
		return windowsBusy
	case !u.visible:
		return windowsHidden
	case u.mode != "status" || u.win.Canvas().Overlays().Top() != nil:
		return windowsBusy
	}
	return windowsStill
}

// Start shows the first status (synchronously, so the tray menu is never
// empty and never stale: it subscribes before the first read, and before
// the engine starts when called first), opens the window when setup is
// needed or there is no tray, and keeps everything up to date until ctx
// ends. Call it once, on the fyne goroutine (or before the app runs).
func (u *UI) Start(ctx context.Context) {
	box := u.backend.Load()
	changes, unsubscribe := box.Subscribe()
	u.started = true
	u.apply(box.Status())
	if u.mode != "status" || !u.hasTray {
		u.showWindow()
	}
	go u.listen(ctx, box, changes, unsubscribe)
}

// Refresh makes the UI read the status now. Safe from any goroutine.
func (u *UI) Refresh() {
	select {
	case u.poke <- struct{}{}:
	default:
	}
}

// redrawGap is the least time between two reads of the status: a burst
// of change signals makes at most four redraws a second.
const redrawGap = 250 * time.Millisecond

// listen reads the status and shows it on every change signal of the
// backend subscribed to (coalesced: see redrawGap) and on Refresh; it
// never reads on a timer. After SetBackend it subscribes to the new
// backend.
func (u *UI) listen(ctx context.Context, box *backendBox, changes <-chan struct{}, unsubscribe func()) {
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
		read := box // this read's backend: box itself moves on at SetBackend
		st := read.Status()
		u.do(func() {
			if u.backend.Load() == read {
				u.apply(st)
			}
		})
	}
}

// apply presents a status and shows it everywhere: tray, notifications,
// window.
func (u *UI) apply(st Status) {
	u.last = st
	u.present()
	switch {
	case u.mode == "setup":
		// The wizard keeps its page until it is done or cancelled.
	case !st.Paired || len(st.Accounts) == 0:
		u.showSetup(false)
	default:
		u.showStatus()
	}
}

// present computes the model from the last status at the present time
// and renders the tray, the notifications and, when it is up, the status
// view; it arms the timers for what time alone changes.
func (u *UI) present() {
	now := u.o.Now()
	m := u.pres.present(u.last, now)
	u.model = m
	u.tray.render(m)
	u.notes.render(m)
	if u.mode == "status" {
		// Logged here, not by the view: the window, closed, is not built,
		// and what it would say when opened is still the app's verdict.
		if head := m.headline(); head != u.said {
			u.said = head
			u.log("the window says", "verdict", head)
		}
		if u.view != nil {
			u.view.render(m)
		}
	}
	u.arm(&u.stopTimer, &u.timerAt, m.Recheck, now)
	var since time.Time
	if u.visible && u.mode == "status" {
		since = m.SinceChanges
	}
	u.arm(&u.stopSince, &u.sinceAt, since, now)
}

// arm keeps one pending call of present at `at` (none when zero),
// replacing the one pending for another time.
func (u *UI) arm(stop *func(), pending *time.Time, at, now time.Time) {
	if at.Equal(*pending) {
		return
	}
	if *stop != nil {
		(*stop)()
		*stop = nil
	}
	*pending = at
	if at.IsZero() {
		return
	}
	var fire func()
	fire = func() {
		u.do(func() {
			if pending.Equal(at) {
				*pending, *stop = time.Time{}, nil
				u.present()
			}
		})
	}
	*stop = u.o.After(max(at.Sub(now), 0), fire)
}

// showStatus puts the status view in the window: built once while the
// window is shown, and not at all while it is not (a window never opened
// holds no widget and has measured no text, so no font is loaded).
func (u *UI) showStatus() {
	if u.mode != "status" {
		u.mode = "status"
		u.placed = false
	}
	if !u.visible {
		return
	}
	if u.view == nil {
		u.view = newStatusView(u)
	}
	u.view.render(u.model)
	if !u.placed {
		u.placed = true
		u.win.SetContent(u.view.content)
	}
}

// ShowWindow brings the main window forward. Safe from any goroutine.
func (u *UI) ShowWindow() { u.do(u.showWindow) }

func (u *UI) showWindow() {
	if !u.visible {
		u.visible = true
		if u.started {
			u.present() // "2 min ago" was not kept current while hidden
			if u.mode == "status" {
				u.showStatus() // built now, before the first frame
			}
		}
	}
	u.win.Show()
	u.win.RequestFocus()
}

// hideWindow closes the main window; the app goes on in the tray (or, with
// no tray, until it is started again or quit). The status view's window is
// closed for good, which frees its OpenGL context, textures and widgets;
// the next showWindow builds a new one. A setup page only hides, so that
// the wizard keeps what was typed.
func (u *UI) hideWindow() {
	u.visible = false
	u.arm(&u.stopSince, &u.sinceAt, time.Time{}, u.o.Now())
	if u.mode != "status" {
		u.win.Hide()
	} else {
		old := u.win
		u.win, u.view, u.placed = u.newWindow(), nil, false
		old.Close()
	}
}

// statusKeys is the status window's key handler: Esc closes it.
func (u *UI) statusKeys(k *fyne.KeyEvent) {
	if k.Name == fyne.KeyEscape && u.mode == "status" {
		u.hideWindow()
	}
}

// SetTray says whether the desktop shows a tray now (one may appear after
// the start, or go away): the window's Quit button and note follow, and
// with no tray the window is shown. Call it on the fyne goroutine.
func (u *UI) SetTray(present bool) {
	if present == u.hasTray {
		return
	}
	u.hasTray = present
	u.log("tray", "present", present)
	if !present && u.started {
		u.showWindow()
	}
	if u.view != nil {
		u.view.render(u.model)
	}
}

// SetPanelDark says whether the tray's panel is dark (the icons' ink
// follows it, not the app's theme). Call it on the fyne goroutine.
func (u *UI) SetPanelDark(dark bool) { u.tray.setDark(dark) }

func (u *UI) syncNow() {
	b := u.b()
	go func() { b.SyncNow(); u.Refresh() }()
}

func (u *UI) togglePause() {
	paused := !u.model.Paused
	b := u.b()
	go func() { b.SetPaused(paused); u.Refresh() }()
}

func (u *UI) quit() {
	if u.o.Quit != nil {
		u.o.Quit()
		return
	}
	u.app.Quit()
}

// SetBackend switches to another backend (the demo's, or back) and shows
// it.
func (u *UI) SetBackend(b Backend, demo bool) {
	u.backend.Store(&backendBox{b})
	u.demo = demo
	u.mode = ""
	u.pres = newPresenter()
	u.notes = newNotifier(u.notify)
	u.apply(b.Status())
	u.Refresh()
}
