package refplatform_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestUploadThenDuplicate(t *testing.T) {
	e := start(t)
	token, deviceID := e.pair()
	body := message(1)

	if r := e.upload(uploadHeader(token, body), body); r.status != http.StatusCreated {
		t.Fatalf("first upload: status %d %s, want 201", r.status, r.body)
	}
	h := uploadHeader(token, body)
	h.Set("Relay-Folder", "Archive") // metadata of a later copy is not kept
	if r := e.upload(h, body); r.status != http.StatusOK {
		t.Fatalf("duplicate: status %d %s, want 200", r.status, r.body)
	}

	msgs := e.p.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	want := struct {
		key, account, mailbox, folder, device string
		uid, validity                         uint32
		flags                                 []string
		size                                  int64
		accepted                              int
	}{keyOf(body), "ana@example.com", "inbox", "Boîte de réception", deviceID, 42, 1700000000, []string{`\Seen`, "$Forwarded"}, int64(len(body)), 2}
	if m.Key != want.key || m.Account != want.account || m.Mailbox != want.mailbox || m.Folder != want.folder ||
		m.DeviceID != want.device || m.UID != want.uid || m.UIDValidity != want.validity ||
		!slices.Equal(m.Flags, want.flags) || m.Size != want.size || m.Accepted != want.accepted || m.Gzip {
		t.Errorf("stored %+v, want %+v", m, want)
	}
	if wantDate := time.Date(2024, 5, 1, 8, 20, 30, 0, time.UTC); !m.InternalDate.Equal(wantDate) {
		t.Errorf("InternalDate %v, want %v", m.InternalDate, wantDate)
	}
	if got := readBody(t, m.Open); !bytes.Equal(got, body) {
		t.Errorf("stored body %q, want %q", got, body)
	}
	if got := dirFiles(t, e.dir); !slices.Equal(got, []string{keyOf(body) + ".eml"}) {
		t.Errorf("files in dir: %v, want only the one body", got)
	}
	if n := e.p.Uploads(); n != 2 {
		t.Errorf("Uploads() = %d, want 2", n)
	}
	e.noRejections()
}

func TestUploadKeyMismatch(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	body := message(1)
	h := uploadHeader(token, body)
	h.Set("Idempotency-Key", keyOf(body[:len(body)-1])) // as after a truncation
	r := e.upload(h, body)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d %s, want 422", r.status, r.body)
	}
	if n := len(e.p.Messages()); n != 0 {
		t.Errorf("%d messages stored, want 0", n)
	}
	if got := dirFiles(t, e.dir); len(got) != 0 {
		t.Errorf("files left in dir: %v", got)
	}
	if rej := e.p.Rejections(); len(rej) != 1 || rej[0].Status != http.StatusUnprocessableEntity {
		t.Errorf("Rejections() = %+v, want the 422", rej)
	}
}

func TestUploadGzip(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	body := message(3000)
	zipped := gzipped(t, body)

	tests := []struct {
		name     string
		encoding string
		key      string
		send     []byte
		want     int
	}{
		{"key of the compressed bytes", "gzip", keyOf(zipped), zipped, http.StatusUnprocessableEntity},
		{"not gzip", "gzip", keyOf(body), body, http.StatusBadRequest},
		{"truncated gzip", "gzip", keyOf(body), zipped[:len(zipped)-4], http.StatusBadRequest},
		{"trailing garbage", "gzip", keyOf(body), append(slices.Clone(zipped), "junk"...), http.StatusBadRequest},
		{"unsupported coding", "br", keyOf(body), zipped, http.StatusUnsupportedMediaType},
		{"x-gzip", "x-gzip", keyOf(body), zipped, http.StatusUnsupportedMediaType},
		{"gzip", "gzip", keyOf(body), zipped, http.StatusCreated},
		{"same, in capitals, stored once", "GZIP", keyOf(body), zipped, http.StatusOK},
		{"same, uncompressed, stored once", "", keyOf(body), body, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := uploadHeader(token, body)
			h.Set("Idempotency-Key", tt.key)
			if tt.encoding != "" {
				h.Set("Content-Encoding", tt.encoding)
			}
			if r := e.upload(h, tt.send); r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
		})
	}
	msgs := e.p.Messages()
	if len(msgs) != 1 || !msgs[0].Gzip || msgs[0].Size != int64(len(body)) {
		t.Fatalf("Messages() = %+v, want one gzip-uploaded message of %d bytes", msgs, len(body))
	}
	if got := readBody(t, msgs[0].Open); !bytes.Equal(got, body) {
		t.Errorf("stored body is not the decompressed message")
	}
	if got := dirFiles(t, e.dir); len(got) != 1 {
		t.Errorf("files in dir: %v, want only the one body", got)
	}
}

func TestUploadHeaders(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	body := message(1)
	tests := []struct {
		name   string
		header string
		value  []string // nil deletes the header
		want   int
	}{
		{"folder with a plus and a slash", "Relay-Folder", []string{"C%2B%2B/Notes+"}, http.StatusCreated},
		{"no flags", "Relay-Flags", []string{""}, http.StatusCreated},
		{"sent mailbox", "Relay-Mailbox", []string{"sent"}, http.StatusCreated},
		{"UTC date with fraction", "Relay-Internal-Date", []string{"2024-05-01T10:20:30.5Z"}, http.StatusCreated},
		{"largest UID", "Relay-UID", []string{"4294967295"}, http.StatusCreated},
		{"content type with parameter", "Content-Type", []string{"message/rfc822; charset=utf-8"}, http.StatusCreated},

		{"no content type", "Content-Type", nil, http.StatusUnsupportedMediaType},
		{"wrong content type", "Content-Type", []string{"application/octet-stream"}, http.StatusUnsupportedMediaType},
		{"text content type", "Content-Type", []string{"text/plain"}, http.StatusUnsupportedMediaType},

		{"no key", "Idempotency-Key", nil, http.StatusBadRequest},
		{"key in capitals", "Idempotency-Key", []string{strings.ToUpper(keyOf(body))}, http.StatusBadRequest},
		{"short key", "Idempotency-Key", []string{keyOf(body)[:63]}, http.StatusBadRequest},
		{"key not hex", "Idempotency-Key", []string{strings.Repeat("g", 64)}, http.StatusBadRequest},
		{"no account", "Relay-Account", nil, http.StatusBadRequest},
		{"empty account", "Relay-Account", []string{""}, http.StatusBadRequest},
		{"account with a name", "Relay-Account", []string{"Ana <ana@example.com>"}, http.StatusBadRequest},
		{"account not an address", "Relay-Account", []string{"ana"}, http.StatusBadRequest},
		{"no mailbox", "Relay-Mailbox", nil, http.StatusBadRequest},
		{"mailbox in capitals", "Relay-Mailbox", []string{"INBOX"}, http.StatusBadRequest},
		{"mailbox other role", "Relay-Mailbox", []string{"drafts"}, http.StatusBadRequest},
		{"no folder", "Relay-Folder", nil, http.StatusBadRequest},
		{"empty folder", "Relay-Folder", []string{""}, http.StatusBadRequest},
		{"folder not encoded", "Relay-Folder", []string{"Boîte de réception"}, http.StatusBadRequest},
		{"folder with raw space", "Relay-Folder", []string{"Sent Items"}, http.StatusBadRequest},
		{"folder bad escape", "Relay-Folder", []string{"Sent%2"}, http.StatusBadRequest},
		{"folder not UTF-8", "Relay-Folder", []string{"Bo%EEte"}, http.StatusBadRequest},
		{"no UID", "Relay-UID", nil, http.StatusBadRequest},
		{"zero UID", "Relay-UID", []string{"0"}, http.StatusBadRequest},
		{"negative UID", "Relay-UID", []string{"-1"}, http.StatusBadRequest},
		{"signed UID", "Relay-UID", []string{"+42"}, http.StatusBadRequest},
		{"UID with leading zero", "Relay-UID", []string{"042"}, http.StatusBadRequest},
		{"UID over 32 bits", "Relay-UID", []string{"4294967296"}, http.StatusBadRequest},
		{"UID not a number", "Relay-UID", []string{"abc"}, http.StatusBadRequest},
		{"no UIDVALIDITY", "Relay-UIDValidity", nil, http.StatusBadRequest},
		{"zero UIDVALIDITY", "Relay-UIDValidity", []string{"0"}, http.StatusBadRequest},
		{"no date", "Relay-Internal-Date", nil, http.StatusBadRequest},
		{"IMAP date", "Relay-Internal-Date", []string{"01-May-2024 10:20:30 +0200"}, http.StatusBadRequest},
		{"date without zone", "Relay-Internal-Date", []string{"2024-05-01T10:20:30"}, http.StatusBadRequest},
		{"no flags header", "Relay-Flags", nil, http.StatusBadRequest},
		{"flags comma separated", "Relay-Flags", []string{`\Seen,\Answered`}, http.StatusBadRequest},
		{"flags double space", "Relay-Flags", []string{`\Seen  \Answered`}, http.StatusBadRequest},
		{"flags in parentheses", "Relay-Flags", []string{`(\Seen)`}, http.StatusBadRequest},
		{"lone backslash", "Relay-Flags", []string{`\`}, http.StatusBadRequest},
		{"repeated header", "Relay-UID", []string{"42", "43"}, http.StatusBadRequest},
		{"unknown relay header", "Relay-Uid-Validity", []string{"1"}, http.StatusBadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A distinct body each time, so a 201 means stored anew.
			body := message(10 + i)
			h := uploadHeader(token, body)
			if tt.value == nil {
				h.Del(tt.header)
			} else {
				h[http.CanonicalHeaderKey(tt.header)] = tt.value
			}
			before := len(e.p.Messages())
			r := e.upload(h, body)
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
			stored := len(e.p.Messages()) - before
			if want := map[bool]int{true: 1}[tt.want == http.StatusCreated]; stored != want {
				t.Errorf("%d messages stored, want %d", stored, want)
			}
		})
	}
	for _, m := range e.p.Messages() {
		if m.Folder == "C++/Notes+" {
			return
		}
	}
	t.Errorf("folder %q not decoded as %q", "C%2B%2B/Notes+", "C++/Notes+")
}

func TestUploadEmptyBody(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	for _, tt := range []struct {
		name string
		gzip bool
	}{{"plain", false}, {"gzip", true}} {
		t.Run(tt.name, func(t *testing.T) {
			h := uploadHeader(token, nil)
			send := []byte{}
			if tt.gzip {
				h.Set("Content-Encoding", "gzip")
				send = gzipped(t, nil)
			}
			if r := e.upload(h, send); r.status != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", r.status, r.body)
			}
		})
	}
}

func TestUploadTooLarge(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	e.p.SetMaxBodySize(4096)
	exact := bytes.Repeat([]byte("a"), 4096)
	over := bytes.Repeat([]byte("b"), 4097)
	tests := []struct {
		name string
		body []byte
		gzip bool
		want int
	}{
		{"at the limit", exact, false, http.StatusCreated},
		{"one byte over", over, false, http.StatusRequestEntityTooLarge},
		{"over once decompressed", over, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := uploadHeader(token, tt.body)
			send := tt.body
			if tt.gzip {
				h.Set("Content-Encoding", "gzip")
				send = gzipped(t, tt.body)
			}
			if r := e.upload(h, send); r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
		})
	}
	if got := dirFiles(t, e.dir); len(got) != 1 {
		t.Errorf("files in dir: %v, want only the body at the limit", got)
	}
}

func TestFailNext(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	body := message(1)
	e.p.FailNext(2, http.StatusServiceUnavailable, 1500*time.Millisecond)
	for i := range 2 {
		r := e.upload(uploadHeader(token, body), body)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("upload %d: status %d, want 503", i, r.status)
		}
		if got := r.header.Get("Retry-After"); got != "2" {
			t.Errorf("upload %d: Retry-After %q, want 2 (1.5 s rounded up)", i, got)
		}
		if n := len(e.p.Messages()); n != 0 {
			t.Fatalf("upload %d: %d messages stored, want 0", i, n)
		}
	}
	e.p.FailNext(1, http.StatusTooManyRequests, 0)
	if r := e.upload(uploadHeader(token, body), body); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "" {
		t.Fatalf("status %d Retry-After %q, want 429 without it", r.status, r.header.Get("Retry-After"))
	}
	if r := e.upload(uploadHeader(token, body), body); r.status != http.StatusCreated {
		t.Fatalf("after the failures: status %d %s, want 201", r.status, r.body)
	}
	if n := e.p.Uploads(); n != 4 {
		t.Errorf("Uploads() = %d, want 4", n)
	}
	e.noRejections() // injected failures are not refusals
}

func TestCheck(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	stored := message(1)
	if r := e.upload(uploadHeader(token, stored), stored); r.status != http.StatusCreated {
		t.Fatalf("upload: status %d", r.status)
	}
	other, third := keyOf(message(2)), keyOf(message(3))

	r := e.postJSON("/v1/messages/check", token, map[string][]string{"keys": {keyOf(stored), other, third, other}})
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.status, r.body)
	}
	var got struct{ Missing []string }
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if want := []string{other, third}; !slices.Equal(got.Missing, want) {
		t.Errorf("missing %v, want %v", got.Missing, want)
	}
	if r := e.postJSON("/v1/messages/check", token, `{"keys":[]}`); r.status != http.StatusOK || string(r.body) != `{"missing":[]}` {
		t.Errorf("no keys: %d %s, want 200 {\"missing\":[]}", r.status, r.body)
	}

	thousand := make([]string, 1000)
	for i := range thousand {
		thousand[i] = keyOf([]byte{byte(i), byte(i >> 8)})
	}
	tests := []struct {
		name string
		body any
		want int
	}{
		{"1000 keys", map[string][]string{"keys": thousand}, http.StatusOK},
		{"1001 keys", map[string][]string{"keys": append(thousand, other)}, http.StatusBadRequest},
		{"bad key", map[string][]string{"keys": {"abc"}}, http.StatusBadRequest},
		{"keys null", `{"keys":null}`, http.StatusBadRequest},
		{"no keys", `{}`, http.StatusBadRequest},
		{"keys not strings", `{"keys":[1]}`, http.StatusBadRequest},
		{"unknown member", `{"keys":[],"all":true}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.postJSON("/v1/messages/check", token, tt.body); r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
		})
	}

	e.p.SetCheckSupported(false)
	if r := e.postJSON("/v1/messages/check", token, `{"keys":[]}`); r.status != http.StatusNotFound {
		t.Errorf("disabled: status %d, want 404", r.status)
	}
	e.p.SetCheckSupported(true)
	if r := e.postJSON("/v1/messages/check", token, `{"keys":[]}`); r.status != http.StatusOK {
		t.Errorf("enabled again: status %d, want 200", r.status)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readBody(t *testing.T, open func() (*os.File, error)) []byte {
	t.Helper()
	f, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirFiles lists the names in dir, temporary files included.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Base(e.Name()))
	}
	return names
}
