package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// OutboxOptions tune the outbox. Zero fields take the defaults shown.
type OutboxOptions struct {
	MaxRecipients int   // envelope recipients of one item; 100
	MaxMessage    int64 // bytes of one message; relay.DefaultMaxOutboxMessage
	// RetryFor is how long a message the mail server keeps refusing
	// temporarily (4xx, or a connection that breaks during its
	// transaction) is tried again before it is reported failed; 72 h.
	RetryFor time.Duration
	SMTP     smtpsend.Timeouts // each SMTP step; Step and Stall default to Options.Silence
	// IMAPStep is how long the IMAP server may stay silent in any step of
	// filing the copy in Sent (connect, log in, look for it, append it);
	// Options.Silence.
	IMAPStep time.Duration
	// Now and After are the outbox's clock: time.Now (or Options.Now) and
	// time.After unless a test injects its own. Every wait of the outbox
	// schedule (backoff, Retry-After) goes through After.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// maxRetryAfter caps how long a platform's Retry-After can hold the outbox.
const maxRetryAfter = time.Hour

// maxFileTries is how many times filing the copy in Sent is tried before
// the item is reported sent without it.
const maxFileTries = 8

// outbox sends what the platform asks. Every item has its own schedule
// (state.OutboxItem.NextAttempt and Retries, stored) and every account its
// own sender, with its own SMTP and IMAP connections: an item that cannot
// go now waits alone, an account that cannot send delays no other.
//
// Every step is stored before it is taken (state.OutboxState), so that
// after a crash an item is never sent a second time blindly and its copy is
// never filed twice in Sent.
type outbox struct {
	e     *Engine
	o     OutboxOptions
	dir   string
	trust map[string]*trust.Policy

	ctx     context.Context // of run, for senders started later
	mu      gosync.Mutex
	senders map[string]*sender // by lowercased account
	live    bool               // Run mode: a new sender starts at once
	wg      gosync.WaitGroup
}

func newOutbox(e *Engine) *outbox {
	o := e.o.Outbox
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = 100
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = relay.DefaultMaxOutboxMessage
	}
	if o.RetryFor <= 0 {
		o.RetryFor = 72 * time.Hour
	}
	if o.IMAPStep <= 0 {
		o.IMAPStep = e.o.Silence
	}
	if o.SMTP.Step <= 0 {
		o.SMTP.Step = e.o.Silence
	}
	if o.SMTP.Stall <= 0 {
		o.SMTP.Stall = e.o.Silence
	}
	if o.Now == nil {
		o.Now = e.o.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	ob := &outbox{e: e, o: o, dir: filepath.Join(e.o.Home.Dir, "outbox"),
		trust: map[string]*trust.Policy{}, senders: map[string]*sender{}}
	for _, f := range e.folders {
		ob.trust[f.key.Account] = f.trust
	}
	return ob
}

// run polls the platform's outbox and sends until ctx ends; in Once mode
// it handles what the outbox holds now, waiting for retries only within
// Options.GiveUpAfter, and returns an error naming what is left.
func (ob *outbox) run(ctx context.Context) error {
	ob.ctx = ctx
	defer ob.wg.Wait()
	if err := ob.e.settingsReady(ctx); err != nil { // send_as must be known
		return nil
	}
	if err := os.MkdirAll(ob.dir, 0o700); err != nil {
		return fmt.Errorf("outbox folder: %w", err)
	}
	ob.load()
	if !ob.e.o.Once {
		ob.mu.Lock()
		ob.live = true
		for _, s := range ob.senders {
			ob.start(s)
		}
		ob.mu.Unlock()
		ob.poll(ctx)
		return nil
	}
	var pollErr error
	pc := ob.e.platform.Load()
	items, err := pc.Outbox(ctx, relay.OutboxOptions{Dir: ob.dir, MaxMessage: ob.o.MaxMessage})
	if err != nil {
		if errors.Is(err, relay.ErrUnauthorized) {
			ob.e.platform.refusedBy(pc)
		}
		pollErr = fmt.Errorf("outbox: %w", err)
	}
	for _, it := range items {
		ob.intake(it)
	}
	horizon := ob.o.Now().Add(ob.e.o.GiveUpAfter)
	var left atomic.Int64
	ob.mu.Lock()
	for _, s := range ob.senders {
		ob.wg.Add(1)
		go func() { defer ob.wg.Done(); left.Add(int64(s.runOnce(ctx, horizon))) }()
	}
	ob.mu.Unlock()
	ob.wg.Wait()
	if n := left.Load(); n > 0 {
		return errors.Join(pollErr, fmt.Errorf("%d outbox items could not be sent or reported yet; they are retried next time", n))
	}
	return pollErr
}

// load takes up every item a previous run left unfinished, and clears the
// outbox folder of files no item needs.
func (ob *outbox) load() {
	store := ob.e.o.Store
	store.PruneOutbox(ob.o.Now().Add(-30 * 24 * time.Hour))
	items, err := store.OutboxItems()
	if err != nil {
		ob.e.log.Warn("read the outbox state", "err", err)
	}
	keep := map[string]bool{}
	for _, rec := range items {
		if rec.Reported {
			continue
		}
		if rec.File != "" {
			keep[filepath.Base(rec.File)] = true
		}
		ob.dispatch(rec)
	}
	ents, _ := os.ReadDir(ob.dir)
	for _, de := range ents {
		if !keep[de.Name()] {
			os.Remove(filepath.Join(ob.dir, de.Name()))
		}
	}
}

// poll long-polls the platform until ctx ends, honouring its Retry-After;
// it polls no more while the engine is paused.
func (ob *outbox) poll(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		if ob.e.gate(ctx) != nil || ob.e.waitPlatform(ctx) != nil {
			return
		}
		// A poll under way when Pause comes is not cut short: what it
		// brings is stored (sending waits for Resume); cut short, its items
		// would stay leased to nobody for the lease's ten minutes.
		pc, woken := ob.e.platform.Load(), ob.e.woken()
		items, err := pc.Outbox(ctx, relay.OutboxOptions{Wait: ob.e.o.OutboxWait, Dir: ob.dir, MaxMessage: ob.o.MaxMessage})
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, relay.ErrUnauthorized):
				ob.e.platform.refusedBy(pc)
				continue
			}
			d := ob.e.o.Backoff.Delay(failures)
			failures++
			var te *relay.TemporaryError
			if errors.As(err, &te) && te.RetryAfter > d {
				// The platform's wait: Sync now does not cut it short.
				d, woken = min(te.RetryAfter, maxRetryAfter), nil
			}
			ob.e.log.Warn("outbox poll", "err", err, "retry_in", d)
			ob.sleep(ctx, d, woken)
			continue
		}
		failures = 0
		for _, it := range items {
			ob.intake(it)
		}
	}
}

func (ob *outbox) paused() bool {
	ob.e.mu.Lock()
	defer ob.e.mu.Unlock()
	return ob.e.paused
}

// sleep waits d on the outbox's clock, or until woken is closed (a Sync
// now; nil for a wait the platform asked for) or ctx ends.
func (ob *outbox) sleep(ctx context.Context, d time.Duration, woken <-chan struct{}) error {
	select {
	case <-ob.o.After(d):
		return nil
	case <-woken:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// intake records an item the platform offered and hands it to its
// account's sender. An item that can never be sent is recorded failed at
// once, with the reason; one already known is left where it stands (never
// a second send).
func (ob *outbox) intake(it relay.OutboxItem) {
	defer func() {
		if it.File != "" {
			os.Remove(it.File)
		}
	}()
	if it.ID == "" {
		ob.e.log.Warn("the platform offered an outbox item without a usable id: it cannot be reported, so it is dropped", "why", it.Invalid)
		return
	}
	store := ob.e.o.Store
	rec, known, err := store.OutboxItem(it.ID)
	if err != nil {
		ob.e.log.Warn("read the outbox state", "id", it.ID, "err", err)
		return // offered again after its lease
	}
	if known {
		ob.e.log.Info("outbox item offered again; continuing where it stands", "id", it.ID, "state", rec.State)
		return
	}
	rec = state.OutboxItem{ID: it.ID, Account: it.Account, From: it.From, To: it.To, State: state.OutboxReceived, Received: ob.o.Now()}
	refuse := func(why string) {
		rec.State, rec.Error = state.OutboxFailed, "not sent: "+why
	}
	acct, ok := ob.e.o.Config.Account(it.Account)
	switch {
	case it.Invalid != "":
		refuse("the platform's item is malformed: " + it.Invalid)
	case !ok:
		refuse(fmt.Sprintf("no account %s on this connector", quoteAddr(it.Account)))
	default:
		rec.Account = acct.Email
		aliases := ob.e.sendAs(acct.Email)
		if why := checkEnvelope(acct.Email, it.From, it.To, aliases, ob.o.MaxRecipients); why != "" {
			refuse(why)
			break
		}
		path := ob.filePath(it.ID)
		p, err := prepareFile(it.File, path, it.From, ob.o.Now(), func(head []byte) string {
			return checkHeader(head, acct.Email, aliases)
		})
		if err != nil {
			ob.e.log.Warn("store an outbox item", "id", it.ID, "err", err)
			return // offered again after its lease
		}
		if p.Refused != "" {
			refuse(p.Refused)
			break
		}
		rec.File, rec.MessageID, rec.Size = path, p.MessageID, p.Size
	}
	if rec.State == state.OutboxFailed {
		ob.e.log.Warn("outbox item refused", "id", it.ID, "account", it.Account, "why", rec.Error)
	}
	if err := store.PutOutboxItem(rec); err != nil {
		ob.e.log.Warn("store an outbox item", "id", it.ID, "err", err)
		if rec.File != "" {
			os.Remove(rec.File)
		}
		return
	}
	ob.e.changed()
	ob.dispatch(rec)
}

// filePath is where the prepared message of item id is kept.
func (ob *outbox) filePath(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(ob.dir, hex.EncodeToString(sum[:16])+".eml")
}

// dispatch gives rec to its account's sender, starting one if needed.
func (ob *outbox) dispatch(rec state.OutboxItem) {
	key := strings.ToLower(rec.Account)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	s := ob.senders[key]
	if s == nil {
		s = &sender{ob: ob, key: key, wake: make(chan struct{}, 1), items: map[string]*state.OutboxItem{}}
		ob.senders[key] = s
		if ob.live {
			ob.start(s)
		}
	}
	s.add(rec)
}

// start runs s until ob.ctx ends; ob.mu held.
func (ob *outbox) start(s *sender) {
	if s.running {
		return
	}
	s.running = true
	ob.wg.Add(1)
	go func() { defer ob.wg.Done(); s.run(ob.ctx) }()
}

// sender sends one account's items, one step of one item at a time, over
// the account's own connections, which its goroutine owns.
type sender struct {
	ob      *outbox
	key     string // lowercased account
	wake    chan struct{}
	running bool // ob.mu

	mu    gosync.Mutex
	items map[string]*state.OutboxItem // not reported yet

	// Owned by the sender's goroutine.
	smtp     *smtpsend.Client
	imap     *imapSession
	connNext time.Time // the account's SMTP waits until then
	connErr  error
	connFail int
}

type imapSession struct {
	c    *imapsync.Conn
	sent string // the Sent folder's name
}

func (s *sender) add(rec state.OutboxItem) {
	s.mu.Lock()
	if _, ok := s.items[rec.ID]; !ok {
		s.items[rec.ID] = &rec
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next returns the item to take a step of now, or, when none is due, how
// long until one is (0: only a new item or a change will do). While the
// platform refuses the device's token nothing is due: the connector acts
// for the platform no more, sending included, until it is paired again.
func (s *sender) next(now time.Time) (*state.OutboxItem, time.Duration) {
	if blocked, _ := s.ob.e.platform.blocked(); blocked {
		return nil, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var due *state.OutboxItem
	var wait time.Duration
	for _, rec := range s.items {
		at := rec.NextAttempt
		if rec.State == state.OutboxReceived && s.connNext.After(at) {
			at = s.connNext // the account's connection waits
		}
		if !at.After(now) {
			if due == nil || at.Before(due.NextAttempt) || (at.Equal(due.NextAttempt) && rec.Received.Before(due.Received)) {
				due = rec
			}
			continue
		}
		if d := at.Sub(now); wait == 0 || d < wait {
			wait = d
		}
	}
	return due, wait
}

func (s *sender) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// run takes steps of due items until ctx ends; it stops while the engine
// is paused and closes its connections whenever it waits.
func (s *sender) run(ctx context.Context) {
	defer s.closeConns()
	for ctx.Err() == nil {
		if s.ob.paused() {
			s.closeConns()
			s.ob.e.gate(ctx)
			continue
		}
		woken := s.ob.e.woken()
		rec, wait := s.next(s.ob.o.Now())
		if rec != nil {
			s.step(ctx, rec)
			continue
		}
		if wait == 0 || wait > 5*time.Second {
			s.closeConns()
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = s.ob.o.After(wait)
		}
		_, unblocked := s.ob.e.platform.blocked()
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-timer:
		case <-unblocked:
		case <-woken:
			s.retryNow()
		}
	}
}

// retryNow cuts short every wait of ours (Sync now): the account's
// connection and the items' backoffs. A wait the platform asked for
// (Retry-After) stays.
func (s *sender) retryNow() {
	now := s.ob.o.Now()
	s.connNext = time.Time{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range s.items {
		if !rec.RetryAfter && rec.NextAttempt.After(now) {
			rec.NextAttempt = now
		}
	}
}

// runOnce takes steps until every item is done or waits past horizon, and
// returns how many are left.
func (s *sender) runOnce(ctx context.Context, horizon time.Time) int {
	defer s.closeConns()
	for ctx.Err() == nil {
		now := s.ob.o.Now()
		rec, wait := s.next(now)
		if rec != nil {
			s.step(ctx, rec)
			continue
		}
		if s.pending() == 0 || wait == 0 || now.Add(wait).After(horizon) {
			break
		}
		if wait > 5*time.Second {
			s.closeConns()
		}
		s.ob.sleep(ctx, wait, nil)
	}
	return s.pending()
}

// step takes one step of rec, stores where it stands and, once the
// platform recorded its result, lets it go.
func (s *sender) step(ctx context.Context, rec *state.OutboxItem) {
	var err error
	switch rec.State {
	case state.OutboxReceived:
		err = s.send(ctx, rec)
	case state.OutboxSending:
		err = s.recover(ctx, rec)
	case state.OutboxSent:
		if !rec.Filed {
			err = s.file(ctx, rec)
		} else {
			err = s.report(ctx, rec)
		}
	case state.OutboxFailed, state.OutboxAmbiguous:
		err = s.report(ctx, rec)
	default:
		rec.State, rec.Error = state.OutboxFailed, fmt.Sprintf("not sent: unknown state %q", rec.State)
		err = s.put(rec)
	}
	if err != nil && ctx.Err() == nil {
		// Only a failure to store: try the step again later.
		s.ob.e.log.Warn("outbox state", "id", rec.ID, "err", err)
		s.later(rec, err, 0)
	}
	if rec.Reported {
		if rec.File != "" {
			os.Remove(rec.File)
		}
		s.mu.Lock()
		delete(s.items, rec.ID)
		s.mu.Unlock()
	}
	s.showError()
	s.ob.e.changed()
}

func (s *sender) put(rec *state.OutboxItem) error { return s.ob.e.o.Store.PutOutboxItem(*rec) }

// advanced stores rec after a step succeeded: the next step starts afresh.
func (s *sender) advanced(rec *state.OutboxItem) error {
	rec.Retries, rec.NextAttempt, rec.LastError, rec.RetryAfter = 0, time.Time{}, "", false
	return s.put(rec)
}

// later records a temporary failure of rec's current step: it is tried
// again after the backoff for its failures in a row, or after the
// platform's Retry-After when that is longer.
func (s *sender) later(rec *state.OutboxItem, err error, retryAfter time.Duration) {
	d := s.ob.e.o.Backoff.Delay(rec.Retries)
	rec.RetryAfter = retryAfter > d
	if rec.RetryAfter {
		d = min(retryAfter, maxRetryAfter)
	}
	rec.Retries++
	rec.NextAttempt = s.ob.o.Now().Add(d)
	rec.LastError = err.Error()
	s.ob.e.log.Warn("outbox item waits", "id", rec.ID, "account", rec.Account, "state", rec.State, "retry_in", d, "err", err)
	if perr := s.put(rec); perr != nil {
		s.ob.e.log.Warn("outbox state", "id", rec.ID, "err", perr)
	}
}

// showError puts the account's outbox problem in the status: its
// connection's, else the oldest waiting item's, else none.
func (s *sender) showError() {
	var err error
	if s.connErr != nil {
		err = s.connErr
	} else {
		s.mu.Lock()
		var oldest *state.OutboxItem
		for _, rec := range s.items {
			if rec.LastError != "" && (oldest == nil || rec.Received.Before(oldest.Received)) {
				oldest = rec
			}
		}
		s.mu.Unlock()
		if oldest != nil {
			err = errors.New(oldest.LastError)
		}
	}
	s.ob.e.setOutboxError(s.key, err)
}

// send submits the item over SMTP, streamed from its file. The state is
// "sending" while the transaction runs; the outcome is stored before send
// returns.
func (s *sender) send(ctx context.Context, rec *state.OutboxItem) error {
	f, err := os.Open(rec.File)
	if err != nil {
		rec.State, rec.Error = state.OutboxFailed, "not sent: the prepared message is missing from the outbox folder"
		return s.advanced(rec)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c, err := s.smtpConn(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.connFailed(err)
		}
		return nil
	}
	rec.State = state.OutboxSending
	rec.Attempts++
	if err := s.put(rec); err != nil {
		rec.State = state.OutboxReceived
		return err
	}
	code, text, err := c.Send(rec.From, rec.To, f, fi.Size())
	if c.Broken() {
		s.dropSMTP()
	}
	var se *smtp.SMTPError
	var amb *smtpsend.AmbiguousError
	var ref *smtpsend.RefusedError
	switch {
	case err == nil:
		rec.State, rec.SMTPCode, rec.SMTPMessage, rec.Error = state.OutboxSent, code, text, ""
		rec.FailingSince = time.Time{}
		s.ob.e.log.Info("outbox item sent", "id", rec.ID, "account", rec.Account, "smtp", code)
		return s.advanced(rec)
	case errors.As(err, &amb):
		rec.State, rec.Error = state.OutboxAmbiguous, amb.Error()
		return s.advanced(rec)
	case errors.As(err, &ref):
		rec.State, rec.Error = state.OutboxFailed, "not sent: "+ref.Error()
		return s.advanced(rec)
	case errors.As(err, &se) && !se.Temporary():
		rec.State, rec.SMTPCode, rec.SMTPMessage, rec.Error = state.OutboxFailed, se.Code, se.Message, "the mail server refused the message: "+se.Error()
		return s.advanced(rec)
	}
	// A 4xx, or a connection that broke before the message was handed
	// over: nothing was sent, this item tries again later.
	rec.State = state.OutboxReceived
	rec.SMTPCode, rec.SMTPMessage = 0, ""
	if errors.As(err, &se) {
		rec.SMTPCode, rec.SMTPMessage = se.Code, se.Message
	}
	now := s.ob.o.Now()
	if rec.FailingSince.IsZero() {
		rec.FailingSince = now
	}
	if now.Sub(rec.FailingSince) >= s.ob.o.RetryFor {
		rec.State = state.OutboxFailed
		rec.Error = fmt.Sprintf("not sent: the mail server kept refusing it for a while since %s (last: %v)", rec.FailingSince.Format(time.RFC3339), err)
		rec.SMTPCode, rec.SMTPMessage = 0, "" // a 4xx is no permanent refusal
		return s.advanced(rec)
	}
	s.later(rec, fmt.Errorf("sending message %s: %w", rec.ID, err), 0)
	return nil
}

// connFailed puts the account's SMTP connection on hold after a failed
// connection or login: its items keep their places and retries.
func (s *sender) connFailed(err error) {
	d := s.ob.e.o.Backoff.Delay(s.connFail)
	s.connFail++
	s.connNext = s.ob.o.Now().Add(d)
	s.connErr = err
	s.ob.e.log.Warn("outbox: cannot send from this account now", "account", s.key, "retry_in", d, "err", err)
}

func (s *sender) password() (string, error) {
	pw, err := s.ob.e.o.Secrets.Get(keychain.AccountKey(s.key))
	if err != nil {
		return "", passwordError(s.key, err)
	}
	return pw, nil
}

func (s *sender) smtpConn(ctx context.Context) (*smtpsend.Client, error) {
	if s.smtp != nil {
		return s.smtp, nil
	}
	acct, ok := s.ob.e.o.Config.Account(s.key)
	if !ok {
		return nil, fmt.Errorf("no account %s", s.key)
	}
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	c, err := smtpsend.DialTimeouts(ctx, acct, pw, s.ob.trust[s.key], s.ob.o.SMTP)
	if err != nil {
		return nil, err
	}
	s.smtp, s.connErr, s.connFail, s.connNext = c, nil, 0, time.Time{}
	return c, nil
}

// imapStep runs fn on the account's IMAP connection, dialling it first if
// needed; imapsync drops a connection whose server stays silent for
// IMAPStep in any step, so fn cannot hang.
func (s *sender) imapStep(ctx context.Context, fn func(im *imapSession) error) error {
	if s.imap == nil {
		acct, ok := s.ob.e.o.Config.Account(s.key)
		if !ok {
			return fmt.Errorf("no account %s", s.key)
		}
		pw, err := s.password()
		if err != nil {
			return err
		}
		c, err := imapsync.DialWith(ctx, acct, pw, s.ob.trust[s.key], imapsync.DialOptions{Silence: s.ob.o.IMAPStep})
		if err != nil {
			return err
		}
		f, err := c.FindSent()
		if err != nil {
			c.Close()
			return err
		}
		s.imap = &imapSession{c: c, sent: f.Name}
	}
	if err := fn(s.imap); err != nil {
		s.dropIMAP()
		return err
	}
	return nil
}

// recover settles an item caught by a crash in the middle of its SMTP
// transaction: found in Sent, it was sent; otherwise nobody can tell.
func (s *sender) recover(ctx context.Context, rec *state.OutboxItem) error {
	var uid uint32
	var found bool
	err := s.imapStep(ctx, func(im *imapSession) error {
		var err error
		uid, found, err = im.c.FindMessageID(im.sent, rec.MessageID)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			s.later(rec, err, 0)
		}
		return nil
	}
	if found {
		rec.State, rec.SMTPCode, rec.SMTPMessage = state.OutboxSent, 250, "accepted before the connector restarted (found in Sent)"
		rec.Filed, rec.SentUID = true, uid
	} else {
		rec.State = state.OutboxAmbiguous
		rec.Error = "the connector stopped while sending this message: it may or may not have been delivered, so it is not sent again"
	}
	return s.advanced(rec)
}

// file puts the copy in Sent, unless it is there already: filed by the
// server itself, or appended before a crash. After maxFileTries failures
// the item is reported sent without its copy.
func (s *sender) file(ctx context.Context, rec *state.OutboxItem) error {
	err := s.imapStep(ctx, func(im *imapSession) error {
		look := func() (bool, error) {
			uid, found, err := im.c.FindMessageID(im.sent, rec.MessageID)
			if found {
				rec.Filed, rec.SentUID = true, uid
			}
			return found, err
		}
		found, err := look()
		if err != nil || found {
			return err
		}
		if s.ob.e.o.FiledWait > 0 && rec.Retries == 0 {
			// Servers that file sent mail themselves do it a moment later.
			backoff.Sleep(ctx, s.ob.e.o.FiledWait)
			if found, err = look(); err != nil || found {
				return err
			}
		}
		f, err := os.Open(rec.File)
		if err != nil {
			rec.Filed, rec.Error = true, "the copy for Sent is missing from the outbox folder; the message itself was sent"
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		uid, err := im.c.AppendFrom(im.sent, f, fi.Size(), s.ob.o.Now())
		if err != nil {
			return err
		}
		if uid == 0 { // no UIDPLUS
			uid, _, _ = im.c.FindMessageID(im.sent, rec.MessageID)
		}
		rec.Filed, rec.SentUID = true, uid
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if rec.Retries+1 >= maxFileTries {
			s.ob.e.log.Warn("the copy of a sent message could not be filed in Sent; reporting it sent without", "id", rec.ID, "err", err)
			rec.Filed = true
			return s.advanced(rec)
		}
		s.later(rec, err, 0)
		return nil
	}
	return s.advanced(rec)
}

// report tells the platform the item's outcome, until it records it.
func (s *sender) report(ctx context.Context, rec *state.OutboxItem) error {
	res := relay.OutboxResult{State: string(rec.State), MessageID: rec.MessageID, SentUID: rec.SentUID}
	switch rec.State {
	case state.OutboxSent:
		res.SMTPCode, res.SMTPMessage = rec.SMTPCode, rec.SMTPMessage
	default:
		res.Error = rec.Error
		if rec.SMTPCode >= 500 {
			res.SMTPCode, res.SMTPMessage = rec.SMTPCode, rec.SMTPMessage
		}
	}
	pc := s.ob.e.platform.Load()
	err := pc.ReportResult(ctx, rec.ID, res)
	var rej *relay.RejectedError
	var te *relay.TemporaryError
	switch {
	case err == nil:
	case errors.As(err, &rej):
		// The platform will never take this result: stop asking, keep the
		// record of why.
		s.ob.e.log.Warn("the platform refused an outbox result", "id", rec.ID, "err", err)
		rec.Error = strings.TrimSpace(rec.Error + "; the platform refused the result: " + rej.Error())
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, relay.ErrUnauthorized):
		s.ob.e.platform.refusedBy(pc) // the item waits for a new token
		return nil
	default:
		var ra time.Duration
		if errors.As(err, &te) {
			ra = te.RetryAfter
		}
		s.later(rec, fmt.Errorf("report the result of message %s: %w", rec.ID, err), ra)
		return nil
	}
	rec.Reported = true
	return s.advanced(rec)
}

func (s *sender) dropSMTP() {
	if s.smtp != nil {
		s.smtp.Close()
		s.smtp = nil
	}
}

func (s *sender) dropIMAP() {
	if s.imap != nil {
		s.imap.c.Close()
		s.imap = nil
	}
}

func (s *sender) closeConns() {
	s.dropSMTP()
	s.dropIMAP()
}
