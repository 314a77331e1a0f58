package refplatform_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

func testItem() refplatform.OutboxItem {
	return refplatform.OutboxItem{
		Account: "ana@example.com",
		Raw:     []byte("From: ana@example.com\r\nTo: bob@customer.com\r\nSubject: hi\r\n\r\nHello.\r\n"),
		From:    "ana@example.com",
		To:      []string{"bob@customer.com", "carl@customer.com"},
	}
}

type wireItem struct {
	ID       string `json:"id"`
	Account  string `json:"account"`
	Raw      string `json:"raw"`
	Envelope struct {
		From string   `json:"from"`
		To   []string `json:"to"`
	} `json:"envelope"`
}

// poll does GET /v1/outbox?wait=wait and returns the status and items.
func (e *env) poll(token, wait string) (int, []wireItem) {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/outbox?wait="+wait, http.Header{"Authorization": {"Bearer " + token}}, nil)
	if r.status != http.StatusOK {
		if len(r.body) != 0 && r.status == http.StatusNoContent {
			e.t.Errorf("204 with a body: %q", r.body)
		}
		return r.status, nil
	}
	var got struct{ Items []wireItem }
	if err := json.Unmarshal(r.body, &got); err != nil {
		e.t.Fatalf("outbox response %s: %v", r.body, err)
	}
	return r.status, got.Items
}

func TestOutboxItemOnTheWire(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	item := testItem()
	id := e.p.Enqueue(item)
	status, items := e.poll(token, "0")
	if status != http.StatusOK || len(items) != 1 {
		t.Fatalf("status %d, %d items, want 200 and 1", status, len(items))
	}
	got := items[0]
	raw, err := base64.StdEncoding.DecodeString(got.Raw)
	if err != nil {
		t.Fatalf("raw is not base64: %v", err)
	}
	if got.ID != id || got.Account != item.Account || string(raw) != string(item.Raw) ||
		got.Envelope.From != item.From || !slices.Equal(got.Envelope.To, item.To) {
		t.Errorf("item %+v (raw %q), want %+v with id %s", got, raw, item, id)
	}
	if n := e.p.Offers(id); n != 1 {
		t.Errorf("Offers = %d, want 1", n)
	}
}

func TestOutboxLongPoll(t *testing.T) {
	e := start(t)
	token, _ := e.pair()

	t.Run("empty answers 204 after the wait", func(t *testing.T) {
		begin := time.Now()
		status, _ := e.poll(token, "1")
		if status != http.StatusNoContent {
			t.Fatalf("status %d, want 204", status)
		}
		if d := time.Since(begin); d < 900*time.Millisecond {
			t.Errorf("answered after %v, before the 1 s wait", d)
		}
	})

	t.Run("returns early on Enqueue", func(t *testing.T) {
		type result struct {
			status int
			items  []wireItem
		}
		done := make(chan result, 1)
		begin := time.Now()
		go func() {
			status, items := e.poll(token, "60")
			done <- result{status, items}
		}()
		waitParked(t, e.p, 1)
		id := e.p.Enqueue(testItem())
		r := <-done
		if r.status != http.StatusOK || len(r.items) != 1 || r.items[0].ID != id {
			t.Fatalf("status %d items %+v, want 200 with %s", r.status, r.items, id)
		}
		if d := time.Since(begin); d > 30*time.Second {
			t.Errorf("answered after %v", d)
		}
	})

	tests := []struct {
		query string
		want  int
	}{
		{"", http.StatusNoContent},
		{"?wait=0", http.StatusNoContent},
		{"?wait=61", http.StatusBadRequest},
		{"?wait=-1", http.StatusBadRequest},
		{"?wait=1.5", http.StatusBadRequest},
		{"?wait=", http.StatusBadRequest},
		{"?wait=1&wait=2", http.StatusBadRequest},
		{"?wait=0&limit=5", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run("query "+tt.query, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/outbox"+tt.query, http.Header{"Authorization": {"Bearer " + token}}, nil)
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
		})
	}
}

func TestOutboxLease(t *testing.T) {
	e := start(t)
	first, _ := e.pair()
	second, _ := e.pair()
	id := e.p.Enqueue(testItem())

	if status, items := e.poll(first, "0"); status != http.StatusOK || len(items) != 1 {
		t.Fatalf("first offer: status %d, %d items", status, len(items))
	}
	// Leased: nobody gets it again while the lease runs.
	for _, tok := range []string{first, second} {
		if status, _ := e.poll(tok, "0"); status != http.StatusNoContent {
			t.Fatalf("during the lease: status %d, want 204", status)
		}
	}

	// A long poll wakes when the lease ends, and the item goes to any device.
	e.p.SetLease(300 * time.Millisecond)
	begin := time.Now()
	status, items := e.poll(second, "30")
	if status != http.StatusOK || len(items) != 1 || items[0].ID != id {
		t.Fatalf("after the lease: status %d items %+v, want 200 with %s", status, items, id)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("re-offered after %v, lease was 300 ms", d)
	}
	if n := e.p.Offers(id); n != 2 {
		t.Errorf("Offers = %d, want 2", n)
	}

	// With a result, never again, even once the lease is over.
	if r := e.postJSON("/v1/outbox/"+id+"/result", second, sentResult()); r.status != http.StatusOK {
		t.Fatalf("result: status %d %s", r.status, r.body)
	}
	e.p.SetLease(time.Nanosecond)
	if status, _ := e.poll(first, "0"); status != http.StatusNoContent {
		t.Fatalf("after the result: status %d, want 204", status)
	}
	if n := e.p.Offers(id); n != 2 {
		t.Errorf("Offers = %d, want 2", n)
	}
}

func sentResult() map[string]any {
	return map[string]any{"state": "sent", "smtp_code": 250, "smtp_message": "2.0.0 Ok: queued", "message_id": "<a@b>", "sent_uid": 1234}
}

func TestOutboxResult(t *testing.T) {
	e := start(t)
	token, deviceID := e.pair()
	id := e.p.Enqueue(testItem())
	e.poll(token, "0")

	tests := []struct {
		name string
		body any
		want int
	}{
		{"sent", sentResult(), http.StatusOK},
		{"sent again", sentResult(), http.StatusOK},
		{"failed", `{"state":"failed","smtp_code":550,"smtp_message":"5.1.1 no such user","error":"recipient refused"}`, http.StatusOK},
		{"failed, invalid item", `{"state":"failed","error":"no recipients"}`, http.StatusOK},
		{"ambiguous", `{"state":"ambiguous","error":"connection reset after DATA"}`, http.StatusOK},
		{"unknown state", `{"state":"queued"}`, http.StatusBadRequest},
		{"no state", `{"smtp_code":250}`, http.StatusBadRequest},
		{"sent without code", `{"state":"sent"}`, http.StatusBadRequest},
		{"sent with 550", `{"state":"sent","smtp_code":550}`, http.StatusBadRequest},
		{"sent with an error", `{"state":"sent","smtp_code":250,"error":"oops"}`, http.StatusBadRequest},
		{"failed on a temporary 451", `{"state":"failed","smtp_code":451,"error":"try later"}`, http.StatusBadRequest},
		{"failed without error", `{"state":"failed","smtp_code":550}`, http.StatusBadRequest},
		{"ambiguous without error", `{"state":"ambiguous"}`, http.StatusBadRequest},
		{"code out of range", `{"state":"sent","smtp_code":1250}`, http.StatusBadRequest},
		{"negative UID", `{"state":"sent","smtp_code":250,"sent_uid":-1}`, http.StatusBadRequest},
		{"code as string", `{"state":"sent","smtp_code":"250"}`, http.StatusBadRequest},
		{"unknown member", `{"state":"sent","smtp_code":250,"retry":true}`, http.StatusBadRequest},
		{"not JSON", `sent`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.postJSON("/v1/outbox/"+id+"/result", token, tt.body); r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
		})
	}
	if r := e.postJSON("/v1/outbox/ob_unknown/result", token, sentResult()); r.status != http.StatusNotFound {
		t.Errorf("unknown id: status %d, want 404", r.status)
	}

	got := e.p.Results()[id]
	states := make([]string, len(got))
	for i, r := range got {
		states[i] = r.State
	}
	if want := []string{"sent", "sent", "failed", "failed", "ambiguous"}; !slices.Equal(states, want) {
		t.Fatalf("results %v, want %v", states, want)
	}
	want := refplatform.OutboxResult{State: "sent", SMTPCode: 250, SMTPMessage: "2.0.0 Ok: queued", MessageID: "<a@b>", SentUID: 1234, DeviceID: deviceID}
	first := got[0]
	first.ReceivedAt = time.Time{}
	if first != want {
		t.Errorf("first result %+v, want %+v", first, want)
	}
	if len(e.p.Results()) != 1 {
		t.Errorf("Results() has %d ids, want 1", len(e.p.Results()))
	}
}

// waitParked waits until n long polls are parked in the platform.
func waitParked(t *testing.T, p *refplatform.Platform, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Parked() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long polls parked, want %d", p.Parked(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
