package gui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Backend is everything the UI reads and asks for. The UI holds no sync
// logic: it renders Status and calls these commands. Implementations are
// safe for concurrent use; commands that talk to a server take a context
// and may block for as long as it allows, so the UI calls them off the
// fyne goroutine.
type Backend interface {
	// Status returns where everything stands now. It may read the state
	// database: call it about once a second, not in a tight loop.
	Status() Status
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
	// TrustCertificate pins a certificate the user confirmed.
	TrustCertificate(email, fingerprint string) error
	// SetBackfillDays and SetLogLevel change settings (see Settings).
	SetBackfillDays(days int) error
	SetLogLevel(level string) error
	// LogDir is the folder holding the log files.
	LogDir() string
}

// Status is the UI's view of the connector at one moment.
type Status struct {
	Paired      bool
	PlatformURL string
	DeviceName  string // the name the platform knows this computer by
	Accounts    []config.Account
	LogLevel    string
	// Engine is the engine's last snapshot; zero until it first ran.
	Engine engine.Snapshot
	// Running is true while the engine runs.
	Running bool
	// Stopped says, in plain words, why the engine does not run ("" while it
	// runs or before it was ever started).
	Stopped string
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
}

func newRunnerBackend(r *connector.Runner) *runnerBackend {
	host, _ := os.Hostname()
	return &runnerBackend{r: r, kick: make(chan struct{}, 1), halt: make(chan struct{}), device: host}
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
		b.mu.Lock()
		b.running, b.stopped = true, nil
		b.mu.Unlock()
		err := b.r.Run(ctx)
		b.mu.Lock()
		b.running, b.stopped = false, err
		b.mu.Unlock()
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

func (b *runnerBackend) restart() {
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
	if b.stopped != nil {
		st.Stopped = stoppedWords(b.stopped)
	}
	b.mu.Unlock()
	if err != nil {
		st.Stopped = "The settings cannot be read; " + err.Error()
	}
	st.Paired = cfg.Platform.URL != ""
	st.PlatformURL = cfg.Platform.URL
	st.Accounts = cfg.Accounts
	st.LogLevel = cfg.LogLevel
	if eng := b.r.Engine(); eng != nil {
		st.Engine = eng.Snapshot()
	}
	return st
}

// stoppedWords turns the reason the engine does not run into a sentence.
func stoppedWords(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, connector.ErrNotPaired):
		return "This computer is not paired with the platform yet; pair it to start relaying."
	case strings.Contains(s, "no account is set up"):
		return "No mailbox is set up yet; add one to start relaying."
	case strings.Contains(s, "device token is missing"):
		return "The platform's key for this computer is missing from the keychain; pair again."
	}
	return "Relaying stopped: " + s
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
	checked, err := checkAccount(ctx, acct, password, progress, connector.CheckAccount)
	if err != nil {
		b.r.Log().Info("connection test failed", "account", acct.Email, "err", err)
	} else {
		b.r.Log().Info("connection test passed", "account", acct.Email)
	}
	return checked, err
}

// checkFunc is connector.CheckAccount's shape.
type checkFunc func(context.Context, config.Account, string) (connector.Check, error)

// checkAccount runs the steps of "Test connection": reach each server
// (which also tells TLS from STARTTLS when the security is left
// automatic), then log in to both and find the folders. The connection
// doctor (sync/doctor) can replace the login steps once it lands.
func checkAccount(ctx context.Context, acct config.Account, password string, progress func([]Step), check checkFunc) (config.Account, error) {
	steps := []Step{
		{Title: "Reach the incoming mail server " + acct.IMAP.Addr()},
		{Title: "Reach the outgoing mail server " + acct.SMTP.Addr()},
		{Title: "Log in to incoming mail and find Inbox and Sent"},
		{Title: "Log in to outgoing mail"},
	}
	report := func(i int, s StepState, detail string) {
		steps[i].State, steps[i].Detail = s, detail
		if progress != nil {
			progress(append([]Step(nil), steps...))
		}
	}
	skipRest := func(from int) {
		for i := from; i < len(steps); i++ {
			steps[i].State = StepSkipped
		}
	}
	for i, srv := range []*config.Server{&acct.IMAP, &acct.SMTP} {
		report(i, StepRunning, "")
		sec, err := autoconfig.Probe(ctx, srv.Addr(), 0)
		if err != nil {
			skipRest(i + 1)
			report(i, StepFailed, "Cannot reach "+srv.Addr()+"; check the server name and port, and that this computer is online.")
			return acct, fmt.Errorf("cannot reach %s: %w", srv.Addr(), err)
		}
		if srv.Security == "" {
			srv.Security = sec
		}
		how := "encrypted from the start (TLS)"
		if srv.Security == config.SecurityStartTLS {
			how = "encrypted with STARTTLS"
		}
		report(i, StepPassed, "Connected; the connection will be "+how+".")
	}
	report(2, StepRunning, "")
	report(3, StepRunning, "")
	chk, err := check(ctx, acct, password)
	if err == nil {
		report(2, StepPassed, fmt.Sprintf("Logged in; Sent is %q.", chk.Sent.Name))
		report(3, StepPassed, "Logged in.")
		return acct, nil
	}
	failed := 2
	if strings.HasPrefix(err.Error(), "SMTP:") {
		report(2, StepPassed, "Logged in.")
		failed = 3
	} else {
		skipRest(3)
	}
	report(failed, StepFailed, checkWords(err))
	return acct, err
}

// checkWords says in one sentence what a failed check means and what to do.
func checkWords(err error) string {
	var ue *trust.UntrustedError
	var ne *imapsync.NetError
	switch {
	case errors.As(err, &ue):
		return "The server's certificate is not vouched for by any authority; compare its fingerprint with your IT team's before trusting it."
	case errors.Is(err, imapsync.ErrAuth):
		return "The server refused this address and password; check them and try again."
	case errors.As(err, &ne):
		return "The server could not be reached; check the server name and port, and that this computer is online."
	}
	return "The check failed: " + strings.TrimPrefix(strings.TrimPrefix(err.Error(), "IMAP: "), "SMTP: ")
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

func (b *runnerBackend) TrustCertificate(email, fp string) error {
	return b.r.TrustCertificate(email, fp)
}

func (b *runnerBackend) SetBackfillDays(days int) error { return b.r.SetBackfillDays(days) }

func (b *runnerBackend) SetLogLevel(level string) error { return b.r.SetLogLevel(level) }

func (b *runnerBackend) LogDir() string { return b.r.Home().LogDir() }
