package imapsync

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/sync/spool"
)

// sentNames are the Sent folder's usual names, lowercased, for servers
// without SPECIAL-USE (RFC 6154). Localised names are what Outlook,
// Thunderbird and webmails create in the languages our users work in.
var sentNames = []string{
	"sent", "sent items", "sent messages", "sent mail", "sent-mail",
	"gesendet", "gesendete objekte", "gesendete elemente",
	"envoyés", "éléments envoyés", "messages envoyés",
	"enviados", "elementos enviados", "itens enviados",
	"inviata", "posta inviata", "elementi inviati",
	"verzonden", "verzonden items", "skickat", "skickade objekt",
}

// Folder is a folder found on the server.
type Folder struct {
	Name string // full name as the server knows it, UTF-8
	How  string // how it was found, for diagnostics
}

// FindSent finds the Sent folder: by the \Sent SPECIAL-USE attribute, else
// by its usual names under the personal namespace.
func (c *Conn) FindSent() (Folder, error) {
	var opts *imap.ListOptions
	if c.c.Caps().Has(imap.CapListExtended) && c.c.Caps().Has(imap.CapSpecialUse) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	done := c.await("listing the folders")
	list, err := c.c.List("", "*", opts).Collect()
	done()
	if err != nil {
		return Folder{}, c.wrap("listing the folders", err)
	}
	for _, l := range list {
		for _, a := range l.Attrs {
			if strings.EqualFold(string(a), string(imap.MailboxAttrSent)) {
				return Folder{Name: l.Mailbox, How: "SPECIAL-USE \\Sent"}, nil
			}
		}
	}
	prefix := ""
	if c.c.Caps().Has(imap.CapNamespace) {
		done := c.await("reading the namespaces")
		ns, err := c.c.Namespace().Wait()
		done()
		if err == nil && len(ns.Personal) > 0 {
			prefix = ns.Personal[0].Prefix
		} else if err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				return Folder{}, c.wrap("reading the namespaces", err)
			}
		}
	}
	// Prefer the shortest path: "INBOX.Sent" over "Archive/Old/Sent".
	sort.SliceStable(list, func(i, j int) bool { return len(list[i].Mailbox) < len(list[j].Mailbox) })
	for _, want := range sentNames {
		for _, l := range list {
			if noSelect(l) {
				continue
			}
			name := strings.TrimPrefix(l.Mailbox, prefix)
			if l.Delim != 0 && strings.ContainsRune(name, l.Delim) {
				continue // only top level under the namespace
			}
			if strings.EqualFold(name, want) {
				return Folder{Name: l.Mailbox, How: fmt.Sprintf("by its name (no \\Sent attribute; namespace %q)", prefix)}, nil
			}
		}
	}
	return Folder{}, fmt.Errorf("no Sent folder on %s: neither a \\Sent folder nor one named Sent, Sent Items or Sent Messages", c.server)
}

func noSelect(l *imap.ListData) bool {
	for _, a := range l.Attrs {
		if a == imap.MailboxAttrNoSelect || a == imap.MailboxAttrNonExistent {
			return true
		}
	}
	return false
}

// Selected is what EXAMINE told of a folder.
type Selected struct {
	UIDValidity uint32
	UIDNext     uint32 // 0 when the server did not say
	Messages    uint32
}

// Examine opens name read-only (EXAMINE): nothing the connector does can
// change a flag.
func (c *Conn) Examine(name string) (Selected, error) {
	// A failed EXAMINE leaves no folder open either (RFC 3501 6.3.1).
	c.open = false
	c.exists.Store(unknownCount)
	what := fmt.Sprintf("opening %q", name)
	done := c.await(what)
	d, err := c.c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	done()
	if err != nil {
		return Selected{}, c.wrap(what, err)
	}
	c.open = true
	// Unless an EXISTS that came after EXAMINE's already told a newer count.
	c.exists.CompareAndSwap(unknownCount, d.NumMessages)
	if d.UIDValidity == 0 {
		return Selected{}, fmt.Errorf("examine %q: the server gave no UIDVALIDITY", name)
	}
	return Selected{UIDValidity: d.UIDValidity, UIDNext: uint32(d.UIDNext), Messages: d.NumMessages}, nil
}

// unknownCount marks Conn.exists while EXAMINE runs.
const unknownCount = ^uint32(0)

// LastUID returns the UID of the folder's last message, 0 when empty.
func (c *Conn) LastUID() (uint32, error) {
	n := c.exists.Load()
	if n == 0 || n == unknownCount {
		return 0, nil
	}
	// The last message by its number, not "*": imapclient matches a FETCH
	// response to its command by number, and never matches one to "*"
	// alone, so `FETCH * (UID)` always came back empty.
	done := c.await("asking for the last UID")
	msgs, err := c.c.Fetch(imap.SeqSetNum(n), &imap.FetchOptions{UID: true}).Collect()
	done()
	if err != nil {
		return 0, c.wrap("asking for the last UID", err)
	}
	var last uint32
	for _, m := range msgs {
		if uint32(m.UID) > last {
			last = uint32(m.UID)
		}
	}
	return last, nil
}

// Search returns, ascending, the UIDs above after that are in scope: UIDs
// from baseline on, and older ones with an INTERNALDATE on or after since
// (every one when since is zero). last is the folder's last UID, as
// LastUID said before the search.
func (c *Conn) Search(after uint32, since time.Time, baseline, last uint32) ([]uint32, error) {
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(after + 1), Stop: 0}}}}
	switch {
	case since.IsZero():
	case baseline == 0 || baseline > last:
		// "baseline:*" would match the last message whatever its UID
		// (RFC 3501 6.4.8: * is the largest UID in use), so ask for the
		// window alone: no message from baseline on exists yet, and one that
		// arrives meanwhile is dated now, inside the window.
		crit.Since = since
	default:
		crit.Or = [][2]imap.SearchCriteria{{
			{Since: since},
			{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(baseline), Stop: 0}}}},
		}}
	}
	done := c.await("searching the folder")
	d, err := c.c.UIDSearch(crit, nil).Wait()
	done()
	if err != nil {
		return nil, c.wrap("searching the folder", err)
	}
	var out []uint32
	for _, u := range d.AllUIDs() {
		// "n:*" always matches the last message, even below n.
		if uint32(u) > after {
			out = append(out, uint32(u))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Meta is what the connector needs to know of a message before its body.
type Meta struct {
	UID          uint32
	InternalDate time.Time
	Flags        []string
	Size         int64
	// Envelope tells whether MessageID and Domains were fetched
	// (FetchMeta), or left empty (FetchFacts).
	Envelope  bool
	MessageID string
	// Domains are the distinct domains of the From, To, Cc and Bcc
	// addresses (see AddressDomain): the first MaxDomains of them, and the
	// first one FetchMeta's want accepted if none of those was.
	Domains []string
	// DomainsCut says some domains were left out of Domains. Whether an
	// address is in a domain that want accepts is known all the same;
	// for any other question, the message must be looked at again.
	DomainsCut bool
}

// FetchFacts is FetchMeta without the envelope: UID, flags, INTERNALDATE
// and size, all a message needs before its body when no address has to be
// known first. Parsing the envelope (and building it, on the server's side)
// is most of a FETCH of facts. MessageID and Domains stay empty.
func (c *Conn) FetchFacts(uids []uint32) ([]Meta, error) {
	defer c.await("reading the facts of messages")()
	cmd := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true})
	out := make([]Meta, 0, len(uids))
	got := map[uint32]bool{}
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var meta Meta
		sized := false
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				meta.UID = uint32(it.UID)
			case imapclient.FetchItemDataFlags:
				for _, f := range it.Flags {
					meta.Flags = append(meta.Flags, string(f))
				}
			case imapclient.FetchItemDataInternalDate:
				meta.InternalDate = it.Time
			case imapclient.FetchItemDataRFC822Size:
				meta.Size, sized = it.Size, true
			}
		}
		// A response cut short (a server that sends what it has, then BYE)
		// lacks an item: not whole, so not returned.
		if meta.UID == 0 || meta.InternalDate.IsZero() || !sized {
			continue
		}
		out = append(out, meta)
		got[meta.UID] = true
	}
	if err := cmd.Close(); err != nil {
		return out, c.wrap(inFlight("reading the facts of message", uids, got), err)
	}
	return out, nil
}

// MaxDomains bounds the domains FetchMeta keeps of one message. Legitimate
// mail rarely has more than a few; a hostile server may send a FETCH line
// of 4 MiB (MaxLongLine) that holds some 200 000 addresses, kept for a
// whole batch of messages.
const MaxDomains = 256

// maxDomainBytes bounds how much of a domain is kept: a domain name has at
// most 253 characters (RFC 1035 2.3.4), and of a longer one the end is all
// that can match one (as itself or a subdomain).
const maxDomainBytes = 256

// AddressDomain returns the domain of an address as FetchMeta keeps it:
// the part after the last '@' of mailbox@host, lowercased, without a
// trailing dot, and of its last 256 bytes at most; "" when the address
// has no mailbox or no host (a group marker).
func AddressDomain(mailbox, host string) string {
	if mailbox == "" || host == "" {
		return ""
	}
	d := host
	if at := strings.LastIndexByte(d, '@'); at >= 0 {
		d = d[at+1:]
	}
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if len(d) > maxDomainBytes {
		d = d[len(d)-maxDomainBytes:]
	}
	return d
}

// FetchMeta returns the metadata of the UIDs that still exist. want, which
// may be nil, names the domains that matter (relay_domains): each message
// keeps one of them in Domains if it has any, however many domains it
// has. When the fetch fails part way, it returns the messages whose facts
// came whole along with the error: a server that breaks on one message
// still gives the ones before it.
func (c *Conn) FetchMeta(uids []uint32, want func(domain string) bool) ([]Meta, error) {
	defer c.await("reading the facts of messages")()
	cmd := c.c.Fetch(uidSet(uids), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
	})
	out := make([]Meta, 0, len(uids))
	got := map[uint32]bool{}
	var merr error
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		m, err := msg.Collect()
		if err != nil {
			merr = err
			break
		}
		// A response cut short (Dovecot sends what it has, then BYE) lacks
		// the envelope: not whole, so not returned.
		if m.UID == 0 || m.Envelope == nil || m.InternalDate.IsZero() {
			continue
		}
		meta := Meta{UID: uint32(m.UID), InternalDate: m.InternalDate, Size: m.RFC822Size, Envelope: true}
		for _, f := range m.Flags {
			meta.Flags = append(meta.Flags, string(f))
		}
		e := m.Envelope
		meta.MessageID = e.MessageID
		meta.Domains, meta.DomainsCut = envelopeDomains(e, want)
		out = append(out, meta)
		got[meta.UID] = true
	}
	if err := cmd.Close(); err != nil || merr != nil {
		if err == nil {
			err = merr
		}
		return out, c.wrap(inFlight("reading the facts of message", uids, got), err)
	}
	return out, nil
}

// envelopeDomains returns the distinct domains of e's From, To, Cc and Bcc
// addresses, at most MaxDomains of them and the first one want accepts if
// none of those was, and whether any was left out.
func envelopeDomains(e *imap.Envelope, want func(string) bool) (domains []string, cut bool) {
	seen := map[string]bool{}
	wanted := false
	for _, list := range [][]imap.Address{e.From, e.To, e.Cc, e.Bcc} {
		for _, a := range list {
			d := AddressDomain(a.Mailbox, a.Host)
			if d == "" || seen[d] {
				continue
			}
			isWanted := want != nil && want(d)
			switch {
			case len(domains) < MaxDomains:
				seen[d] = true
			case isWanted && !wanted:
				// Past the bound, but the one that decides: kept.
			default:
				cut = true
				continue
			}
			domains = append(domains, d)
			wanted = wanted || isWanted
		}
	}
	return domains, cut
}

// inFlight names the step for the first of uids not in got, the one the
// server was most likely sending when it failed ("reading message UID
// 42"), or the whole set when every one came ("reading messages").
func inFlight(what string, uids []uint32, got map[uint32]bool) string {
	for _, u := range uids {
		if !got[u] {
			return fmt.Sprintf("%s UID %d", what, u)
		}
	}
	return what + "s"
}

// FetchBodies downloads the exact bytes (BODY.PEEK[]) of uids into sp and
// calls fn for each message, in the server's order, after its body was read
// whole. A UID the server does not return is simply not passed to fn. When
// the fetch fails part way, the bodies passed to fn before stay the
// caller's: only the one being read is dropped.
func (c *Conn) FetchBodies(uids []uint32, sp *spool.Spool, fn func(uid uint32, b *spool.Body) error) error {
	section := &imap.FetchItemBodySection{Peek: true}
	defer c.await("reading messages")()
	cmd := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	got := map[uint32]bool{}
	var ferr error
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var uid uint32
		var body *spool.Body
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = uint32(it.UID)
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil || ferr != nil {
					continue
				}
				// Read the literal whole before the next item: go-imap
				// discards what is left unread.
				lit := &literal{LiteralReader: it.Literal}
				b, err := sp.Read(lit)
				if err != nil {
					ferr = err
					if lit.cut {
						c.awaitReaderEnd()
					}
					continue
				}
				body = b
			}
		}
		if body == nil {
			continue
		}
		if uid == 0 || ferr != nil {
			body.Remove()
			continue
		}
		got[uid] = true
		if err := fn(uid, body); err != nil && ferr == nil {
			ferr = err
		}
	}
	if err := cmd.Close(); err != nil {
		return c.wrap(inFlight("reading message", uids, got), err)
	}
	var ie *imap.Error
	if ferr != nil && !errors.As(ferr, &ie) {
		// The body could not be read whole (a spool failure, or the
		// connection broke inside the literal).
		select {
		case <-c.c.Closed():
			return c.wrap(inFlight("reading message", uids, got), ferr)
		default:
		}
	}
	return ferr
}

// literal is a body literal being read; cut tells that it failed before
// its announced end (the connection failed inside it).
type literal struct {
	imap.LiteralReader
	n   int64
	cut bool
}

func (l *literal) Read(p []byte) (int, error) {
	n, err := l.LiteralReader.Read(p)
	l.n += int64(n)
	if err != nil && l.n < l.Size() {
		l.cut = true
	}
	return n, err
}

// awaitReaderEnd waits, after a literal failed part way, until go-imap's
// reader goroutine has stopped. As soon as a literal fails, that goroutine
// reads on from the same buffer; the next Next or Close, discarding the
// rest of the literal, would read it at the same time (a data race). The
// failure was the connection's, so the reader fails too and stops; should
// it not within the silence, the connection is closed.
func (c *Conn) awaitReaderEnd() {
	t := time.NewTimer(c.watch.silence)
	defer t.Stop()
	select {
	case <-c.c.Closed():
	case <-t.C:
		c.c.Close()
	}
}

func uidSet(uids []uint32) imap.UIDSet {
	var s imap.UIDSet
	for _, u := range uids {
		s.AddNum(imap.UID(u))
	}
	return s
}

// Noop asks the server for news (new messages arrive as EXISTS).
func (c *Conn) Noop() error {
	defer c.await("asking for news (NOOP)")()
	return c.wrap("asking for news (NOOP)", c.c.Noop().Wait())
}

// ErrSlept means the machine was asleep (the wall clock jumped ahead of the
// monotonic clock): the connection is probably dead, reconnect at once.
var ErrSlept = errors.New("the computer was asleep")

// Wait blocks until the server reports new or expunged messages, wake
// fires, refresh elapses, or ctx ends. With IDLE (RFC 2177) it idles;
// without, it polls every poll interval with NOOP. Leaving IDLE must
// complete within the watchdog time, else the connection is considered
// dead and an error is returned. It returns ErrSlept after a suspend.
func (c *Conn) Wait(ctx context.Context, wake <-chan struct{}, refresh, poll, watchdog time.Duration) error {
	select {
	case <-c.changed: // news that came in during the last pass
		return nil
	default:
	}
	if !c.c.Caps().Has(imap.CapIdle) {
		t := time.NewTimer(poll)
		defer t.Stop()
		if err := sleepWatch(ctx, t.C, wake, c.changed, c.c.Closed()); err != nil {
			return c.closedErr(err)
		}
		return c.Noop()
	}
	start := c.await("starting IDLE")
	idle, err := c.c.Idle()
	start()
	if err != nil {
		return c.wrap("starting IDLE", err)
	}
	// While idling the server owes us nothing: no deadline but the
	// watchdog when leaving.
	t := time.NewTimer(refresh)
	defer t.Stop()
	werr := c.closedErr(sleepWatch(ctx, t.C, wake, c.changed, c.c.Closed()))
	defer c.await("leaving IDLE")()
	done := make(chan error, 1)
	go func() {
		// Close only writes DONE; Wait reads the server's answer, which a
		// dead peer never sends.
		err := idle.Close()
		if err == nil {
			err = idle.Wait()
		}
		done <- err
	}()
	wd := time.NewTimer(watchdog)
	defer wd.Stop()
	select {
	case err := <-done:
		if werr != nil {
			return werr
		}
		return c.wrap("leaving IDLE", err)
	case <-wd.C:
		c.c.Close()
		return &NetError{Server: c.server, Kind: Silent, Op: "leaving IDLE", Err: silentFor(watchdog)}
	}
}

var errClosed = errors.New("the server closed the connection")

// closedErr reports a connection the server closed as a *NetError.
func (c *Conn) closedErr(err error) error {
	if err == errClosed {
		return &NetError{Server: c.server, Kind: Closed, Op: "waiting for new mail", Err: err}
	}
	return err
}

// suspendClock tells a suspend of the machine: on Linux the monotonic
// clock stops while the machine sleeps and the wall clock does not, so the
// wall clock running ahead means the machine slept.
type suspendClock struct {
	every time.Duration    // how often to compare the clocks
	wall  func() time.Time // the wall clock, without its monotonic reading
}

var realSuspendClock = suspendClock{every: 15 * time.Second, wall: func() time.Time { return time.Now().Round(0) }}

// sleepWatch waits for any of the channels or ctx, and notices a suspend
// of the machine.
func sleepWatch(ctx context.Context, timer <-chan time.Time, wake, changed, closed <-chan struct{}) error {
	return realSuspendClock.watch(ctx, timer, wake, changed, closed)
}

func (sc suspendClock) watch(ctx context.Context, timer <-chan time.Time, wake, changed, closed <-chan struct{}) error {
	tick := time.NewTicker(sc.every)
	defer tick.Stop()
	wall, mono := sc.wall(), time.Now()
	for {
		select {
		case <-timer:
			return nil
		case <-wake:
			return nil
		case <-changed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return errClosed
		case <-tick.C:
			w, m := sc.wall(), time.Now()
			if w.Sub(wall)-m.Sub(mono) > 30*time.Second {
				return ErrSlept
			}
			wall, mono = w, m
		}
	}
}

// OldestDate returns the oldest INTERNALDATE among uids (zero when none of
// them exists any more).
func (c *Conn) OldestDate(uids []uint32) (time.Time, error) {
	if len(uids) == 0 {
		return time.Time{}, nil
	}
	defer c.await("reading the dates of messages")()
	msgs, err := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, InternalDate: true}).Collect()
	if err != nil {
		return time.Time{}, c.wrap("reading the dates of messages", err)
	}
	var oldest time.Time
	for _, m := range msgs {
		if !m.InternalDate.IsZero() && (oldest.IsZero() || m.InternalDate.Before(oldest)) {
			oldest = m.InternalDate
		}
	}
	return oldest, nil
}

// Existing returns, ascending, those of uids that the open folder still
// holds, by asking the server (UID SEARCH UID): a message expunged since is
// not among them. Unlike a FETCH that comes back without a message, the
// answer is the server's word that the others are gone.
func (c *Conn) Existing(uids []uint32) ([]uint32, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{uidSet(uids)}}
	done := c.await("checking which messages still exist")
	d, err := c.c.UIDSearch(crit, nil).Wait()
	done()
	if err != nil {
		return nil, c.wrap("checking which messages still exist", err)
	}
	asked := map[uint32]bool{}
	for _, u := range uids {
		asked[u] = true
	}
	var out []uint32
	for _, u := range d.AllUIDs() {
		if asked[uint32(u)] { // a server's answer holds only what was asked
			out = append(out, uint32(u))
			delete(asked, uint32(u))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
