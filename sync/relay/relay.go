// Package relay is the connector's side of the platform relay API
// (shared/relay-api.md, version 1): pairing, message upload, the key check,
// heartbeats and the outbox.
//
// Every call is outbound HTTPS. Errors are classified for the caller:
// *RejectedError (never retry), ErrUnauthorized (pair again),
// *TemporaryError (retry later) and *LocalError (failed on this computer,
// without an answer from the platform).
package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inboxrelay/inboxrelay/sync/redact"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// ErrUnauthorized means the platform refused the device token (401/403):
// the device must be paired again. Nothing is retried until then.
var ErrUnauthorized = errors.New("the platform no longer accepts this device: pair it again with a new code from the platform")

// ErrBadCode means the pairing code is wrong, expired or already used.
var ErrBadCode = errors.New("the pairing code is wrong or was already used: get a new code from the platform and try again")

// ErrNotPlatform means the address answered the pairing request with a web
// page (HTML), not as the relay API does: the platform address is wrong (a
// site's home page, a path without /connector), whatever the code.
var ErrNotPlatform = errors.New("this address answers with a web page, not as the platform's connector: check the platform address")

// RejectedError means the platform will never accept this request (400,
// 413, 415, 422): record it and move on.
type RejectedError struct {
	Status int
	Reason string // what the platform said, short
}

// Error gives the status and the platform's reason, for the record.
func (e *RejectedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("the platform rejected it for good (HTTP %d)", e.Status)
	}
	return fmt.Sprintf("the platform rejected it for good (HTTP %d: %s)", e.Status, e.Reason)
}

// TemporaryError means try again later: 408, 429, 5xx or a network error.
type TemporaryError struct {
	Status     int           // 0 for a network error
	RetryAfter time.Duration // from Retry-After; 0 when absent
	Err        error
}

// Error says what failed (a status, a redirect, a silence, the network)
// and that it is tried again.
func (e *TemporaryError) Error() string {
	var re *RedirectError
	switch {
	case errors.As(e.Err, &re):
		return fmt.Sprintf("%v; will retry", e.Err)
	case e.Status != 0 && e.Err != nil:
		return fmt.Sprintf("the platform's answer (HTTP %d) could not be used (%v); will retry", e.Status, e.Err)
	case e.Status != 0:
		return fmt.Sprintf("the platform is unavailable (HTTP %d); will retry", e.Status)
	}
	var se *SilenceError
	if errors.As(e.Err, &se) {
		return se.Error() + "; will retry"
	}
	return fmt.Sprintf("cannot reach the platform (%v); will retry", e.Err)
}

// LocalError is a request that failed on this computer, not at the
// platform: the message could not be read (before sending, or part way),
// or the request could not be built. The platform gave no answer, so it
// says nothing of the platform nor of the device token; the request may be
// tried again.
type LocalError struct {
	Err error
}

// Error says the request failed on this computer, and why.
func (e *LocalError) Error() string {
	return fmt.Sprintf("the request to the platform failed on this computer: %v", e.Err)
}

// Unwrap returns the local failure.
func (e *LocalError) Unwrap() error { return e.Err }

// RedirectError is a 3xx answer. The relay API defines no redirect and the
// connector follows none: not to http://, not to another host, not even
// to the same one. Nothing of the answer is used. Uploads, heartbeats and
// the outbox get it inside a *TemporaryError (they are tried again later);
// pairing gets it as is.
type RedirectError struct {
	Status   int
	Location string // where the platform pointed, without query or credentials; may be empty
}

// Error names the redirect and where it pointed, and says to check the
// platform address.
func (e *RedirectError) Error() string {
	to := ""
	if e.Location != "" {
		to = " to " + e.Location
	}
	return fmt.Sprintf("the platform answered with a redirect (HTTP %d%s), which Inbox Relay never follows: check the platform address with IT", e.Status, to)
}

// maxHeaderBytes bounds the headers of a platform answer.
const maxHeaderBytes = 64 << 10

// MaxAnswer is the most the connector reads of any platform answer other
// than the outbox (the outbox decodes its own, bounded per item): pairing,
// the key check, the heartbeat's settings. A longer answer is refused.
const MaxAnswer = 1 << 20

// tooLongError is what a boundedReader returns past its limit.
type tooLongError struct {
	what  string
	limit int64
}

func (e *tooLongError) Error() string {
	return fmt.Sprintf("the platform's %s is longer than %d bytes, more than the relay API ever needs: refused", e.what, e.limit)
}

// boundedReader reads r up to limit bytes, and fails with a *tooLongError
// when r has more.
type boundedReader struct {
	r    io.Reader
	left int64
	err  *tooLongError
}

func bounded(r io.Reader, limit int64, what string) *boundedReader {
	return &boundedReader{r: r, left: limit, err: &tooLongError{what: what, limit: limit}}
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := io.ReadFull(b.r, one[:]); n > 0 {
			return 0, b.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// decodeBounded decodes one JSON value from at most limit bytes of r.
func decodeBounded(r io.Reader, limit int64, what string, v any) error {
	br := bounded(r, limit, what)
	err := json.NewDecoder(br).Decode(v)
	var tl *tooLongError
	if errors.As(err, &tl) {
		return tl
	}
	return err
}

// Unwrap returns the network error, if any.
func (e *TemporaryError) Unwrap() error { return e.Err }

// Options configure a Client.
type Options struct {
	BaseURL string // e.g. https://app.example.com/connector
	CAFile  string // extra PEM roots besides the system's (optional)
	Proxy   string // explicit proxy URL, or ProxyDirect; wins over HTTPS_PROXY (optional)
	Token   string // device token; empty before pairing
	// Silence is how long the platform may go without taking a byte of a
	// request or sending a byte of its answer before the request is
	// dropped as a temporary failure; DefaultSilence when 0.
	Silence time.Duration
}

// ProxyDirect, as Options.Proxy, makes every request go directly, whatever
// HTTPS_PROXY says.
const ProxyDirect = "direct"

// Client talks to one platform. Safe for concurrent use.
type Client struct {
	base    string
	token   string
	http    *http.Client
	silence time.Duration
	// The values every request carries, made once.
	userAgent []string
	bearer    []string
}

// UserAgent is the User-Agent of every request.
func UserAgent() string {
	return fmt.Sprintf("inboxrelay/%s (%s/%s)", version.Version, runtime.GOOS, runtime.GOARCH)
}

// New returns a Client for o.BaseURL, which must be https.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("platform URL %q must be an https:// URL", o.BaseURL)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the platform CA bundle: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the platform CA bundle %s holds no PEM certificate", o.CAFile)
		}
	}
	proxy := http.ProxyFromEnvironment
	if o.Proxy == ProxyDirect {
		proxy = nil
	} else if o.Proxy != "" {
		pu, err := url.Parse(o.Proxy)
		if err != nil || pu.Host == "" {
			return nil, fmt.Errorf("proxy URL %q is not a URL", o.Proxy)
		}
		proxy = http.ProxyURL(pu)
	}
	tr := &http.Transport{
		Proxy:                 proxy,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		// A platform's headers are a few hundred bytes; the default
		// allows megabytes.
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	silence := o.Silence
	if silence <= 0 {
		silence = DefaultSilence
	}
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		// Never follow: the 3xx itself comes back and classify refuses it.
		return http.ErrUseLastResponse
	}}
	return &Client{base: strings.TrimRight(o.BaseURL, "/"), token: o.Token, http: hc, silence: silence,
		userAgent: []string{UserAgent()}, bearer: []string{"Bearer " + o.Token}}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Device describes this connector at pairing.
type Device struct {
	Name    string `json:"name"`
	OS      string `json:"os"`
	Version string `json:"version"`
}

// Pair exchanges a one-time code for a device id and token. A wrong or used
// code returns ErrBadCode.
func (c *Client) Pair(ctx context.Context, code string, d Device) (deviceID, token string, err error) {
	body, _ := json.Marshal(map[string]any{"code": code, "device": d})
	resp, err := c.do(ctx, "POST", "/v1/pair", "application/json", bytes.NewReader(body), int64(len(body)), nil, false)
	if err != nil {
		return "", "", fmt.Errorf("pair: %w", err)
	}
	defer resp.Body.Close()
	// A web page is no platform's answer (it speaks JSON): a 404 from the
	// wrong address is not the code's fault.
	html := strings.HasPrefix(strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Type"))), "text/html")
	switch {
	case html && !isRedirect(resp.StatusCode):
		return "", "", ErrNotPlatform
	case resp.StatusCode == http.StatusCreated:
		var out struct {
			DeviceID string `json:"device_id"`
			Token    string `json:"token"`
		}
		if err := decodeBounded(resp.Body, MaxAnswer, "pairing answer", &out); err != nil || out.Token == "" {
			return "", "", fmt.Errorf("pair: the platform's answer has no token")
		}
		return out.DeviceID, out.Token, nil
	case resp.StatusCode == 400 || resp.StatusCode == 404 || resp.StatusCode == 410:
		return "", "", ErrBadCode
	case isRedirect(resp.StatusCode):
		return "", "", fmt.Errorf("pair: %w", redirectError(resp))
	}
	return "", "", fmt.Errorf("pair: %w", classify(resp))
}

// Message is one message to relay, with its IMAP facts.
type Message struct {
	Account      string // the mailbox's e-mail address
	Mailbox      string // "inbox" or "sent"
	Folder       string // the server's folder name, UTF-8
	UID          uint32
	UIDValidity  uint32
	InternalDate time.Time
	Flags        []string
	Key          string // lowercase hex SHA-256 of the body
	Size         int64
	// Open returns the body from its first byte; it may be called once per
	// attempt.
	Open func() (io.ReadCloser, error)
}

// Upload relays m. It returns nil only when the platform stored it or
// already had it (201/200).
func (c *Client) Upload(ctx context.Context, m Message) error {
	body, err := m.Open()
	if err != nil {
		return &LocalError{Err: fmt.Errorf("open the message: %w", err)}
	}
	defer body.Close()
	// Keys in canonical form, set directly: no per-request canonicalising.
	h := make(http.Header, 12)
	h["Idempotency-Key"] = []string{m.Key}
	h["Relay-Account"] = []string{m.Account}
	h["Relay-Mailbox"] = []string{m.Mailbox}
	h["Relay-Folder"] = []string{url.PathEscape(m.Folder)}
	h["Relay-Uid"] = []string{strconv.FormatUint(uint64(m.UID), 10)}
	h["Relay-Uidvalidity"] = []string{strconv.FormatUint(uint64(m.UIDValidity), 10)}
	h["Relay-Internal-Date"] = []string{m.InternalDate.Format(time.RFC3339)}
	h["Relay-Flags"] = []string{strings.Join(m.Flags, " ")}
	resp, err := c.do(ctx, "POST", "/v1/messages", "message/rfc822", body, m.Size, h, true)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode == 200 || resp.StatusCode == 201 {
		return nil
	}
	return classify(resp)
}

// Check asks which keys the platform lacks. ok is false when the platform
// does not offer the check (404): upload everything then.
func (c *Client) Check(ctx context.Context, keys []string) (missing []string, ok bool, err error) {
	body, _ := json.Marshal(map[string]any{"keys": keys})
	resp, err := c.do(ctx, "POST", "/v1/messages/check", "application/json", bytes.NewReader(body), int64(len(body)), nil, true)
	if err != nil {
		return nil, false, err
	}
	defer drain(resp)
	if resp.StatusCode == 404 {
		return nil, false, nil
	}
	if resp.StatusCode != 200 {
		return nil, false, classify(resp)
	}
	var out struct {
		Missing []string `json:"missing"`
	}
	if err := decodeBounded(resp.Body, MaxAnswer, "key check answer", &out); err != nil {
		return nil, false, &TemporaryError{Status: 200, Err: fmt.Errorf("decode check answer: %w", err)}
	}
	return out.Missing, true, nil
}

// AccountHeartbeat is one account's line in a heartbeat.
type AccountHeartbeat struct {
	Email    string    `json:"email"`
	State    string    `json:"state"` // syncing|idle|paused|error|needs_login|needs_trust
	LastSync time.Time `json:"last_sync,omitzero"`
	Backlog  int       `json:"backlog"`
	Rejected int       `json:"rejected"`
	Error    string    `json:"error,omitempty"`
}

// Heartbeat is the periodic report to the platform.
type Heartbeat struct {
	Version  string             `json:"version"`
	OS       string             `json:"os"`
	Accounts []AccountHeartbeat `json:"accounts"`
}

// Settings are what the platform asks of the connector; nil fields were not
// sent.
type Settings struct {
	BackfillDays *int     `json:"backfill_days,omitempty"`
	RelayDomains []string `json:"relay_domains,omitempty"`
	DomainsGiven bool     `json:"-"` // relay_domains was present (an empty list lifts the filter)
	// SendAs lists, per account (e-mail lowercased), the other addresses
	// (lowercased) its outbox items may use as sender; nil when not sent.
	SendAs map[string][]string `json:"send_as,omitempty"`
}

// Heartbeat reports hb; the answer's settings, if any, are returned.
func (c *Client) Heartbeat(ctx context.Context, hb Heartbeat) (*Settings, error) {
	body, _ := json.Marshal(hb)
	resp, err := c.do(ctx, "POST", "/v1/heartbeat", "application/json", bytes.NewReader(body), int64(len(body)), nil, true)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != 200 {
		return nil, classify(resp)
	}
	return parseSettings(bounded(resp.Body, MaxAnswer, "heartbeat answer"))
}

// parseSettings reads a heartbeat's answer: nil settings when it has
// none (an empty body included).
func parseSettings(r io.Reader) (*Settings, error) {
	var out struct {
		Settings *struct {
			BackfillDays *int                `json:"backfill_days"`
			RelayDomains json.RawMessage     `json:"relay_domains"`
			SendAs       map[string][]string `json:"send_as"`
		} `json:"settings"`
	}
	if err := json.NewDecoder(r).Decode(&out); err != nil && err != io.EOF {
		var tl *tooLongError
		if errors.As(err, &tl) {
			return nil, fmt.Errorf("heartbeat: %w", tl)
		}
		return nil, fmt.Errorf("heartbeat: decode the platform's answer: %w", err)
	}
	if out.Settings == nil {
		return nil, nil
	}
	s := &Settings{BackfillDays: out.Settings.BackfillDays}
	if len(out.Settings.RelayDomains) > 0 && string(out.Settings.RelayDomains) != "null" {
		if err := json.Unmarshal(out.Settings.RelayDomains, &s.RelayDomains); err != nil {
			return nil, fmt.Errorf("heartbeat: relay_domains is not a list of domains: %w", err)
		}
		s.DomainsGiven = true
	}
	if out.Settings.SendAs != nil {
		s.SendAs = make(map[string][]string, len(out.Settings.SendAs))
		for acct, addrs := range out.Settings.SendAs {
			k := strings.ToLower(strings.TrimSpace(acct))
			for _, a := range addrs {
				s.SendAs[k] = append(s.SendAs[k], strings.ToLower(strings.TrimSpace(a)))
			}
		}
	}
	return s, nil
}

// do sends one request under a watchdog (deadline.go): the answer's body
// must be closed, which ends the watch.
func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader, size int64, h http.Header, auth bool) (*http.Response, error) {
	return c.doWait(ctx, 0, method, path, ctype, body, size, h, auth)
}

// doWait is do for a long poll, whose answer the platform may hold back
// for wait on top of the silence.
func (c *Client) doWait(ctx context.Context, wait time.Duration, method, path, ctype string, body io.Reader, size int64, h http.Header, auth bool) (*http.Response, error) {
	parent := ctx
	ctx, wd := c.watch(ctx, wait, body != nil && size > 0)
	var out *sending
	if body != nil && size > 0 {
		out = &sending{r: body, w: wd}
		body = out
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		wd.stop()
		return nil, &LocalError{Err: err}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", ctype)
	req.Header["User-Agent"] = c.userAgent
	if auth {
		req.Header["Authorization"] = c.bearer
	}
	resp, err := c.http.Do(req)
	if err != nil {
		silent := fired(ctx)
		wd.stop()
		switch {
		case parent.Err() != nil:
			return nil, parent.Err()
		case silent:
			return nil, &TemporaryError{Err: &SilenceError{After: c.silence}}
		case out != nil && out.failed() != nil:
			return nil, &LocalError{Err: fmt.Errorf("read the request's body: %w", out.failed())}
		}
		if s := err.Error(); strings.Contains(s, "response headers exceeded") || strings.Contains(s, "COMPRESSION_ERROR") {
			// HTTP/1.1 and HTTP/2 say it their own way.
			err = fmt.Errorf("the platform sent headers longer than %d KiB, more than the relay API ever needs: refused", maxHeaderBytes>>10)
		}
		return nil, &TemporaryError{Err: redactURL(err)}
	}
	wd.kick(c.silence)
	resp.Body = &answer{ReadCloser: resp.Body, w: wd}
	return resp, nil
}

func isRedirect(status int) bool { return status >= 300 && status < 400 }

// redirectError describes a 3xx answer; its Location is shown without
// query or credentials.
func redirectError(resp *http.Response) *RedirectError {
	e := &RedirectError{Status: resp.StatusCode}
	if loc := resp.Header.Get("Location"); loc != "" {
		e.Location = printable(stripQuery(loc), 200)
	}
	return e
}

// classify turns a non-2xx answer into the error the caller acts on.
func classify(resp *http.Response) error {
	switch s := resp.StatusCode; {
	case isRedirect(s):
		return &TemporaryError{Status: s, Err: redirectError(resp)}
	case s == 401 || s == 403:
		return ErrUnauthorized
	case s == 400 || s == 413 || s == 415 || s == 422:
		return &RejectedError{Status: s, Reason: reason(resp)}
	case s == 408 || s == 429 || s >= 500:
		return &TemporaryError{Status: s, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		// Not in the contract: treat as temporary rather than lose the
		// message, but say what it was.
		return &TemporaryError{Status: s, Err: fmt.Errorf("unexpected HTTP %d", s)}
	}
}

// reason extracts a short, printable explanation from an error answer,
// without the device token should the platform echo it.
func reason(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	var j struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &j) == nil {
		if j.Error != "" {
			b = []byte(j.Error)
		} else if j.Message != "" {
			b = []byte(j.Message)
		}
	}
	text := string(b)
	if token := requestToken(resp); token != "" {
		text = redact.New(token).String(text)
		// The read may have cut the token: drop a tail that starts it.
		for n := min(len(token)-1, len(text)); n >= 8; n-- {
			if strings.HasSuffix(text, token[:n]) {
				text = text[:len(text)-n] + redact.Mask
				break
			}
		}
	}
	return printable(text, 200)
}

// requestToken is the device token the request of resp carried.
func requestToken(resp *http.Response) string {
	if resp.Request == nil {
		return ""
	}
	t, _ := strings.CutPrefix(resp.Request.Header.Get("Authorization"), "Bearer ")
	return t
}

// printable makes s one line of at most max bytes of valid UTF-8 text.
func printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
}

// redactURL strips the query from URL errors; the API puts no secret in a
// URL, but a proxy URL may hold credentials.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, stripQuery(ue.URL), ue.Err)
	}
	return err
}

func stripQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the platform"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}
