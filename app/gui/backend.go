package gui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Backend is everything the UI reads and asks for. The UI holds no sync
// logic: it renders Status and calls these commands. Implementations are
// safe for concurrent use; commands that talk to a server take a context
// and may block for as long as it allows, so the UI calls them off the
// fyne goroutine.
type Backend interface {
	// Status returns where everything stands now. It may read the state
	// database: call it after a signal of Subscribe, not in a tight loop.
	Status() Status
	// Subscribe returns a channel signalled (buffer of one, never closed)
	// whenever Status may have changed, and a function that ends the
	// subscription (safe to call more than once). Signals pending together
	// merge: read Status after each receive.
	Subscribe() (<-chan struct{}, func())
	// SyncNow asks every folder to look for new mail now.
	SyncNow()
	// SetPaused pauses or resumes relaying.
	SetPaused(paused bool)
	// Pair pairs this computer with the platform (first time or again).
	Pair(ctx context.Context, o connector.PairOptions) error
	// FindServers looks up the server settings of an address.
	FindServers(ctx context.Context, email string) (autoconfig.Result, error)
	// Check tests an account without storing anything, reporting each step
	// through progress (called from Check's goroutine, with the whole list
	// each time). It returns the account as it will be stored (a security
	// left empty for "automatic" is filled in). A certificate no root vouches
	// for fails with a *trust.UntrustedError carrying its fingerprint.
	Check(ctx context.Context, acct config.Account, password string, progress func([]Step)) (config.Account, error)
	// AddAccount stores a checked account and starts relaying it.
	AddAccount(ctx context.Context, acct config.Account, password string) error
	// SetPassword checks and stores a new password for an account.
	SetPassword(ctx context.Context, email, password string) error
	// CheckCertificate connects to the account's servers and returns the
	// certificate problem, if any (a *trust.UntrustedError), to show the
	// user the fingerprint before TrustCertificate.
	CheckCertificate(ctx context.Context, email string) error
	// TrustCertificate pins a certificate the user confirmed, for the one
	// server that showed it (pin.Server, host:port).
	TrustCertificate(email string, pin trust.Pin) error
	// SetSettings stores the user's choices that change sets (see
	// connector.Runner.SetUserSettings) and applies them.
	SetSettings(change settings.Values) error
	// LogDir is the folder holding the log files.
	LogDir() string
}

// Status is the UI's view of the connector at one moment.
type Status struct {
	Paired      bool
	PlatformURL string
	DeviceName  string // the name the platform knows this computer by
	Accounts    []config.Account
	// Settings are the effective settings, each with where it comes from.
	Settings settings.Effective
	// Engine is the engine's last snapshot; zero until it first ran.
	Engine engine.Snapshot
	// Running is true while the engine runs.
	Running bool
	// Stopped is why the engine does not run (nil while it runs or before
	// it was ever started); words.Stopped says it.
	Stopped error
}

// StepState is where one step of "Test connection" stands.
type StepState int

// The states of a step.
const (
	StepPending StepState = iota
	StepRunning
	StepPassed
	StepFailed
	StepSkipped
	StepWarned // passed, with something IT should look at
)

// Step is one check of "Test connection", in words a person reads.
type Step struct {
	Title  string
	State  StepState
	Detail string // what was found, or why it failed and what to do
}

// runnerBackend is the Backend of the real app: a connector.Runner on the
// user's home, the engine running in-process.
type runnerBackend struct {
	r      *connector.Runner
	finder autoconfig.Finder
	kick   chan struct{} // wakes the supervisor after pairing or adding an account
	halt   chan struct{} // closed by stop
	once   sync.Once

	mu      sync.Mutex
	running bool
	stopped error
	device  string
	subs    map[chan struct{}]struct{} // Subscribe's channels
}

func newRunnerBackend(r *connector.Runner) *runnerBackend {
	host, _ := os.Hostname()
	return &runnerBackend{r: r, kick: make(chan struct{}, 1), halt: make(chan struct{}), device: host, subs: map[chan struct{}]struct{}{}}
}

// stop ends run (and the engine) for good. Safe to call more than once.
func (b *runnerBackend) stop() { b.once.Do(func() { close(b.halt) }) }

// run supervises the engine until ctx ends: when it cannot run (not
// paired, no account yet), it waits for a kick and tries again.
func (b *runnerBackend) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.halt:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		b.setRunning(true, nil)
		err := b.r.Run(ctx)
		b.setRunning(false, err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.r.Log().Warn("the engine stopped", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-time.After(30 * time.Second):
		}
	}
}

func (b *runnerBackend) setRunning(running bool, stopped error) {
	b.mu.Lock()
	b.running, b.stopped = running, stopped
	b.mu.Unlock()
	b.changed()
}

// Subscribe hears the runner's signals (the engine's, across rebuilds)
// and the backend's own: the engine started or stopped, settings changed.
func (b *runnerBackend) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	rch, unsubscribe := b.r.Subscribe()
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-rch:
				poke(ch)
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			unsubscribe()
			close(quit)
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
		})
	}
}

// changed signals every subscriber.
func (b *runnerBackend) changed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		poke(ch)
	}
}

// poke leaves a signal in ch unless one is pending already.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (b *runnerBackend) restart() {
	defer b.changed()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	b.r.Reload()
}

func (b *runnerBackend) Status() Status {
	cfg, err := b.r.Home().Load()
	if err != nil {
		cfg = &config.Config{}
	}
	b.mu.Lock()
	st := Status{Running: b.running, DeviceName: b.device}
	st.Stopped = b.stopped
	b.mu.Unlock()
	if err != nil {
		st.Stopped = err
	}
	st.Paired = cfg.Platform.URL != ""
	st.PlatformURL = cfg.Platform.URL
	st.Accounts = cfg.Accounts
	if eff, err := b.r.Settings(); err == nil {
		st.Settings = eff
	} else {
		st.Settings = settings.Resolve(settings.Layers{User: cfg.Settings})
	}
	if eng := b.r.Engine(); eng != nil {
		st.Engine = eng.Snapshot()
	}
	return st
}

func (b *runnerBackend) SyncNow() {
	if eng := b.r.Engine(); eng != nil {
		eng.SyncNow()
	}
	b.restart()
}

func (b *runnerBackend) SetPaused(p bool) { b.r.SetPaused(p) }

func (b *runnerBackend) Pair(ctx context.Context, o connector.PairOptions) error {
	_, err := b.r.Pair(ctx, o)
	if err == nil {
		b.restart()
	}
	return err
}

func (b *runnerBackend) FindServers(ctx context.Context, email string) (autoconfig.Result, error) {
	return b.finder.Find(ctx, email)
}

func (b *runnerBackend) Check(ctx context.Context, acct config.Account, password string, progress func([]Step)) (config.Account, error) {
	ctx, err := b.r.MailContext(ctx)
	if err != nil {
		return acct, err
	}
	checked, err := checkAccount(ctx, acct, password, progress, doctor.Run)
	if err != nil {
		b.r.Log().Info("connection test failed", "account", acct.Email, "err", err)
	} else {
		b.r.Log().Info("connection test passed", "account", acct.Email)
	}
	return checked, err
}

// doctorFunc is doctor.Run's shape.
type doctorFunc func(context.Context, doctor.Options) *doctor.Report

// checkSteps are the doctor's steps for an account, in the order it runs
// them: "Test connection" lists them all from the start, pending.
var checkSteps = []struct{ target, id string }{
	{doctor.TargetIMAP, doctor.StepDNS}, {doctor.TargetIMAP, doctor.StepTCP}, {doctor.TargetIMAP, doctor.StepTLS},
	{doctor.TargetIMAP, doctor.StepGreeting}, {doctor.TargetIMAP, doctor.StepLogin}, {doctor.TargetIMAP, doctor.StepFolders},
	{doctor.TargetSMTP, doctor.StepDNS}, {doctor.TargetSMTP, doctor.StepTCP}, {doctor.TargetSMTP, doctor.StepTLS},
	{doctor.TargetSMTP, doctor.StepGreeting}, {doctor.TargetSMTP, doctor.StepLogin},
}

// checkAccount runs "Test connection": the connection doctor on both
// servers (the platform is paired before, so not checked), each step
// shown live through progress. A security left automatic is found out
// first (autoconfig.Probe) and returned filled in. A failed step is the
// error; an untrusted certificate is a *trust.UntrustedError, so that
// setup can show its fingerprint and ask.
func checkAccount(ctx context.Context, acct config.Account, password string, progress func([]Step), run doctorFunc) (config.Account, error) {
	steps := make([]Step, len(checkSteps))
	at := map[string]int{}
	for i, s := range checkSteps {
		steps[i] = Step{Title: words.StepTitle(s.target, s.id, "")}
		at[s.target+"/"+s.id] = i
	}
	report := func() {
		if progress != nil {
			progress(slices.Clone(steps))
		}
	}
	report()

	// The doctor checks the security it is given: find out the automatic
	// one from what the server says first. Both at once: a TLS server
	// makes the probe wait for a greeting that never comes (2 s).
	var wg sync.WaitGroup
	for _, srv := range []*config.Server{&acct.IMAP, &acct.SMTP} {
		if srv.Security != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sec, err := autoconfig.Probe(ctx, srv.Addr(), 0)
			if err != nil {
				// Unreachable: the doctor's own steps say why, with the
				// security the port usually has.
				sec = config.SecurityTLS
				if srv.Port == 143 || srv.Port == 587 || srv.Port == 25 {
					sec = config.SecurityStartTLS
				}
			}
			srv.Security = sec
		}()
	}
	wg.Wait()

	rep := run(ctx, doctor.Options{Account: acct, Password: password, Progress: func(ds doctor.Step) {
		k := ds.Target + "/" + ds.ID
		i, ok := at[k]
		if !ok { // a step this list does not know yet: shown all the same
			i = len(steps)
			at[k] = i
			steps = append(steps, Step{})
		}
		steps[i] = guiStep(ds)
		report()
	}})
	failed, ok := rep.Failed()
	if !ok {
		return acct, nil
	}
	srv := acct.IMAP
	if failed.Target == doctor.TargetSMTP {
		srv = acct.SMTP
	}
	fp := failed.Fact("sha256 fingerprint")
	pinned := slices.ContainsFunc(acct.PinsFor(srv.Addr()), func(p trust.Pin) bool { return p.Fingerprint == fp })
	if failed.ID == doctor.StepTLS && fp != "" && !pinned &&
		(failed.Cause == doctor.CauseTLSUntrusted || failed.Cause == doctor.CauseTLSNameMismatch) {
		return acct, fmt.Errorf("%s: %w", words.Target(failed.Target), &trust.UntrustedError{
			Server: srv.Addr(), Host: srv.Host, Fingerprint: fp, Reason: errors.New(failed.Summary)})
	}
	return acct, fmt.Errorf("%s: %s", words.StepTitle(failed.Target, failed.ID, failed.Title), failed.Summary)
}

// guiStep turns a doctor step into a row of "Test connection".
func guiStep(ds doctor.Step) Step {
	st := Step{Title: words.StepTitle(ds.Target, ds.ID, ds.Title), Detail: words.StepDetail(ds)}
	switch ds.Status {
	case doctor.Running:
		st.State = StepRunning
	case doctor.OK:
		st.State = StepPassed
	case doctor.Warn:
		st.State = StepWarned
	case doctor.Fail:
		st.State = StepFailed
	default:
		st.State = StepSkipped
	}
	return st
}

func (b *runnerBackend) AddAccount(ctx context.Context, acct config.Account, password string) error {
	_, err := b.r.AddAccount(ctx, acct, password)
	if err == nil {
		b.restart()
	}
	return err
}

func (b *runnerBackend) SetPassword(ctx context.Context, email, password string) error {
	return b.r.SetPassword(ctx, email, password)
}

func (b *runnerBackend) CheckCertificate(ctx context.Context, email string) error {
	_, err := b.r.CheckStoredAccount(ctx, email)
	var ue *trust.UntrustedError
	if errors.As(err, &ue) {
		return ue
	}
	return nil
}

func (b *runnerBackend) TrustCertificate(email string, pin trust.Pin) error {
	return b.r.TrustCertificate(email, pin)
}

func (b *runnerBackend) SetSettings(change settings.Values) error {
	defer b.changed()
	return b.r.SetUserSettings(change)
}

func (b *runnerBackend) LogDir() string { return b.r.Home().LogDir() }
