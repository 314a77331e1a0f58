package connector

import (
	"errors"
	"testing"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/policy"
)

// TestUnpair: the token leaves the keychain and the platform leaves
// config.json; the mailbox and its settings stay, so pairing again
// resumes. A platform IT's policy sets cannot be unpaired from.
func TestUnpair(t *testing.T) {
	home := idleHome(t)
	r, err := Open(home, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Unpair(); err != nil {
		t.Fatal(err)
	}
	cfg, err := home.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Platform.URL != "" || len(cfg.Accounts) != 1 {
		t.Fatalf("after unpairing: platform %+v, %d accounts", cfg.Platform, len(cfg.Accounts))
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Get(keychain.DeviceTokenKey); !errors.Is(err, keychain.ErrNotFound) {
		t.Fatalf("the token is still in the keychain: %v", err)
	}
	if r.Status().Paired {
		t.Fatal("the status still says paired")
	}

	it, err := policy.Parse("/etc/inboxrelay/policy.toml", []byte("[platform]\nurl = \"https://p.example\"\n\n[settings]\nlocked = [\"platform\"]\n"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	locked, err := Open(idleHome(t), Options{IT: it})
	if err != nil {
		t.Fatal(err)
	}
	defer locked.Close()
	var le *policy.LockedError
	if err := locked.Unpair(); !errors.As(err, &le) {
		t.Fatalf("unpairing from IT's platform: %v", err)
	}
}
