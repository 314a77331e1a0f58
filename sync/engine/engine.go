// Package engine runs the connector: for every account it keeps INBOX and
// Sent in step with the platform, relaying each message until the platform
// confirms it, and reports where everything stands.
//
// The engine knows nothing of any user interface. It exposes status
// snapshots (Snapshot), change signals (Subscribe) and a few commands
// (SyncNow, Pause, Resume, SetToken). One Engine runs per home, under the
// home's lock.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/spool"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// Secrets is where the engine reads passwords and the device token.
// keychain.Store satisfies it.
type Secrets interface {
	Get(key string) (string, error)
}

// Options configure an Engine. Zero durations take the defaults shown.
type Options struct {
	Home     config.Home
	Config   *config.Config
	Store    *state.Store
	Secrets  Secrets
	Platform relay.Options // BaseURL, CAFile, Proxy and Token of the paired platform
	Log      *slog.Logger
	// Policy is IT's part of the settings (sync/settings). The user's part
	// is Config.Settings; the platform's is what the heartbeat brings.
	Policy settings.Policy

	// Once makes Run do one pass over every folder and return: nil when
	// nothing is left pending.
	Once bool

	Workers        int           // concurrent uploads; 8
	IdleRefresh    time.Duration // how long one IDLE lasts before it is renewed; 9 min
	PollInterval   time.Duration // polling period on servers without IDLE; 1 min
	Watchdog       time.Duration // how long a server may take to end IDLE; 30 s
	HeartbeatEvery time.Duration // 1 min
	Backoff        backoff.Policy
	OutboxWait     time.Duration // how long one outbox long poll waits; 55 s
	// FiledWait is how long to wait, after sending, for a server that files
	// sent mail itself before appending the copy ourselves; 2 s.
	FiledWait time.Duration
	// GiveUpAfter bounds the retries of one upload on temporary failures
	// (Once mode only); 0 never gives up.
	GiveUpAfter time.Duration
	Now         func() time.Time
}

// Engine relays the accounts of one home. Its methods are safe for
// concurrent use; Run is called once.
type Engine struct {
	o     Options
	log   *slog.Logger
	spool *spool.Spool
	jobs  chan *job

	platform atomic.Pointer[relay.Client]

	mu        gosync.Mutex
	folders   []*folderSync
	blocked   bool          // the platform refused the token
	unblocked chan struct{} // closed when blocked ends
	platErr   string
	paused    bool
	pausedFor PauseReason   // as the last Pause said
	resumed   chan struct{} // closed on Resume
	cancels   map[*folderSync]context.CancelFunc
	settings  state.Settings
	obErr     map[string]string // account -> last outbox error

	subMu gosync.Mutex
	subs  map[chan struct{}]struct{} // Subscribe's channels
	// beaten is closed after the first heartbeat attempt: the platform's
	// settings (relay_domains above all) are known before anything is
	// relayed.
	beaten chan struct{}
}

// New checks o and returns an Engine ready to Run.
func New(o Options) (*Engine, error) {
	if o.Config == nil || o.Store == nil || o.Secrets == nil {
		return nil, errors.New("engine: Config, Store and Secrets are required")
	}
	if o.Platform.BaseURL == "" || o.Platform.Token == "" {
		return nil, ErrNotPaired
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.IdleRefresh, 9*time.Minute)
	def(&o.PollInterval, time.Minute)
	def(&o.Watchdog, 30*time.Second)
	def(&o.HeartbeatEvery, time.Minute)
	def(&o.OutboxWait, 55*time.Second)
	def(&o.FiledWait, 2*time.Second)
	if o.Backoff.Base == 0 {
		o.Backoff = backoff.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	pc, err := relay.New(o.Platform)
	if err != nil {
		return nil, err
	}
	st, err := o.Store.Settings()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		o:         o,
		log:       o.Log,
		spool:     &spool.Spool{Dir: o.Home.SpoolDir()},
		jobs:      make(chan *job),
		unblocked: make(chan struct{}),
		resumed:   make(chan struct{}),
		cancels:   map[*folderSync]context.CancelFunc{},
		obErr:     map[string]string{},
		settings:  st,
		subs:      map[chan struct{}]struct{}{},
		beaten:    make(chan struct{}),
	}
	close(e.unblocked)
	close(e.resumed)
	e.platform.Store(pc)
	for _, a := range o.Config.Accounts {
		pol, err := trust.NewPolicy(a.MinTLS, a.TrustPins(), nil)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Email, err)
		}
		for _, role := range []string{RoleInbox, RoleSent} {
			e.folders = append(e.folders, &folderSync{e: e, acct: a, role: role, trust: pol, st: Starting,
				key: state.FolderKey{Account: strings.ToLower(a.Email), Role: role}, wake: make(chan struct{}, 1)})
		}
	}
	return e, nil
}

// The two folder roles, as the relay API names them.
const (
	RoleInbox = "inbox"
	RoleSent  = "sent"
)

// Run relays until ctx ends (or, in Once mode, until the outbox was
// handled and then every folder had one pass). It returns nil after a
// clean stop; in Once mode, an error naming what could not be done.
// Shutdown is ordered: folder syncs stop, uploads in flight finish or are
// abandoned (nothing is marked done without the platform's word), then the
// status file is written one last time.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.spool.Clean(); err != nil {
		return err
	}
	if len(e.folders) == 0 {
		return ErrNoAccount
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var bg gosync.WaitGroup // workers, heartbeat, status writer
	for i := 0; i < e.o.Workers; i++ {
		bg.Add(1)
		go func() { defer bg.Done(); e.worker(ctx) }()
	}
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); e.writeStatus(ctx) }()

	if e.o.Once {
		// The platform's settings (window, domains) apply before the pass.
		err := e.heartbeat(ctx)
		close(e.beaten)
		if errors.Is(err, relay.ErrUnauthorized) {
			cancel()
			bg.Wait()
			<-statusDone
			return err
		}
	} else {
		bg.Add(1)
		go func() { defer bg.Done(); e.heartbeatLoop(ctx) }()
	}

	errs := make([]error, len(e.folders)+1)
	if e.o.Once {
		// The outbox goes first, so that the copies it files in Sent are
		// relayed by this same pass and not left pending.
		errs[len(e.folders)] = newOutbox(e).run(ctx)
	}
	var fw gosync.WaitGroup
	for i, f := range e.folders {
		fw.Add(1)
		go func() { defer fw.Done(); errs[i] = f.run(ctx) }()
	}
	if !e.o.Once {
		fw.Add(1)
		go func() { defer fw.Done(); errs[len(e.folders)] = newOutbox(e).run(ctx) }()
	}
	fw.Wait()
	if e.o.Once {
		e.heartbeat(ctx) // report where the pass left things; best effort
	}
	cancel()
	bg.Wait()
	<-statusDone
	if e.o.Once {
		return joinOnce(errs)
	}
	return nil
}

// joinOnce keeps one line per distinct problem.
func joinOnce(errs []error) error {
	seen := map[string]bool{}
	var lines []string
	for _, err := range errs {
		if err == nil {
			continue
		}
		if s := err.Error(); !seen[s] {
			seen[s] = true
			lines = append(lines, s)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "; "))
}

// SyncNow makes every folder look for new mail now, and retry at once a
// connection that is waiting out its backoff.
func (e *Engine) SyncNow() {
	for _, f := range e.folders {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// Pause closes every mail connection and stops relaying until Resume.
// Nothing is lost: what was pending is relayed after Resume. why is the
// caller's whole set of reasons, which the snapshot reports (PausedFor);
// calling Pause again while paused only replaces it. The engine keeps no
// set of its own: connector.Runner owns it.
func (e *Engine) Pause(why ...PauseReason) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var set PauseReason
	for _, r := range why {
		set |= r
	}
	if e.paused {
		if e.pausedFor != set {
			e.pausedFor = set
			e.changed()
		}
		return
	}
	e.paused, e.pausedFor = true, set
	e.resumed = make(chan struct{})
	for _, c := range e.cancels {
		c()
	}
	e.changed()
}

// Resume undoes Pause.
func (e *Engine) Resume() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.paused {
		return
	}
	e.paused, e.pausedFor = false, 0
	close(e.resumed)
	e.changed()
}

// SetToken replaces the device token after pairing again, and resumes
// relaying if the platform had refused the old one.
func (e *Engine) SetToken(token string) error {
	o := e.o.Platform
	o.Token = token
	pc, err := relay.New(o)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.o.Platform.Token = token
	e.mu.Unlock()
	old := e.platform.Swap(pc)
	old.Close()
	e.setBlocked(false)
	return nil
}

// Subscribe returns a channel that is signalled whenever the snapshot may
// have changed, and a function that ends the subscription. Each
// subscriber has its own channel with a buffer of one: a signal is never
// blocked on a slow reader, and signals that come while one is pending
// merge into it, so a reader calls Snapshot after each receive and sees
// every change up to then. The channel is never closed, also not by the
// returned function, which may be called more than once. Subscribe and
// the function are safe for concurrent use, also with the engine running.
func (e *Engine) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.subMu.Lock()
	e.subs[ch] = struct{}{}
	e.subMu.Unlock()
	return ch, func() {
		e.subMu.Lock()
		delete(e.subs, ch)
		e.subMu.Unlock()
	}
}

// changed signals every subscriber. It may be called with e.mu held.
func (e *Engine) changed() {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// setOutboxError records the last outbox problem of an account (nil
// clears it).
func (e *Engine) setOutboxError(account string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := strings.ToLower(account)
	s := ""
	if err != nil {
		s = err.Error()
	}
	if e.obErr[k] != s {
		e.obErr[k] = s
		e.changed()
	}
}

// gate blocks while the engine is paused.
func (e *Engine) gate(ctx context.Context) error {
	e.mu.Lock()
	ch := e.resumed
	e.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sessionContext returns a context for one folder session, cancelled by
// Pause.
func (e *Engine) sessionContext(ctx context.Context, f *folderSync) (context.Context, func()) {
	sctx, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	e.cancels[f] = cancel
	if e.paused {
		cancel()
	}
	e.mu.Unlock()
	return sctx, func() {
		e.mu.Lock()
		delete(e.cancels, f)
		e.mu.Unlock()
		cancel()
	}
}

func (e *Engine) setBlocked(b bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.blocked == b {
		return
	}
	e.blocked = b
	if b {
		e.unblocked = make(chan struct{})
		e.platErr = relay.ErrUnauthorized.Error()
		e.log.Warn("the platform refused the device token; relaying stops until the device is paired again")
	} else {
		close(e.unblocked)
		e.platErr = ""
	}
	e.changed()
}

func (e *Engine) setPlatformErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := ""
	if err != nil {
		s = err.Error()
	}
	if e.platErr != s && !e.blocked {
		e.platErr = s
		e.changed()
	}
}

// waitPlatform blocks while the platform refuses the token. In Once mode it
// returns relay.ErrUnauthorized instead. In Run mode it looks for a new
// token in the keychain (a `pair` run by another process) every 30 s.
func (e *Engine) waitPlatform(ctx context.Context) error {
	for {
		e.mu.Lock()
		blocked, ch := e.blocked, e.unblocked
		e.mu.Unlock()
		if !blocked {
			return nil
		}
		if e.o.Once {
			return relay.ErrUnauthorized
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			if tok, err := e.o.Secrets.Get(keychain.DeviceTokenKey); err == nil && tok != e.currentToken() {
				if err := e.SetToken(tok); err != nil {
					e.log.Warn("use the new device token", "err", err)
				}
			}
		}
	}
}

func (e *Engine) currentToken() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.o.Platform.Token
}

func (e *Engine) currentSettings() state.Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.settings
}

// effective resolves the settings (sync/settings) with the platform's as
// last received.
func (e *Engine) effective() settings.Effective {
	return settings.Resolve(e.o.Policy.Layers(e.o.Config.Settings, e.currentSettings().Layer()))
}

// heartbeatLoop beats at once, then every HeartbeatEvery, without holding
// up the folders when the platform is slow to answer.
func (e *Engine) heartbeatLoop(ctx context.Context) {
	e.heartbeat(ctx)
	close(e.beaten)
	t := time.NewTicker(e.o.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.heartbeat(ctx)
		}
	}
}

// heartbeat reports every account and applies the settings the platform
// sends back.
func (e *Engine) heartbeat(ctx context.Context) error {
	snap := e.Snapshot()
	hb := relay.Heartbeat{Version: version.Version, OS: runtime.GOOS, Accounts: []relay.AccountHeartbeat{}}
	for _, a := range snap.Accounts {
		hb.Accounts = append(hb.Accounts, relay.AccountHeartbeat{
			Email: a.Email, State: a.State.Heartbeat(), LastSync: a.LastSync,
			Backlog: a.Backlog, Rejected: a.Rejected, Error: a.LastError,
		})
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := e.platform.Load().Heartbeat(hctx, hb)
	if err != nil {
		if errors.Is(err, relay.ErrUnauthorized) {
			e.setBlocked(true)
		} else if ctx.Err() == nil {
			e.setPlatformErr(err)
			e.log.Warn("heartbeat", "err", err)
		}
		return err
	}
	e.setPlatformErr(nil)
	if s == nil {
		return nil
	}
	e.mu.Lock()
	next := e.settings
	if s.BackfillDays != nil {
		next.BackfillDays = s.BackfillDays
	}
	if s.DomainsGiven {
		next.RelayDomains = s.RelayDomains
	}
	same := fmt.Sprint(next) == fmt.Sprint(e.settings)
	e.settings = next
	e.mu.Unlock()
	if !same {
		e.log.Info("platform settings applied", "backfill_days", next.BackfillDays, "relay_domains", next.RelayDomains)
		if err := e.o.Store.PutSettings(next); err != nil {
			return err
		}
		e.SyncNow()
	}
	return nil
}

// writeStatus keeps the status file (read by `inboxrelay status`) up to
// date, at most four times a second, and once more at the end.
func (e *Engine) writeStatus(ctx context.Context) {
	changes, unsubscribe := e.Subscribe()
	defer unsubscribe()
	write := func(running bool) {
		s := e.Snapshot()
		s.Running = running
		b, err := json.MarshalIndent(s, "", "  ")
		if err == nil {
			err = config.WriteFileAtomic(e.o.Home.StatusPath(), b, 0o600)
		}
		if err != nil {
			e.log.Warn("write status", "err", err)
		}
	}
	write(true)
	for {
		select {
		case <-ctx.Done():
			write(false)
			return
		case <-changes:
			write(true)
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// Snapshot is the engine's status at one moment; it is also what the
// status file holds. States are typed (State, PlatformState, PauseReason)
// and written as their words.
type Snapshot struct {
	Time    time.Time `json:"time"`
	Running bool      `json:"running"`
	Paused  bool      `json:"paused"`
	// PausedFor is why, as the last Pause said (empty when Pause was given
	// no reason).
	PausedFor PauseReason     `json:"paused_for,omitzero"`
	Platform  PlatformStatus  `json:"platform"`
	Accounts  []AccountStatus `json:"accounts"`
}

// PlatformStatus is the platform connection's state.
type PlatformStatus struct {
	URL   string        `json:"url"`
	State PlatformState `json:"state"`
	Error string        `json:"error,omitempty"`
}

// AccountStatus is one account's state: the most urgent of its folders'.
type AccountStatus struct {
	Email        string            `json:"email"`
	State        State             `json:"state"`
	LastSync     time.Time         `json:"last_sync,omitzero"`
	Relayed      int               `json:"relayed"`
	RelayedToday int               `json:"relayed_today"`
	Backlog      int               `json:"backlog"`
	Rejected     int               `json:"rejected"`
	Skipped      int               `json:"skipped"`
	Rejections   []state.Rejection `json:"rejections,omitempty"`
	LastError    string            `json:"last_error,omitempty"`
	Folders      []FolderStatus    `json:"folders"`
	Outbox       OutboxStatus      `json:"outbox"`
}

// OutboxStatus is where an account's outgoing mail stands.
type OutboxStatus struct {
	Queued    int    `json:"queued"`    // waiting to be sent (or retried)
	Sending   int    `json:"sending"`   // SMTP transaction under way
	Failed    int    `json:"failed"`    // refused for good (last 30 days)
	Ambiguous int    `json:"ambiguous"` // delivery unknown (last 30 days)
	Sent      int    `json:"sent"`      // sent (last 30 days)
	LastError string `json:"last_error,omitempty"`
}

// FolderStatus is one folder's state.
type FolderStatus struct {
	Role     string    `json:"role"`
	Name     string    `json:"name,omitempty"`
	State    State     `json:"state"`
	LastSync time.Time `json:"last_sync,omitzero"`
	Backlog  int       `json:"backlog"`
	Error    string    `json:"error,omitempty"`
}

// Snapshot returns the current status. It reads counters from the state
// database: call it on a change signal, not in a tight loop.
func (e *Engine) Snapshot() Snapshot {
	e.mu.Lock()
	s := Snapshot{Time: e.o.Now(), Paused: e.paused, PausedFor: e.pausedFor, Platform: PlatformStatus{URL: e.o.Platform.BaseURL, State: PlatformOK, Error: e.platErr}}
	if e.blocked {
		s.Platform.State = PlatformNeedsPairing
	} else if e.platErr != "" {
		s.Platform.State = PlatformUnreachable
	}
	byAcct := map[string]*AccountStatus{}
	var order []string
	for _, f := range e.folders {
		a := byAcct[f.key.Account]
		if a == nil {
			a = &AccountStatus{Email: f.acct.Email}
			byAcct[f.key.Account] = a
			order = append(order, f.key.Account)
		}
		fst := f.st
		if e.paused {
			fst = Paused
		}
		if fst == Offline && e.blocked {
			fst = NeedsPairing
		}
		fs := FolderStatus{Role: f.role, Name: f.name, State: fst, LastSync: f.lastSync, Backlog: f.backlog, Error: f.errText}
		a.Folders = append(a.Folders, fs)
		a.Backlog += f.backlog
		if fst > a.State || len(a.Folders) == 1 {
			a.State = fst
		}
		if f.errText != "" && a.LastError == "" {
			a.LastError = f.errText
		}
		if a.LastSync.IsZero() || (!f.lastSync.IsZero() && f.lastSync.Before(a.LastSync)) {
			a.LastSync = f.lastSync // the account is as fresh as its stalest folder
		}
	}
	obErr := map[string]string{}
	for k, v := range e.obErr {
		obErr[k] = v
	}
	e.mu.Unlock()
	items, _ := e.o.Store.OutboxItems()
	for _, it := range items {
		a := byAcct[strings.ToLower(it.Account)]
		if a == nil {
			continue
		}
		switch it.State {
		case state.OutboxReceived:
			a.Outbox.Queued++
		case state.OutboxSending:
			a.Outbox.Sending++
		case state.OutboxSent:
			a.Outbox.Sent++
		case state.OutboxFailed:
			a.Outbox.Failed++
		case state.OutboxAmbiguous:
			a.Outbox.Ambiguous++
		}
	}
	for _, k := range order {
		a := byAcct[k]
		a.Outbox.LastError = obErr[k]
		if a.LastError == "" && a.Outbox.LastError != "" {
			a.LastError = "sending: " + a.Outbox.LastError
		}
		if c, err := e.o.Store.Counters(k); err == nil {
			a.Relayed, a.RelayedToday, a.Rejected, a.Skipped = c.Relayed, c.RelayedToday, c.Rejected, c.Skipped
		}
		if r, err := e.o.Store.Rejections(k); err == nil {
			if len(r) > 20 {
				r = r[len(r)-20:]
			}
			a.Rejections = r
		}
		s.Accounts = append(s.Accounts, *a)
	}
	sort.SliceStable(s.Accounts, func(i, j int) bool { return s.Accounts[i].Email < s.Accounts[j].Email })
	return s
}
