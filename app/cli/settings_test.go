package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// TestBackfillFlagSetsTheHomeWindow: `account add --backfill-days` keeps
// working, as the one backfill window of the home: stored in config.json's
// settings (not in the account), obeyed by the next sync (a 20-day-old
// message stays back with 7 days), and shown by `account list`.
func TestBackfillFlagSetsTheHomeWindow(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	recent := message(1, 800)
	w.dovecot.Append(t, w.email, "INBOX", recent, time.Now())
	w.dovecot.Append(t, w.email, "INBOX", message(2, 800), time.Now().AddDate(0, 0, -20))
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint, "--backfill-days", "seven"); r.code != 2 {
		t.Fatalf("a bad --backfill-days: exit %d, %s", r.code, r.stderr)
	}
	r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint, "--backfill-days", "7")
	if r.code != 0 {
		t.Fatalf("account add: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "backfill window: the last 7 days for every account") {
		t.Errorf("account add does not say the window: %s", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(w.home, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"settings": {`+"\n"+`    "backfill_days": 7`) {
		t.Errorf("config.json does not hold the window in its settings:\n%s", b)
	}
	w.mustRun("", "sync", "--once")
	w.checkAllStoredOnce([][]byte{recent})
	if r := w.mustRun("", "account", "list"); !strings.Contains(r.stdout, "backfill window: the last 7 days") {
		t.Errorf("account list: %s", r.stdout)
	}
}
