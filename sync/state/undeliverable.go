package state

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bUndeliverable = []byte("undeliverable")

// Undeliverable is a message the mail server could not deliver to the
// connector, after several tries on its own: the server broke the
// connection or refused each time. It is not relayed, and not counted as
// a platform rejection; it is tried again now and then (see the engine),
// and forgotten once relayed, when it leaves the mailbox, or when its
// folder's UIDVALIDITY changes.
type Undeliverable struct {
	Account     string    `json:"account"`
	Role        string    `json:"mailbox"` // inbox or sent
	Folder      string    `json:"folder"`
	UID         uint32    `json:"uid"`
	UIDValidity uint32    `json:"uidvalidity"`
	Reason      string    `json:"reason"` // what the server did or said, for a person
	Tries       int       `json:"tries"`  // fetches of the message alone that failed, in all
	Since       time.Time `json:"since"`  // first recorded
	LastTry     time.Time `json:"last_try"`
}

func undeliverableKey(k FolderKey, uidvalidity, uid uint32) []byte {
	return []byte(fmt.Sprintf("%s\x00%010d\x00%010d", k.bytes(), uidvalidity, uid))
}

// PutUndeliverable records (or updates) u as undeliverable in folder k.
// Since is kept from an earlier record of the same message.
func (s *Store) PutUndeliverable(k FolderKey, u Undeliverable) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bUndeliverable)
		if err != nil {
			return err
		}
		key := undeliverableKey(k, u.UIDValidity, u.UID)
		if v := b.Get(key); v != nil {
			var old Undeliverable
			if json.Unmarshal(v, &old) == nil && !old.Since.IsZero() {
				u.Since = old.Since
			}
		}
		if u.Since.IsZero() {
			u.Since = u.LastTry
		}
		return putJSON(b, key, u)
	})
}

// Undeliverables returns folder k's undeliverable messages under
// uidvalidity, by UID.
func (s *Store) Undeliverables(k FolderKey, uidvalidity uint32) (map[uint32]Undeliverable, error) {
	out := map[uint32]Undeliverable{}
	prefix := []byte(fmt.Sprintf("%s\x00%010d\x00", k.bytes(), uidvalidity))
	err := s.db.View(func(tx *bolt.Tx) error {
		list, err := underPrefix[Undeliverable](tx.Bucket(bUndeliverable), prefix)
		for _, u := range list {
			out[u.UID] = u
		}
		return err
	})
	return out, err
}

// AccountUndeliverables returns every undeliverable message of an account,
// oldest first.
func (s *Store) AccountUndeliverables(account string) ([]Undeliverable, error) {
	var out []Undeliverable
	prefix := []byte(strings.ToLower(account) + "\x00")
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = underPrefix[Undeliverable](tx.Bucket(bUndeliverable), prefix)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, err
}

// DeleteUndeliverable forgets that the message with uid under uidvalidity
// in folder k was undeliverable, as when it was deleted from the mailbox.
// Nothing is counted: it was neither relayed nor skipped. Forgetting a
// message that has no record is no error.
func (s *Store) DeleteUndeliverable(k FolderKey, uidvalidity, uid uint32) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bUndeliverable)
		if b == nil {
			return nil
		}
		return b.Delete(undeliverableKey(k, uidvalidity, uid))
	})
}

// deleteUndeliverables removes folder k's records (every UIDVALIDITY) in tx.
func deleteUndeliverables(tx *bolt.Tx, k FolderKey) error {
	return deletePrefix(tx.Bucket(bUndeliverable), append(k.bytes(), 0))
}
