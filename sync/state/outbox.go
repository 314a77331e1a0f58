package state

import (
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bOutbox = []byte("outbox")

// OutboxState is where one outbox item stands. Each step is stored before
// the action it announces, so a crash never repeats an action blindly.
type OutboxState string

// The outbox states, in order: received → sending → sent|failed|ambiguous
// → reported.
const (
	OutboxReceived  OutboxState = "received"  // stored; not handed to SMTP yet (or refused temporarily before DATA)
	OutboxSending   OutboxState = "sending"   // SMTP transaction under way: after a crash, look in Sent, never resend
	OutboxSent      OutboxState = "sent"      // the SMTP server accepted it
	OutboxFailed    OutboxState = "failed"    // refused for good, or invalid
	OutboxAmbiguous OutboxState = "ambiguous" // delivery unknown: never sent again without a person
)

// OutboxItem is the connector's record of one item the platform asked it to
// send. The message bytes live in a file (OutboxItem.File), not here.
type OutboxItem struct {
	ID          string      `json:"id"`
	Account     string      `json:"account"`
	From        string      `json:"from"`
	To          []string    `json:"to"`
	MessageID   string      `json:"message_id"`
	File        string      `json:"file,omitempty"` // the prepared message, 0600
	State       OutboxState `json:"state"`
	SMTPCode    int         `json:"smtp_code,omitempty"`
	SMTPMessage string      `json:"smtp_message,omitempty"`
	Filed       bool        `json:"filed,omitempty"`    // the copy in Sent exists (appended or filed by the server)
	SentUID     uint32      `json:"sent_uid,omitempty"` // its UID, when known
	Error       string      `json:"error,omitempty"`
	Reported    bool        `json:"reported,omitempty"` // the platform recorded the result
	Attempts    int         `json:"attempts,omitempty"` // SMTP transactions started
	Size        int64       `json:"size,omitempty"`     // of File, in bytes
	// Retries counts the temporary failures of the item's current step in
	// a row; NextAttempt is when that step may be tried again (zero: at
	// once). Both are kept across restarts, so that a restart neither
	// forgets a Retry-After nor starts the backoff over.
	Retries     int       `json:"retries,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// RetryAfter says NextAttempt is the platform's Retry-After, which a
	// "Sync now" does not cut short (it does the connector's own backoff).
	RetryAfter bool `json:"retry_after,omitempty"`
	// LastError is what made the current step fail last, while it waits
	// to be tried again ("" once it succeeded); Error is the outcome.
	LastError string `json:"last_error,omitempty"`
	// FailingSince is when sending it first failed temporarily (a 4xx, or
	// a connection that broke during its transaction); the item is failed
	// for good once that lasts too long. Zero while nothing failed.
	FailingSince time.Time `json:"failing_since,omitzero"`
	Received     time.Time `json:"received"`
	Updated      time.Time `json:"updated"`
}

// OutboxItem returns the record of item id; ok is false when the id was
// never seen.
func (s *Store) OutboxItem(id string) (it OutboxItem, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &it)
	})
	return it, ok, err
}

// PutOutboxItem stores it durably (the transaction is synced before
// PutOutboxItem returns).
func (s *Store) PutOutboxItem(it OutboxItem) error {
	it.Updated = s.now()
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bOutbox)
		if err != nil {
			return err
		}
		return putJSON(b, []byte(it.ID), it)
	})
}

// OutboxItems returns every record, oldest first. Reported items are kept
// (so a re-offered id is recognised) until PruneOutbox drops them.
func (s *Store) OutboxItems() ([]OutboxItem, error) {
	var out []OutboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var it OutboxItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			out = append(out, it)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Received.Before(out[j].Received) })
	return out, err
}

// PruneOutbox forgets reported items older than before; the platform never
// offers an item again once it recorded its result.
func (s *Store) PruneOutbox(before time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		if b == nil {
			return nil
		}
		var drop [][]byte
		b.ForEach(func(k, v []byte) error {
			var it OutboxItem
			if json.Unmarshal(v, &it) == nil && it.Reported && it.Updated.Before(before) {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
