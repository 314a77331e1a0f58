package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/spool"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// folderSync keeps one folder of one account relayed over one permanent
// IMAP connection.
type folderSync struct {
	e     *Engine
	acct  config.Account
	role  string
	key   state.FolderKey
	trust *trust.Policy
	wake  chan struct{} // SyncNow; buffer of one
	// nudge asks a running session to look again now (the settings
	// changed); unlike wake it never cuts a back-off short. Buffer of one.
	nudge chan struct{}
	// syncNowAt is when SyncNow last asked (Options.Now, in Unix
	// nanoseconds; 0: never). An undeliverable message last tried before
	// then is tried again, whatever its daily schedule, in whichever pass
	// gets to it: a retry that fails again ends the session, and the
	// messages after it are tried in the next one.
	syncNowAt atomic.Int64

	// Owned by run's goroutine: UIDs that failed within a group, to fetch
	// alone, under suspectsUV.
	suspects   map[uint32]*suspect
	suspectsUV uint32

	// Guarded by e.mu.
	st       State
	name     string
	errText  string
	backlog  int
	lastSync time.Time
}

// suspect is a message that a failed fetch was reading: it is fetched alone
// until it comes, or is recorded undeliverable after messageTries failures.
type suspect struct {
	tries int
}

// messageTries is how many times a message fetched alone may fail (the
// server closing the connection, going silent or refusing) before it is
// recorded as one the server cannot deliver.
const messageTries = 3

// messageFault is a failure while the server was sending a message, not a
// failure of the network as such: the next session narrows it down to the
// one message at once instead of backing off.
type messageFault struct {
	uid uint32 // the message being read, 0 when unknown
	err error
}

func (m *messageFault) Error() string { return m.err.Error() }

// errLookAgain: the pass left messages the server did not return; the next
// pass, at once, fetches each alone.
var errLookAgain = errors.New("look again")

// errNotReturned: a message asked for alone did not come, and the server
// said nothing of it.
var errNotReturned = errors.New("the server answered without the message")

func (m *messageFault) Unwrap() error { return m.err }

// set changes the folder's state in one place and signals a change only
// when something really changed.
func (f *folderSync) set(st State, err error) {
	text := ""
	if err != nil && st != UpToDate && st != Syncing {
		text = err.Error()
	}
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	if f.st == st && f.errText == text {
		return
	}
	if st != f.st {
		f.e.log.Info("folder state", "account", f.acct.Email, "folder", f.role, "from", f.st.String(), "to", st.String())
	}
	f.st, f.errText = st, text
	f.e.changed()
}

func (f *folderSync) update(fn func()) {
	f.e.mu.Lock()
	fn()
	f.e.mu.Unlock()
	f.e.changed()
}

// batchSize is how many messages one FETCH of facts asks for; groupBytes
// bounds the bodies one FETCH downloads before they are handed to the
// uploads (in memory up to spool.DefaultThreshold each, on disk above): a
// message bigger than that is fetched alone.
const (
	batchSize  = 50
	groupBytes = 8 << 20
)

// onceFaultSessions bounds the sessions Once mode spends narrowing down
// messages the server cannot deliver.
const onceFaultSessions = 4 * messageTries

// run keeps sessions going until ctx ends, reconnecting with backoff after
// any failure. In Once mode it makes one session (more when narrowing down
// a message the server cannot deliver) and returns its error.
func (f *folderSync) run(ctx context.Context) error {
	attempt, faults := 0, 0
	for {
		if err := f.e.gate(ctx); err != nil {
			return nil
		}
		if err := f.e.waitPlatform(ctx); err != nil {
			f.set(classify(err), err)
			if f.e.o.Once {
				return err
			}
			return nil
		}
		start := time.Now()
		sctx, done := f.e.sessionContext(ctx, f)
		err := f.session(sctx)
		done()
		if ctx.Err() != nil {
			return nil
		}
		var mf *messageFault
		var ne *imapsync.NetError
		fault := errors.As(err, &mf)
		silent := errors.As(err, &ne) && ne.Kind == imapsync.Silent
		if fault {
			// Narrowing down: reconnect at once. A server that went silent
			// says so in status all the same: it may be the server, not the
			// message.
			f.e.log.Warn("a message broke the fetch; narrowing it down", "account", f.acct.Email, "folder", f.role, "uid", mf.uid, "err", err)
			if silent {
				f.set(classify(err), err)
			} else {
				f.set(Syncing, nil)
			}
		}
		if f.e.o.Once {
			if fault && faults < onceFaultSessions {
				faults++
				continue
			}
			if err != nil {
				f.set(classify(err), err)
			}
			return err
		}
		if err == nil || errors.Is(err, context.Canceled) { // paused
			continue
		}
		if time.Since(start) > time.Minute || fault {
			attempt = 0
		}
		delay := f.e.o.Backoff.Delay(attempt)
		attempt++
		if !fault {
			st := classify(err)
			f.set(st, err)
			f.e.log.Warn("folder sync stopped", "account", f.acct.Email, "folder", f.role, "state", st.String(), "err", err)
			if errors.Is(err, imapsync.ErrSlept) {
				delay = 0
			}
			if st == NeedsLogin || st == NeedsTrust {
				delay = f.e.o.Backoff.Max // do not hammer a server that refuses us
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-time.After(delay):
		}
	}
}

// session connects, relays what is pending, then waits for new mail and
// relays it, until an error or ctx ends.
func (f *folderSync) session(ctx context.Context) error {
	pw, err := f.e.o.Secrets.Get(keychain.AccountKey(f.acct.Email))
	if err != nil {
		return passwordError(f.acct.Email, err)
	}
	conn, err := imapsync.DialWith(ctx, f.acct, pw, f.trust, imapsync.DialOptions{Silence: f.e.o.Silence})
	if err != nil {
		return err
	}
	defer conn.Close()

	name := "INBOX"
	if f.role == RoleSent {
		folder, err := conn.FindSent()
		if err != nil {
			return err
		}
		name = folder.Name
	}
	sel, err := conn.Examine(name)
	if err != nil {
		return err
	}
	f.update(func() { f.name = name })
	fs, err := f.reconcile(conn, name, sel)
	if err != nil {
		return err
	}
	f.update(func() {
		if f.lastSync.IsZero() {
			f.lastSync = fs.LastSync // from the last run, until this one's first pass
		}
	})
	// SyncNow and a change of settings both wake the wait for new mail.
	news := make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-f.wake:
			case <-f.nudge:
			}
			select {
			case news <- struct{}{}:
			default:
			}
		}
	}()
	for {
		err := f.pass(ctx, conn, &fs)
		if errors.Is(err, errLookAgain) {
			continue // bounded: each look fetches the missing ones alone, which end relayed, gone or undeliverable
		}
		if err != nil {
			return err
		}
		f.set(UpToDate, nil)
		if f.e.o.Once {
			return nil
		}
		if err := conn.Wait(ctx, news, f.e.o.IdleRefresh, f.e.o.PollInterval, f.e.o.Watchdog); err != nil {
			return err
		}
	}
}

// window returns the start of the backfill window as the settings say now
// (UTC midnight; IMAP SINCE compares dates only); zero means everything.
func (f *folderSync) window() time.Time {
	days := f.e.backfillDays()
	if days < 0 {
		return time.Time{}
	}
	y, m, d := f.e.o.Now().UTC().AddDate(0, 0, -days).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// reconcile loads the folder's checkpoint and squares it with what the
// server says: a first sync, a changed UIDVALIDITY, another folder.
func (f *folderSync) reconcile(conn *imapsync.Conn, name string, sel imapsync.Selected) (state.Folder, error) {
	store := f.e.o.Store
	fs, ok, err := store.Folder(f.key)
	if err != nil {
		return fs, err
	}
	win := f.window()
	baseline := sel.UIDNext
	if baseline == 0 {
		last, err := conn.LastUID()
		if err != nil {
			return fs, err
		}
		baseline = last + 1
	}
	switch {
	case !ok:
		fs = state.Folder{Name: name, UIDValidity: sel.UIDValidity, Baseline: baseline, WindowStart: win}
		f.e.log.Info("first sync of folder", "account", f.acct.Email, "folder", name, "uidvalidity", sel.UIDValidity, "window_start", win)
		return fs, store.ResetFolder(f.key, fs)
	case fs.UIDValidity != sel.UIDValidity, fs.Name != name:
		// The old UIDs mean nothing here. A Sent that is now another folder
		// is a new folder even with the same UIDVALIDITY (RFC 3501 2.3.1.1
		// ties UIDs to a name). Scan it all again under the window, reaching
		// back to a message that was in scope by its UID alone; the
		// idempotency keys keep one copy of what the platform already has.
		f.e.log.Warn("the folder changed (UIDVALIDITY or name): it is scanned again; the platform keeps one copy of each message",
			"account", f.acct.Email, "folder", name, "old_name", fs.Name, "old", fs.UIDValidity, "new", sel.UIDValidity)
		ws := earlier(fs.WindowStart, win)
		if !ws.IsZero() && !fs.PendingSince.IsZero() && fs.PendingSince.Before(ws) {
			ws = fs.PendingSince
		}
		fs = state.Folder{Name: name, UIDValidity: sel.UIDValidity, Baseline: baseline, WindowStart: ws, Rescan: true}
		return fs, store.ResetFolder(f.key, fs)
	}
	return fs, nil
}

// widen applies a wider backfill window (a setting changed): older
// messages are relayed too, from the next pass on, in this same session.
// The window never narrows: what was once in scope stays so.
func (f *folderSync) widen(fs *state.Folder) error {
	win := f.window()
	if fs.WindowStart.IsZero() || (!win.IsZero() && !win.Before(fs.WindowStart)) {
		return nil
	}
	f.e.log.Info("backfill window widened: older messages are relayed too", "account", f.acct.Email, "folder", fs.Name, "window_start", win)
	fs.WindowStart, fs.Watermark, fs.Rescan = win, 0, true
	return f.e.o.Store.PutFolder(f.key, *fs)
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if a.Before(b) {
		return a
	}
	return b
}

// pass relays everything pending in the folder and moves the watermark as
// far as the platform has confirmed. Messages that broke a fetch before
// come last, alone, so that they never hold up the others; undeliverable
// ones are tried again when due (daily, or on SyncNow).
func (f *folderSync) pass(ctx context.Context, conn *imapsync.Conn, fs *state.Folder) error {
	if err := f.e.settingsReady(ctx); err != nil {
		return err
	}
	if err := f.widen(fs); err != nil {
		return err
	}
	store := f.e.o.Store
	upper, err := conn.LastUID()
	if err != nil {
		return err
	}
	uids, err := conn.Search(fs.Watermark, fs.WindowStart, fs.Baseline, upper)
	if err != nil {
		return err
	}
	done, err := store.Done(f.key)
	if err != nil {
		return err
	}
	undeliverable, err := store.Undeliverables(f.key, fs.UIDValidity)
	if err != nil {
		return err
	}
	if err := f.forgetExpunged(conn, fs, slices.Collect(maps.Keys(undeliverable)), undeliverable); err != nil {
		return err
	}
	f.pruneSuspects(fs.UIDValidity, uids)
	var pending, alone []uint32
	for _, u := range uids {
		_, isDone := done[u]
		_, isUndeliverable := undeliverable[u]
		switch {
		case isDone, isUndeliverable:
		case f.suspects[u] != nil:
			alone = append(alone, u)
		default:
			pending = append(pending, u)
		}
	}
	now, syncNow := f.e.o.Now(), time.Unix(0, f.syncNowAt.Load())
	for u, rec := range undeliverable {
		if u <= upper && (rec.LastTry.Before(syncNow) || now.Sub(rec.LastTry) >= f.e.o.RetryUndeliverable) {
			alone = append(alone, u)
		}
	}
	slices.Sort(alone)
	if err := f.notePendingSince(conn, fs, pending); err != nil {
		return err
	}
	f.update(func() { f.backlog = len(pending) + len(alone) })
	if len(pending)+len(alone) > 0 {
		f.set(Syncing, nil)
		f.e.log.Info("relaying", "account", f.acct.Email, "folder", fs.Name, "pending", len(pending), "alone", len(alone))
	}

	t := &tracker{left: map[uint32]bool{}}
	for _, u := range pending {
		t.left[u] = true
	}
	for _, u := range alone {
		if _, ok := undeliverable[u]; !ok {
			t.left[u] = true
		}
	}
	onDone := func(uid uint32, err error) {
		t.finish(uid, err)
		f.update(func() { f.backlog = t.remaining() })
	}
	// The feeder hands the bodies to the uploads while the walk fetches the
	// next ones; the body budget, taken before each fetch, bounds how far
	// the walk runs ahead.
	fd := f.e.newFeeder(ctx, t)
	var walkErr error
	for start := 0; start < len(pending) && walkErr == nil; start += batchSize {
		end := min(start+batchSize, len(pending))
		walkErr = f.batch(ctx, conn, fs, pending[start:end], false, onDone, t, fd, undeliverable)
	}
	for _, u := range alone {
		if walkErr != nil {
			break
		}
		walkErr = f.batch(ctx, conn, fs, []uint32{u}, true, onDone, t, fd, undeliverable)
	}
	fd.close()
	t.wg.Wait()
	if walkErr == nil {
		walkErr = t.firstErr()
	}

	// Move the watermark: to upper when every pending UID up to it is done,
	// else to just below the first one that is not.
	w := upper
	for _, u := range slices.Sorted(maps.Keys(t.all(pending, alone))) {
		if u > upper {
			break
		}
		if t.isLeft(u) {
			w = u - 1
			break
		}
	}
	rescanDone := fs.Rescan && w == upper && walkErr == nil
	if w > fs.Watermark || rescanDone {
		fs.Watermark = max(fs.Watermark, w)
		fs.Rescan = fs.Rescan && !rescanDone
		fs.LastSync = f.e.o.Now()
		if err := store.Advance(f.key, fs.UIDValidity, fs.Watermark, fs.LastSync, rescanDone); err != nil {
			return err
		}
	}
	if walkErr != nil {
		return walkErr
	}
	if left := t.leftUIDs(); len(left) > 0 {
		// The server answered without them: expunged meanwhile (the next
		// search will not find them), or a server that hides them. Look
		// again at once, each alone.
		for _, u := range left {
			if f.suspects[u] == nil {
				f.suspects[u] = &suspect{}
			}
		}
		f.e.log.Info("messages did not come from the server; looking again, each alone", "account", f.acct.Email, "folder", fs.Name, "uids", left)
		return errLookAgain
	}
	if !fs.PendingSince.IsZero() {
		fs.PendingSince = time.Time{}
		if err := store.SetPendingSince(f.key, fs.UIDValidity, time.Time{}); err != nil {
			return err
		}
	}
	// The folder was checked just now, whether or not the watermark moved
	// (the stored LastSync only changes with it, to spare a write per pass).
	fs.LastSync = f.e.o.Now()
	f.update(func() { f.lastSync = fs.LastSync; f.backlog = 0 })
	return nil
}

// pruneSuspects forgets suspects of another UIDVALIDITY and those the
// search no longer finds (relayed, or expunged).
func (f *folderSync) pruneSuspects(uidvalidity uint32, uids []uint32) {
	if f.suspects == nil || f.suspectsUV != uidvalidity {
		f.suspects, f.suspectsUV = map[uint32]*suspect{}, uidvalidity
		return
	}
	for u := range f.suspects {
		if _, found := slices.BinarySearch(uids, u); !found {
			delete(f.suspects, u)
		}
	}
}

// notePendingSince records how far back the pending new mail (in scope by
// its UID only) is dated, so that a UIDVALIDITY change does not drop it out
// of scope (see state.Folder.PendingSince).
func (f *folderSync) notePendingSince(conn *imapsync.Conn, fs *state.Folder, pending []uint32) error {
	if fs.WindowStart.IsZero() {
		return nil // every date is in scope
	}
	var fresh []uint32
	for _, u := range pending {
		if u >= fs.Baseline {
			fresh = append(fresh, u)
		}
	}
	oldest, err := conn.OldestDate(fresh)
	if err != nil || oldest.IsZero() || !oldest.Before(fs.WindowStart) {
		return err
	}
	y, m, d := oldest.UTC().Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if !fs.PendingSince.IsZero() && !day.Before(fs.PendingSince) {
		return nil
	}
	fs.PendingSince = day
	return f.e.o.Store.SetPendingSince(f.key, fs.UIDValidity, day)
}

// batch relays pending UIDs: their facts first (to apply relay_domains
// without downloading), then their bodies, in size-bounded groups, queued
// on fd for the upload workers. A fetch that fails part way still relays
// what came whole; the message it was reading becomes a suspect (see
// fault).
func (f *folderSync) batch(ctx context.Context, conn *imapsync.Conn, fs *state.Folder, uids []uint32, alone bool, onDone func(uint32, error), t *tracker, fd *feeder, undeliverable map[uint32]state.Undeliverable) error {
	// One reading of relay_domains for the facts and the filter: a message
	// with more domains than are kept keeps one of these if it has any.
	domains := f.e.relayDomains()
	fetch := func(uids []uint32) ([]imapsync.Meta, error) {
		return conn.FetchMeta(uids, func(d string) bool { return domainIn(d, domains) })
	}
	if len(domains) == 0 {
		// No address decides anything before the download: the envelope,
		// most of the cost of the facts, is left out. Should relay_domains
		// come before the upload, the upload sends the message back to be
		// fetched again, with it.
		fetch = conn.FetchFacts
	}
	metas, err := fetch(uids)
	if err != nil {
		// The facts that came are of no use without the connection: the
		// next session fetches them again (they are small).
		got := map[uint32]bool{}
		for _, m := range metas {
			got[m.UID] = true
		}
		return f.fault(ctx, fs, uids, alone, got, err, t, undeliverable)
	}
	if alone && len(metas) == 0 {
		if _, ok := undeliverable[uids[0]]; ok {
			// Retried, and deleted since the pass began: nothing failed.
			if err := f.forgetExpunged(conn, fs, uids, undeliverable); err != nil {
				return err
			}
			if _, still := undeliverable[uids[0]]; !still {
				return nil
			}
		}
		// Asked alone, answered without it: expunged, or the server hides
		// it. Only a message the search still finds comes back here.
		return f.fault(ctx, fs, uids, alone, nil, errNotReturned, t, undeliverable)
	}
	var group []imapsync.Meta
	var size int64
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := f.relayGroup(ctx, conn, fs, group, alone, onDone, t, fd, undeliverable)
		group, size = nil, 0
		return err
	}
	for _, m := range metas {
		if !inDomains(m.Domains, domains) {
			if err := f.e.o.Store.MarkDone(f.key, fs.UIDValidity, m.UID, state.Skipped, nil); err != nil {
				return err
			}
			onDone(m.UID, nil)
			continue
		}
		if tooBig := f.e.spool.TooBig(m.Size); tooBig != nil {
			// Bigger than the spool will ever hold: not downloaded at all.
			if err := f.setAside(fs, m.UID, tooBig.Error(), 1, t, undeliverable); err != nil {
				return err
			}
			continue
		}
		if size+m.Size > groupBytes && len(group) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, m)
		size += m.Size
	}
	return flush()
}

// relayGroup takes the group's announced size from the body budget (waiting
// while the bodies already fetched hold too much), downloads the bodies and
// queues their uploads on fd as each one comes, also when the download
// failed part way.
func (f *folderSync) relayGroup(ctx context.Context, conn *imapsync.Conn, fs *state.Folder, group []imapsync.Meta, alone bool, onDone func(uint32, error), t *tracker, fd *feeder, undeliverable map[uint32]state.Undeliverable) error {
	byUID := map[uint32]imapsync.Meta{}
	uids := make([]uint32, len(group))
	var announced int64
	for i, m := range group {
		m.Size = max(m.Size, 0)
		byUID[m.UID] = m
		uids[i] = m.UID
		announced += m.Size
	}
	if err := f.e.ahead.acquire(ctx, announced); err != nil {
		return err
	}
	var jobs []*job // in a rescan: asked of the platform first
	got := map[uint32]bool{}
	ferr := conn.FetchBodies(uids, f.e.spool, func(uid uint32, b *spool.Body) error {
		m, ok := byUID[uid]
		if !ok || got[uid] {
			return b.Remove()
		}
		got[uid] = true
		// The budget holds what came, not what was announced.
		f.e.ahead.take(b.Size - m.Size)
		j := &job{
			key: f.key, uidvalidity: fs.UIDValidity, messageID: m.MessageID, body: b, envelope: m.Envelope, held: b.Size,
			domains: m.Domains, domainsCut: m.DomainsCut,
			msg: relay.Message{
				Account: f.acct.Email, Mailbox: f.role, Folder: fs.Name, UID: uid, UIDValidity: fs.UIDValidity,
				InternalDate: m.InternalDate, Flags: m.Flags, Key: b.Key, Size: b.Size, Open: b.Open,
			},
			done: func(err error) { onDone(uid, err) },
		}
		if fs.Rescan {
			jobs = append(jobs, j)
		} else {
			fd.push(j)
		}
		return nil
	})
	for _, m := range byUID {
		if !got[m.UID] {
			f.e.ahead.release(m.Size)
		}
	}
	if len(jobs) > 0 {
		var err error
		if jobs, err = f.skipKnown(ctx, jobs); err != nil {
			for _, j := range jobs {
				f.e.discard(j)
			}
			return err
		}
		for _, j := range jobs {
			fd.push(j)
		}
	}
	if ferr != nil {
		return f.fault(ctx, fs, uids, alone, got, ferr, t, undeliverable)
	}
	if alone && len(got) == 0 {
		return f.fault(ctx, fs, uids, alone, got, errNotReturned, t, undeliverable)
	}
	return nil
}

// fault handles a fetch of uids that failed with err after the messages in
// got came whole. The first one that did not come is the one the server
// was sending: fetched in a group, it becomes a suspect, fetched alone next
// time; fetched alone, it is tried again up to messageTries times, then
// recorded as undeliverable, and the others go on without it. Failures
// that are not the server's (the disk, ctx) are returned as they are.
func (f *folderSync) fault(ctx context.Context, fs *state.Folder, uids []uint32, alone bool, got map[uint32]bool, err error, t *tracker, undeliverable map[uint32]state.Undeliverable) error {
	var ne *imapsync.NetError
	var ie *imap.Error
	var fe *spool.FullError
	tooBig := errors.As(err, &fe) && fe.Permanent // can never be spooled, so never relayed
	if ctx.Err() != nil || !(tooBig || errors.Is(err, errNotReturned) || errors.As(err, &ne) || errors.As(err, &ie)) {
		return err
	}
	var uid uint32
	for _, u := range uids {
		if !got[u] {
			uid = u
			break
		}
	}
	if uid == 0 {
		return err // every message came; the failure came after
	}
	if !alone {
		if f.suspects[uid] == nil {
			f.suspects[uid] = &suspect{}
		}
		return &messageFault{uid: uid, err: err}
	}
	if tooBig {
		// The connection is fine: go-imap read past the body. Nothing to
		// try again.
		return f.setAside(fs, uid, err.Error(), 1, t, undeliverable)
	}
	if _, ok := undeliverable[uid]; ok {
		// Tried again when due, and still undeliverable.
		if perr := f.setAside(fs, uid, undeliverableReason(err), 1, t, undeliverable); perr != nil {
			return perr
		}
		return &messageFault{uid: uid, err: err}
	}
	s := f.suspects[uid]
	if s == nil {
		s = &suspect{}
		f.suspects[uid] = s
	}
	s.tries++
	if s.tries < messageTries {
		return &messageFault{uid: uid, err: err}
	}
	delete(f.suspects, uid)
	if perr := f.setAside(fs, uid, undeliverableReason(err), s.tries, t, undeliverable); perr != nil {
		return perr
	}
	return &messageFault{uid: uid, err: err}
}

// setAside records uid as undeliverable after tries failed fetches (or
// updates its record after another one, when it was already) and takes it
// out of the pass: the others go on without it.
func (f *folderSync) setAside(fs *state.Folder, uid uint32, reason string, tries int, t *tracker, undeliverable map[uint32]state.Undeliverable) error {
	rec, known := undeliverable[uid]
	if known {
		rec.Tries += tries
	} else {
		f.e.log.Warn("a message cannot be relayed; it is recorded, skipped, and tried again daily",
			"account", f.acct.Email, "folder", fs.Name, "uid", uid, "reason", reason)
		rec = state.Undeliverable{Account: f.acct.Email, Role: f.role, Folder: fs.Name, UID: uid, UIDValidity: fs.UIDValidity, Tries: tries}
	}
	rec.LastTry, rec.Reason = f.e.o.Now(), reason
	if err := f.e.o.Store.PutUndeliverable(f.key, rec); err != nil {
		return err
	}
	undeliverable[uid] = rec
	t.finish(uid, nil)
	f.e.changed()
	return nil
}

// forgetExpunged forgets those of uids, recorded undeliverable, that the
// folder no longer holds (the user deleted them), in the store and in
// undeliverable: they leave the status and the heartbeat, and are never
// asked for again. The server's SEARCH says which are gone; a message below
// the watermark is searched for nowhere else.
func (f *folderSync) forgetExpunged(conn *imapsync.Conn, fs *state.Folder, uids []uint32, undeliverable map[uint32]state.Undeliverable) error {
	if len(uids) == 0 {
		return nil
	}
	still, err := conn.Existing(uids)
	if err != nil {
		return err
	}
	gone := 0
	for _, u := range uids {
		if _, found := slices.BinarySearch(still, u); found {
			continue
		}
		if err := f.e.o.Store.DeleteUndeliverable(f.key, fs.UIDValidity, u); err != nil {
			return err
		}
		delete(undeliverable, u)
		gone++
		f.e.log.Info("a message that could not be relayed was deleted from the mailbox; it is forgotten",
			"account", f.acct.Email, "folder", fs.Name, "uid", u)
	}
	if gone > 0 {
		f.e.changed()
	}
	return nil
}

// undeliverableReason says, for a person, what the server did each time it
// was asked for the message, in its own words when it gave any.
func undeliverableReason(err error) string {
	var ne *imapsync.NetError
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		text := strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, ie.Text)
		if len(text) > 200 {
			text = text[:200]
		}
		if ie.Code != "" {
			text = "[" + string(ie.Code) + "] " + text
		}
		return fmt.Sprintf("the server cannot deliver this message: it answered %q each time it was asked for it", text)
	case errors.As(err, &ne) && ne.Kind == imapsync.Silent:
		return "the server cannot deliver this message: it stopped answering each time it was asked for it"
	case errors.As(err, &ne) && ne.Kind == imapsync.Broken:
		return "the server cannot deliver this message: the connection broke each time it was sent"
	case errors.As(err, &ne):
		return "the server cannot deliver this message: it closed the connection each time it was asked for it"
	}
	return "the server cannot deliver this message: " + err.Error()
}

// skipKnown asks the platform which of the jobs it already has (after a
// UIDVALIDITY change or a wider window), marks those relayed, and returns
// the rest.
func (f *folderSync) skipKnown(ctx context.Context, jobs []*job) ([]*job, error) {
	if len(jobs) == 0 {
		return jobs, nil
	}
	keys := make([]string, len(jobs))
	for i, j := range jobs {
		keys[i] = j.msg.Key
	}
	pc := f.e.platform.Load()
	missing, ok, err := pc.Check(ctx, keys)
	if ctx.Err() == nil {
		f.e.platform.answered(pc, err)
	}
	if err != nil || !ok {
		return jobs, nil // upload them all; the idempotency key keeps one copy
	}
	want := map[string]bool{}
	for _, k := range missing {
		want[k] = true
	}
	var rest []*job
	for _, j := range jobs {
		if want[j.msg.Key] {
			rest = append(rest, j)
			continue
		}
		err := f.e.o.Store.MarkDone(j.key, j.uidvalidity, j.msg.UID, state.Relayed, nil)
		f.e.discard(j)
		j.done(err)
	}
	return rest, nil
}

// inDomains reports whether a message whose addresses are in these
// domains (as imapsync.AddressDomain gives them) may leave the machine
// under relay_domains: always when relay is empty, else when any of them
// is one of relay's domains or below one.
func inDomains(have, relay []string) bool {
	if len(relay) == 0 {
		return true
	}
	for _, h := range have {
		if domainIn(h, relay) {
			return true
		}
	}
	return false
}

// domainIn reports whether domain h (lowercased, see
// imapsync.AddressDomain) is one of relay's domains or below one.
func domainIn(h string, relay []string) bool {
	for _, d := range relay {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(d, "."), "."))
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// tracker follows one pass's pending UIDs.
type tracker struct {
	wg   gosync.WaitGroup
	mu   gosync.Mutex
	left map[uint32]bool
	err  error
}

func (t *tracker) finish(uid uint32, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.err == nil {
			t.err = err
		}
		return
	}
	delete(t.left, uid)
}

func (t *tracker) isLeft(uid uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.left[uid]
}

func (t *tracker) leftUIDs() []uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.left))
}

func (t *tracker) remaining() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.left)
}

// all returns the UIDs of a pass, pending and alone.
func (t *tracker) all(pending, alone []uint32) map[uint32]bool {
	m := make(map[uint32]bool, len(pending)+len(alone))
	for _, u := range pending {
		m[u] = true
	}
	for _, u := range alone {
		m[u] = true
	}
	return m
}

func (t *tracker) firstErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
