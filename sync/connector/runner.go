package connector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	gosync "sync"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/logfile"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

// Options configure a Runner. Zero durations take the defaults shown.
type Options struct {
	// LogTo also receives the log (stderr for `run`); nil: the log file only.
	LogTo io.Writer
	// Once makes Run do one pass and return (sync --once).
	Once bool
	// KeepTrying makes Run wait and try again, instead of returning, when
	// no engine can start (not paired, no account, no token: Status says
	// why) or the engine stops with an error: at Reload, SyncNow, or every
	// RetryEvery. The tray app sets it; `run` fails fast without it.
	KeepTrying bool
	// RetryEvery is how often KeepTrying tries again on its own; 30 s.
	RetryEvery time.Duration
	// Metered, when set, says whether the network connection is metered
	// (ok false: the OS does not say). While it is and the
	// pause_on_metered setting is on, the Runner pauses relaying for
	// engine.PausedOnMetered; it looks every MeteredEvery, and at once
	// when the setting changes.
	Metered func() (metered, ok bool)
	// MeteredEvery is how often Metered is asked; 30 s.
	MeteredEvery time.Duration
	// Tweak, when set, adjusts the engine's options (tests, the demo).
	Tweak func(*engine.Options)
	// Policy, when set, reads IT's policy (sync/policy): the locked and
	// default layers of the settings. It is read again at every engine
	// build and every Settings call; an error stops the engine from
	// starting (a policy that cannot be read is not ignored).
	Policy func() (settings.Policy, error)
	// IT, when set, is IT's policy file: Run enrols the home from it
	// (Enrol) before each engine build, the engine reaches the mail
	// servers through its [mail] proxy, and Policy defaults to its
	// settings layers. Changes that it locks are refused.
	IT *policy.Policy
}

// Runner runs the engine of one home and is the one supervisor between
// the engine and the front ends: it builds the engine, rebuilds it only
// when the configuration changed (Reload), keeps the set of pause reasons
// across rebuilds, and is the one subscriber list the front ends listen
// to. It holds the home's lock from Open to Close. Its methods are safe
// for concurrent use.
type Runner struct {
	home   config.Home
	o      Options
	kc     *keychain.Store
	store  *state.Store
	log    *slog.Logger
	close  func()
	reload chan struct{} // Reload, or SyncNow while no engine runs; buffer of one
	level  *slog.LevelVar
	device string        // this computer's name, as pairing tells the platform
	meterd chan struct{} // look at the network now (the setting changed); buffer of one

	setMu gosync.Mutex // serializes SetUserSettings' read-modify-write of config.json

	mu      gosync.Mutex
	eng     *engine.Engine // the engine running, or the last one
	running bool
	stopped error              // why no engine runs
	pause   engine.PauseReason // the reasons set now; relaying runs when empty

	subMu gosync.Mutex
	subs  map[chan struct{}]struct{} // Subscribe's channels, across engines
}

// Open takes the home's lock (failing with config.ErrRunning when another
// process has it) and opens its state and log.
func Open(home config.Home, o Options) (*Runner, error) {
	if o.Policy == nil && o.IT != nil {
		it := o.IT
		o.Policy = func() (settings.Policy, error) { return it.Settings(), nil }
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = 30 * time.Second
	}
	if o.MeteredEvery <= 0 {
		o.MeteredEvery = 30 * time.Second
	}
	unlock, err := home.Lock()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	cfg, err := home.Load()
	if err != nil {
		return nil, err
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return nil, err
	}
	lf, err := logfile.Open(home.LogDir(), "inboxrelay.log", 5<<20, 3)
	if err != nil {
		return nil, err
	}
	var w io.Writer = lf
	if o.LogTo != nil {
		w = io.MultiWriter(o.LogTo, lf)
	}
	store, err := state.Open(home.StatePath())
	if err != nil {
		lf.Close()
		return nil, err
	}
	ok = true
	host, _ := os.Hostname()
	level := new(slog.LevelVar)
	r := &Runner{
		home: home, o: o, kc: kc, store: store, level: level, device: host,
		reload: make(chan struct{}, 1), meterd: make(chan struct{}, 1), subs: map[chan struct{}]struct{}{},
		log:   slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})),
		close: func() { store.Close(); lf.Close(); unlock() },
	}
	if eff, err := r.resolve(cfg); err == nil {
		r.applyLogLevel(eff.LogLevel)
	}
	return r, nil
}

// Log is the runner's logger.
func (r *Runner) Log() *slog.Logger { return r.log }

// Store is the home's state database, open while the runner is.
func (r *Runner) Store() *state.Store { return r.store }

// Close releases the state, the log and the lock. Call it after Run
// returned.
func (r *Runner) Close() { r.close() }

// newEngine builds an engine from the settings as they are now.
func (r *Runner) newEngine() (*engine.Engine, error) {
	cfg, err := r.home.Load()
	if err != nil {
		return nil, err
	}
	if cfg.Platform.URL == "" {
		return nil, ErrNotPaired
	}
	token, err := r.kc.Get(keychain.DeviceTokenKey)
	if errors.Is(err, keychain.ErrNotFound) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	pol, err := r.policy()
	if err != nil {
		return nil, err
	}
	choice, err := PlatformProxy(context.Background(), r.home, cfg, r.o.IT)
	if err != nil {
		return nil, err
	}
	if choice.Note != "" {
		r.log.Warn(choice.Note)
	}
	o := engine.Options{
		Home: r.home, Config: cfg, Store: r.store, Secrets: r.kc, Log: r.log, Once: r.o.Once, Policy: pol,
		Platform: relay.Options{BaseURL: cfg.Platform.URL, CAFile: cfg.Platform.CAFile, Proxy: via(choice), Token: token},
	}
	if r.o.Once {
		o.GiveUpAfter = 2 * time.Minute
	}
	if r.o.Tweak != nil {
		r.o.Tweak(&o)
	}
	return engine.New(o)
}

// Run runs the engine until ctx ends (Once: one pass), building it anew
// only after Reload. Without KeepTrying it returns the error that stopped
// it (the engine's, or why none could start: ErrNotPaired, ErrNoToken,
// engine.ErrNoAccount, …); nil after a clean stop. With KeepTrying it
// returns nil when ctx ends, and meanwhile waits and tries again whenever
// no engine can run. Call it once.
func (r *Runner) Run(ctx context.Context) error {
	var bg gosync.WaitGroup
	defer bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.o.Metered != nil && !r.o.Once {
		bg.Add(1)
		go func() { defer bg.Done(); r.watchMetered(ctx) }()
	}
	for {
		err := r.runEngine(ctx)
		if ctx.Err() != nil {
			return err
		}
		if errors.Is(err, errReload) {
			r.log.Info("settings changed; engine restarted")
			continue
		}
		if r.o.Once || !r.o.KeepTrying {
			return err
		}
		if err != nil {
			r.log.Warn("relaying does not run; trying again later", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.reload:
		case <-time.After(r.o.RetryEvery):
		}
	}
}

// errReload is runEngine's answer when Reload stopped the engine.
var errReload = errors.New("reload")

// runEngine builds an engine and runs it until it stops, ctx ends or
// Reload asks for another (errReload). The supervisor's state (running,
// stopped) changes here only.
func (r *Runner) runEngine(ctx context.Context) error {
	eng, route, err := r.build(ctx)
	if err != nil {
		r.setRunning(nil, err)
		return err
	}
	unforward := r.forward(eng)
	defer unforward()
	r.setRunning(eng, nil)
	ectx, cancel := context.WithCancel(netdial.WithRoute(ctx, route))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ectx) }()
	select {
	case err := <-done:
		r.setRunning(nil, err)
		return err
	case <-r.reload:
		cancel()
		<-done
		r.setRunning(nil, nil)
		return errReload
	}
}

// build enrols the home from IT's policy, finds the route to the mail
// servers and builds the engine.
func (r *Runner) build(ctx context.Context) (*engine.Engine, netdial.Route, error) {
	id, err := Enrol(ctx, r.home, r.o.IT)
	if err != nil {
		return nil, netdial.Route{}, err
	}
	if id != "" {
		r.log.Info("paired with the platform named by IT's policy, with its one-time code", "device", id, "policy", r.o.IT.Path)
	}
	route, err := MailRoute(r.home, r.o.IT)
	if err != nil {
		return nil, route, err
	}
	eng, err := r.newEngine()
	return eng, route, err
}

// setRunning records that eng runs (eng != nil), or that none does and
// why (stopped, nil for a clean stop), and signals the subscribers. A new
// engine is paused at once with the reasons set now.
func (r *Runner) setRunning(eng *engine.Engine, stopped error) {
	r.mu.Lock()
	if eng != nil {
		r.eng = eng
		if r.pause != 0 {
			eng.Pause(r.pause)
		}
	}
	r.running, r.stopped = eng != nil, stopped
	r.mu.Unlock()
	r.changed()
}

// Reload makes Run build the engine anew with the current configuration
// (after an account was added, say), or, while no engine runs, try to
// start one now. Only a change of configuration needs it; SyncNow does
// not. Safe to call any time.
func (r *Runner) Reload() {
	select {
	case r.reload <- struct{}{}:
	default:
	}
}

// SyncNow makes the running engine look for new mail now: an IDLE is
// interrupted and a pass started, a wait out a backoff is cut short (see
// engine.Engine.SyncNow). It never rebuilds the engine and never logs in
// again where a session is open. While no engine runs, it makes Run try
// to start one now.
func (r *Runner) SyncNow() {
	r.mu.Lock()
	eng, running := r.eng, r.running
	r.mu.Unlock()
	if running {
		eng.SyncNow()
		return
	}
	r.Reload()
}

// Subscribe returns a channel signalled whenever Status may have changed
// (the engine's snapshot, an engine started, stopped or rebuilt, the
// pause reasons, the settings), and a function that ends the
// subscription. It may be called before Run and lasts across engine
// rebuilds. The channel has a buffer of one and is never closed; signals
// pending together merge, so read Status after each receive. Safe for
// concurrent use; the returned function may be called more than once.
func (r *Runner) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.subMu.Lock()
	r.subs[ch] = struct{}{}
	r.subMu.Unlock()
	return ch, func() {
		r.subMu.Lock()
		delete(r.subs, ch)
		r.subMu.Unlock()
	}
}

// changed signals every subscriber. It takes only subMu, so it may be
// called with r.mu held and from the engine's signals.
func (r *Runner) changed() {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// forward passes eng's change signals on to the runner's subscribers
// until the returned function is called: one goroutine per engine, so
// that a front end subscribes once for the runner's whole life.
func (r *Runner) forward(eng *engine.Engine) (stop func()) {
	sig, unsubscribe := eng.Subscribe()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-sig:
				r.changed()
			case <-quit:
				return
			}
		}
	}()
	return func() {
		unsubscribe()
		close(quit)
		<-done
	}
}

// Engine returns the engine running now, or the last one that ran; nil
// before Run started one.
func (r *Runner) Engine() *engine.Engine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng
}

// SetPaused adds (on) or drops (off) one reason to pause relaying;
// relaying runs when no reason is left. Each reason has one owner that
// sets and clears it, and no other: engine.PausedByUser the front end's
// pause command, engine.PausedOnMetered the Runner itself (Options.Metered).
// The set survives engine rebuilds.
func (r *Runner) SetPaused(why engine.PauseReason, on bool) {
	r.mu.Lock()
	next := r.pause &^ why
	if on {
		next |= why
	}
	if next == r.pause {
		r.mu.Unlock()
		return
	}
	r.pause = next
	if r.eng != nil && r.running {
		if next != 0 {
			r.eng.Pause(next)
		} else {
			r.eng.Resume()
		}
	}
	r.mu.Unlock()
	r.log.Info("pause reasons changed", "paused_for", next.String())
	r.changed()
}

// Paused returns the reasons relaying is paused for now; 0 when it is not.
func (r *Runner) Paused() engine.PauseReason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pause
}

// watchMetered owns engine.PausedOnMetered: it sets it while the network
// is metered and the pause_on_metered setting is on, and clears it
// otherwise, until ctx ends.
func (r *Runner) watchMetered(ctx context.Context) {
	t := time.NewTicker(r.o.MeteredEvery)
	defer t.Stop()
	for {
		r.checkMetered()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.meterd:
		}
	}
}

// checkMetered looks at the network and the setting once.
func (r *Runner) checkMetered() {
	metered, known := r.o.Metered()
	eff, err := r.Settings()
	r.SetPaused(engine.PausedOnMetered, err == nil && eff.PauseOnMetered && known && metered)
}

// Status is where everything stands, as a front end shows it. It is a
// copy: the caller may keep and change it.
type Status struct {
	Paired      bool   // the home has a platform
	PlatformURL string // the platform's base URL
	DeviceName  string // this computer, as pairing named it to the platform
	Accounts    []config.Account
	// Settings are the effective settings, each with its source.
	Settings settings.Effective
	// Engine is the running (or last) engine's snapshot; zero before one
	// ran.
	Engine engine.Snapshot
	// Running is true while an engine runs.
	Running bool
	// Stopped is why no engine runs: ErrNotPaired, ErrNoToken,
	// engine.ErrNoAccount or another error; nil while one runs, after a
	// clean stop, or before Run first tried.
	Stopped error
	// Paused is the set of reasons relaying is paused for (the Runner's;
	// the engine's snapshot follows it).
	Paused engine.PauseReason
	// PolicyPath is IT's policy file, "" when there is none: front ends
	// name it beside what it locks.
	PolicyPath string
}

// Status returns where everything stands now. It reads config.json and
// the state database: call it after a signal of Subscribe, not in a tight
// loop.
func (r *Runner) Status() Status {
	st := Status{DeviceName: r.device}
	cfg, err := r.home.Load()
	if err != nil {
		cfg = &config.Config{}
	}
	r.mu.Lock()
	eng := r.eng
	st.Running, st.Stopped, st.Paused = r.running, r.stopped, r.pause
	r.mu.Unlock()
	if err != nil {
		st.Stopped = err
	}
	st.Paired = cfg.Platform.URL != ""
	st.PlatformURL = cfg.Platform.URL
	st.Accounts = cfg.Accounts
	if eff, err := r.resolve(cfg); err == nil {
		st.Settings = eff
	} else {
		st.Settings = settings.Resolve(settings.Layers{User: cfg.Settings})
	}
	if r.o.IT != nil {
		st.PolicyPath = r.o.IT.Path
	}
	if eng != nil {
		st.Engine = eng.Snapshot()
	}
	return st
}

// Pair pairs the home again (or for the first time) and applies it: the
// running engine gets the new token when the platform is the same, else
// the engine is built anew (or, when none ran, started).
func (r *Runner) Pair(ctx context.Context, o PairOptions) (string, error) {
	cfg, err := r.home.Load()
	if err != nil {
		return "", err
	}
	if err := CheckPair(r.o.IT, o); err != nil {
		return "", err
	}
	id, err := Pair(ctx, r.home, o)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	eng, running := r.eng, r.running
	r.mu.Unlock()
	stored, _ := splitProxyLogin(o.Proxy)
	samePlatform := cfg.Platform.URL == strings.TrimRight(o.URL, "/") && cfg.Platform.CAFile == o.CAFile && cfg.Platform.Proxy == stored
	if !running || !samePlatform {
		r.Reload()
		r.changed()
		return id, nil
	}
	tok, err := r.kc.Get(keychain.DeviceTokenKey)
	if err == nil {
		err = eng.SetToken(tok)
	}
	r.changed()
	return id, err
}

// AddAccount checks and stores an account (see AddAccount) and restarts
// the engine to relay it.
func (r *Runner) AddAccount(ctx context.Context, acct config.Account, password string) (Check, error) {
	if err := r.o.IT.Refuse(policy.LockAccount); err != nil {
		return Check{}, err
	}
	ctx, err := WithMailRoute(ctx, r.home, r.o.IT)
	if err != nil {
		return Check{}, err
	}
	chk, err := AddAccount(ctx, r.home, acct, password)
	if err == nil {
		r.Reload()
		r.changed()
	}
	return chk, err
}

// RemoveAccount forgets an account and restarts the engine without it.
func (r *Runner) RemoveAccount(email string) error {
	if _, ok := r.o.IT.Account(email); ok {
		if err := r.o.IT.Refuse(policy.LockAccount); err != nil {
			return err
		}
	}
	if err := RemoveAccount(r.home, r.store, email); err != nil {
		return err
	}
	r.Reload()
	r.changed()
	return nil
}
