package relay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// outboxServer serves GET /v1/outbox with handler behind TLS and returns a
// client for it.
func outboxServer(t *testing.T, handler http.HandlerFunc, silence ...time.Duration) *Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{BaseURL: srv.URL + "/connector", CAFile: ca, Token: "tok"}
	if len(silence) > 0 {
		o.Silence = silence[0]
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func serveBody(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leftovers lists the files Outbox left in dir that the caller was not
// given.
func leftovers(t *testing.T, dir string, items []OutboxItem) []string {
	t.Helper()
	given := map[string]bool{}
	for _, it := range items {
		given[it.File] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); !given[p] {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestOutboxDecodesMessagesToFiles(t *testing.T) {
	all := make([]byte, 256*3)
	for i := range all {
		all[i] = byte(i)
	}
	b64 := base64.StdEncoding.EncodeToString(all)
	// The same bytes as a platform may encode them: "/" escaped, the
	// base64 wrapped with CRLF, a \u escape, unknown fields around.
	wrapped := strings.ReplaceAll(b64[:76]+"\r\n"+b64[76:], "/", `\/`)
	wrapped = strings.Replace(wrapped, "A", `\u0041`, 1)
	body := `{"version": 1, "items": [
		{"id": "ob_1", "account": "alice@acme.test", "raw": "` + b64 + `", "envelope": {"from": "alice@acme.test", "to": ["a@x.test", "b@y.test"]}},
		{"extra": {"nested": [1, 2.5e3, true, null, "s"]}, "raw": "` + strings.ReplaceAll(wrapped, "\r\n", `\r\n`) + `", "envelope": {"to": ["c@z.test"], "from": "alice@acme.test"}, "account": "alice@acme.test", "id": "ob_\u00e9"}
	], "more": null}`
	c := outboxServer(t, serveBody(body))
	dir := t.TempDir()
	items, err := c.Outbox(t.Context(), OutboxOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("%d items, want 2: %+v", len(items), items)
	}
	want := []OutboxItem{
		{ID: "ob_1", Account: "alice@acme.test", From: "alice@acme.test", To: []string{"a@x.test", "b@y.test"}, Size: int64(len(all))},
		{ID: "ob_é", Account: "alice@acme.test", From: "alice@acme.test", To: []string{"c@z.test"}, Size: int64(len(all))},
	}
	for i, it := range items {
		w := want[i]
		if it.ID != w.ID || it.Account != w.Account || it.From != w.From || fmt.Sprint(it.To) != fmt.Sprint(w.To) || it.Size != w.Size || it.Invalid != "" {
			t.Errorf("item %d = %+v, want %+v", i, it, w)
		}
		if got := readFile(t, it.File); !bytes.Equal(got, all) {
			t.Errorf("item %d: the file holds %d bytes that differ from the message", i, len(got))
		}
		if fi, err := os.Stat(it.File); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("item %d: file mode %v, %v; want 0600", i, fi.Mode(), err)
		}
	}
	if l := leftovers(t, dir, items); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
}

func TestOutboxMalformedItems(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte("Subject: hi\r\n\r\nhello\r\n"))
	long := strings.Repeat("x", maxField+1)
	cases := []struct {
		item string
		id   string
		want string // in Invalid
	}{
		{`{"id": "a", "account": "x@y.test", "envelope": {"from": "x@y.test", "to": ["z@y.test"]}}`, "a", "no message"},
		{`{"id": "b", "raw": 12, "envelope": {"from": "x@y.test", "to": ["z@y.test"]}}`, "b", "not a base64 string"},
		{`{"id": "c", "raw": "abc!", "envelope": {"from": "x@y.test", "to": ["z@y.test"]}}`, "c", "not valid base64"},
		{`{"id": "d", "raw": "QQ", "envelope": {}}`, "d", "4-character group"},
		{`{"id": "e", "raw": "QQ==QUJD"}`, "e", "not valid base64"},
		{`{"id": "f", "raw": "", "envelope": {}}`, "f", "raw is empty"},
		{`{"id": "g", "raw": "` + good + `", "envelope": {"from": "x@y.test", "to": "z@y.test"}}`, "g", "envelope.to is not a list"},
		{`{"id": "h", "raw": "` + good + `", "envelope": {"from": ["x@y.test"], "to": []}}`, "h", "envelope.from is not a string"},
		{`{"id": "i", "raw": "` + good + `", "envelope": [1]}`, "i", "envelope is not an object"},
		{`{"id": "j", "raw": "` + good + `", "account": "` + long + `"}`, "j", "account is longer than"},
		{`{"id": "k", "raw": "` + good + `", "raw": "` + good + `"}`, "k", "gives raw twice"},
		{`{"id": 7, "raw": "` + good + `"}`, "", "id is not a string"},
		{`"just a string"`, "", "not a JSON object"},
	}
	var list []string
	for _, c := range cases {
		list = append(list, c.item)
	}
	list = append(list, `{"id": "ok", "raw": "`+good+`", "envelope": {"from": "x@y.test", "to": ["z@y.test"]}}`)
	c := outboxServer(t, serveBody(`{"items": [`+strings.Join(list, ",")+`]}`))
	dir := t.TempDir()
	items, err := c.Outbox(t.Context(), OutboxOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(cases)+1 {
		t.Fatalf("%d items, want %d", len(items), len(cases)+1)
	}
	for i, tc := range cases {
		it := items[i]
		if it.ID != tc.id || !strings.Contains(it.Invalid, tc.want) || it.File != "" {
			t.Errorf("item %s: id %q, invalid %q, file %q; want id %q, invalid with %q and no file", tc.item[:min(40, len(tc.item))], it.ID, it.Invalid, it.File, tc.id, tc.want)
		}
	}
	if last := items[len(cases)]; last.ID != "ok" || last.Invalid != "" || last.File == "" {
		t.Errorf("the well-formed item after the bad ones: %+v", last)
	}
	if l := leftovers(t, dir, items); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
}

func TestOutboxSizeLimits(t *testing.T) {
	msg := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), n)) }
	body := `{"items": [` +
		`{"id": "big", "raw": "` + msg(2000) + `"},` +
		`{"id": "a", "raw": "` + msg(1000) + `"},` +
		`{"id": "b", "raw": "` + msg(1000) + `"},` +
		`{"id": "c", "raw": "` + msg(1000) + `"}]}`
	c := outboxServer(t, serveBody(body))
	dir := t.TempDir()
	items, err := c.Outbox(t.Context(), OutboxOptions{Dir: dir, MaxMessage: 1500, MaxTotal: 2500})
	if err != nil {
		t.Fatal(err)
	}
	// big: too large for good; a and b fit the answer's budget; c does not
	// and is left for the platform to offer again.
	if len(items) != 3 || items[0].ID != "big" || !strings.Contains(items[0].Invalid, "larger than") ||
		items[1].ID != "a" || items[1].Size != 1000 || items[2].ID != "b" || items[2].Size != 1000 {
		t.Fatalf("items %+v", items)
	}
	if l := leftovers(t, dir, items); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
}

func TestOutboxSyntaxErrorTakesNothing(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte("hello"))
	for _, body := range []string{
		`{"items": [{"id": "a", "raw": "` + good + `"}, {"id": "b", "raw": "` + good,
		`{"items": [{"id": "a", "raw": "` + good + `"} {"id": "b"}]}`,
		`{"items": {"id": "a"}}`,
		`[]`,
		`{"items": [{"id": "a\x01"}]}`,
		`{"items": [{"id": "a", "x": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}`,
	} {
		c := outboxServer(t, serveBody(body))
		dir := t.TempDir()
		items, err := c.Outbox(t.Context(), OutboxOptions{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "cannot be read") || len(items) != 0 {
			t.Errorf("%.60q: items %+v, err %v; want an unreadable answer and no item", body, items, err)
		}
		if l := leftovers(t, dir, nil); len(l) != 0 {
			t.Errorf("%.60q: files left behind: %v", body, l)
		}
	}
}

func TestOutboxStalledAnswer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := outboxServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"items": [{"id": "a", "raw": "QUJD`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 200*time.Millisecond)
	dir := t.TempDir()
	_, err := c.Outbox(t.Context(), OutboxOptions{Dir: dir})
	var se *SilenceError
	var te *TemporaryError
	if !errors.As(err, &se) || !errors.As(err, &te) || !strings.Contains(err.Error(), "stopped answering") {
		t.Fatalf("err %v, want a temporary error naming the silence", err)
	}
	if l := leftovers(t, dir, nil); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
}

func TestOutboxRetryAfter(t *testing.T) {
	c := outboxServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(503)
	})
	_, err := c.Outbox(t.Context(), OutboxOptions{Dir: t.TempDir()})
	var te *TemporaryError
	if !errors.As(err, &te) || te.RetryAfter != 120*time.Second {
		t.Fatalf("err %v, want a temporary error with Retry-After 120 s", err)
	}
	err = c.ReportResult(t.Context(), "ob_1", OutboxResult{State: "sent", SMTPCode: 250})
	if !errors.As(err, &te) || te.RetryAfter != 120*time.Second {
		t.Fatalf("report: err %v, want a temporary error with Retry-After 120 s", err)
	}
}

// answerReader generates an answer with one item of size bytes of
// message, base64 encoded, without ever holding it.
type answerReader struct {
	head, tail []byte
	line       []byte // of the message, base64 encodes without padding
	left       int    // message bytes still to encode
	enc, buf   []byte // a line encoded; what is left of it
}

func newAnswerReader(size int) *answerReader {
	line := bytes.Repeat([]byte("0123456789ab"), 16) // 192 bytes: 256 base64 characters
	return &answerReader{
		head: []byte(`{"items": [{"id": "big", "account": "a@b.test", "envelope": {"from": "a@b.test", "to": ["c@d.test"]}, "raw": "`),
		tail: []byte(`"}]}`), line: line, left: size / len(line) * len(line),
	}
}

func (a *answerReader) Read(p []byte) (int, error) {
	for len(a.buf) == 0 {
		switch {
		case a.head != nil:
			a.buf, a.head = a.head, nil
		case a.left > 0:
			a.enc = base64.StdEncoding.AppendEncode(a.enc[:0], a.line)
			a.buf = a.enc
			a.left -= len(a.line)
		case a.tail != nil:
			a.buf, a.tail = a.tail, nil
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, a.buf)
	a.buf = a.buf[n:]
	return n, nil
}

// TestOutboxMessageNeverInMemory decodes an answer carrying a 16 MiB item,
// generated on the fly, and fails when the decoder allocated more than
// 1 MiB in all while doing it, garbage included: the message goes from the
// answer to the file in pieces. (Before: the answer, its base64 string and
// the decoded message were each allocated whole, over 60 MiB here.)
func TestOutboxMessageNeverInMemory(t *testing.T) {
	const size = 16 << 20
	dir := t.TempDir()
	in := newAnswerReader(size)
	want := int64(in.left)
	d := &outboxDecoder{s: newScanner(in), o: OutboxOptions{Dir: dir, MaxMessage: DefaultMaxOutboxMessage, MaxTotal: DefaultMaxOutboxMessage}}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	items, err := d.decode()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Size != want {
		t.Fatalf("items %+v, want one of %d bytes", items, want)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("decoding a %d MiB item allocated %.0f KiB in all", size>>20, float64(alloc)/(1<<10))
	if alloc > 1<<20 {
		t.Fatalf("decoding a %d MiB item allocated %.1f MiB: the message is held in memory", size>>20, float64(alloc)/(1<<20))
	}
}

// FuzzOutboxDecode feeds any answer to the decoder: it never panics, never
// leaves a file behind that it did not return, never returns a message
// over the limit, and agrees with encoding/json on every answer
// encoding/json reads as well-formed.
func FuzzOutboxDecode(f *testing.F) {
	good := base64.StdEncoding.EncodeToString([]byte("Subject: hi\r\n\r\nhello\r\n"))
	for _, s := range []string{
		`{"items": []}`,
		`{"items": [{"id": "a", "account": "x@y.test", "raw": "` + good + `", "envelope": {"from": "x@y.test", "to": ["z@y.test"]}}]}`,
		`{"items": [{"id": "a\u00e9\ud83d\ude00", "raw": "QUJD\r\nREVG", "envelope": {"to": [], "from": ""}, "x": [1, {"y": null}]}]}`,
		`{"items": [{"id": "b", "raw": "QQ=="}, {"id": "c", "raw": 5}]}`,
		`{"items": null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		d := &outboxDecoder{s: newScanner(bytes.NewReader(body)), o: OutboxOptions{Dir: dir, MaxMessage: 1 << 16, MaxTotal: 1 << 18}}
		items, err := d.decode()
		if err != nil {
			for _, it := range items {
				if it.File != "" {
					os.Remove(it.File)
				}
			}
			items = nil
		}
		if l := leftovers(t, dir, items); len(l) != 0 {
			t.Fatalf("files left behind: %v", l)
		}
		for _, it := range items {
			if it.File == "" {
				continue
			}
			if fi, err := os.Stat(it.File); err != nil || fi.Size() != it.Size || it.Size > 1<<16 || it.Invalid != "" {
				t.Fatalf("item %+v: file %v, %v", it, fi, err)
			}
		}
		var ref struct {
			Items []struct {
				ID       string `json:"id"`
				Account  string `json:"account"`
				Raw      []byte `json:"raw"`
				Envelope struct {
					From string   `json:"from"`
					To   []string `json:"to"`
				} `json:"envelope"`
			} `json:"items"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		if dec.Decode(&ref) != nil || dec.InputOffset() != int64(len(bytes.TrimRight(body, " \t\r\n"))) || bytes.Contains(body, []byte(`\u`)) || !utf8.Valid(body) {
			return // not comparable: malformed, trailing data, or invalid UTF-8 (encoding/json replaces it, we keep it)
		}
		if err != nil {
			t.Fatalf("encoding/json reads it, the decoder says %v", err)
		}
		if len(items) != len(ref.Items) {
			return // some items had fields encoding/json tolerates and we do not (duplicates, empty raw)
		}
		for i, r := range ref.Items {
			it := items[i]
			if it.Invalid != "" {
				continue
			}
			if it.ID != r.ID || it.Account != r.Account || it.From != r.Envelope.From || fmt.Sprint(it.To) != fmt.Sprint(r.Envelope.To) {
				t.Fatalf("item %d: %+v, encoding/json: %+v", i, it, r)
			}
			if got := readFile(t, it.File); !bytes.Equal(got, r.Raw) {
				t.Fatalf("item %d: message %q, encoding/json: %q", i, got, r.Raw)
			}
		}
	})
}

// TestOutboxSmallFieldsAreBounded: an answer whose items hold as many
// recipients as allowed, each as long as allowed, makes the decoder keep
// no more than its budget for small fields: the items past it are not
// taken (the platform offers them again after their lease), those taken
// are whole, and no file is left behind. (Before: 1000 items of 1000
// addresses of 1 KiB were all kept, a gigabyte.)
func TestOutboxSmallFieldsAreBounded(t *testing.T) {
	const items, rcpts, budget = 40, maxRecipients, 4 << 20
	addr := strings.Repeat("a", maxField-len("@client.test")) + "@client.test"
	raw := base64.StdEncoding.EncodeToString([]byte("Subject: hi\r\n\r\nhello\r\n"))
	var b strings.Builder
	b.WriteString(`{"items": [`)
	for i := range items {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id": "ob_%d", "account": "alice@acme.test", "raw": %q, "envelope": {"from": "alice@acme.test", "to": [`, i, raw)
		for j := range rcpts {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"` + addr + `"`)
		}
		b.WriteString(`]}}`)
	}
	b.WriteString(`]}`)
	dir := t.TempDir()
	d := &outboxDecoder{s: newScanner(strings.NewReader(b.String())), o: OutboxOptions{Dir: dir, MaxMessage: 1 << 20, MaxTotal: 1 << 30}, maxFields: budget}
	got, err := d.decode()
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i, it := range got {
		if it.ID != fmt.Sprintf("ob_%d", i) || len(it.To) != rcpts || it.Invalid != "" || it.File == "" {
			t.Fatalf("item %d: id %q, %d recipients, invalid %q, file %q; want it whole", i, it.ID, len(it.To), it.Invalid, it.File)
		}
		kept += len(it.ID) + len(it.Account) + len(it.From)
		for _, a := range it.To {
			kept += len(a)
		}
	}
	if len(got) == 0 || len(got) >= items || kept > budget {
		t.Fatalf("%d of %d items taken, %d bytes of their fields kept; want some, not all, and at most %d bytes", len(got), items, kept, budget)
	}
	if l := leftovers(t, dir, got); len(l) != 0 {
		t.Fatalf("files left behind: %v", l)
	}
}
