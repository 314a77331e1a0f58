package engine

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// corporaDir is shared/corpora, beside the repository.
func corporaDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "corpora"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the shared corpora are missing beside the repository: %v", err)
		}
		t.Skipf("no shared/corpora beside the repository (%v)", err)
	}
	return dir
}

// TestCorporaRelayedByteForByte puts every real-world and malformed message
// of shared/corpora into a real Dovecot and checks that the platform stores
// each exactly as Dovecot's BODY[] returns it.
func TestCorporaRelayedByteForByte(t *testing.T) {
	dir := corporaDir(t)
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !isLicence(d.Name()) {
			files = append(files, p)
		}
		return err
	})
	if len(files) < 300 {
		t.Fatalf("found %d corpus files, expected about 400", len(files))
	}
	r := newRig(t, dovecottest.Options{})
	r.cfg.Settings.BackfillDays = settings.Int(settings.BackfillAll) // the corpus dates span decades
	c := r.dovecot.Login(t, r.email, nil)
	appended := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cmd := c.Append("INBOX", int64(len(b)), &imap.AppendOptions{Time: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)})
		cmd.Write(b)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			// IMAP cannot carry some bytes (NUL) in a plain literal: the
			// server refuses them, so they can never reach a mailbox.
			t.Logf("Dovecot refused %s: %v", filepath.Base(f), err)
			continue
		}
		appended++
	}
	// What the server returns is the reference, whatever it did to the file.
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	all, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, m := range all {
		for _, body := range m.BodySection {
			want[keyOf(body.Bytes)] = body.Bytes
		}
	}
	t.Logf("%d files, %d appended, %d distinct bodies", len(files), appended, len(want))

	if err := r.syncOnce(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	got := r.platform.Messages()
	if len(got) != len(want) {
		t.Fatalf("the platform stored %d messages, want %d", len(got), len(want))
	}
	for _, m := range got {
		w, ok := want[m.Key]
		if !ok {
			t.Fatalf("stored an unexpected body (UID %d)", m.UID)
		}
		if !bytes.Equal(r.storedBody(m), w) {
			t.Fatalf("UID %d: stored bytes differ from the server's", m.UID)
		}
	}
}

func isLicence(name string) bool {
	switch name {
	case "LICENSE", "MIT-LICENSE", "README.md", "NOTICE":
		return true
	}
	return false
}
