package gui

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"

	"github.com/inboxrelay/inboxrelay/sync/engine"
)

// TestClosedWindowHoldsNothing: with a tray, the status window is not
// built until it opens (no widget, no text measured, so no font loaded);
// status changes meanwhile reach the tray only. Closing it closes the fyne
// window itself (its GL context, textures and widgets go) and leaves a
// fresh, empty one, which the next opening fills with the status as it is
// then. A setup page only hides, keeping what was typed.
func TestClosedWindowHoldsNothing(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	tray := &fakeTray{}
	u, _ := newUI(t, b, tray)
	content := func() fyne.CanvasObject {
		var c fyne.CanvasObject
		serial(func() { c = u.Window().Content() })
		return c
	}
	if c := content(); c != nil || u.view != nil {
		t.Fatalf("the window, never opened, holds %T (view %v)", c, u.view != nil)
	}
	serial(func() { u.apply(running(engine.NeedsLogin)) })
	if content() != nil {
		t.Fatal("a status change built the closed window")
	}
	if l := tray.labels(); len(l) == 0 || l[0] == "All mail relayed" {
		t.Fatalf("the tray did not follow the change: %q", l)
	}

	first := opened(u)
	if !hasText(first, "Password needed") {
		t.Fatalf("the opened window does not show the status: %q", windowTexts(first))
	}
	serial(u.hideWindow) // the close button: SetCloseIntercept
	var after fyne.Window
	var windows []fyne.Window
	serial(func() { after, windows = u.Window(), u.app.Driver().AllWindows() })
	if after == first || slices.Contains(windows, first) {
		t.Fatal("the closed status window is still there")
	}
	if content() != nil || u.view != nil {
		t.Fatal("the fresh window holds the old view")
	}

	serial(func() { u.apply(running(engine.UpToDate)) })
	if w := opened(u); !hasText(w, "All mail relayed") || w != after {
		t.Fatalf("the window opened again shows %q", windowTexts(w))
	}

	// A setup page hides and keeps its page.
	serial(func() { u.showSetup(true) })
	page := content()
	serial(u.hideWindow)
	if u.Window() != after || content() != page {
		t.Fatal("closing the setup page dropped it")
	}
}

// TestStillness: the loop may wait for events only while nothing shown
// moves by itself.
func TestStillness(t *testing.T) {
	b := newFake(running(engine.UpToDate))
	u, _ := newUI(t, b, &fakeTray{})
	is := func(want stillness, when string) {
		t.Helper()
		var got stillness
		serial(func() { got = u.stillness() })
		if got != want {
			t.Fatalf("%s: stillness %d, want %d", when, got, want)
		}
	}
	is(windowsHidden, "never opened")
	w := opened(u)
	is(windowsStill, "the status window")
	var d dialog.Dialog
	serial(func() { d = dialog.NewInformation("Folder", "The folder is /tmp.", w); d.Show() })
	is(windowsBusy, "a dialog over it")
	serial(d.Hide)
	is(windowsStill, "the dialog closed")
	serial(u.ShowSettings)
	is(windowsBusy, "the settings window")
	serial(func() { u.settings.Close() })
	is(windowsStill, "the settings closed")
	serial(func() { u.showSetup(true) })
	is(windowsBusy, "a setup page")
	serial(u.hideWindow)
	is(windowsHidden, "everything closed")
}

// loop stands for fyne's event loop in rest tests: one goroutine runs
// what is queued, in order, as fyne's does, until quit is closed; ran
// counts the functions it ran, the rest's included. Unlike fyne's, it
// runs everything queued before it looks at quit, so that a rest that
// keeps queueing itself keeps it alive for sure.
type loop struct {
	q      chan func()
	quit   chan struct{}
	exited chan struct{}
	ran    atomic.Int64
	once   sync.Once
}

// stop closes quit.
func (l *loop) stop() { l.once.Do(func() { close(l.quit) }) }

func newLoop(t *testing.T) *loop {
	l := &loop{q: make(chan func(), 64), quit: make(chan struct{}), exited: make(chan struct{})}
	t.Cleanup(l.stop)
	go func() {
		defer close(l.exited)
		run := func(f func()) { f(); l.ran.Add(1) }
		for {
			select {
			case f := <-l.q:
				run(f)
				continue
			default:
			}
			select {
			case f := <-l.q:
				run(f)
			case <-l.quit:
				return
			}
		}
	}()
	return l
}

// newTestRest returns a rest on l with long waits, whatever ends a wait
// early in a test being what the test names, and with no delay between
// them: it queues itself again at once, before the function that queues
// it returns.
func newTestRest(l *loop) *rest {
	r := newRest()
	r.queue = func(f func()) { l.q <- f }
	r.after = func(_ time.Duration, f func()) { f() }
	r.grace, r.awake, r.hiddenWait, r.stillWait = 0, 0, time.Hour, time.Hour
	return r
}

// ranNow fails unless a function given to r.Do runs while r waits an
// hour.
func ranNow(t *testing.T, r *rest, when string) {
	t.Helper()
	ran := make(chan struct{})
	r.Do(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(time.Minute): // a hang guard: the wait is an hour
		t.Fatalf("%s, Do did not end the rest's wait", when)
	}
}

// TestRestWakesForWork: with no window shown, the loop waits; the app's
// work (Do) ends the wait at once, and the wait resumes after it.
func TestRestWakesForWork(t *testing.T) {
	l := newLoop(t)
	var state atomic.Int32 // windowsHidden
	r := newTestRest(l)
	var released atomic.Int32
	r.onRest = func() { released.Add(1) }
	r.start(func() stillness { return stillness(state.Load()) })
	waitFor(t, "the loop to rest", func() bool { return released.Load() == 1 })

	ranNow(t, r, "with no window shown")

	before := l.ran.Load()
	time.Sleep(100 * time.Millisecond)
	if n := l.ran.Load() - before; n > 2 {
		t.Fatalf("the loop ran %d functions while resting", n)
	}
	if released.Load() != 1 {
		t.Fatalf("caches released %d times for one closing", released.Load())
	}
}

// TestRestStillWaitsInGLFW: with only still windows shown, the wait is
// GLFW's (which an input event ends); Do posts it an empty event; an event
// lets the loop run freely for a while before the next wait.
func TestRestStillWaitsInGLFW(t *testing.T) {
	l := newLoop(t)
	events := make(chan struct{}, 1)
	var waits, posts atomic.Int32
	r := newTestRest(l)
	r.waitEvents = func(time.Duration) { waits.Add(1); <-events }
	r.postEmpty = func() {
		posts.Add(1)
		select {
		case events <- struct{}{}:
		default:
		}
	}
	r.start(func() stillness { return windowsStill })
	waitFor(t, "a wait in GLFW", func() bool { return waits.Load() == 1 })
	ranNow(t, r, "with a still window")
	if posts.Load() == 0 {
		t.Fatal("Do did not wake GLFW's wait")
	}
	waitFor(t, "the next wait", func() bool { return waits.Load() == 2 })
}

// TestRestLetsTheAppQuit: once stopped, the rest waits no more and stops
// queueing itself, so fyne's loop sees its end (a rest that went on
// queueing itself after Quit kept the app alive).
func TestRestLetsTheAppQuit(t *testing.T) {
	l := newLoop(t)
	r := newTestRest(l)
	var released atomic.Int32
	r.onRest = func() { released.Add(1) }
	r.start(func() stillness { return windowsHidden })
	waitFor(t, "the loop to rest", func() bool { return released.Load() == 1 })
	r.stop()
	l.stop()
	select {
	case <-l.exited:
	case <-time.After(time.Minute): // a hang guard: the rest waits an hour
		t.Fatal("the loop did not end: the rest held it")
	}
}
