package engine

import (
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

// TestRelayDomainsComeMidBackfill: messages fetched while relay_domains
// was not set (so without their addresses) and not yet uploaded when it
// comes are fetched again with their addresses: those outside the domains
// never leave, those inside are relayed, none is lost.
func TestRelayDomainsComeMidBackfill(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	want := r.seedDomains(t, 10)
	r.platform.FailNext(1_000_000, 503, 0) // every message fetched, its upload held back
	e := r.start(func(o *Options) { o.HeartbeatEvery = 100 * time.Millisecond })
	deadline := time.Now().Add(time.Minute) // hang guards
	for r.platform.Uploads() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d uploads tried", r.platform.Uploads())
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.platform.SetSettings(refplatform.Settings{RelayDomains: []string{"corp.example"}})
	for len(e.relayDomains()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the platform's relay_domains never reached the engine")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.platform.FailNext(0, 503, 0)
	waitSnapshot(t, e, "10 messages relayed or skipped", func(s Snapshot) bool {
		return len(s.Accounts) == 1 && s.Accounts[0].Relayed+s.Accounts[0].Skipped == 10
	})
	r.checkStored(want, inboxOnly(want))
}
