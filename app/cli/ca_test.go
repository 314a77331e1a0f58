package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// TestCABundleCopiedAtPairing: the platform's CA bundle given at pairing
// is copied into the home; the file it came from is not read again (here
// it is replaced by another CA's, as someone who can write there could),
// and pairing again without --ca-file keeps the copy.
func TestCABundleCopiedAtPairing(t *testing.T) {
	w := newWorld(t, dovecottest.Options{})
	w.pair()
	if r := w.addAccount("--trust-fingerprint", w.dovecot.Fingerprint); r.code != 0 {
		t.Fatal(r.stderr)
	}
	home := config.Home{Dir: w.home}
	cfg, err := home.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Platform.CAFile != home.PlatformCAPath() {
		t.Fatalf("the settings name %q as the CA bundle, want the home's copy %q", cfg.Platform.CAFile, home.PlatformCAPath())
	}
	if fi, err := os.Stat(home.PlatformCAPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the copy: %v, %v; want a 0600 file", fi, err)
	}
	// Someone who can write where the bundle came from swaps it for their
	// own CA: the connector does not care, it has its copy.
	if err := os.WriteFile(w.caFile, w.dovecot.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	w.mustRun("", "sync", "--once")

	// Pairing again, without --ca-file: the copy stays.
	w.mustRun("", "pair", "--platform", w.platform.URL(), "--code", w.platform.NewPairingCode())
	if cfg, _ := home.Load(); cfg.Platform.CAFile != home.PlatformCAPath() {
		t.Fatalf("after pairing again the CA bundle is %q", cfg.Platform.CAFile)
	}
	w.mustRun("", "sync", "--once")
	if left, _ := filepath.Glob(filepath.Join(w.home, "platform-ca.pem.new*")); len(left) != 0 {
		t.Fatalf("staged copies left: %v", left)
	}
}
