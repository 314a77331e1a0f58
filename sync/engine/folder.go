package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	gosync "sync"
	"time"

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

	// Guarded by e.mu.
	st       State
	name     string
	errText  string
	backlog  int
	lastSync time.Time
}

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

// batchSize is how many messages one FETCH asks for; batchBytes bounds the
// bodies a batch holds in memory (bigger ones are spooled to disk).
const (
	batchSize  = 50
	batchBytes = 8 << 20
)

// run keeps sessions going until ctx ends, reconnecting with backoff after
// any failure. In Once mode it makes one session and returns its error.
func (f *folderSync) run(ctx context.Context) error {
	attempt := 0
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
		if f.e.o.Once {
			if err != nil {
				f.set(classify(err), err)
			}
			return err
		}
		if err == nil || errors.Is(err, context.Canceled) { // paused
			continue
		}
		st := classify(err)
		f.set(st, err)
		f.e.log.Warn("folder sync stopped", "account", f.acct.Email, "folder", f.role, "state", st.String(), "err", err)
		if time.Since(start) > time.Minute {
			attempt = 0
		}
		delay := f.e.o.Backoff.Delay(attempt)
		attempt++
		if errors.Is(err, imapsync.ErrSlept) {
			delay = 0
		}
		if st == NeedsLogin || st == NeedsTrust {
			delay = f.e.o.Backoff.Max // do not hammer a server that refuses us
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
	conn, err := imapsync.Dial(ctx, f.acct, pw, f.trust)
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
	for {
		if err := f.pass(ctx, conn, &fs); err != nil {
			return err
		}
		f.set(UpToDate, nil)
		if f.e.o.Once {
			return nil
		}
		if err := conn.Wait(ctx, f.wake, f.e.o.IdleRefresh, f.e.o.PollInterval, f.e.o.Watchdog); err != nil {
			return err
		}
	}
}

// window returns the start of the backfill window (UTC midnight; IMAP
// SINCE compares dates only); zero means everything.
func (f *folderSync) window() time.Time {
	days := f.e.effective().BackfillDays
	if days < 0 {
		return time.Time{}
	}
	y, m, d := f.e.o.Now().UTC().AddDate(0, 0, -days).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// reconcile loads the folder's checkpoint and squares it with what the
// server says: a first sync, a changed UIDVALIDITY, a wider window.
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
	case fs.UIDValidity != sel.UIDValidity:
		f.e.log.Warn("UIDVALIDITY changed: the folder is scanned again; the platform keeps one copy of each message",
			"account", f.acct.Email, "folder", name, "old", fs.UIDValidity, "new", sel.UIDValidity)
		fs = state.Folder{Name: name, UIDValidity: sel.UIDValidity, Baseline: baseline, WindowStart: earlier(fs.WindowStart, win), Rescan: true}
		return fs, store.ResetFolder(f.key, fs)
	case !fs.WindowStart.IsZero() && (win.IsZero() || win.Before(fs.WindowStart)):
		f.e.log.Info("backfill window widened: older messages are relayed too", "account", f.acct.Email, "folder", name, "window_start", win)
		fs.WindowStart, fs.Watermark, fs.Rescan, fs.Name = win, 0, true, name
		return fs, store.PutFolder(f.key, fs)
	case fs.Name != name:
		fs.Name = name
		return fs, store.PutFolder(f.key, fs)
	}
	return fs, nil
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
// far as the platform has confirmed.
func (f *folderSync) pass(ctx context.Context, conn *imapsync.Conn, fs *state.Folder) error {
	select {
	case <-f.e.beaten:
	case <-ctx.Done():
		return ctx.Err()
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
	pending := uids[:0:0]
	for _, u := range uids {
		if _, ok := done[u]; !ok {
			pending = append(pending, u)
		}
	}
	f.update(func() { f.backlog = len(pending) })
	if len(pending) > 0 {
		f.set(Syncing, nil)
		f.e.log.Info("relaying", "account", f.acct.Email, "folder", fs.Name, "pending", len(pending))
	}

	t := &tracker{left: map[uint32]bool{}}
	for _, u := range pending {
		t.left[u] = true
	}
	onDone := func(uid uint32, err error) {
		t.finish(uid, err)
		f.update(func() { f.backlog = t.remaining() })
	}
	var walkErr error
	for start := 0; start < len(pending) && walkErr == nil; start += batchSize {
		end := min(start+batchSize, len(pending))
		walkErr = f.batch(ctx, conn, fs, pending[start:end], onDone, t)
	}
	t.wg.Wait()
	if walkErr == nil {
		walkErr = t.firstErr()
	}

	// Move the watermark: to upper when every pending UID up to it is done,
	// else to just below the first one that is not.
	w := upper
	for _, u := range pending {
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
	if n := t.remaining(); n > 0 {
		// The server did not return them: expunged meanwhile, or a server
		// hiccup. The next pass looks again.
		return fmt.Errorf("%d messages of %s could not be read from the server; they will be tried again", n, fs.Name)
	}
	// The folder was checked just now, whether or not the watermark moved
	// (the stored LastSync only changes with it, to spare a write per pass).
	fs.LastSync = f.e.o.Now()
	f.update(func() { f.lastSync = fs.LastSync; f.backlog = 0 })
	return nil
}

// batch relays up to batchSize pending UIDs: their facts first (to apply
// relay_domains without downloading), then their bodies, in size-bounded
// groups, handed to the upload workers.
func (f *folderSync) batch(ctx context.Context, conn *imapsync.Conn, fs *state.Folder, uids []uint32, onDone func(uint32, error), t *tracker) error {
	metas, err := conn.FetchMeta(uids)
	if err != nil {
		return err
	}
	domains := f.e.effective().RelayDomains
	var group []imapsync.Meta
	var groupBytes int64
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := f.relayGroup(ctx, conn, fs, group, onDone, t)
		group, groupBytes = nil, 0
		return err
	}
	for _, m := range metas {
		if len(domains) > 0 && !matchesDomains(m.Addresses, domains) {
			if err := f.e.o.Store.MarkDone(f.key, fs.UIDValidity, m.UID, state.Skipped, nil); err != nil {
				return err
			}
			onDone(m.UID, nil)
			continue
		}
		if groupBytes+m.Size > batchBytes && len(group) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, m)
		if m.Size <= spool.DefaultThreshold {
			groupBytes += m.Size
		}
	}
	return flush()
}

// relayGroup downloads a group's bodies and queues their uploads.
func (f *folderSync) relayGroup(ctx context.Context, conn *imapsync.Conn, fs *state.Folder, group []imapsync.Meta, onDone func(uint32, error), t *tracker) error {
	byUID := map[uint32]imapsync.Meta{}
	uids := make([]uint32, len(group))
	for i, m := range group {
		byUID[m.UID] = m
		uids[i] = m.UID
	}
	var jobs []*job
	err := conn.FetchBodies(uids, f.e.spool, func(uid uint32, b *spool.Body) error {
		m, ok := byUID[uid]
		if !ok {
			return b.Remove()
		}
		jobs = append(jobs, &job{
			key: f.key, uidvalidity: fs.UIDValidity, messageID: m.MessageID, body: b,
			msg: relay.Message{
				Account: f.acct.Email, Mailbox: f.role, Folder: fs.Name, UID: uid, UIDValidity: fs.UIDValidity,
				InternalDate: m.InternalDate, Flags: m.Flags, Key: b.Key, Size: b.Size, Open: b.Open,
			},
			done: func(err error) { onDone(uid, err) },
		})
		return nil
	})
	if err != nil {
		for _, j := range jobs {
			j.body.Remove()
		}
		return err
	}
	if fs.Rescan {
		jobs, err = f.skipKnown(ctx, jobs)
		if err != nil {
			return err
		}
	}
	for i, j := range jobs {
		t.wg.Add(1)
		inner := j.done
		j.done = func(err error) { inner(err); t.wg.Done() }
		select {
		case f.e.jobs <- j:
		case <-ctx.Done():
			t.wg.Done() // jobs[i] was counted, never handed over; the rest were not counted
			for _, rest := range jobs[i:] {
				rest.body.Remove()
			}
			return ctx.Err()
		}
	}
	return nil
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
	missing, ok, err := f.e.platform.Load().Check(ctx, keys)
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
		j.body.Remove()
		j.done(err)
	}
	return rest, nil
}

// matchesDomains reports whether any address is in one of the domains or
// their subdomains.
func matchesDomains(addrs, domains []string) bool {
	for _, a := range addrs {
		at := strings.LastIndexByte(a, '@')
		if at < 0 {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(a[at+1:], "."))
		for _, d := range domains {
			d = strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(d, "."), "."))
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
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

func (t *tracker) remaining() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.left)
}

func (t *tracker) firstErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
