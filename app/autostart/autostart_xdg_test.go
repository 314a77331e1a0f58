//go:build !darwin && !windows

package autostart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestXDGEntry fails when enabling does not write a desktop entry that
// runs the program with its arguments (quoted), or disabling leaves it.
func TestXDGEntry(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	e := Entry{ID: "com.inboxrelay.test", Name: "Inbox Relay", Exec: "/opt/Inbox Relay/inboxrelay", Args: []string{"--home", "/tmp/h"}}
	if e.Enabled() {
		t.Fatal("enabled before SetEnabled")
	}
	if err := e.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "autostart", "com.inboxrelay.test.desktop"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nExec=\"/opt/Inbox Relay/inboxrelay\" --home /tmp/h\n") || !strings.HasPrefix(string(b), "[Desktop Entry]\n") {
		t.Fatalf("desktop entry:\n%s", b)
	}
	if !e.Enabled() {
		t.Fatal("not enabled after SetEnabled(true)")
	}
	if err := e.SetEnabled(false); err != nil {
		t.Fatal(err)
	}
	if e.Enabled() {
		t.Fatal("still enabled after SetEnabled(false)")
	}
	if err := e.SetEnabled(false); err != nil {
		t.Fatalf("disabling twice: %v", err)
	}
}
