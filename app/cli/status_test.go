package cli_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/app/cli"
	"github.com/inboxrelay/inboxrelay/sync/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestStatusJSONGolden")

// TestStatusJSONGolden: `status --json` prints the same bytes for the same
// state as before the states became typed: every engine, folder and
// platform state word of a status file survives the round trip (decoded
// into the typed snapshot, encoded again), and so does the placeholder
// shown before any status file exists. The golden files were written by
// the code that still kept states as strings; -update rewrites them (only
// when the output is meant to change).
func TestStatusJSONGolden(t *testing.T) {
	cases := []struct{ name, status string }{
		{"failing", "status-failing.json"},
		{"flowing", "status-flowing.json"},
		{"paused", "status-paused.json"},
		{"no-status-file", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home, err := config.OpenHome(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			srv := config.Server{Host: "mail.acme.com", Port: 993, Security: config.SecurityTLS}
			cfg := &config.Config{Platform: config.Platform{URL: "https://app.example.com/connector"},
				Accounts: []config.Account{{Email: "alice@acme.com", IMAP: srv, SMTP: srv}, {Email: "bob@acme.com", IMAP: srv, SMTP: srv}}}
			if err := home.Save(cfg); err != nil {
				t.Fatal(err)
			}
			if tc.status != "" {
				b, err := os.ReadFile(filepath.Join("testdata", tc.status))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(home.StatusPath(), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb bytes.Buffer
			if code := cli.Main([]string{"--home", home.Dir, "status", "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
				t.Fatalf("status --json: exit %d: %s", code, errb.String())
			}
			golden := filepath.Join("testdata", "status-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("status --json changed:\n%s\nwant:\n%s", out.Bytes(), want)
			}
		})
	}
}

// TestStatusSaysWhyPaused: `status` names the reasons relaying is paused
// for, as the engine's snapshot lists them.
func TestStatusSaysWhyPaused(t *testing.T) {
	home, err := config.OpenHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := home.Save(&config.Config{Platform: config.Platform{URL: "https://app.example.com/connector"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "status-paused.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`"paused": true,`), []byte(`"paused": true, "paused_for": ["user", "metered"],`), 1)
	if err := os.WriteFile(home.StatusPath(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"--home", home.Dir, "status"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "Paused: user, metered\n") || !strings.Contains(out.String(), "alice@acme.com: paused") {
		t.Fatalf("status does not say why it is paused:\n%s", out.String())
	}
}
