package bench

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Class is one band of message sizes in a Mix: Weight parts in a hundred
// of the messages have a size between Min and Max bytes, log-uniformly
// distributed (small sizes of a band are as common as large ones on a
// log scale, as in real mailboxes).
type Class struct {
	Weight   int
	Min, Max int
}

// Mix is a kind of mailbox: how many messages and which sizes.
type Mix struct {
	Name    string
	Count   int
	Classes []Class
}

// The mixes of issue 12.
var (
	// Small is 10 000 messages of 2–20 KB: the per-message costs dominate.
	Small = Mix{Name: "small", Count: 10000, Classes: []Class{{100, 2 << 10, 20 << 10}}}
	// Realistic is 5 000 messages: 70 % of 2–20 KB, 25 % of 50–500 KB,
	// 5 % of 1–5 MB: the bytes dominate.
	Realistic = Mix{Name: "realistic", Count: 5000, Classes: []Class{
		{70, 2 << 10, 20 << 10}, {25, 50 << 10, 500 << 10}, {5, 1 << 20, 5 << 20},
	}}
)

// WithCount returns the mix with another number of messages.
func (m Mix) WithCount(n int) Mix { m.Count = n; return m }

// Generator makes the messages of a mix, each one a function of the seed
// and its index alone, so a mailbox is the same on every machine and its
// messages can be made in any order or in parallel.
type Generator struct {
	Mix     Mix
	Seed    uint64
	Account string    // the mailbox's own address, in To (or From)
	Now     time.Time // dates go back up to a year from it
}

// Message is one generated message.
type Message struct {
	Index int
	Date  time.Time // its Date header and its INTERNALDATE
	Seen  bool
	Body  []byte // RFC 5322, CRLF line ends
	Class int    // index into Mix.Classes
}

// Message returns message i (0 ≤ i < Mix.Count).
func (g *Generator) Message(i int) Message {
	r := rand.New(rand.NewPCG(g.Seed, uint64(i)))
	class := g.pickClass(r)
	c := g.Mix.Classes[class]
	size := logUniform(r, c.Min, c.Max)
	// Older messages have lower indexes: UIDs then follow dates, as after
	// years of delivery.
	age := time.Duration(float64(g.Mix.Count-i) / float64(g.Mix.Count) * float64(365*24*time.Hour))
	date := g.Now.Add(-age).Add(-time.Duration(r.IntN(3600)) * time.Second).Truncate(time.Second)
	mb := &msgBuilder{r: r, seed: g.Seed ^ uint64(i)*0x9e3779b97f4a7c15}
	body := mb.build(g.Account, i, date, size, class > 0)
	return Message{Index: i, Date: date, Seen: r.IntN(10) < 8, Body: body, Class: class}
}

func (g *Generator) pickClass(r *rand.Rand) int {
	total := 0
	for _, c := range g.Mix.Classes {
		total += c.Weight
	}
	n := r.IntN(total)
	for i, c := range g.Mix.Classes {
		if n < c.Weight {
			return i
		}
		n -= c.Weight
	}
	return len(g.Mix.Classes) - 1
}

func logUniform(r *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	l, h := math.Log(float64(lo)), math.Log(float64(hi))
	return int(math.Exp(l + r.Float64()*(h-l)))
}

// msgBuilder writes one message.
type msgBuilder struct {
	r    *rand.Rand
	seed uint64 // for the attachments' bytes
	b    bytes.Buffer
}

func (m *msgBuilder) line(format string, args ...any) {
	fmt.Fprintf(&m.b, format, args...)
	m.b.WriteString("\r\n")
}

// build writes a message of about size bytes. Messages of the bigger
// classes carry attachments that make up most of their size.
func (m *msgBuilder) build(account string, i int, date time.Time, size int, attach bool) []byte {
	r := m.r
	m.b.Grow(size + 4096)
	from := person(r)
	outgoing := r.IntN(8) == 0 // the account's own replies, as in a shared INBOX
	sender, rcpt := from, fmt.Sprintf("Alice Martin <%s>", account)
	if outgoing {
		sender, rcpt = rcpt, from
	}
	m.headers(i, date, sender, rcpt)
	boundary := func(tag string) string { return fmt.Sprintf("=_%s_%08x%08x", tag, r.Uint32(), r.Uint32()) }

	if !attach {
		if r.IntN(2) == 0 {
			m.line("Content-Type: text/plain; charset=utf-8")
			m.line("Content-Transfer-Encoding: quoted-printable")
			m.line("")
			m.textQP(size - m.b.Len())
			return m.b.Bytes()
		}
		bd := boundary("alt")
		m.line("Content-Type: multipart/alternative; boundary=\"%s\"", bd)
		m.line("")
		m.alternative(bd, size-m.b.Len())
		return m.b.Bytes()
	}
	mixed := boundary("mix")
	m.line("Content-Type: multipart/mixed; boundary=\"%s\"", mixed)
	m.line("")
	m.line("This is a multi-part message in MIME format.")
	m.line("--%s", mixed)
	alt := boundary("alt")
	m.line("Content-Type: multipart/alternative; boundary=\"%s\"", alt)
	m.line("")
	m.alternative(alt, 2000+r.IntN(6000))
	parts := 1 + r.IntN(3)
	for p := 0; p < parts; p++ {
		left := size - m.b.Len() - 200*(parts-p)
		n := left / (parts - p)
		if p < parts-1 {
			n = left * (1 + r.IntN(parts)) / (2 * parts)
		}
		m.line("--%s", mixed)
		m.attachment(max(n, 256), p)
	}
	m.line("--%s--", mixed)
	return m.b.Bytes()
}

func (m *msgBuilder) headers(i int, date time.Time, from, to string) {
	r := m.r
	hops := 2 + r.IntN(3)
	t := date
	for h := 0; h < hops; h++ {
		m.line("Received: from %s (%s [%d.%d.%d.%d])", host(r), host(r), 10+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		m.line("\tby %s with ESMTPS id %08X%04X", host(r), r.Uint32(), r.IntN(1<<16))
		m.line("\tfor <alice@acme.test>; %s", t.Format(time.RFC1123Z))
		t = t.Add(-time.Duration(r.IntN(4000)) * time.Millisecond)
	}
	if r.IntN(3) > 0 {
		m.line("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=selector%d;", domain(r), 1+r.IntN(2))
		m.line("\th=from:to:subject:date:message-id:mime-version:content-type;")
		m.line("\tbh=%s;", base64.StdEncoding.EncodeToString(randBytes(r, 32)))
		sig := base64.StdEncoding.EncodeToString(randBytes(r, 256))
		m.line("\tb=%s", sig[:70])
		for s := sig[70:]; s != ""; {
			n := min(len(s), 72)
			m.line("\t %s", s[:n])
			s = s[n:]
		}
	}
	m.line("From: %s", from)
	m.line("To: %s", to)
	if r.IntN(3) == 0 {
		m.line("Cc: %s, %s", person(r), person(r))
	}
	subject := sentence(r, 3+r.IntN(8))
	reply := r.IntN(2) == 0
	if reply {
		subject = "Re: " + subject
	}
	// Mail clients write non-ASCII headers as RFC 2047 encoded-words; a
	// few senders put raw UTF-8 there, which an IMAP server then sends as
	// a literal.
	if r.IntN(100) != 0 {
		subject = mime.BEncoding.Encode("utf-8", subject)
	}
	m.line("Subject: %s", subject)
	m.line("Date: %s", date.Format(time.RFC1123Z))
	m.line("Message-ID: <%d.%08x@%s>", i, r.Uint32(), domain(r))
	if reply {
		ref := fmt.Sprintf("<%08x.%d@%s>", r.Uint32(), r.IntN(100000), domain(r))
		m.line("In-Reply-To: %s", ref)
		m.line("References: <%08x@%s> %s", r.Uint32(), domain(r), ref)
	}
	if r.IntN(4) == 0 {
		m.line("List-Unsubscribe: <https://%s/unsubscribe/%08x>", domain(r), r.Uint32())
	}
	if r.IntN(2) == 0 {
		m.line("X-Mailer: %s", []string{"Microsoft Outlook 16.0", "Apple Mail (2.3731)", "Thunderbird 115.4", "Gmail"}[r.IntN(4)])
	}
	m.line("MIME-Version: 1.0")
}

// alternative writes a text/plain and a text/html part of about size bytes
// in total, then the closing boundary.
func (m *msgBuilder) alternative(boundary string, size int) {
	start := m.b.Len()
	m.line("--%s", boundary)
	m.line("Content-Type: text/plain; charset=utf-8")
	m.line("Content-Transfer-Encoding: quoted-printable")
	m.line("")
	m.textQP(size * 2 / 5)
	m.line("--%s", boundary)
	m.line("Content-Type: text/html; charset=utf-8")
	m.line("Content-Transfer-Encoding: quoted-printable")
	m.line("")
	m.html(size - (m.b.Len() - start) - len(boundary) - 8)
	m.line("--%s--", boundary)
}

// textQP writes about n bytes of quoted-printable prose.
func (m *msgBuilder) textQP(n int) {
	w := quotedprintable.NewWriter(&m.b)
	end := m.b.Len() + max(n, 64)
	for m.b.Len() < end {
		fmt.Fprintf(w, "%s\n", paragraph(m.r))
		if m.r.IntN(6) == 0 {
			fmt.Fprintf(w, "> %s\n> %s\n", sentence(m.r, 12), sentence(m.r, 9))
		}
		w.Write([]byte("\n"))
	}
	w.Close()
	m.b.WriteString("\r\n")
}

func (m *msgBuilder) html(n int) {
	w := quotedprintable.NewWriter(&m.b)
	end := m.b.Len() + max(n, 64)
	fmt.Fprintf(w, "<html><head><meta charset=\"utf-8\"></head><body style=\"font-family: Calibri, sans-serif\">\n")
	for m.b.Len() < end-32 {
		fmt.Fprintf(w, "<p>%s</p>\n", paragraph(m.r))
	}
	fmt.Fprintf(w, "</body></html>\n")
	w.Close()
	m.b.WriteString("\r\n")
}

var attachmentKinds = []struct{ typ, ext string }{
	{"application/pdf", "pdf"}, {"image/jpeg", "jpg"}, {"image/png", "png"},
	{"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"},
	{"application/zip", "zip"},
}

// attachment writes a base64 part of about n bytes holding incompressible
// bytes, as the compressed formats people attach are.
func (m *msgBuilder) attachment(n, p int) {
	k := attachmentKinds[m.r.IntN(len(attachmentKinds))]
	name := fmt.Sprintf("%s-%d.%s", words[m.r.IntN(len(words))], 1+m.r.IntN(999), k.ext)
	m.line("Content-Type: %s; name=\"%s\"", k.typ, name)
	m.line("Content-Disposition: attachment; filename=\"%s\"", name)
	m.line("Content-Transfer-Encoding: base64")
	m.line("")
	raw := (n - 200) / 78 * 57 // 76 characters and CRLF carry 57 bytes
	src := rand.NewChaCha8(seed32(m.seed, uint64(p)))
	var chunk [57]byte
	var enc [76]byte
	for raw > 0 {
		k := min(raw, len(chunk))
		src.Read(chunk[:k])
		base64.StdEncoding.Encode(enc[:], chunk[:k])
		m.b.Write(enc[:base64.StdEncoding.EncodedLen(k)])
		m.b.WriteString("\r\n")
		raw -= k
	}
}

func seed32(a, b uint64) [32]byte {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i] = byte(a >> (8 * i))
		s[8+i] = byte(b >> (8 * i))
		s[16+i] = byte((a ^ 0xa5a5a5a5a5a5a5a5) >> (8 * i))
		s[24+i] = byte((b + 0x5bd1e995) >> (8 * i))
	}
	return s
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var words = strings.Fields(`the customer renewal contract meeting quarter onboarding invoice support
ticket account team update review proposal budget timeline schedule call follow up thanks regards
please find attached report usage licence seats pricing discount approval legal security questionnaire
integration migration data export dashboard training session feedback survey churn risk expansion
health score adoption feature request roadmap release notes outage incident postmortem escalation
we you they our your next week monday tuesday wednesday thursday friday morning afternoon today
tomorrow could would should will can let know if have any questions about this that with from for
on in at to of and or but so as also just quick note regarding agreed discussed mentioned shared
sent received signed draft final version copy spreadsheet slides deck agenda minutes action items
owner deadline priority status blocked done pending open closed résumé café naïve Zürich Müller
façade coöperation déjà über`)

func sentence(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	s := b.String()
	if s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func paragraph(r *rand.Rand) string {
	var b strings.Builder
	for s := 2 + r.IntN(5); s > 0; s-- {
		b.WriteString(sentence(r, 6+r.IntN(14)))
		b.WriteString(". ")
	}
	return b.String()
}

var firstNames = strings.Fields("Anna Ben Chloé David Emma Farid Grace Hugo Ines Jonas Kenji Lea Marco Nadia Oscar Priya Quentin Rosa Sven Tara")
var lastNames = strings.Fields("Schmidt Dubois Rossi García Smith Tanaka Novak Jensen Costa Müller Kowalski Silva Brown Martin Lee")

func person(r *rand.Rand) string {
	f, l := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	name := mime.QEncoding.Encode("utf-8", f+" "+l) // unchanged when ASCII
	return fmt.Sprintf("%s <%s.%s@%s>", name, strings.ToLower(asciiOnly(f)), strings.ToLower(asciiOnly(l)), domain(r))
}

func asciiOnly(s string) string {
	return strings.Map(func(c rune) rune {
		if c > 127 {
			return 'e'
		}
		return c
	}, s)
}

var domains = strings.Fields("client.test customer.example globex.example initech.example umbrella.example hooli.example stark.example wayne.example")

func domain(r *rand.Rand) string { return domains[r.IntN(len(domains))] }

func host(r *rand.Rand) string {
	return fmt.Sprintf("mx%d.%s", 1+r.IntN(9), domain(r))
}
