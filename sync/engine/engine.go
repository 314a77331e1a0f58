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
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
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

	Workers        int           // concurrent uploads; 64
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
	// Silence is how long a mail server may stay silent while the engine
	// waits for it (greeting, login, a command's answer, the next bytes of
	// a message) before the connection is dropped and rebuilt; 60 s.
	Silence time.Duration
	// Ahead bounds the bytes of message bodies fetched and not yet
	// uploaded, in memory or in spool files, all folders together; 16 MiB.
	// The folders fetch the next messages while earlier ones upload, up to
	// this much; a message bigger than that is fetched once nothing else
	// is held.
	Ahead int64
	// RetryUndeliverable is how often a message the server could not
	// deliver is tried again (SyncNow tries at once); 24 h.
	RetryUndeliverable time.Duration
	Now                func() time.Time
	Outbox             OutboxOptions // sending for the platform
}

// Engine relays the accounts of one home. Its methods are safe for
// concurrent use; Run is called once.
type Engine struct {
	o     Options
	log   *slog.Logger
	spool *spool.Spool
	jobs  chan *job
	// ahead bounds the bodies fetched and not yet uploaded (ahead.go).
	ahead *bodyBudget

	platform *platform // the one owner of the platform's state

	mu        gosync.Mutex
	folders   []*folderSync
	paused    bool
	pausedFor PauseReason   // as the last Pause said
	resumed   chan struct{} // closed on Resume
	cancels   map[*folderSync]context.CancelFunc
	settings  state.Settings    // the platform's, as last received (or stored)
	obErr     map[string]string // account -> last outbox error

	subMu gosync.Mutex
	subs  map[chan struct{}]struct{} // Subscribe's channels
	// beaten is closed once the platform's settings are known: at start
	// when a heartbeat of this platform stored them before, else after the
	// first heartbeat that succeeds. Nothing is relayed before (relay_domains
	// above all must be known before the first message leaves).
	beaten     chan struct{}
	beatenOnce gosync.Once
	beatNow    chan struct{} // a heartbeat now (a new token); buffer of one

	wakeMu gosync.Mutex
	wakeCh chan struct{} // closed and replaced by every SyncNow (woken)
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
		o.Workers = 64
	}
	if o.Ahead <= 0 {
		o.Ahead = aheadBytes
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
	def(&o.Silence, imapsync.DefaultSilence)
	def(&o.RetryUndeliverable, 24*time.Hour)
	if o.Backoff.Base == 0 {
		o.Backoff = backoff.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	st, err := o.Store.Settings()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		o:        o,
		log:      o.Log,
		spool:    &spool.Spool{Dir: o.Home.SpoolDir()},
		jobs:     make(chan *job),
		ahead:    newBodyBudget(o.Ahead),
		resumed:  make(chan struct{}),
		cancels:  map[*folderSync]context.CancelFunc{},
		obErr:    map[string]string{},
		subs:     map[chan struct{}]struct{}{},
		beaten:   make(chan struct{}),
		beatNow:  make(chan struct{}, 1),
		wakeCh:   make(chan struct{}),
		settings: state.Settings{Platform: o.Platform.BaseURL},
	}
	if e.platform, err = newPlatform(o.Platform, o.Log, e.changed); err != nil {
		return nil, err
	}
	close(e.resumed)
	if !st.Received.IsZero() && st.Platform == o.Platform.BaseURL {
		// A heartbeat of this platform brought these before: they hold
		// until a heartbeat brings new ones, also if the first one fails.
		e.settings = st
		e.settingsKnown()
	}
	for _, a := range o.Config.Accounts {
		pol, err := trust.NewPolicy(a.MinTLS, a.TrustPins(), nil)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Email, err)
		}
		for _, role := range []string{RoleInbox, RoleSent} {
			e.folders = append(e.folders, &folderSync{e: e, acct: a, role: role, trust: pol, st: Starting,
				key:  state.FolderKey{Account: strings.ToLower(a.Email), Role: role},
				wake: make(chan struct{}, 1), nudge: make(chan struct{}, 1)})
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
		// The platform's settings (window, domains) apply before the pass;
		// without them (never received, and the heartbeat failed) nothing
		// is relayed.
		err := e.heartbeat(ctx)
		if errors.Is(err, relay.ErrUnauthorized) || !e.known() {
			cancel()
			bg.Wait()
			<-statusDone
			if !errors.Is(err, relay.ErrUnauthorized) {
				err = fmt.Errorf("nothing was relayed: the platform's settings are not known yet and the heartbeat failed (%w); try again when the platform answers", err)
			}
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

// SyncNow makes every folder look for new mail now (an IDLE or a poll
// wait is interrupted and a pass starts on the session already open) and
// try again the messages the server could not deliver, retries at once
// what waits out a backoff of ours (a connection, an upload, the outbox's
// poll and items), beats the heartbeat, and looks in the keychain at once
// for a new token when the platform refused the old one. It starts no new
// session where one is open, so it never logs in again by itself. Safe for
// concurrent use; calls that come while a pass runs merge into one more
// pass.
func (e *Engine) SyncNow() {
	for _, f := range e.folders {
		f.syncNowAt.Store(e.o.Now().UnixNano())
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	e.wakeMu.Lock()
	close(e.wakeCh)
	e.wakeCh = make(chan struct{})
	e.wakeMu.Unlock()
}

// woken returns a channel closed by the next SyncNow. Take it before
// starting to wait, so that a SyncNow in between is not missed.
func (e *Engine) woken() <-chan struct{} {
	e.wakeMu.Lock()
	defer e.wakeMu.Unlock()
	return e.wakeCh
}

// sleep waits out a backoff of d: it returns nil after d or once woken
// is closed (woken: e.woken() taken before the attempt that failed, so a
// SyncNow during the attempt counts too), ctx.Err() when ctx ends first.
// A delay the platform asked for (Retry-After) is waited with
// backoff.Sleep instead.
func (e *Engine) sleep(ctx context.Context, d time.Duration, woken <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-woken:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nudge makes every folder with a live session look again now (the
// settings changed); unlike SyncNow it never cuts a back-off short, so a
// refused password keeps waiting as designed.
func (e *Engine) nudge() {
	for _, f := range e.folders {
		select {
		case f.nudge <- struct{}{}:
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
// relaying if the platform had refused the old one. A refusal answered
// later to a request made with the old token does not stop relaying. Safe
// for concurrent use.
func (e *Engine) SetToken(token string) error {
	if err := e.platform.setToken(token); err != nil {
		return err
	}
	select { // the platform's word on the new token, and its settings
	case e.beatNow <- struct{}{}:
	default:
	}
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

// waitPlatform blocks while the platform refuses the token. In Once mode it
// returns relay.ErrUnauthorized instead. In Run mode it looks for a new
// token in the keychain (a `pair` run by another process) every 30 s.
func (e *Engine) waitPlatform(ctx context.Context) error {
	for {
		woken := e.woken()
		blocked, ch := e.platform.blocked()
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
		case <-woken: // SyncNow: look at once
			e.newTokenFromKeychain()
		case <-time.After(30 * time.Second):
			e.newTokenFromKeychain()
		}
	}
}

// newTokenFromKeychain takes up the device token in the keychain when it
// is not the one in use: a `pair` in another process may have stored it.
func (e *Engine) newTokenFromKeychain() {
	tok, err := e.o.Secrets.Get(keychain.DeviceTokenKey)
	if err != nil || tok == e.platform.token() {
		return
	}
	if err := e.SetToken(tok); err != nil {
		e.log.Warn("use the new device token", "err", err)
	}
}

// settingsKnown lets relaying start: the platform's settings are known.
func (e *Engine) settingsKnown() { e.beatenOnce.Do(func() { close(e.beaten) }) }

// settingsReady blocks until the platform's settings are known (see
// Engine.beaten), or ctx ends. Whatever leaves the machine or acts for the
// platform (relaying, the outbox: send_as) waits for it.
func (e *Engine) settingsReady(ctx context.Context) error {
	select {
	case <-e.beaten:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// known reports whether the platform's settings are known.
func (e *Engine) known() bool {
	select {
	case <-e.beaten:
		return true
	default:
		return false
	}
}

// backfillDays returns how many days back the folders relay
// (settings.BackfillAll: everything), as the settings say now.
func (e *Engine) backfillDays() int { return e.effective().BackfillDays }

// relayDomains returns the domains a message needs an address in to be
// relayed, as the settings say now; empty means every message.
func (e *Engine) relayDomains() []string { return e.effective().RelayDomains }

// sendAs returns the addresses, besides its own, that an account's outbox
// items may use as sender, as the settings say now (send_as).
func (e *Engine) sendAs(account string) []string {
	return e.effective().SendAs[strings.ToLower(account)]
}

// effective resolves the settings (sync/settings) with the platform's as
// last received.
func (e *Engine) effective() settings.Effective {
	return settings.Resolve(e.o.Policy.Layers(e.o.Config.Settings, e.currentSettings().Layer()))
}

// currentSettings returns the platform's settings as last received.
func (e *Engine) currentSettings() state.Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.settings
}

// heartbeatLoop beats at once, then every HeartbeatEvery, at a new token
// and at SyncNow (an unreachable platform is tried again at once), without
// holding up the folders when the platform is slow to answer.
func (e *Engine) heartbeatLoop(ctx context.Context) {
	woken := e.woken() // before the beat: a SyncNow during it beats again
	e.heartbeat(ctx)
	t := time.NewTicker(e.o.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.beatNow:
		case <-woken:
		}
		woken = e.woken()
		e.heartbeat(ctx)
	}
}

// heartbeat reports every account and applies the settings the platform
// sends back. Each answer holds the platform's settings in full: one that
// an answer leaves out returns to the local value. A change applies from
// the next message on, without a reconnection.
func (e *Engine) heartbeat(ctx context.Context) error {
	snap := e.Snapshot()
	hb := relay.Heartbeat{Version: version.Version, OS: runtime.GOOS, Accounts: []relay.AccountHeartbeat{}}
	for _, a := range snap.Accounts {
		hb.Accounts = append(hb.Accounts, relay.AccountHeartbeat{
			Email: a.Email, State: a.State.Heartbeat(), LastSync: a.LastSync,
			Backlog: a.Backlog, Rejected: a.Rejected, Error: heartbeatError(a),
		})
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pc := e.platform.Load()
	s, err := pc.Heartbeat(hctx, hb)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e.platform.answered(pc, err)
	if err != nil {
		if !errors.Is(err, relay.ErrUnauthorized) {
			e.log.Warn("heartbeat", "err", err)
		}
		return err
	}
	next := state.Settings{Platform: e.o.Platform.BaseURL, Received: e.o.Now()}
	if s != nil {
		next.BackfillDays = s.BackfillDays
		next.RelayDomains, next.DomainsGiven = s.RelayDomains, s.DomainsGiven
		next.SendAs = s.SendAs
	}
	e.mu.Lock()
	same := e.known() && next.Equal(e.settings)
	if !same {
		e.settings = next
	}
	e.mu.Unlock()
	if !same {
		e.log.Info("platform settings applied", "backfill_days", next.BackfillDays, "relay_domains", next.RelayDomains, "send_as", len(next.SendAs))
		if err := e.o.Store.PutSettings(next); err != nil {
			e.log.Warn("store the platform settings", "err", err)
		}
		e.settingsKnown()
		e.nudge()
	}
	return nil
}

// heartbeatError is the account's error line in a heartbeat: its own error,
// else the messages set aside as undeliverable (the heartbeat has no field
// of its own for them; they are not the platform's rejections).
func heartbeatError(a AccountStatus) string {
	if a.LastError != "" || a.Undeliverable == 0 {
		return a.LastError
	}
	u := a.UndeliverableMessages[len(a.UndeliverableMessages)-1]
	return fmt.Sprintf("%d message(s) of the mailbox cannot be relayed; the last, %s UID %d: %s", a.Undeliverable, u.Folder, u.UID, u.Reason)
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
	// Undeliverable counts the messages that cannot be relayed from the
	// mail server's side: it broke the connection or refused each time
	// they were asked for alone, or they are bigger than the spool holds.
	// Not relayed, tried again daily and on Sync now, and apart from
	// Rejected, which are the platform's refusals.
	Undeliverable int `json:"undeliverable"`
	// UndeliverableMessages are the last 20 of them, oldest first, each
	// with what went wrong.
	UndeliverableMessages []state.Undeliverable `json:"undeliverable_messages,omitempty"`
	LastError             string                `json:"last_error,omitempty"`
	Folders               []FolderStatus        `json:"folders"`
	Outbox                OutboxStatus          `json:"outbox"`

	// LastRelayed is when the account's last message was relayed (zero
	// before the first), kept across restarts.
	LastRelayed time.Time `json:"last_relayed,omitzero"`
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
	plat := e.platform.status()
	blocked := plat.State == PlatformNeedsPairing
	s := Snapshot{Time: e.o.Now(), Paused: e.paused, PausedFor: e.pausedFor, Platform: plat}
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
		if fst == Offline && blocked {
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
			a.LastRelayed = c.LastRelayed
		}
		if r, err := e.o.Store.Rejections(k); err == nil {
			if len(r) > 20 {
				r = r[len(r)-20:]
			}
			a.Rejections = r
		}
		if u, err := e.o.Store.AccountUndeliverables(k); err == nil {
			a.Undeliverable = len(u)
			if len(u) > 20 {
				u = u[len(u)-20:]
			}
			a.UndeliverableMessages = u
		}
		s.Accounts = append(s.Accounts, *a)
	}
	sort.SliceStable(s.Accounts, func(i, j int) bool { return s.Accounts[i].Email < s.Accounts[j].Email })
	return s
}
