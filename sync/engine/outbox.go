package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/smtpsend"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// outbox sends what the platform asks, one item at a time, over one SMTP
// and one IMAP connection per account that it opens when needed and closes
// when the outbox is empty.
//
// Every step is stored before it is taken (state.OutboxState), so that
// after a crash an item is never sent a second time blindly and its copy is
// never filed twice in Sent.
type outbox struct {
	e     *Engine
	dir   string
	smtp  map[string]*smtpsend.Client
	imap  map[string]*imapsync.Conn
	trust map[string]*trust.Policy
}

func newOutbox(e *Engine) *outbox {
	ob := &outbox{e: e, dir: filepath.Join(e.o.Home.Dir, "outbox"),
		smtp: map[string]*smtpsend.Client{}, imap: map[string]*imapsync.Conn{}, trust: map[string]*trust.Policy{}}
	for _, f := range e.folders {
		ob.trust[f.key.Account] = f.trust
	}
	return ob
}

// errLater means the item stays queued and is tried again later.
var errLater = errors.New("not sent yet; will retry")

// run polls the platform's outbox until ctx ends; in Once mode it handles
// what the outbox holds now and returns an error naming what is left.
func (ob *outbox) run(ctx context.Context) error {
	defer ob.closeAll()
	if err := ob.e.settingsReady(ctx); err != nil { // send_as must be known
		return nil
	}
	left := ob.resume(ctx)
	if ob.e.o.Once {
		items, err := ob.e.platform.Load().Outbox(ctx, 0)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		for _, it := range items {
			if ob.handle(ctx, it) != nil {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d outbox items could not be sent or reported yet; they are retried next time", left)
		}
		return nil
	}
	for attempt := 0; ctx.Err() == nil; {
		if err := ob.e.gate(ctx); err != nil {
			return nil
		}
		if err := ob.e.waitPlatform(ctx); err != nil {
			return nil
		}
		pc, woken := ob.e.platform.Load(), ob.e.woken()
		items, err := pc.Outbox(ctx, ob.e.o.OutboxWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, relay.ErrUnauthorized) {
				ob.e.platform.refusedBy(pc)
				continue
			}
			ob.e.log.Warn("outbox poll", "err", err)
			ob.e.sleep(ctx, ob.e.o.Backoff.Delay(attempt), woken)
			attempt++
			continue
		}
		attempt = 0
		for _, it := range items {
			ob.handle(ctx, it)
		}
		if len(items) == 0 {
			ob.closeAll()
			ob.resume(ctx) // items that were waiting on a temporary failure
		}
	}
	return nil
}

// resume carries on with every item a previous run left unfinished and
// returns how many are still unfinished.
func (ob *outbox) resume(ctx context.Context) int {
	items, err := ob.e.o.Store.OutboxItems()
	if err != nil {
		ob.e.log.Warn("read the outbox state", "err", err)
		return 0
	}
	left := 0
	for _, rec := range items {
		if rec.Reported {
			continue
		}
		if ob.advance(ctx, rec) != nil {
			left++
		}
	}
	ob.e.o.Store.PruneOutbox(ob.e.o.Now().Add(-30 * 24 * time.Hour))
	return left
}

// handle takes one item offered by the platform.
func (ob *outbox) handle(ctx context.Context, it relay.OutboxItem) error {
	store := ob.e.o.Store
	rec, known, err := store.OutboxItem(it.ID)
	if err != nil {
		return err
	}
	if known {
		// Offered again after its lease expired: never a second send.
		ob.e.log.Info("outbox item offered again; continuing where it stands", "id", it.ID, "state", rec.State)
		if rec.Reported {
			return nil
		}
		return ob.advance(ctx, rec)
	}
	rec = state.OutboxItem{ID: it.ID, Account: it.Account, From: it.From, To: it.To, State: state.OutboxReceived, Received: ob.e.o.Now()}
	acct, ok := ob.e.o.Config.Account(it.Account)
	switch {
	case !ok:
		rec.State, rec.Error = state.OutboxFailed, fmt.Sprintf("no account %s on this connector", it.Account)
	case len(it.Raw) == 0:
		rec.State, rec.Error = state.OutboxFailed, "the item has no message (raw is empty or not base64)"
	case it.From == "" || len(it.To) == 0:
		rec.State, rec.Error = state.OutboxFailed, "the item's envelope needs a sender and at least one recipient"
	default:
		msg, id := prepareMessage(it.Raw, it.From, ob.e.o.Now())
		rec.MessageID = id
		rec.Account = acct.Email
		path, err := ob.writeFile(it.ID, msg)
		if err != nil {
			return err
		}
		rec.File = path
	}
	if err := store.PutOutboxItem(rec); err != nil {
		return err
	}
	ob.e.changed()
	return ob.advance(ctx, rec)
}

func (ob *outbox) writeFile(id string, msg []byte) (string, error) {
	if err := os.MkdirAll(ob.dir, 0o700); err != nil {
		return "", fmt.Errorf("outbox folder: %w", err)
	}
	sum := sha256.Sum256([]byte(id))
	path := filepath.Join(ob.dir, hex.EncodeToString(sum[:16])+".eml")
	return path, config.WriteFileAtomic(path, msg, 0o600)
}

// advance moves one item through its states until it is reported, or
// returns errLater (or another error) when it must wait.
func (ob *outbox) advance(ctx context.Context, rec state.OutboxItem) error {
	store := ob.e.o.Store
	start := time.Now()
	for attempt := 0; !rec.Reported; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		woken := ob.e.woken()
		var err error
		switch rec.State {
		case state.OutboxReceived:
			err = ob.send(ctx, &rec)
		case state.OutboxSending:
			err = ob.recover(ctx, &rec)
		case state.OutboxSent:
			if !rec.Filed {
				err = ob.file(ctx, &rec)
			}
			if err == nil {
				err = ob.report(ctx, &rec)
			}
		case state.OutboxFailed, state.OutboxAmbiguous:
			err = ob.report(ctx, &rec)
		default:
			rec.State, rec.Error = state.OutboxFailed, fmt.Sprintf("unknown state %q", rec.State)
			err = store.PutOutboxItem(rec)
		}
		ob.e.changed()
		if err == nil {
			continue
		}
		if errors.Is(err, relay.ErrUnauthorized) {
			if werr := ob.e.waitPlatform(ctx); werr != nil {
				return werr
			}
			continue
		}
		ob.e.setOutboxError(rec.Account, err)
		ob.e.log.Warn("outbox item waits", "id", rec.ID, "state", rec.State, "err", err)
		delay := ob.e.o.Backoff.Delay(attempt)
		attempt++
		if ob.e.o.Once && (ob.e.o.GiveUpAfter == 0 || time.Since(start)+delay > ob.e.o.GiveUpAfter) {
			return errLater
		}
		if err := ob.e.sleep(ctx, delay, woken); err != nil {
			return err
		}
	}
	if rec.File != "" {
		os.Remove(rec.File)
	}
	ob.e.setOutboxError(rec.Account, nil)
	return nil
}

// send submits the item over SMTP. The state is "sending" while the
// transaction runs; the outcome is stored before send returns.
func (ob *outbox) send(ctx context.Context, rec *state.OutboxItem) error {
	store := ob.e.o.Store
	msg, err := os.ReadFile(rec.File)
	if err != nil {
		rec.State, rec.Error = state.OutboxFailed, "the prepared message is missing from the outbox folder"
		return store.PutOutboxItem(*rec)
	}
	c, err := ob.smtpConn(ctx, rec.Account)
	if err != nil {
		return err
	}
	rec.State = state.OutboxSending
	rec.Attempts++
	if err := store.PutOutboxItem(*rec); err != nil {
		return err
	}
	code, text, err := c.Send(rec.From, rec.To, msg)
	var se *smtp.SMTPError
	var amb *smtpsend.AmbiguousError
	switch {
	case err == nil:
		rec.State, rec.SMTPCode, rec.SMTPMessage, rec.Error = state.OutboxSent, code, text, ""
		ob.e.log.Info("outbox item sent", "id", rec.ID, "account", rec.Account, "smtp", code)
	case errors.As(err, &amb):
		ob.dropSMTP(rec.Account)
		rec.State, rec.Error = state.OutboxAmbiguous, amb.Error()
	case errors.As(err, &se) && !se.Temporary():
		rec.State, rec.SMTPCode, rec.SMTPMessage, rec.Error = state.OutboxFailed, se.Code, se.Message, "the mail server refused the message: "+se.Error()
	default:
		// 4xx or a broken connection before the message was handed over:
		// nothing was sent, try again later.
		ob.dropSMTP(rec.Account)
		rec.State = state.OutboxReceived
		if errors.As(err, &se) {
			rec.SMTPCode, rec.SMTPMessage = se.Code, se.Message
		}
		rec.Error = err.Error()
		if perr := store.PutOutboxItem(*rec); perr != nil {
			return perr
		}
		return fmt.Errorf("send %s: %w", rec.ID, err)
	}
	return store.PutOutboxItem(*rec)
}

// recover settles an item caught by a crash in the middle of its SMTP
// transaction: found in Sent, it was sent; otherwise nobody can tell.
func (ob *outbox) recover(ctx context.Context, rec *state.OutboxItem) error {
	conn, sent, err := ob.sentFolder(ctx, rec.Account)
	if err != nil {
		return err
	}
	uid, found, err := conn.FindMessageID(sent, rec.MessageID)
	if err != nil {
		ob.dropIMAP(rec.Account)
		return err
	}
	if found {
		rec.State, rec.SMTPCode, rec.SMTPMessage = state.OutboxSent, 250, "accepted before the connector restarted (found in Sent)"
		rec.Filed, rec.SentUID = true, uid
	} else {
		rec.State = state.OutboxAmbiguous
		rec.Error = "the connector stopped while sending this message: it may or may not have been delivered, so it is not sent again"
	}
	return ob.e.o.Store.PutOutboxItem(*rec)
}

// file puts the copy in Sent, unless it is there already: filed by the
// server itself, or appended before a crash.
func (ob *outbox) file(ctx context.Context, rec *state.OutboxItem) error {
	conn, sent, err := ob.sentFolder(ctx, rec.Account)
	if err != nil {
		return err
	}
	look := func() (bool, error) {
		uid, found, err := conn.FindMessageID(sent, rec.MessageID)
		if err != nil {
			ob.dropIMAP(rec.Account)
			return false, err
		}
		if found {
			rec.Filed, rec.SentUID = true, uid
		}
		return found, nil
	}
	found, err := look()
	if err != nil {
		return err
	}
	if !found && ob.e.o.FiledWait > 0 {
		// Servers that file sent mail themselves do it a moment later.
		backoff.Sleep(ctx, ob.e.o.FiledWait)
		if found, err = look(); err != nil {
			return err
		}
	}
	if !found {
		msg, err := os.ReadFile(rec.File)
		if err != nil {
			rec.Filed, rec.Error = true, "the copy for Sent is missing from the outbox folder; the message itself was sent"
			return ob.e.o.Store.PutOutboxItem(*rec)
		}
		uid, err := conn.Append(sent, msg, ob.e.o.Now())
		if err != nil {
			ob.dropIMAP(rec.Account)
			return err
		}
		if uid == 0 { // no UIDPLUS
			uid, _, _ = conn.FindMessageID(sent, rec.MessageID)
		}
		rec.Filed, rec.SentUID = true, uid
	}
	return ob.e.o.Store.PutOutboxItem(*rec)
}

// report tells the platform the item's outcome, until it records it.
func (ob *outbox) report(ctx context.Context, rec *state.OutboxItem) error {
	res := relay.OutboxResult{State: string(rec.State), MessageID: rec.MessageID, SentUID: rec.SentUID}
	switch rec.State {
	case state.OutboxSent:
		res.SMTPCode, res.SMTPMessage = rec.SMTPCode, rec.SMTPMessage
	default:
		res.Error = rec.Error
		if rec.SMTPCode >= 500 {
			res.SMTPCode, res.SMTPMessage = rec.SMTPCode, rec.SMTPMessage
		}
	}
	pc := ob.e.platform.Load()
	err := pc.ReportResult(ctx, rec.ID, res)
	var rej *relay.RejectedError
	switch {
	case err == nil:
	case errors.As(err, &rej):
		// The platform will never take this result: stop asking, keep the
		// record of why.
		ob.e.log.Warn("the platform refused an outbox result", "id", rec.ID, "err", err)
		rec.Error = strings.TrimSpace(rec.Error + "; the platform refused the result: " + rej.Error())
	default:
		if errors.Is(err, relay.ErrUnauthorized) {
			ob.e.platform.refusedBy(pc)
		}
		return err
	}
	rec.Reported = true
	return ob.e.o.Store.PutOutboxItem(*rec)
}

func (ob *outbox) password(email string) (string, error) {
	pw, err := ob.e.o.Secrets.Get(keychain.AccountKey(email))
	if err != nil {
		return "", passwordError(email, err)
	}
	return pw, nil
}

func (ob *outbox) smtpConn(ctx context.Context, email string) (*smtpsend.Client, error) {
	key := strings.ToLower(email)
	if c := ob.smtp[key]; c != nil {
		return c, nil
	}
	acct, ok := ob.e.o.Config.Account(email)
	if !ok {
		return nil, fmt.Errorf("no account %s", email)
	}
	pw, err := ob.password(email)
	if err != nil {
		return nil, err
	}
	c, err := smtpsend.Dial(ctx, acct, pw, ob.trust[key])
	if err != nil {
		return nil, err
	}
	ob.smtp[key] = c
	return c, nil
}

// sentFolder returns the account's IMAP connection for filing and the name
// of its Sent folder.
func (ob *outbox) sentFolder(ctx context.Context, email string) (*imapsync.Conn, string, error) {
	key := strings.ToLower(email)
	c := ob.imap[key]
	if c == nil {
		acct, ok := ob.e.o.Config.Account(email)
		if !ok {
			return nil, "", fmt.Errorf("no account %s", email)
		}
		pw, err := ob.password(email)
		if err != nil {
			return nil, "", err
		}
		if c, err = imapsync.Dial(ctx, acct, pw, ob.trust[key]); err != nil {
			return nil, "", err
		}
		ob.imap[key] = c
	}
	f, err := c.FindSent()
	if err != nil {
		ob.dropIMAP(email)
		return nil, "", err
	}
	return c, f.Name, nil
}

func (ob *outbox) dropSMTP(email string) {
	key := strings.ToLower(email)
	if c := ob.smtp[key]; c != nil {
		c.Close()
		delete(ob.smtp, key)
	}
}

func (ob *outbox) dropIMAP(email string) {
	key := strings.ToLower(email)
	if c := ob.imap[key]; c != nil {
		c.Close()
		delete(ob.imap, key)
	}
}

func (ob *outbox) closeAll() {
	for k := range ob.smtp {
		ob.dropSMTP(k)
	}
	for k := range ob.imap {
		ob.dropIMAP(k)
	}
}

// prepareMessage returns the message with CRLF line ends, and a Message-ID
// and a Date added only when it has none (RFC 5322 3.6), and its
// Message-ID.
func prepareMessage(raw []byte, from string, now time.Time) ([]byte, string) {
	msg := smtpsend.NormalizeCRLF(raw)
	head := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		head = msg[:i+2]
	}
	id := headerValue(head, "Message-ID")
	var add bytes.Buffer
	if id == "" {
		domain := "inboxrelay.invalid"
		if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
			domain = strings.Trim(from[at+1:], "<> ")
		}
		id = fmt.Sprintf("<%s@%s>", rand.Text(), domain)
		fmt.Fprintf(&add, "Message-ID: %s\r\n", id)
	}
	if headerValue(head, "Date") == "" {
		fmt.Fprintf(&add, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if add.Len() == 0 {
		return msg, id
	}
	return append(add.Bytes(), msg...), id
}

// headerValue returns the unfolded value of the first header field name in
// head, "" when absent.
func headerValue(head []byte, name string) string {
	lines := strings.Split(string(head), "\r\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue
		}
		for _, cont := range lines[i+1:] {
			if !strings.HasPrefix(cont, " ") && !strings.HasPrefix(cont, "\t") {
				break
			}
			v += cont
		}
		return strings.TrimSpace(v)
	}
	return ""
}
