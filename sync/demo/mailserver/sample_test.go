package mailserver

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

func TestSampleIsDeterministic(t *testing.T) {
	gen := func(seed uint64) ([]sample, []sample, sample) {
		g := newGenerator(seed, testEmail)
		in, sent := g.mailbox(testNow)
		return in, sent, g.fresh(testNow.Add(time.Hour))
	}
	in1, sent1, new1 := gen(7)
	in2, sent2, new2 := gen(7)
	same := func(a, b []sample) bool {
		return slices.EqualFunc(a, b, func(x, y sample) bool {
			return bytes.Equal(x.raw, y.raw) && x.received.Equal(y.received) && slices.Equal(x.flags, y.flags)
		})
	}
	if !same(in1, in2) || !same(sent1, sent2) || !bytes.Equal(new1.raw, new2.raw) {
		t.Fatal("the same seed and clock gave different mail")
	}
	in3, _, _ := gen(8)
	if same(in1, in3) {
		t.Fatal("seeds 7 and 8 gave the same INBOX")
	}
}

// part is one leaf of a message's MIME tree, decoded.
type part struct {
	mediaType   string
	params      map[string]string
	disposition string
	body        []byte
}

// leaves walks a message's MIME tree, decoding transfer encodings.
func leaves(t *testing.T, h mail.Header, body io.Reader) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		var out []part
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", mt, err)
			}
			out = append(out, leaves(t, mail.Header(p.Header), p)...)
		}
		return out
	}
	switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "", "7bit":
	default:
		t.Fatalf("unexpected Content-Transfer-Encoding %q", cte)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("decode %s: %v", mt, err)
	}
	disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	return []part{{mediaType: mt, params: params, disposition: disp, body: b}}
}

func TestSampleMailbox(t *testing.T) {
	for _, seed := range []uint64{0, 1, 2, 3, 42} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := newGenerator(seed, testEmail)
			inbox, sent := g.mailbox(testNow)
			if len(inbox) != SampleInbox || len(sent) != SampleReplies {
				t.Fatalf("%d INBOX and %d Sent messages, want %d and %d", len(inbox), len(sent), SampleInbox, SampleReplies)
			}

			ids := map[string]string{} // Message-ID -> mailbox
			headers := map[string][]mail.Header{}
			shapes := map[string]int{}
			for _, box := range []struct {
				name string
				msgs []sample
			}{{Inbox, inbox}, {Sent, sent}} {
				var prev time.Time
				for _, s := range box.msgs {
					if s.received.Before(prev) || s.received.After(testNow) {
						t.Fatalf("%s: INTERNALDATE %v out of order or after now", box.name, s.received)
					}
					prev = s.received
					h := checkMessage(t, s.raw, testNow)
					if date, _ := h.Date(); s.received.Before(date) {
						t.Fatalf("%s: received %v before its Date %v", box.name, s.received, date)
					}
					id := h.Get("Message-ID")
					if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") || !strings.Contains(id, "@") {
						t.Fatalf("malformed Message-ID %q", id)
					}
					if ids[id] != "" {
						t.Fatalf("Message-ID %s used twice", id)
					}
					ids[id] = box.name
					headers[box.name] = append(headers[box.name], h)
					countShapes(t, s.raw, shapes)
				}
			}

			for _, h := range headers[Sent] {
				from, _ := h.AddressList("From")
				if from[0].Address != testEmail || ids[h.Get("In-Reply-To")] != Inbox {
					t.Fatalf("Sent message from %v in reply to %q: want the user answering an INBOX message", from, h.Get("In-Reply-To"))
				}
			}
			followUps := 0
			for _, h := range headers[Inbox] {
				from, _ := h.AddressList("From")
				to, _ := h.AddressList("To")
				if strings.HasSuffix(from[0].Address, "@demo.inboxrelay.test") || to[0].Address != testEmail {
					t.Fatalf("INBOX message from %v to %v: want a customer writing to the user", from, to)
				}
				if r := h.Get("In-Reply-To"); r != "" {
					if ids[r] != Sent {
						t.Fatalf("INBOX follow-up in reply to %q, not a Sent message", r)
					}
					followUps++
				}
			}
			if followUps != SampleFollowUps {
				t.Fatalf("%d follow-ups, want %d", followUps, SampleFollowUps)
			}

			answered, unseenRecent := 0, 0
			for _, s := range inbox {
				if slices.Contains(s.flags, imap.FlagAnswered) {
					answered++
				}
				if !slices.Contains(s.flags, imap.FlagSeen) && s.received.After(testNow.Add(-72*time.Hour)) {
					unseenRecent++
				}
			}
			if answered != SampleReplies || unseenRecent == 0 {
				t.Fatalf("%d answered and %d recent unread messages, want %d and some", answered, unseenRecent, SampleReplies)
			}

			for _, shape := range []string{"text/plain only", "multipart/alternative", "attachment text/csv",
				"attachment text/calendar", "attachment image/png", "RFC 2047 subject", "non-ASCII body"} {
				if shapes[shape] == 0 {
					t.Errorf("no message of shape %q (got %v)", shape, shapes)
				}
			}
		})
	}
}

// countShapes records the shapes raw has and checks its parts decode.
func countShapes(t *testing.T, raw []byte, shapes map[string]int) {
	t.Helper()
	m, _ := mail.ReadMessage(bytes.NewReader(raw))
	mt, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt == "text/plain" {
		shapes["text/plain only"]++
	}
	if strings.Contains(string(raw), "multipart/alternative") {
		shapes["multipart/alternative"]++
	}
	subject := m.Header.Get("Subject")
	if strings.Contains(subject, "=?") {
		dec, err := new(mime.WordDecoder).DecodeHeader(subject)
		if err != nil {
			t.Fatalf("Subject %q does not decode: %v", subject, err)
		}
		if !isASCII(dec) {
			shapes["RFC 2047 subject"]++
		}
	}
	for _, p := range leaves(t, m.Header, m.Body) {
		switch {
		case p.disposition == "attachment":
			shapes["attachment "+p.mediaType]++
			checkAttachment(t, p)
		case p.mediaType == "text/plain" || p.mediaType == "text/html":
			if p.params["charset"] != "utf-8" || !utf8.Valid(p.body) {
				t.Fatalf("%s part is not valid UTF-8 labelled as such (%v)", p.mediaType, p.params)
			}
			if !isASCII(string(p.body)) {
				shapes["non-ASCII body"]++
			}
		default:
			t.Fatalf("unexpected inline part %s", p.mediaType)
		}
	}
}

func checkAttachment(t *testing.T, p part) {
	t.Helper()
	if p.params["name"] == "" {
		t.Fatalf("attachment %s without a name", p.mediaType)
	}
	switch p.mediaType {
	case "text/csv":
		rows, err := csv.NewReader(bytes.NewReader(p.body)).ReadAll()
		if err != nil || len(rows) < 2 || rows[0][0] != "email" {
			t.Fatalf("CSV attachment: %d rows, %v", len(rows), err)
		}
	case "text/calendar":
		s := string(p.body)
		if !strings.HasPrefix(s, "BEGIN:VCALENDAR\r\n") || !strings.Contains(s, "DTSTART:") || !strings.HasSuffix(s, "END:VCALENDAR\r\n") {
			t.Fatalf("calendar attachment:\n%s", s)
		}
	case "image/png":
		if _, err := png.Decode(bytes.NewReader(p.body)); err != nil {
			t.Fatalf("PNG attachment: %v", err)
		}
	default:
		t.Fatalf("unexpected attachment type %s", p.mediaType)
	}
}

func TestWrapAndHeaderFolding(t *testing.T) {
	long := strings.Repeat("word ", 30)
	for _, line := range strings.Split(wrap(long), "\n") {
		if n := utf8.RuneCountInString(line); n > 72 {
			t.Fatalf("wrapped line of %d characters: %q", n, line)
		}
	}
	if got := wrap("> " + long); got != "> "+long {
		t.Fatalf("wrap changed a quoted line: %q", got)
	}
	var b bytes.Buffer
	header(&b, "References", strings.Repeat("<0123456789abcdef.01234567@mail.example.test> ", 4))
	unfolded := strings.ReplaceAll(strings.TrimSuffix(b.String(), "\r\n"), "\r\n ", " ")
	if unfolded != "References: "+strings.Repeat("<0123456789abcdef.01234567@mail.example.test> ", 4) {
		t.Fatalf("folding changed the value: %q", b.String())
	}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Fatalf("folded line of %d characters: %q", len(line), line)
		}
	}
}
