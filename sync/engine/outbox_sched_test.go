package engine

import (
	"context"
	"os"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// prepare does what the outbox does with an item it takes: the message
// made ready to send in the outbox folder. It returns the file and the
// Message-ID.
func (r *rig) prepare(e *Engine, it relay.OutboxItem) (string, string) {
	r.t.Helper()
	ob := newOutbox(e)
	if err := os.MkdirAll(ob.dir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	path := ob.filePath(it.ID)
	p, err := prepareFile(it.File, path, r.email, time.Now(), func([]byte) string { return "" })
	if err != nil || p.Refused != "" {
		r.t.Fatalf("prepare: %v %s", err, p.Refused)
	}
	return path, p.MessageID
}

// sendDirect sends the prepared message in path through the account's
// SMTP server, as the outbox would, outside any engine.
func (r *rig) sendDirect(path string) {
	r.t.Helper()
	acct := r.cfg.Accounts[0]
	pol, err := trust.NewPolicy(acct.MinTLS, acct.TrustPins(), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	c, err := smtpsend.Dial(context.Background(), acct, r.password, pol)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	f, err := os.Open(path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if _, _, err := c.Send(r.email, []string{"customer@client.test"}, f, fi.Size()); err != nil {
		r.t.Fatal(err)
	}
}
