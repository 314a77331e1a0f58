package refplatform

import (
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// maxWait is the longest long poll of GET /v1/outbox, in seconds.
const maxWait = 60

// maxOffer is the most items one GET /v1/outbox returns.
const maxOffer = 100

// OutboxItem is a message the platform asks a connector to send. Enqueue
// offers it exactly as given, unchecked, so that tests can offer invalid
// items too.
type OutboxItem struct {
	Account string   // the e-mail address of the account to send from
	Raw     []byte   // the RFC 5322 message
	From    string   // envelope sender
	To      []string // envelope recipients
}

// OutboxResult is one result reported for an outbox item.
type OutboxResult struct {
	State       string // sent, failed or ambiguous
	SMTPCode    int    // 0 when absent
	SMTPMessage string
	MessageID   string
	SentUID     uint32 // 0 when absent
	Error       string
	DeviceID    string // the device that reported it
	ReceivedAt  time.Time
}

type outboxEntry struct {
	item     OutboxItem
	leasedAt time.Time // zero: never offered
	offers   int
	results  []OutboxResult
}

// wireItem is an item as GET /v1/outbox sends it.
type wireItem struct {
	ID       string       `json:"id"`
	Account  string       `json:"account"`
	Raw      []byte       `json:"raw"` // encoding/json writes standard base64
	Envelope wireEnvelope `json:"envelope"`
}

type wireEnvelope struct {
	From string   `json:"from"`
	To   []string `json:"to"`
}

// Enqueue adds an item to the outbox and returns its id. The item is offered
// by GET /v1/outbox, waking long polls, until a result is reported for it.
func (p *Platform) Enqueue(item OutboxItem) string {
	item.Raw = slices.Clone(item.Raw)
	item.To = slices.Clone(item.To)
	id := "ob_" + randomHex(8)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outbox[id] = &outboxEntry{item: item}
	p.outboxOrder = append(p.outboxOrder, id)
	p.changedLocked()
	return id
}

// Results returns every result reported, per item id, oldest first. Items
// without a result are absent.
func (p *Platform) Results() map[string][]OutboxResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]OutboxResult)
	for id, e := range p.outbox {
		if len(e.results) > 0 {
			out[id] = slices.Clone(e.results)
		}
	}
	return out
}

// Offers returns how many times the item was handed out by GET /v1/outbox.
func (p *Platform) Offers(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.outbox[id]; ok {
		return e.offers
	}
	return 0
}

// SetLease sets how long an offered item stays leased to the device that got
// it; after that, with no result reported, it is offered again to any device.
// It applies to current leases too. d <= 0 restores DefaultLease.
func (p *Platform) SetLease(d time.Duration) {
	if d <= 0 {
		d = DefaultLease
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lease = d
	p.changedLocked()
}

var waitRE = regexp.MustCompile(`^[0-9]{1,2}$`)

// pollOutbox serves GET /v1/outbox?wait=N.
func (p *Platform) pollOutbox(w http.ResponseWriter, r *http.Request, _ call) error {
	wait, err := parseWait(r.URL.RawQuery)
	if err != nil {
		return err
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	leaseEnd := time.NewTimer(time.Hour)
	leaseEnd.Stop()
	defer leaseEnd.Stop()
	for {
		items, next, changed := p.offer()
		if len(items) > 0 {
			return writeJSON(w, http.StatusOK, map[string][]wireItem{"items": items})
		}
		if wait == 0 {
			return noContent(w)
		}
		var expiry <-chan time.Time
		if next > 0 {
			leaseEnd.Reset(next)
			expiry = leaseEnd.C
		}
		switch p.park(r, changed, expiry, deadline.C) {
		case clientGone:
			return nil
		case pollOver:
			return noContent(w)
		}
	}
}

type parkOutcome int

const (
	lookAgain parkOutcome = iota
	pollOver
	clientGone
)

// park waits, during a long poll, for a reason to look at the outbox again.
func (p *Platform) park(r *http.Request, changed <-chan struct{}, expiry, deadline <-chan time.Time) parkOutcome {
	p.parked.Add(1)
	defer p.parked.Add(-1)
	select {
	case <-changed:
	case <-expiry:
	case <-r.Context().Done():
		return clientGone
	case <-deadline:
		return pollOver
	case <-p.done:
		return pollOver
	}
	return lookAgain
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseWait parses the query of GET /v1/outbox: only wait, 0 to 60, which
// defaults to 0.
func parseWait(rawQuery string) (time.Duration, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, refuse(http.StatusBadRequest, "query: %v", err)
	}
	for k := range q {
		if k != "wait" {
			return 0, refuse(http.StatusBadRequest, "unknown query parameter %q", k)
		}
	}
	v := q["wait"]
	switch {
	case len(v) == 0:
		return 0, nil
	case len(v) > 1:
		return 0, refuse(http.StatusBadRequest, "wait is repeated")
	}
	n, err := strconv.Atoi(v[0])
	if !waitRE.MatchString(v[0]) || err != nil || n > maxWait {
		return 0, refuse(http.StatusBadRequest, "wait %q is not a number of seconds from 0 to %d", v[0], maxWait)
	}
	return time.Duration(n) * time.Second, nil
}

// offer leases the items that can be offered now, in enqueue order, to
// the device asking. With none, it returns how long until the next lease ends (0 if no
// lease is running) and the channel closed on the next change.
func (p *Platform) offer() ([]wireItem, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var (
		items []wireItem
		next  time.Duration
	)
	for _, id := range p.outboxOrder {
		e := p.outbox[id]
		if len(e.results) > 0 {
			continue
		}
		if !e.leasedAt.IsZero() {
			if left := e.leasedAt.Add(p.lease).Sub(now); left > 0 {
				if next == 0 || left < next {
					next = left
				}
				continue
			}
		}
		if len(items) == maxOffer {
			break
		}
		e.leasedAt = now
		e.offers++
		to := e.item.To
		if to == nil {
			to = []string{}
		}
		items = append(items, wireItem{ID: id, Account: e.item.Account, Raw: e.item.Raw, Envelope: wireEnvelope{From: e.item.From, To: to}})
	}
	if len(items) > 0 {
		p.changedLocked()
	}
	return items, next, p.change
}

var resultStates = map[string]bool{"sent": true, "failed": true, "ambiguous": true}

// result serves POST /v1/outbox/{id}/result.
func (p *Platform) result(w http.ResponseWriter, r *http.Request, c call) error {
	id := r.PathValue("id")
	p.mu.Lock()
	e := p.outbox[id]
	p.mu.Unlock()
	if e == nil {
		return refuse(http.StatusNotFound, "no outbox item %q", id)
	}
	body, err := readJSON(w, r)
	if err != nil {
		return err
	}
	var (
		res     OutboxResult
		sentUID int64
	)
	err = decodeObject(body, "result", map[string]any{
		"state": &res.State, "smtp_code": &res.SMTPCode, "smtp_message": &res.SMTPMessage,
		"message_id": &res.MessageID, "sent_uid": &sentUID, "error": &res.Error,
	})
	if err != nil {
		return err
	}
	if err := checkResult(res, sentUID); err != nil {
		return err
	}
	res.SentUID = uint32(sentUID)
	res.DeviceID = c.dev.ID
	res.ReceivedAt = time.Now()

	p.mu.Lock()
	e.results = append(e.results, res)
	p.changedLocked()
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	return nil
}

// checkResult holds a result to the meaning of its state: sent is a 2xx
// after DATA; failed is a permanent refusal (a 4xx is temporary and must be
// retried, not reported) or an invalid item; failed and ambiguous say why.
func checkResult(res OutboxResult, sentUID int64) error {
	code := res.SMTPCode
	switch {
	case !resultStates[res.State]:
		return refuse(http.StatusBadRequest, "result: state %q is not sent, failed or ambiguous", res.State)
	case code != 0 && (code < 200 || code > 599):
		return refuse(http.StatusBadRequest, "result: smtp_code %d is not an SMTP reply code", code)
	case sentUID < 0 || sentUID > math.MaxUint32:
		return refuse(http.StatusBadRequest, "result: sent_uid %d is not a 32-bit UID", sentUID)
	case res.State == "sent" && (code < 200 || code > 299):
		return refuse(http.StatusBadRequest, "result: sent needs the 2xx smtp_code, got %d", code)
	case res.State == "sent" && res.Error != "":
		return refuse(http.StatusBadRequest, "result: error is only for failed and ambiguous")
	case res.State == "failed" && code != 0 && code < 500:
		return refuse(http.StatusBadRequest, "result: failed with smtp_code %d, which is not a permanent refusal", code)
	case res.State != "sent" && res.Error == "":
		return refuse(http.StatusBadRequest, "result: %s needs an error", res.State)
	}
	return nil
}
