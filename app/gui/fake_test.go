package gui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// fakeBackend is a Backend whose status the test sets and whose commands
// it records. Network commands answer from the test's functions.
type fakeBackend struct {
	mu       sync.Mutex
	st       Status
	paired   []connector.PairOptions
	added    []config.Account
	checked  []config.Account
	password map[string]string
	trusted  map[string]string
	paused   []bool
	syncs    int
	changes  []settings.Values          // SetSettings' arguments
	reads    int                        // calls of Status
	subs     map[chan struct{}]struct{} // Subscribe's channels

	check     func(acct config.Account) error
	checkWith func(ctx context.Context, acct config.Account, pw string, progress func([]Step)) (config.Account, error)
	setPw     func(email, pw string) error
	certErr   error
	findErr   error
	findReply autoconfig.Result
	removed   []string
	unpaired  int
	platform  connector.PairOptions
	onSub     func()        // called by Subscribe, after registering the channel
	gate      chan struct{} // when set, Status waits until it is closed
	waiting   chan struct{} // when set with gate, Status says it waits
}

func newFake(st Status) *fakeBackend {
	return &fakeBackend{st: st, password: map[string]string{}, trusted: map[string]string{}, subs: map[chan struct{}]struct{}{}}
}

// set changes the status and signals the subscribers, as an engine does.
func (f *fakeBackend) set(st Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	for ch := range f.subs {
		poke(ch)
	}
}

func (f *fakeBackend) Status() Status {
	f.mu.Lock()
	gate, waiting := f.gate, f.waiting
	f.mu.Unlock()
	if gate != nil {
		if waiting != nil {
			waiting <- struct{}{}
		}
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.st
}

func (f *fakeBackend) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	onSub := f.onSub
	f.mu.Unlock()
	if onSub != nil {
		onSub()
	}
	return ch, func() { f.mu.Lock(); delete(f.subs, ch); f.mu.Unlock() }
}
func (f *fakeBackend) SyncNow() { f.mu.Lock(); f.syncs++; f.mu.Unlock() }
func (f *fakeBackend) SetPaused(p bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = append(f.paused, p)
	f.st.Paused &^= engine.PausedByUser
	if p {
		f.st.Paused |= engine.PausedByUser
	}
	f.st.Engine.Paused, f.st.Engine.PausedFor = f.st.Paused != 0, f.st.Paused
}

// poke leaves a signal in ch unless one is pending already.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (f *fakeBackend) Pair(ctx context.Context, o connector.PairOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paired = append(f.paired, o)
	if o.Code != "GOOD-CODE" {
		return fmt.Errorf("pair: %w", relay.ErrBadCode)
	}
	f.st.Paired, f.st.PlatformURL = true, o.URL
	return nil
}

func (f *fakeBackend) FindServers(ctx context.Context, email string) (autoconfig.Result, error) {
	return f.findReply, f.findErr
}

func (f *fakeBackend) Check(ctx context.Context, acct config.Account, pw string, progress func([]Step)) (config.Account, error) {
	f.mu.Lock()
	f.checked = append(f.checked, acct)
	check, checkWith := f.check, f.checkWith
	f.mu.Unlock()
	if checkWith != nil {
		return checkWith(ctx, acct, pw, progress)
	}
	progress([]Step{{Title: "Incoming mail: Connection", State: StepRunning}})
	var err error
	if check != nil {
		err = check(acct)
	}
	state := StepPassed
	if err != nil {
		state = StepFailed
	}
	progress([]Step{{Title: "Incoming mail: Connection", State: state, Detail: "Port " + fmt.Sprint(acct.IMAP.Port) + " answers."}})
	if acct.IMAP.Security == "" {
		acct.IMAP.Security = config.SecurityTLS
	}
	if acct.SMTP.Security == "" {
		acct.SMTP.Security = config.SecurityStartTLS
	}
	return acct, err
}

func (f *fakeBackend) AddAccount(ctx context.Context, acct config.Account, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, acct)
	f.password[acct.Email] = pw
	f.st.Accounts = append(f.st.Accounts, acct)
	return nil
}

func (f *fakeBackend) SetPassword(ctx context.Context, email, pw string) error {
	if f.setPw != nil {
		if err := f.setPw(email, pw); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.password[email] = pw
	return nil
}

func (f *fakeBackend) CheckCertificate(ctx context.Context, email string) error { return f.certErr }
func (f *fakeBackend) TrustCertificate(email string, pin trust.Pin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trusted[email] = pin.Fingerprint
	return nil
}
func (f *fakeBackend) SetSettings(change settings.Values) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, change)
	return nil
}
func (f *fakeBackend) LogDir() string { return "/tmp/logs" }

func (f *fakeBackend) RemoveAccount(email string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, email)
	return nil
}

func (f *fakeBackend) Unpair() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unpaired++
	return nil
}

func (f *fakeBackend) PlatformOptions() connector.PairOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.platform
}

// serial stands for the fyne goroutine in tests: fyne's test driver runs
// fyne.Do on the caller's goroutine, so the UI's callbacks (Options.Do)
// and the test's own widget calls all go through one lock.
var serialMu sync.Mutex

func serial(f func()) {
	serialMu.Lock()
	defer serialMu.Unlock()
	f()
}

func tap(b *widget.Button) { serial(func() { test.Tap(b) }) }

// with runs f while no command of the fake runs.
func (f *fakeBackend) with(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// fakeTray records what the UI shows in the tray. The UI calls it from its
// own goroutine while the test reads it: every access holds mu.
type fakeTray struct {
	mu       sync.Mutex
	icons    []string
	menus    []*fyne.Menu
	tooltips []string
}

func (t *fakeTray) SetTooltip(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tooltips = append(t.tooltips, s)
}

func (t *fakeTray) SetIcon(r fyne.Resource) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.icons = append(t.icons, r.Name())
}

func (t *fakeTray) SetMenu(m *fyne.Menu) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.menus = append(t.menus, m)
}

// iconList returns the icons shown so far, oldest first.
func (t *fakeTray) iconList() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.icons...)
}

// lastIcon returns the icon shown now, "" before any.
func (t *fakeTray) lastIcon() string {
	l := t.iconList()
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// firstMenu returns the first menu set.
func (t *fakeTray) firstMenu() *fyne.Menu {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.menus[0]
}

// menuCount returns how many menus were set.
func (t *fakeTray) menuCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.menus)
}

func (t *fakeTray) labels() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.menus) == 0 {
		return nil
	}
	var l []string
	for _, it := range t.menus[len(t.menus)-1].Items {
		l = append(l, it.Label)
	}
	return l
}

// waitFor polls cond (run on the fyne goroutine) until it holds. Its
// deadline only guards against a hang: a "Test connection" against real
// servers runs the whole doctor, which takes seconds on a loaded machine.
func waitFor(t interface {
	Helper()
	Fatalf(string, ...any)
}, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var ok bool
		serial(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeClock is the UI's clock and timers in tests: time moves only when
// the test advances it, and the timers due fire then.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) After(d time.Duration, f func()) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.t.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() { c.mu.Lock(); t.stopped = true; c.mu.Unlock() }
}

// pending counts the timers armed and not yet fired or stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// advance moves the clock by d in steps, firing each timer when its time
// comes (outside the clock's lock: a timer may arm another).
func (c *fakeClock) advance(d time.Duration) {
	end := c.Now().Add(d)
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.t = end
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.t) {
			c.t = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// windowTexts returns every text of the window, its dialogs and the
// contents of its accordions (opened first).
func windowTexts(w fyne.Window) string {
	var b strings.Builder
	serial(func() {
		for _, o := range append([]fyne.CanvasObject{w.Content()}, w.Canvas().Overlays().List()...) {
			for _, obj := range test.LaidOutObjects(o) {
				if a, ok := obj.(*widget.Accordion); ok {
					a.OpenAll()
				}
			}
			for _, obj := range test.LaidOutObjects(o) {
				switch v := obj.(type) {
				case *widget.Label:
					fmt.Fprintln(&b, v.Text)
				case *widget.RichText:
					fmt.Fprintln(&b, v.String())
				case *widget.Entry:
					if v.Password {
						continue // the password field holds the password, hidden
					}
					fmt.Fprintln(&b, v.Text)
				}
			}
		}
	})
	return b.String()
}
