package engine

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/textproto"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/spool"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

// job is one message on its way to the platform.
type job struct {
	key         state.FolderKey
	uidvalidity uint32
	messageID   string
	body        *spool.Body
	// domains of From, To, Cc and Bcc (imapsync.Meta.Domains): relay_domains
	// is applied again right before the upload. domainsCut: not all of them.
	domains    []string
	domainsCut bool
	// envelope tells whether domains and messageID were fetched; they were
	// not when relay_domains was not set at the fetch.
	envelope bool
	msg      relay.Message
	// held is what the body holds of the engine's body budget (ahead.go),
	// given back when the body is freed.
	held int64
	// done is called once: nil when the outcome is recorded (relayed or
	// rejected), else why the message is still pending.
	done func(error)
}

func (e *Engine) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-e.jobs:
			err := e.upload(ctx, j)
			e.discard(j)
			j.done(err)
		}
	}
}

// discard frees j's body and gives its bytes back to the body budget.
// Safe to call twice.
func (e *Engine) discard(j *job) {
	j.body.Remove()
	e.ahead.release(j.held)
	j.held = 0
}

// upload relays one message until the platform gives a final answer.
// Temporary failures are retried with backoff (honouring Retry-After),
// forever unless GiveUpAfter is set; a refused token parks the upload until
// the device is paired again.
func (e *Engine) upload(ctx context.Context, j *job) error {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if err := e.gate(ctx); err != nil {
			return err
		}
		woken := e.woken()
		if err := e.waitPlatform(ctx); err != nil {
			return err
		}
		domains := e.relayDomains()
		if len(domains) > 0 && !j.envelope {
			// relay_domains came since the message was fetched without its
			// addresses: it stays pending, and the next pass fetches it
			// again with them.
			return errLookAgain
		}
		if !inDomains(j.domains, domains) {
			// relay_domains changed since the message was fetched: the
			// setting applies to every message that has not left yet.
			if j.domainsCut {
				// Its domains were too many to keep them all: whether it
				// has one in the new domains is not known here. It is
				// neither relayed nor skipped, but fetched again.
				return errLookAgain
			}
			return e.o.Store.MarkDone(j.key, j.uidvalidity, j.msg.UID, state.Skipped, nil)
		}
		pc := e.platform.Load()
		err := pc.Upload(ctx, j.msg)
		if ctx.Err() == nil {
			e.platform.answered(pc, err)
		}
		var rej *relay.RejectedError
		var tmp *relay.TemporaryError
		switch {
		case err == nil:
			return e.o.Store.MarkDone(j.key, j.uidvalidity, j.msg.UID, state.Relayed, nil)
		case errors.As(err, &rej):
			e.log.Warn("the platform rejected a message for good; it is recorded and skipped",
				"account", j.msg.Account, "folder", j.msg.Folder, "uid", j.msg.UID, "status", rej.Status, "reason", rej.Reason)
			return e.o.Store.MarkDone(j.key, j.uidvalidity, j.msg.UID, state.Rejected, &state.Rejection{
				Account: j.msg.Account, Role: j.msg.Mailbox, Folder: j.msg.Folder, UID: j.msg.UID,
				Key: j.msg.Key, MessageID: j.messageIDOf(), Reason: rej.Error(),
			})
		case errors.Is(err, relay.ErrUnauthorized):
			continue // waitPlatform parks it if the current token was refused
		case ctx.Err() != nil:
			return ctx.Err()
		}
		delay, sleep := e.o.Backoff.Delay(attempt), func(ctx context.Context, d time.Duration) error { return e.sleep(ctx, d, woken) }
		if errors.As(err, &tmp) && tmp.RetryAfter > delay {
			delay, sleep = tmp.RetryAfter, backoff.Sleep // the platform's wish: SyncNow does not cut it short
		}
		if e.o.GiveUpAfter > 0 && time.Since(start)+delay > e.o.GiveUpAfter {
			return err
		}
		e.log.Info("upload failed; retrying", "account", j.msg.Account, "uid", j.msg.UID, "in", delay.Round(time.Millisecond), "err", err)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// messageIDOf returns the message's Message-ID as the envelope gives it
// (without angle brackets), read from the body's header when the envelope
// was not fetched; "" when there is none.
func (j *job) messageIDOf() string {
	if j.envelope {
		return j.messageID
	}
	rc, err := j.body.Open()
	if err != nil {
		return ""
	}
	defer rc.Close()
	h, _ := textproto.NewReader(bufio.NewReader(io.LimitReader(rc, maxHeader))).ReadMIMEHeader()
	id := strings.TrimSpace(h.Get("Message-Id"))
	return strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
}
