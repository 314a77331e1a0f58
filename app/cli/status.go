package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/engine"
)

func (e *env) status(args []string) error {
	fs := flags("status")
	asJSON := fs.Bool("json", false, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := e.home.Load()
	if err != nil {
		return err
	}
	var snap engine.Snapshot
	b, err := os.ReadFile(e.home.StatusPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		snap.Platform.URL = cfg.Platform.URL
		for _, a := range cfg.Accounts {
			snap.Accounts = append(snap.Accounts, engine.AccountStatus{Email: a.Email, State: engine.NotSynced})
		}
	case err != nil:
		return fmt.Errorf("read status: %w", err)
	default:
		if err := json.Unmarshal(b, &snap); err != nil {
			return fmt.Errorf("the status file is damaged (%v); it is rewritten at the next sync", err)
		}
	}
	// The file says what the last engine saw; whether one runs now is the
	// lock's to say (a killed engine could not update the file).
	snap.Running = e.home.Running()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
	}
	run := "not running"
	if snap.Running {
		run = "running"
	}
	if cfg.Platform.URL == "" {
		fmt.Fprintf(e.stdout, "Platform: not paired (run `inboxrelay pair`); Inbox Relay %s\n", run)
	} else {
		state, _ := snap.Platform.State.MarshalText()
		fmt.Fprintf(e.stdout, "Platform: %s (%s); Inbox Relay %s\n", cfg.Platform.URL, orDash(string(state)), run)
		if snap.Platform.Error != "" {
			fmt.Fprintf(e.stdout, "  platform error: %s\n", snap.Platform.Error)
		}
	}
	if snap.Paused {
		why := "no reason given"
		if snap.PausedFor != 0 {
			why = snap.PausedFor.String()
		}
		fmt.Fprintf(e.stdout, "Paused: %s\n", why)
	}
	if len(snap.Accounts) == 0 {
		fmt.Fprintln(e.stdout, "No account yet: add one with `inboxrelay account add`.")
	}
	now := time.Now()
	for _, a := range snap.Accounts {
		fmt.Fprintf(e.stdout, "%s: %s, last sync %s; relayed %d (today %d), backlog %d, rejected %d, skipped %d\n",
			a.Email, a.State, ago(a.LastSync, now), a.Relayed, a.RelayedToday, a.Backlog, a.Rejected, a.Skipped)
		if o := a.Outbox; o.Queued+o.Sending+o.Sent+o.Failed+o.Ambiguous > 0 {
			fmt.Fprintf(e.stdout, "  outbox: %d queued, %d sending, %d sent, %d failed, %d ambiguous (last 30 days)\n", o.Queued, o.Sending, o.Sent, o.Failed, o.Ambiguous)
		}
		if a.LastError != "" {
			fmt.Fprintf(e.stdout, "  last error: %s\n", a.LastError)
		}
		if acct, ok := cfg.Account(a.Email); ok {
			for _, p := range acct.Pins {
				fmt.Fprintf(e.stdout, "  certificate pinned for %s: SHA-256 %s (not checked: %s)\n", p.Server, p.Fingerprint, p.Certificate)
			}
		}
		for _, r := range a.Rejections {
			fmt.Fprintf(e.stdout, "  rejected: %s UID %d (%s): %s\n", r.Folder, r.UID, orDash(r.MessageID), r.Reason)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago says how long ago t was, as a person would.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}
