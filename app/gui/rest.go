package gui

import (
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"github.com/go-gl/glfw/v3.3/glfw"
)

// stillness is how still the app's windows are (UI.stillness).
type stillness int

const (
	// windowsHidden: no window is shown.
	windowsHidden stillness = iota
	// windowsStill: only windows in which nothing moves by itself are shown.
	windowsStill
	// windowsBusy: something shown may move by itself (a blinking cursor, a
	// progress bar): fyne's loop runs as fyne made it.
	windowsBusy
)

// rest keeps fyne's event loop still while nothing happens.
//
// fyne 2.7's driver runs its loop on a 60 Hz ticker for as long as the app
// runs: every tick polls GLFW for window events and looks at every window
// for something to redraw, even when all of them are hidden and nothing
// changed. For an app that spends its day in the tray, that was about 450
// wake-ups a second and 1.5 % of a core, nearly all it used (measured by
// app/idlebench). So rest keeps a function of its own on the fyne
// goroutine that waits, and the loop cannot tick meanwhile:
//
//   - With no window shown, it waits for the app's own work for that
//     goroutine (every call of Do: the UI's updates, the tray menu, a
//     second launch, a notification's click), or at most hiddenWait, so
//     that what fyne queues by itself (a change of the desktop's theme,
//     its preferences) waits no longer than that.
//   - With only still windows shown, it waits in GLFW
//     (glfwWaitEventsTimeout), which returns at once on any input, expose
//     or resize event and on Do, or after stillWait.
//   - Otherwise it does not wait, and looks again a little later.
//
// After a wait it queues itself again behind the work that ended it;
// after an event, a call of Do or a change of stillness, it first lets
// the loop tick freely for a while (awake, grace), so that fyne draws and
// answers in its own rhythm (a double click, a window being destroyed).
type rest struct {
	queue      func(func()) // fyne.Do
	state      func() stillness
	grace      time.Duration
	awake      time.Duration
	hiddenWait time.Duration
	stillWait  time.Duration
	after      func(time.Duration, func()) // time.AfterFunc; a test's stand-in
	waitEvents func(time.Duration)         // glfwWaitEventsTimeout; a test's stand-in
	postEmpty  func()                      // glfwPostEmptyEvent; a test's stand-in
	wake       chan struct{}               // buffer of one
	inGLFW     atomic.Bool                 // the wait is in GLFW: Do posts it an empty event
	stopped    atomic.Bool                 // the app quits: no more waits
	// onRest runs on the fyne goroutine when the last window closed (and
	// at the first rest): it lets go of what closed windows left behind
	// (releaseCaches).
	onRest func()

	// On the fyne goroutine only:
	last     stillness
	released bool      // onRest ran since a window was last shown
	free     time.Time // the loop ticks freely until then
}

// newRest returns the rest of the fyne app's loop, with the waits above.
func newRest() *rest {
	return &rest{queue: fyne.Do, grace: 2 * time.Second, awake: time.Second,
		hiddenWait: 5 * time.Second, stillWait: 2 * time.Second,
		after:      func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		waitEvents: func(d time.Duration) { glfw.WaitEventsTimeout(d.Seconds()) }, postEmpty: glfw.PostEmptyEvent,
		wake: make(chan struct{}, 1), last: windowsBusy}
}

// start begins resting once the app's loop runs, asking state (on the
// fyne goroutine) how still its windows are. Call it once.
func (r *rest) start(state func() stillness) {
	r.state = state
	r.later(r.grace)
}

// Do runs f on the fyne goroutine, without waiting, and ends a wait so
// that it runs at once. Safe from any goroutine.
func (r *rest) Do(f func()) {
	r.queue(f) // first: the rest queues itself again behind f
	r.interrupt()
}

func (r *rest) interrupt() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
	if r.inGLFW.Load() {
		r.postEmpty()
	}
}

// stop ends the rest for good, before the app quits: fyne's loop must
// see its end, and once it stopped fyne runs a queued function in place,
// on the caller's goroutine. Safe from any goroutine.
func (r *rest) stop() {
	r.stopped.Store(true)
	r.interrupt()
}

// later queues hold after d, from a timer's goroutine: fyne runs a
// function queued from its own goroutine in place when its loop is not
// running (before it starts, after it stopped).
func (r *rest) later(d time.Duration) {
	r.after(d, func() { r.queue(r.hold) })
}

// hold waits as the type's comment says, then queues itself again.
func (r *rest) hold() {
	if r.stopped.Load() {
		return
	}
	now := r.state()
	if now != r.last {
		r.last = now
		r.free = time.Now().Add(r.grace)
		if now != windowsHidden {
			r.released = false
		}
	}
	if d := time.Until(r.free); d > 0 {
		r.later(d)
		return
	}
	switch now {
	case windowsBusy:
		r.later(r.awake)
	case windowsStill:
		r.inGLFW.Store(true)
		began := time.Now()
		r.waitEvents(r.stillWait)
		r.inGLFW.Store(false)
		if time.Since(began) < r.stillWait {
			r.free = time.Now().Add(r.awake)
			r.later(r.awake)
			return
		}
		r.later(time.Second / 30) // a tick or two, for what changed meanwhile
	case windowsHidden:
		if !r.released {
			r.released = true
			if r.onRest != nil {
				r.onRest()
			}
		}
		t := time.NewTimer(r.hiddenWait)
		select {
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
		r.later(0)
	}
}

// releaseCaches lets go of what fyne keeps after its windows closed: the
// parsed fonts (painter's cache, cleared when the settings are applied
// again) and the theme's rendered icons; then the freed memory, Go's and
// the C heap's, goes back to the OS at once rather than over minutes (or
// never), and the pages of the GL driver's code, which stays loaded, leave
// the process's resident memory until a window needs them again
// (dropDriverPages; atStart is mappedFiles before the first window). It
// logs what it dropped ("closed windows released") once done. Call it on
// the fyne goroutine, with no window shown.
func releaseCaches(a fyne.App, atStart map[string]bool, log *slog.Logger) {
	s := a.Settings()
	s.SetTheme(s.Theme())
	go func() {
		debug.FreeOSMemory()
		trimCHeap()
		dropped := dropDriverPages(atStart)
		log.Info("closed windows released", "driver_pages_kib", dropped>>10)
	}()
}
