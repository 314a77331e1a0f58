package state

import (
	"path/filepath"
	"testing"
	"time"
)

// TestUndeliverableRecords: undeliverable messages are kept per folder and
// UIDVALIDITY, listed per account oldest first, keep their first date when
// tried again, leave the record once relayed, and go with their folder's
// reset and with the account; another account's stay.
func TestUndeliverableRecords(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	day := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	inbox := FolderKey{Account: "Alice@Acme.test", Role: "inbox"}
	sent := FolderKey{Account: "alice@acme.test", Role: "sent"}
	bob := FolderKey{Account: "bob@acme.test", Role: "inbox"}
	for _, k := range []FolderKey{inbox, sent, bob} {
		if err := s.ResetFolder(k, Folder{Name: k.Role, UIDValidity: 7}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(k FolderKey, uid uint32, at time.Time) {
		t.Helper()
		if err := s.PutUndeliverable(k, Undeliverable{Account: k.Account, Role: k.Role, UID: uid, UIDValidity: 7, Reason: "closed", Tries: 3, LastTry: at}); err != nil {
			t.Fatal(err)
		}
	}
	put(inbox, 5, day.Add(2*time.Hour))
	put(sent, 9, day)
	put(inbox, 6, day.Add(time.Hour))
	put(bob, 5, day)
	put(inbox, 5, day.Add(26*time.Hour)) // tried again the next day

	u, err := s.Undeliverables(inbox, 7)
	if err != nil || len(u) != 2 || !u[5].Since.Equal(day.Add(2*time.Hour)) || !u[5].LastTry.Equal(day.Add(26*time.Hour)) {
		t.Fatalf("INBOX's undeliverables %+v, %v; want UIDs 5 (first seen at 12:00, last tried the next day) and 6", u, err)
	}
	if u, err := s.Undeliverables(inbox, 8); err != nil || len(u) != 0 {
		t.Fatalf("undeliverables under another UIDVALIDITY: %+v, %v", u, err)
	}
	uids := func(account string) []uint32 {
		t.Helper()
		list, err := s.AccountUndeliverables(account)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint32
		for _, u := range list {
			out = append(out, u.UID)
		}
		return out
	}
	if got := uids("ALICE@acme.test"); len(got) != 3 || got[0] != 9 || got[1] != 6 || got[2] != 5 {
		t.Fatalf("alice's undeliverables by UID %v, want 9, 6, 5 (oldest first)", got)
	}

	if err := s.MarkDone(inbox, 7, 6, Relayed, nil); err != nil {
		t.Fatal(err)
	}
	if got := uids("alice@acme.test"); len(got) != 2 {
		t.Fatalf("after UID 6 was relayed: %v, want 9 and 5", got)
	}
	if err := s.ResetFolder(sent, Folder{Name: "Sent", UIDValidity: 8}); err != nil {
		t.Fatal(err)
	}
	if got := uids("alice@acme.test"); len(got) != 1 || got[0] != 5 {
		t.Fatalf("after Sent was reset: %v, want only INBOX's 5", got)
	}
	if err := s.Forget("alice@acme.test"); err != nil {
		t.Fatal(err)
	}
	if got := uids("alice@acme.test"); len(got) != 0 {
		t.Fatalf("after Forget: %v, want none", got)
	}
	if _, ok, err := s.Folder(inbox); err != nil || ok {
		t.Fatalf("after Forget the folder is known: %v, %v", ok, err)
	}
	if got := uids("bob@acme.test"); len(got) != 1 || got[0] != 5 {
		t.Fatalf("bob's undeliverables after alice was forgotten: %v, want 5", got)
	}
}

// TestDeleteUndeliverable: a message deleted from the mailbox leaves its
// record, and only its own; nothing is counted for it; deleting one that
// has no record is no error.
func TestDeleteUndeliverable(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	inbox := FolderKey{Account: "alice@acme.test", Role: "inbox"}
	if err := s.ResetFolder(inbox, Folder{Name: "INBOX", UIDValidity: 7}); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{5, 6} {
		if err := s.PutUndeliverable(inbox, Undeliverable{Account: inbox.Account, Role: inbox.Role, UID: uid, UIDValidity: 7, Reason: "closed", Tries: 3, LastTry: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUndeliverable(inbox, 7, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUndeliverable(inbox, 7, 99); err != nil {
		t.Fatalf("deleting a record that is not there: %v", err)
	}
	u, err := s.Undeliverables(inbox, 7)
	if err != nil || len(u) != 1 || u[6].UID != 6 {
		t.Fatalf("after UID 5 was deleted: %+v, %v; want only UID 6", u, err)
	}
	if c, err := s.Counters(inbox.Account); err != nil || c.Relayed != 0 || c.Skipped != 0 || c.Rejected != 0 {
		t.Fatalf("counters %+v, %v; want nothing counted", c, err)
	}
}
