package state

import (
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMarkDoneConcurrent marks many messages from many goroutines, as the
// upload workers do, and checks each is recorded once, counted once, and
// still there after the database is closed and opened again.
func TestMarkDoneConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openStore(t, path)
	k := FolderKey{Account: "alice@acme.test", Role: "inbox"}
	if err := s.ResetFolder(k, Folder{Name: "INBOX", UIDValidity: 7}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 50
	var wg gosync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				uid := uint32(1 + w*each + i)
				errs <- s.MarkDone(k, 7, uid, Relayed, nil)
				if i%10 == 0 { // a repeated mark changes nothing
					errs <- s.MarkDone(k, 7, uid, Relayed, nil)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, path)
	defer s.Close()
	done, err := s.Done(k)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != workers*each {
		t.Fatalf("%d marks stored, want %d", len(done), workers*each)
	}
	for uid := uint32(1); uid <= workers*each; uid++ {
		if done[uid] != Relayed {
			t.Fatalf("UID %d: outcome %q, want relayed", uid, done[uid])
		}
	}
	c, err := s.Counters(k.Account)
	if err != nil {
		t.Fatal(err)
	}
	if c.Relayed != workers*each || c.RelayedToday != workers*each {
		t.Fatalf("counters %+v, want %d relayed", c, workers*each)
	}
}

// TestMarkDoneDrops checks the marks that must change nothing: another
// UIDVALIDITY, a UID at or below the watermark, a folder never synced.
func TestMarkDoneDrops(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	k := FolderKey{Account: "alice@acme.test", Role: "inbox"}
	if err := s.ResetFolder(k, Folder{Name: "INBOX", UIDValidity: 7, Watermark: 10}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		k        FolderKey
		validity uint32
		uid      uint32
	}{
		{k, 8, 11}, // old UIDVALIDITY
		{k, 7, 10}, // under the watermark
		{k, 7, 3},  // under the watermark
		{FolderKey{Account: "alice@acme.test", Role: "sent"}, 7, 11}, // never synced
	} {
		if err := s.MarkDone(m.k, m.validity, m.uid, Relayed, nil); err != nil {
			t.Fatal(err)
		}
	}
	if done, _ := s.Done(k); len(done) != 0 {
		t.Fatalf("dropped marks were stored: %v", done)
	}
	if c, _ := s.Counters(k.Account); c.Relayed != 0 {
		t.Fatalf("dropped marks were counted: %+v", c)
	}
}

// TestMarkDoneOutcomes records each outcome with its counter and the
// rejection's record.
func TestMarkDoneOutcomes(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	day := time.Date(2026, 5, 4, 10, 0, 0, 0, time.Local)
	s.now = func() time.Time { return day }
	k := FolderKey{Account: "Alice@Acme.test", Role: "sent"}
	if err := s.ResetFolder(k, Folder{Name: "Sent", UIDValidity: 3}); err != nil {
		t.Fatal(err)
	}
	rej := &Rejection{Account: k.Account, Role: "sent", Folder: "Sent", UID: 2, Key: "ab", Reason: "too big"}
	for _, m := range []struct {
		uid uint32
		o   Outcome
		rej *Rejection
	}{{1, Relayed, nil}, {2, Rejected, rej}, {3, Skipped, nil}, {4, Relayed, nil}} {
		if err := s.MarkDone(k, 3, m.uid, m.o, m.rej); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Counters("alice@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{Relayed: 2, RelayedToday: 2, Day: "2026-05-04", Rejected: 1, Skipped: 1}
	if !c.LastRelayed.Equal(day) {
		t.Fatalf("last relayed %v, want %v", c.LastRelayed, day)
	}
	c.LastRelayed = time.Time{}
	if c != want {
		t.Fatalf("counters %+v, want %+v", c, want)
	}
	rs, err := s.Rejections("alice@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].UID != 2 || rs[0].Reason != "too big" || !rs[0].At.Equal(day) {
		t.Fatalf("rejections %+v", rs)
	}
}

// TestMarkDoneBadFolderFailsAlone puts a damaged folder record beside a
// good one: marks of the damaged folder fail, those of the good one are
// stored, even when they share a commit.
func TestMarkDoneBadFolderFailsAlone(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	good := FolderKey{Account: "alice@acme.test", Role: "inbox"}
	bad := FolderKey{Account: "alice@acme.test", Role: "sent"}
	if err := s.ResetFolder(good, Folder{Name: "INBOX", UIDValidity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bFolders).Put(bad.bytes(), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	var wg gosync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := good
			if i%4 == 0 {
				k = bad
			}
			errs[i] = s.MarkDone(k, 1, uint32(100+i), Relayed, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%4 == 0) != (err != nil) {
			t.Fatalf("mark %d (damaged folder: %v): error %v", i, i%4 == 0, err)
		}
	}
	done, _ := s.Done(good)
	if len(done) != 30 {
		t.Fatalf("%d marks of the good folder stored, want 30", len(done))
	}
	if c, _ := s.Counters(good.Account); c.Relayed != 30 {
		t.Fatalf("counted %d relayed, want 30", c.Relayed)
	}
}

func TestMarkDoneAfterClose(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	k := FolderKey{Account: "alice@acme.test", Role: "inbox"}
	if err := s.ResetFolder(k, Folder{Name: "INBOX", UIDValidity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDone(k, 1, 5, Relayed, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.MarkDone(k, 1, 6, Relayed, nil); err == nil {
		t.Fatal("a mark after Close returned no error")
	}
}
