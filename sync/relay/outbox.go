package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"
)

// OutboxItem is a message the platform asks the connector to send. Its
// message is never in memory: Outbox decodes it to File.
type OutboxItem struct {
	ID      string
	Account string // the sending mailbox's e-mail address
	From    string // envelope sender
	To      []string
	// File holds the message exactly as the platform's base64 decodes to,
	// in OutboxOptions.Dir. The caller owns it: it renames or removes it.
	// Empty when Invalid is set.
	File string
	Size int64 // of File, in bytes
	// Invalid says why the item can never be sent (raw missing, not
	// base64 or too big, a field of the wrong type); "" for a well-formed
	// item. An item whose id could not be read has ID "" and is only worth
	// a log line: it cannot be reported.
	Invalid string
}

// DefaultMaxOutboxMessage is the largest message an outbox item may hold
// when OutboxOptions.MaxMessage is 0.
const DefaultMaxOutboxMessage = 256 << 20

// Bounds on the small fields of an outbox answer: what a hostile or broken
// platform can make the connector hold, whatever it sends.
const (
	maxOutboxItems = 1000    // items taken from one answer; the rest are offered again after their lease
	maxRecipients  = 1000    // envelope.to entries kept; more make the item invalid
	maxField       = 1 << 10 // bytes of an id, an account or an address
	maxKey         = 64      // bytes of an object key that is kept to be compared
	maxDepth       = 32      // nesting of values that are skipped
)

// maxFields bounds the ids, accounts and addresses kept from one answer,
// counted with a string header each: 1000 items of 1000 addresses of 1 KiB
// would otherwise hold a gigabyte, where a thousand genuine items with 100
// recipients each need a few MiB. Items past it are not taken (the
// platform offers them again after their lease).
const maxFields = 16 << 20

// OutboxOptions say how long to wait for items, where their messages go
// and how big they may be.
type OutboxOptions struct {
	Wait time.Duration // how long the platform may hold the poll open; 0 to 60 s
	Dir  string        // existing directory the messages are written to (mode 0600 files)
	// MaxMessage is the largest decoded message; a bigger item is Invalid
	// (its bytes are read and dropped). 0 means DefaultMaxOutboxMessage.
	MaxMessage int64
	// MaxTotal bounds the message bytes taken from one answer; items past
	// it are not taken (the platform offers them again after their lease).
	// 0 means 4 × MaxMessage.
	MaxTotal int64
}

// Outbox long-polls for items to send, waiting up to o.Wait for one. It
// returns no items on 204. Errors: ErrUnauthorized, *TemporaryError (with
// the platform's Retry-After), or an answer that could not be read (try
// again later too). Each message is streamed from the answer to a
// file: neither the answer nor a message is ever whole in memory. An error
// means no item was taken (their files are removed); a malformed item in a
// well-formed answer is returned with Invalid set instead.
func (c *Client) Outbox(ctx context.Context, o OutboxOptions) ([]OutboxItem, error) {
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxOutboxMessage
	}
	if o.MaxTotal <= 0 {
		o.MaxTotal = 4 * o.MaxMessage
	}
	secs := max(0, min(int(o.Wait/time.Second), 60))
	resp, err := c.doWait(ctx, time.Duration(secs)*time.Second, "GET", "/v1/outbox?wait="+strconv.Itoa(secs), "application/json", nil, 0, nil, true)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case 204:
		return nil, nil
	case 200:
	default:
		return nil, classify(resp)
	}
	// The answer must keep arriving: do's watchdog cancels the request
	// when it stops for the client's silence.
	d := &outboxDecoder{s: newScanner(resp.Body), o: o}
	items, err := d.decode()
	if err != nil {
		for _, it := range items {
			if it.File != "" {
				os.Remove(it.File)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.Canceled) {
			// Only the watchdog cancels the request while ctx lives.
			return nil, &TemporaryError{Err: &SilenceError{After: c.silence}}
		}
		// Not a *TemporaryError, whose words say the platform is down:
		// it answered, badly.
		return nil, fmt.Errorf("the platform's outbox answer cannot be read (%w); will retry", err)
	}
	return items, nil
}

// outboxDecoder reads {"items": [{"id", "account", "raw", "envelope":
// {"from", "to"}}, ...]} token by token. Unknown fields are skipped.
type outboxDecoder struct {
	s      *scanner
	o      OutboxOptions
	total  int64 // message bytes taken so far
	fields int64 // bytes of small fields kept so far (see maxFields)
	// maxFields is maxFields unless a test lowers it.
	maxFields int64
	// full: the item being read passed maxFields, so it is not taken.
	full bool
}

func (d *outboxDecoder) decode() (items []OutboxItem, err error) {
	s := d.s
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	err = s.object(func(key string) error {
		if key != "items" {
			return s.skip(0)
		}
		c, err := s.peek()
		if err != nil {
			return err
		}
		if c == 'n' {
			return s.literal("null")
		}
		if c != '[' {
			return fmt.Errorf("items is not a list")
		}
		return s.array(func() error {
			if len(items) >= maxOutboxItems {
				return s.skip(0)
			}
			it, err := d.item()
			if it != nil {
				items = append(items, *it)
			}
			return err
		})
	})
	return items, err
}

// item reads one item. A nil item was not taken (the answer's budget is
// spent); an error is a syntax error that ends the whole answer.
func (d *outboxDecoder) item() (*OutboxItem, error) {
	s := d.s
	it := &OutboxItem{}
	c, err := s.peek()
	if err != nil {
		return it, err
	}
	if c != '{' {
		it.Invalid = "the item is not a JSON object"
		return it, s.skip(0)
	}
	s.next()
	fieldsBefore := d.fields
	d.full = false
	invalid := func(format string, args ...any) {
		if it.Invalid == "" {
			it.Invalid = fmt.Sprintf(format, args...)
		}
	}
	seen := map[string]bool{}
	var dropped bool // past the answer's budget: the item is not taken
	err = s.object(func(key string) error {
		switch key {
		case "id", "account", "raw", "envelope":
			if seen[key] {
				invalid("the item gives %s twice", key)
			}
			seen[key] = true
		}
		switch key {
		case "id":
			return d.smallString(&it.ID, "id", invalid)
		case "account":
			return d.smallString(&it.Account, "account", invalid)
		case "envelope":
			return d.envelope(it, invalid)
		case "raw":
			if it.File != "" {
				os.Remove(it.File)
				it.File, it.Size = "", 0
			}
			c, err := s.peek()
			if err != nil {
				return err
			}
			if c != '"' {
				invalid("raw is not a base64 string")
				return s.skip(0)
			}
			s.next()
			size, path, why, over, err := d.message()
			if err != nil {
				return err
			}
			switch {
			case over:
				dropped = true
			case why != "":
				invalid("%s", why)
			default:
				it.File, it.Size = path, size
			}
			return nil
		}
		return s.skip(0)
	})
	if d.full {
		dropped = true
		d.fields = fieldsBefore // what it kept is given back: a smaller item may fit
	}
	if err != nil || dropped {
		if it.File != "" {
			os.Remove(it.File)
		}
		if dropped {
			return nil, err
		}
		return it, err
	}
	if !seen["raw"] {
		invalid("the item has no message (raw)")
	}
	if it.Invalid != "" && it.File != "" {
		os.Remove(it.File)
		it.File, it.Size = "", 0
	}
	return it, nil
}

// smallString reads a string of at most maxField bytes into *dst, unless
// the answer's budget for small fields is spent (then d.full is set and
// *dst is left alone).
func (d *outboxDecoder) smallString(dst *string, name string, invalid func(string, ...any)) error {
	s := d.s
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c != '"' {
		invalid("%s is not a string", name)
		return s.skip(0)
	}
	s.next()
	b := &boundedBuffer{max: maxField}
	if err := s.str(b.write); err != nil {
		return err
	}
	if b.over {
		invalid("%s is longer than %d bytes", name, maxField)
	}
	budget := d.maxFields
	if budget <= 0 {
		budget = maxFields
	}
	cost := int64(b.buf.Len()) + 16 // its bytes and a string header
	if d.full || d.fields+cost > budget {
		d.full = true
		return nil
	}
	d.fields += cost
	*dst = b.buf.String()
	return nil
}

func (d *outboxDecoder) envelope(it *OutboxItem, invalid func(string, ...any)) error {
	s := d.s
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c != '{' {
		invalid("envelope is not an object")
		return s.skip(0)
	}
	s.next()
	return s.object(func(key string) error {
		switch key {
		case "from":
			return d.smallString(&it.From, "envelope.from", invalid)
		case "to":
			c, err := s.peek()
			if err != nil {
				return err
			}
			if c != '[' {
				invalid("envelope.to is not a list of addresses")
				return s.skip(0)
			}
			it.To = it.To[:0]
			return s.array(func() error {
				if d.full {
					return s.skip(0) // the item is not taken
				}
				if len(it.To) >= maxRecipients {
					invalid("envelope.to has more than %d addresses", maxRecipients)
					return s.skip(0)
				}
				var a string
				if err := d.smallString(&a, "an address of envelope.to", invalid); err != nil {
					return err
				}
				it.To = append(it.To, a)
				return nil
			})
		}
		return s.skip(0)
	})
}

// message streams the base64 string being read (its opening quote is
// consumed) to a new file. why says what makes it unusable; over means the
// answer's budget ran out, so the item is not taken at all. The file is
// removed unless path is returned with why == "" and !over.
func (d *outboxDecoder) message() (size int64, path, why string, over bool, err error) {
	f, err := os.CreateTemp(d.o.Dir, "incoming-*.raw")
	if err != nil {
		return 0, "", "", false, fmt.Errorf("store an outbox message: %w", err)
	}
	name := f.Name()
	bw := bufio.NewWriterSize(f, 64<<10)
	limit := min(d.o.MaxMessage, d.o.MaxTotal-d.total)
	dec := &base64Writer{w: bw, max: limit}
	err = d.s.str(dec.Write)
	if err == nil {
		dec.Close()
	}
	if err == nil && dec.werr == nil {
		dec.werr = bw.Flush()
	}
	if cerr := f.Close(); dec.werr == nil {
		dec.werr = cerr
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(name) // not path: a return sets it to ""
		}
	}()
	switch {
	case err != nil:
		return 0, "", "", false, err
	case dec.werr != nil:
		return 0, "", "", false, fmt.Errorf("store an outbox message: %w", dec.werr)
	case dec.over && dec.n <= d.o.MaxMessage:
		return 0, "", "", true, nil
	case dec.over:
		return 0, "", fmt.Sprintf("the message is larger than %d MiB, the most this connector sends", d.o.MaxMessage>>20), false, nil
	case dec.bad != nil:
		return 0, "", fmt.Sprintf("raw is not valid base64 (%v)", dec.bad), false, nil
	case dec.n == 0:
		return 0, "", "the item has no message (raw is empty)", false, nil
	}
	d.total += dec.n
	keep = true
	return dec.n, name, "", false, nil
}

// base64Writer decodes standard base64 (RFC 4648 4, padded; CR and LF
// ignored, as encoding/base64 does) written to it in pieces, and writes the
// bytes to w until more than max would be written.
type base64Writer struct {
	w    io.Writer
	max  int64
	n    int64 // decoded bytes, counted also past max
	over bool  // more than max bytes
	bad  error // not base64
	werr error // w failed
	pend []byte
	out  []byte
	done bool // padding was seen: nothing may follow
}

func (b *base64Writer) Write(p []byte) error {
	if b.bad != nil || b.werr != nil {
		return nil
	}
	for len(p) > 0 {
		seg := p
		if i := bytes.IndexAny(p, "\r\n"); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if len(seg) > 0 && b.done {
			b.bad = errors.New("data after the final padding")
			return nil
		}
		b.pend = append(b.pend, seg...)
	}
	if len(b.pend) >= 16<<10 {
		n := len(b.pend) / 4 * 4
		b.flush(b.pend[:n])
		b.pend = append(b.pend[:0], b.pend[n:]...)
	}
	return nil
}

// Close decodes what is left; it must be whole quanta.
func (b *base64Writer) Close() {
	if b.bad != nil || b.werr != nil {
		return
	}
	if len(b.pend)%4 != 0 {
		b.bad = errors.New("the data ends in the middle of a 4-character group")
		return
	}
	b.flush(b.pend)
	b.pend = b.pend[:0]
}

func (b *base64Writer) flush(src []byte) {
	if len(src) == 0 || b.bad != nil {
		return
	}
	if need := len(src) / 4 * 3; cap(b.out) < need {
		b.out = make([]byte, need)
	}
	n, err := base64Std.Decode(b.out[:cap(b.out)], src)
	if err != nil {
		b.bad = err
		return
	}
	if src[len(src)-1] == '=' {
		b.done = true
	}
	b.n += int64(n)
	if b.n > b.max {
		b.over = true
	}
	if b.over {
		return
	}
	if _, err := b.w.Write(b.out[:n]); err != nil {
		b.werr = err
	}
}

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *boundedBuffer) write(p []byte) error {
	if room := b.max - b.buf.Len(); len(p) > room {
		p = p[:max(room, 0)]
		b.over = true
	}
	b.buf.Write(p)
	return nil
}

// OutboxResult is what became of an item.
type OutboxResult struct {
	State       string `json:"state"` // sent, failed or ambiguous
	SMTPCode    int    `json:"smtp_code,omitempty"`
	SMTPMessage string `json:"smtp_message,omitempty"`
	MessageID   string `json:"message_id,omitempty"`
	SentUID     uint32 `json:"sent_uid,omitempty"`
	Error       string `json:"error,omitempty"`
}

// ReportResult tells the platform what became of item id; nil means it was
// recorded (200). A *TemporaryError carries the platform's Retry-After.
func (c *Client) ReportResult(ctx context.Context, id string, r OutboxResult) error {
	body, _ := json.Marshal(r)
	resp, err := c.do(ctx, "POST", "/v1/outbox/"+url.PathEscape(id)+"/result", "application/json", bytes.NewReader(body), int64(len(body)), nil, true)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode == 200 {
		return nil
	}
	return classify(resp)
}
