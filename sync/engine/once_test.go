package engine

import (
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
)

// TestOnceRelaysTheCopyItFiled: one sync --once pass that sends a reply
// also relays the copy it filed in Sent, instead of leaving it pending
// until the next run.
func TestOnceRelaysTheCopyItFiled(t *testing.T) {
	r := newRig(t, dovecottest.Options{})
	id := r.enqueue(reply(9))
	if err := r.syncOnce(); err != nil {
		t.Fatal(err)
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "sent" || res[0].SentUID == 0 {
		t.Fatalf("results %+v, want one sent with its Sent UID", res)
	}
	copies := r.sentCopies(res[0].MessageID)
	if len(copies) != 1 {
		t.Fatalf("%d copies in Sent, want 1", len(copies))
	}
	for _, m := range r.platform.Messages() {
		if m.Key == keyOf(copies[0]) && m.Mailbox == "sent" && m.UID == res[0].SentUID {
			return
		}
	}
	t.Fatalf("the pass that filed the copy in Sent (UID %d) did not relay it: %+v", res[0].SentUID, r.platform.Messages())
}
