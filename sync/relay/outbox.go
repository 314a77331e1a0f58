package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"
)

// OutboxItem is a message the platform asks the connector to send.
type OutboxItem struct {
	ID      string
	Account string // the sending mailbox's e-mail address
	Raw     []byte // the RFC 5322 message
	From    string
	To      []string
}

// Outbox long-polls for items to send, waiting up to wait (at most 60 s)
// for one. It returns no items on 204.
func (c *Client) Outbox(ctx context.Context, wait time.Duration) ([]OutboxItem, error) {
	secs := int(wait / time.Second)
	secs = max(0, min(secs, 60))
	resp, err := c.do(ctx, "GET", "/v1/outbox?wait="+strconv.Itoa(secs), "application/json", nil, 0, nil, true)
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
	var out struct {
		Items []struct {
			ID       string `json:"id"`
			Account  string `json:"account"`
			Raw      string `json:"raw"`
			Envelope struct {
				From string   `json:"from"`
				To   []string `json:"to"`
			} `json:"envelope"`
		} `json:"items"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&out); err != nil {
		return nil, &TemporaryError{Status: 200, Err: fmt.Errorf("decode the outbox: %w", err)}
	}
	items := make([]OutboxItem, 0, len(out.Items))
	for _, it := range out.Items {
		raw, err := base64.StdEncoding.DecodeString(it.Raw)
		if err != nil {
			raw = nil // reported as invalid by the caller
		}
		items = append(items, OutboxItem{ID: it.ID, Account: it.Account, Raw: raw, From: it.Envelope.From, To: it.Envelope.To})
	}
	return items, nil
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
// recorded (200).
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
