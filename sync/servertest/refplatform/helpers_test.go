package refplatform_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

const userAgent = "inboxrelay/1.2.3 (linux/amd64)"

// env is a started platform and a client that trusts it.
type env struct {
	t      *testing.T
	p      *refplatform.Platform
	client *http.Client
	dir    string
}

// start starts a platform on loopback; it is closed when the test ends.
func start(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	p, err := refplatform.New(dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, p: p, client: newClient(t, p, false), dir: dir}
}

// newClient returns a client trusting p's CA, speaking HTTP/1.1 or HTTP/2.
func newClient(t *testing.T, p *refplatform.Platform, h2 bool) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.CAPEM()) {
		t.Fatalf("CAPEM holds no certificate: %q", p.CAPEM())
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	tr.Protocols = new(http.Protocols)
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to path (relative to the base URL) with the
// User-Agent, the given headers and body, and reads the whole response.
func (e *env) do(method, path string, header http.Header, body io.Reader) response {
	e.t.Helper()
	return e.doWith(e.client, method, path, header, body)
}

func (e *env) doWith(c *http.Client, method, path string, header http.Header, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.p.URL()+path, body)
	if err != nil {
		e.t.Fatalf("NewRequest: %v", err)
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read response: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// postJSON posts v (a string is sent as is) with the token, if any.
func (e *env) postJSON(path, token string, v any) response {
	e.t.Helper()
	b, ok := v.(string)
	if !ok {
		raw, err := json.Marshal(v)
		if err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
		b = string(raw)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return e.do(http.MethodPost, path, h, strings.NewReader(b))
}

// pair pairs a device with a new code and returns its token and id.
func (e *env) pair() (token, deviceID string) {
	e.t.Helper()
	r := e.postJSON("/v1/pair", "", pairRequest(e.p.NewPairingCode()))
	if r.status != http.StatusCreated {
		e.t.Fatalf("pair: status %d %s", r.status, r.body)
	}
	var got struct {
		DeviceID string `json:"device_id"`
		Token    string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		e.t.Fatalf("pair: %v in %s", err, r.body)
	}
	return got.Token, got.DeviceID
}

func pairRequest(code string) map[string]any {
	return map[string]any{"code": code, "device": map[string]string{"name": "laptop", "os": "linux", "version": "1.2.3"}}
}

// uploadHeader returns the headers of a valid upload of body.
func uploadHeader(token string, body []byte) http.Header {
	return http.Header{
		"Authorization":       {"Bearer " + token},
		"Content-Type":        {"message/rfc822"},
		"Idempotency-Key":     {keyOf(body)},
		"Relay-Account":       {"ana@example.com"},
		"Relay-Mailbox":       {"inbox"},
		"Relay-Folder":        {"Bo%C3%AEte%20de%20r%C3%A9ception"},
		"Relay-Uid":           {"42"},
		"Relay-Uidvalidity":   {"1700000000"},
		"Relay-Internal-Date": {"2024-05-01T10:20:30+02:00"},
		"Relay-Flags":         {`\Seen $Forwarded`},
	}
}

func (e *env) upload(header http.Header, body []byte) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/v1/messages", header, bytes.NewReader(body))
}

func keyOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// message is a small RFC 5322 message, distinct per n.
func message(n int) []byte {
	return []byte("From: Bob <bob@customer.com>\r\nTo: ana@example.com\r\nSubject: hello " +
		strings.Repeat("x", n) + "\r\n\r\nHi Ana.\r\n")
}

// waitFor waits until cond holds, failing the test after ten seconds.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.p.Wait(ctx, cond); err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// noRejections fails the test if the platform refused anything.
func (e *env) noRejections() {
	e.t.Helper()
	if r := e.p.Rejections(); len(r) > 0 {
		e.t.Fatalf("rejections: %+v", r)
	}
}
