package state

import (
	"path/filepath"
	"testing"
	"time"
)

// TestLastRelayed checks the counters remember when the last message was
// relayed (what the tray's "All mail relayed · 2 min ago" says), that a
// skipped or rejected message does not move it, and that it survives
// reopening the database.
func TestLastRelayed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	k := FolderKey{Account: "Alice@acme.com", Role: "inbox"}
	if err := s.PutFolder(k, Folder{UIDValidity: 7}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Counters("alice@acme.com"); !c.LastRelayed.IsZero() {
		t.Fatalf("last relayed %v before anything was", c.LastRelayed)
	}
	if err := s.MarkDone(k, 7, 1, Relayed, nil); err != nil {
		t.Fatal(err)
	}
	relayedAt := clock
	clock = clock.Add(time.Hour)
	if err := s.MarkDone(k, 7, 2, Skipped, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDone(k, 7, 3, Rejected, &Rejection{Reason: "too big"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Counters("alice@acme.com")
	if err != nil {
		t.Fatal(err)
	}
	if !c.LastRelayed.Equal(relayedAt) || c.Relayed != 1 {
		t.Fatalf("counters %+v, want 1 relayed at %v", c, relayedAt)
	}
}
