package bench

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var genNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func TestMessagesAreDeterministic(t *testing.T) {
	g := &Generator{Mix: Realistic, Seed: 7, Account: "alice@acme.test", Now: genNow}
	for _, i := range []int{0, 1, 17, 4999} {
		a, b := g.Message(i), g.Message(i)
		if !bytes.Equal(a.Body, b.Body) || !a.Date.Equal(b.Date) || a.Seen != b.Seen {
			t.Fatalf("message %d differs between two calls", i)
		}
	}
	other := &Generator{Mix: Realistic, Seed: 8, Account: "alice@acme.test", Now: genNow}
	if bytes.Equal(g.Message(3).Body, other.Message(3).Body) {
		t.Fatal("another seed gives the same message")
	}
	if bytes.Equal(g.Message(3).Body, g.Message(4).Body) {
		t.Fatal("two messages are the same")
	}
}

// TestMessagesAreMail parses every message of a sample as a mail reader
// would: headers, MIME structure, transfer encodings, CRLF line ends.
func TestMessagesAreMail(t *testing.T) {
	g := &Generator{Mix: Realistic.WithCount(150), Seed: 1, Account: "alice@acme.test", Now: genNow}
	for i := 0; i < g.Mix.Count; i++ {
		m := g.Message(i)
		if bytes.Contains(bytes.ReplaceAll(m.Body, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("message %d has a bare LF", i)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Body))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version"} {
			if msg.Header.Get(h) == "" {
				t.Fatalf("message %d has no %s", i, h)
			}
		}
		d, err := msg.Header.Date()
		if err != nil || !d.Equal(m.Date) {
			t.Fatalf("message %d: Date %v (%v), want %v", i, d, err, m.Date)
		}
		if m.Date.After(genNow) || m.Date.Before(genNow.AddDate(-1, 0, -1)) {
			t.Fatalf("message %d dated %v, outside the year before %v", i, m.Date, genNow)
		}
		parts := walk(t, i, msg.Header.Get("Content-Type"), msg.Body)
		if m.Class > 0 && !strings.Contains(strings.Join(parts, " "), "attachment") {
			t.Fatalf("message %d of class %d has no attachment: %v", i, m.Class, parts)
		}
	}
}

// walk reads every leaf part, decoding it, and returns their types and
// dispositions.
func walk(t *testing.T, i int, ctype string, body io.Reader) []string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Fatalf("message %d: Content-Type %q: %v", i, ctype, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		if _, err := io.ReadAll(body); err != nil {
			t.Fatalf("message %d: read %s: %v", i, mt, err)
		}
		return []string{mt}
	}
	var out []string
	r := multipart.NewReader(body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("message %d: %s: %v", i, mt, err)
		}
		sub := walk(t, i, p.Header.Get("Content-Type"), decoder(t, i, p))
		if strings.HasPrefix(p.Header.Get("Content-Disposition"), "attachment") {
			sub = append(sub, "attachment")
		}
		out = append(out, sub...)
	}
	if len(out) < 2 {
		t.Fatalf("message %d: %s with %d parts", i, mt, len(out))
	}
	return out
}

func decoder(t *testing.T, i int, p *multipart.Part) io.Reader {
	switch enc := p.Header.Get("Content-Transfer-Encoding"); enc {
	case "base64":
		return base64Reader(p)
	case "quoted-printable":
		return qpReader(p)
	case "":
		return p
	default:
		t.Fatalf("message %d: unexpected transfer encoding %q", i, enc)
		return nil
	}
}

// TestSizesFollowTheMix checks the size bands and their shares.
func TestSizesFollowTheMix(t *testing.T) {
	g := &Generator{Mix: Realistic.WithCount(800), Seed: 3, Account: "alice@acme.test", Now: genNow}
	counts := make([]int, len(g.Mix.Classes))
	for i := 0; i < g.Mix.Count; i++ {
		m := g.Message(i)
		c := g.Mix.Classes[m.Class]
		// Headers and MIME structure may take a small message a little
		// past its band, never by more than a few KB.
		if n := len(m.Body); n < c.Min-1024 || n > c.Max+8192 {
			t.Fatalf("message %d of class %d is %d bytes, outside %d–%d", i, m.Class, n, c.Min, c.Max)
		}
		counts[m.Class]++
	}
	for i, c := range g.Mix.Classes {
		share := float64(counts[i]) * 100 / float64(g.Mix.Count)
		if share < float64(c.Weight)-4 || share > float64(c.Weight)+4 {
			t.Fatalf("class %d holds %.1f %% of the messages, want about %d %%", i, share, c.Weight)
		}
	}
}

func TestSeedWritesAMaildir(t *testing.T) {
	dir := t.TempDir()
	g := &Generator{Mix: Small.WithCount(20), Seed: 5, Account: "alice@acme.test", Now: genNow}
	s, err := Seed(dir, g)
	if err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(filepath.Join(dir, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Messages != 20 || len(files) != 20 || len(s.Keys) != 20 {
		t.Fatalf("seeded %d messages, %d keys, %d files; want 20 of each", s.Messages, len(s.Keys), len(files))
	}
	var total int64
	for _, f := range files {
		fi, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		if !strings.Contains(f.Name(), ",S="+itoa(fi.Size())+",W="+itoa(fi.Size())+":2,") {
			t.Fatalf("file %s does not carry its size %d", f.Name(), fi.Size())
		}
		if fi.ModTime().After(genNow) || fi.ModTime().Before(genNow.AddDate(-1, 0, -1)) {
			t.Fatalf("file %s has the modification time %v, not its message's date", f.Name(), fi.ModTime())
		}
	}
	if total != s.Bytes {
		t.Fatalf("files hold %d bytes, Seed says %d", total, s.Bytes)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("%d files left in tmp/", len(left))
	}
}
