// Package state is the connector's memory across restarts: per folder, its
// UIDVALIDITY and what has been relayed; per account, counters and rejected
// messages; the platform's settings.
//
// It is a bbolt database: every write is one atomic, durable transaction,
// so a kill at any moment leaves the last committed state. A checkpoint
// only records what the platform confirmed; everything else is simply
// relayed again, which the idempotency key makes safe.
package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// Store is an open state database. Safe for concurrent use.
type Store struct {
	db    *bolt.DB
	now   func() time.Time
	batch *committer // group commits of the checkpoint marks (batch.go)
}

var (
	bFolders  = []byte("folders")
	bDone     = []byte("done")
	bRejected = []byte("rejected")
	bCounters = []byte("counters")
	bMeta     = []byte("meta")
)

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("the state database is in use by another Inbox Relay process")

// Open opens (or creates, mode 0600) the database at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("open state database: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bFolders, bDone, bRejected, bCounters, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare state database: %w", err)
	}
	return &Store{db: db, now: time.Now, batch: newCommitter(db)}, nil
}

// Close closes the database; pending writes are already durable. No
// method may be called during or after Close.
func (s *Store) Close() error {
	s.batch.close()
	return s.db.Close()
}

// FolderKey names one synced folder of one account by its role.
type FolderKey struct {
	Account string // e-mail address, lowercased by the caller
	Role    string // "inbox" or "sent"
}

func (k FolderKey) bytes() []byte { return []byte(strings.ToLower(k.Account) + "\x00" + k.Role) }

// Folder is what is known of one folder's progress.
type Folder struct {
	Name        string `json:"name"`
	UIDValidity uint32 `json:"uidvalidity"`
	// Baseline is the UIDNEXT seen at the first sync: UIDs from it on are new
	// mail and relayed whatever their date; older UIDs only within Window.
	Baseline uint32 `json:"baseline"`
	// WindowStart bounds the backfill of UIDs below Baseline by INTERNALDATE;
	// zero means everything.
	WindowStart time.Time `json:"window_start,omitzero"`
	// Watermark: every UID up to it is done (relayed, rejected, skipped or
	// out of scope). UIDs above it are done only if in the done set.
	Watermark uint32 `json:"watermark"`
	// Rescan is set after a UIDVALIDITY change or a wider window: the
	// platform may already have these messages, so ask it before uploading.
	Rescan   bool      `json:"rescan,omitempty"`
	LastSync time.Time `json:"last_sync,omitzero"`
	// PendingSince is the oldest INTERNALDATE (UTC midnight) of a message in
	// scope by its UID only (at or above Baseline, dated before WindowStart)
	// seen and not yet relayed: after a UIDVALIDITY change the rescan reaches
	// back to it, so such a message does not drop out of scope. Zero when
	// there is none.
	PendingSince time.Time `json:"pending_since,omitzero"`
}

// Folder returns the folder's state; ok is false when it was never synced.
func (s *Store) Folder(k FolderKey) (f Folder, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		f, ok, err = folderIn(tx, k)
		return err
	})
	return f, ok, err
}

// folderIn reads folder k's record in tx; ok is false when there is none.
func folderIn(tx *bolt.Tx, k FolderKey) (f Folder, ok bool, err error) {
	v := tx.Bucket(bFolders).Get(k.bytes())
	if v == nil {
		return f, false, nil
	}
	return f, true, json.Unmarshal(v, &f)
}

// PutFolder stores f as is, keeping the done set.
func (s *Store) PutFolder(k FolderKey, f Folder) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bFolders), k.bytes(), f) })
}

// ResetFolder stores f and forgets the done set and the undeliverable
// messages: used when UIDVALIDITY changed or the folder is another one (the
// old UIDs mean nothing now).
func (s *Store) ResetFolder(k FolderKey, f Folder) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bDone).DeleteBucket(k.bytes()); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		if err := deleteUndeliverables(tx, k); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bFolders), k.bytes(), f)
	})
}

// Outcome is how a message left the pending set.
type Outcome byte

// The outcomes of a message.
const (
	Relayed  Outcome = 'r' // the platform answered 200 or 201
	Rejected Outcome = 'x' // the platform refused it for good
	Skipped  Outcome = 's' // filtered out by relay_domains
)

// Rejection is a message the platform refused for good.
type Rejection struct {
	Account   string    `json:"account"`
	Role      string    `json:"mailbox"`
	Folder    string    `json:"folder"`
	UID       uint32    `json:"uid"`
	Key       string    `json:"key"`
	MessageID string    `json:"message_id,omitempty"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// MarkDone records the outcome of one message of folder k under
// uidvalidity. When the folder has since moved to another UIDVALIDITY, the
// mark is dropped (the message will be seen again under its new UID). rej
// is stored for Rejected outcomes. A message recorded undeliverable leaves
// that record (it was delivered after all).
func (s *Store) MarkDone(k FolderKey, uidvalidity, uid uint32, o Outcome, rej *Rejection) error {
	now := s.now()
	return s.batch.do(func(tx *bolt.Tx) error {
		f, ok, err := folderIn(tx, k)
		if err != nil || !ok {
			return err
		}
		if f.UIDValidity != uidvalidity {
			return nil
		}
		wasUndeliverable := false
		if b := tx.Bucket(bUndeliverable); b != nil {
			uk := undeliverableKey(k, uidvalidity, uid)
			if b.Get(uk) != nil {
				wasUndeliverable = true
				if err := b.Delete(uk); err != nil {
					return err
				}
			}
		}
		if uid <= f.Watermark {
			// The watermark passed an undeliverable message: its outcome
			// counts, no done mark is needed.
			if !wasUndeliverable {
				return nil
			}
			return recordOutcome(tx, k, uidvalidity, uid, o, rej, now)
		}
		done, err := tx.Bucket(bDone).CreateBucketIfNotExists(k.bytes())
		if err != nil {
			return err
		}
		key := uidKey(uid)
		if done.Get(key) != nil {
			return nil
		}
		if err := done.Put(key, []byte{byte(o)}); err != nil {
			return err
		}
		return recordOutcome(tx, k, uidvalidity, uid, o, rej, now)
	})
}

// recordOutcome stores a rejection and counts the outcome, in tx.
func recordOutcome(tx *bolt.Tx, k FolderKey, uidvalidity, uid uint32, o Outcome, rej *Rejection, now time.Time) error {
	if o == Rejected && rej != nil {
		rej.At = now
		rk := []byte(fmt.Sprintf("%s\x00%s\x00%010d\x00%010d", strings.ToLower(k.Account), k.Role, uidvalidity, uid))
		if err := putJSON(tx.Bucket(bRejected), rk, rej); err != nil {
			return err
		}
	}
	return bumpCounters(tx, k.Account, o, now)
}

// Done returns the UIDs above the watermark already done in folder k.
func (s *Store) Done(k FolderKey) (map[uint32]Outcome, error) {
	out := map[uint32]Outcome{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bDone).Bucket(k.bytes())
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) == 4 && len(v) == 1 {
				out[binary.BigEndian.Uint32(k)] = Outcome(v[0])
			}
			return nil
		})
	})
	return out, err
}

// Advance moves folder k's watermark to w (never backwards), forgets the
// done marks it now covers, records lastSync (unless zero) and, with
// rescanDone, ends the folder's rescan; all only if the folder is still at
// uidvalidity.
func (s *Store) Advance(k FolderKey, uidvalidity, w uint32, lastSync time.Time, rescanDone bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		f, ok, err := folderIn(tx, k)
		if err != nil || !ok {
			return err
		}
		if f.UIDValidity != uidvalidity {
			return nil
		}
		if w > f.Watermark {
			f.Watermark = w
		}
		if !lastSync.IsZero() {
			f.LastSync = lastSync
		}
		if rescanDone {
			f.Rescan = false
		}
		if done := tx.Bucket(bDone).Bucket(k.bytes()); done != nil {
			c := done.Cursor()
			for key, _ := c.First(); key != nil && binary.BigEndian.Uint32(key) <= f.Watermark; key, _ = c.First() {
				if err := done.Delete(key); err != nil {
					return err
				}
			}
		}
		return putJSON(tx.Bucket(bFolders), k.bytes(), f)
	})
}

// SetPendingSince sets folder k's PendingSince (see Folder), if the folder
// is still at uidvalidity; the rest of its record is kept.
func (s *Store) SetPendingSince(k FolderKey, uidvalidity uint32, since time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		f, ok, err := folderIn(tx, k)
		if err != nil || !ok {
			return err
		}
		if f.UIDValidity != uidvalidity || f.PendingSince.Equal(since) {
			return nil
		}
		f.PendingSince = since
		return putJSON(tx.Bucket(bFolders), k.bytes(), f)
	})
}

// Counters are an account's totals.
type Counters struct {
	Relayed      int    `json:"relayed"`
	RelayedToday int    `json:"relayed_today"`
	Day          string `json:"day"` // local date RelayedToday counts, YYYY-MM-DD
	Rejected     int    `json:"rejected"`
	Skipped      int    `json:"skipped"`
	// LastRelayed is when the last message was relayed (zero before the
	// first): what "All mail relayed · 2 min ago" says.
	LastRelayed time.Time `json:"last_relayed,omitzero"`
}

func bumpCounters(tx *bolt.Tx, account string, o Outcome, now time.Time) error {
	b := tx.Bucket(bCounters)
	key := []byte(strings.ToLower(account))
	var c Counters
	if v := b.Get(key); v != nil {
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
	}
	today := now.Format("2006-01-02")
	if c.Day != today {
		c.Day, c.RelayedToday = today, 0
	}
	switch o {
	case Relayed:
		c.Relayed++
		c.RelayedToday++
		c.LastRelayed = now
	case Rejected:
		c.Rejected++
	case Skipped:
		c.Skipped++
	}
	return putJSON(b, key, c)
}

// Counters returns an account's totals; RelayedToday is 0 when Day is not
// today.
func (s *Store) Counters(account string) (Counters, error) {
	var c Counters
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bCounters).Get([]byte(strings.ToLower(account))); v != nil {
			return json.Unmarshal(v, &c)
		}
		return nil
	})
	if c.Day != s.now().Format("2006-01-02") {
		c.RelayedToday = 0
	}
	return c, err
}

// Rejections returns the account's rejected messages, oldest UID first.
func (s *Store) Rejections(account string) ([]Rejection, error) {
	var out []Rejection
	prefix := []byte(strings.ToLower(account) + "\x00")
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = underPrefix[Rejection](tx.Bucket(bRejected), prefix)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, err
}

// Forget removes everything stored about an account.
func (s *Store) Forget(account string) error {
	a := strings.ToLower(account) + "\x00"
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bFolders, bRejected, bUndeliverable} {
			if err := deletePrefix(tx.Bucket(name), []byte(a)); err != nil {
				return err
			}
		}
		done := tx.Bucket(bDone)
		var subs [][]byte
		done.ForEach(func(k, v []byte) error {
			if v == nil && strings.HasPrefix(string(k), a) {
				subs = append(subs, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range subs {
			if err := done.DeleteBucket(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bCounters).Delete([]byte(strings.ToLower(account)))
	})
}

// Settings are the platform's settings as last received (the platform
// layer of the settings): they override the local ones. A nil or absent
// field was not in the platform's last answer, so the local value applies.
type Settings struct {
	BackfillDays *int `json:"backfill_days,omitempty"`
	// RelayDomains, when DomainsGiven, limits relaying to messages with an
	// address in these domains or their subdomains; an empty list given by
	// the platform lifts any filter.
	RelayDomains []string `json:"relay_domains,omitempty"`
	DomainsGiven bool     `json:"relay_domains_given,omitempty"`
	// SendAs lists, per account (lowercased e-mail), the other addresses its
	// outbox items may use as sender; nil when the platform sent none.
	SendAs map[string][]string `json:"send_as,omitempty"`
	// Received is when a heartbeat last brought these settings; zero when
	// none ever did (then nothing may be relayed yet).
	Received time.Time `json:"received,omitzero"`
	// Platform is the base URL of the platform that sent them: settings of
	// another platform (paired elsewhere since) are not these.
	Platform string `json:"platform,omitempty"`
}

// Equal reports whether s and o hold the same settings, by value; when
// they came (Received) does not count.
func (s Settings) Equal(o Settings) bool {
	if (s.BackfillDays == nil) != (o.BackfillDays == nil) ||
		(s.BackfillDays != nil && *s.BackfillDays != *o.BackfillDays) ||
		s.DomainsGiven != o.DomainsGiven || !slices.Equal(s.RelayDomains, o.RelayDomains) ||
		s.Platform != o.Platform || (s.SendAs == nil) != (o.SendAs == nil) { // nil: not sent, so the local value applies
		return false
	}
	return maps.EqualFunc(s.SendAs, o.SendAs, slices.Equal)
}

// Layer returns the platform's settings as their layer of sync/settings,
// which decides what wins over what. A setting added here must be added
// there too.
func (st Settings) Layer() settings.Values {
	v := settings.Values{BackfillDays: st.BackfillDays}
	if st.DomainsGiven || st.RelayDomains != nil { // an empty list given by the platform lifts the filter
		v.RelayDomains = settings.Strings(st.RelayDomains...)
	}
	if st.SendAs != nil {
		v.SendAs = settings.Map(st.SendAs)
	}
	return v
}

// Settings returns the stored platform settings.
func (s *Store) Settings() (Settings, error) {
	var st Settings
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get([]byte("settings")); v != nil {
			return json.Unmarshal(v, &st)
		}
		return nil
	})
	return st, err
}

// PutSettings stores the platform settings.
func (s *Store) PutSettings(st Settings) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bMeta), []byte("settings"), st) })
}

func uidKey(uid uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uid)
	return b[:]
}

// underPrefix decodes the JSON value of every key of b (nil: none) that
// starts with prefix, in key order.
func underPrefix[T any](b *bolt.Bucket, prefix []byte) ([]T, error) {
	if b == nil {
		return nil, nil
	}
	var out []T
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return out, err
		}
		out = append(out, x)
	}
	return out, nil
}

// deletePrefix deletes every key of b (nil: none) that starts with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}
