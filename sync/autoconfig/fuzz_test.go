package autoconfig

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzParseConfig: whatever document an autoconfig server sends, parsing
// it neither panics nor yields a plaintext server or a bad port.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(sampleXML))
	f.Add([]byte(`<clientConfig><emailProvider><incomingServer type="imap"><hostname>h</hostname><port>99999</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig>&a;&a;</clientConfig>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := parseConfig(bytes.NewReader(doc), "alice@acme.test")
		if err != nil {
			return
		}
		for _, s := range []struct {
			host string
			port int
			sec  string
		}{{r.IMAP.Host, r.IMAP.Port, string(r.IMAP.Security)}, {r.SMTP.Host, r.SMTP.Port, string(r.SMTP.Security)}} {
			if s.host == "" || s.port < 1 || s.port > 65535 || (s.sec != "tls" && s.sec != "starttls") {
				t.Fatalf("parsed an unusable server %+v from %q", s, doc)
			}
		}
	})
}

// streamDNS is a DNS "server" behind a stream connection (RFC 1035
// 4.2.2 framing) that answers every query with its header and question
// and then the fuzzer's bytes as the answer section.
type streamDNS struct {
	net.Conn // nil: only the methods below are used
	count    uint8
	answers  []byte
	out      bytes.Buffer
}

func (c *streamDNS) Write(p []byte) (int, error) {
	if len(p) < 2+12 {
		return 0, errors.New("short query")
	}
	q := p[2:]
	// The question: a name of labels (queries are not compressed), then
	// type and class. An EDNS0 record may follow: it is not echoed.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += 1 + int(q[i])
	}
	qlen := i + 1 + 4 - 12
	if 12+qlen > len(q) {
		return 0, errors.New("bad question")
	}
	msg := make([]byte, 12, 12+qlen+len(c.answers))
	copy(msg, q[:2])                            // ID
	binary.BigEndian.PutUint16(msg[2:], 0x8180) // response, recursion desired and available, no error
	binary.BigEndian.PutUint16(msg[4:], 1)      // one question
	binary.BigEndian.PutUint16(msg[6:], uint16(c.count))
	msg = append(msg, q[12:12+qlen]...)
	msg = append(msg, c.answers...)
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(msg)))
	c.out.Write(l[:])
	c.out.Write(msg)
	return len(p), nil
}

func (c *streamDNS) Read(p []byte) (int, error)       { return c.out.Read(p) }
func (c *streamDNS) Close() error                     { return nil }
func (c *streamDNS) SetDeadline(time.Time) error      { return nil }
func (c *streamDNS) SetReadDeadline(time.Time) error  { return nil }
func (c *streamDNS) SetWriteDeadline(time.Time) error { return nil }
func (c *streamDNS) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *streamDNS) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// srvAnswers is a seed: count SRV records, compressed against the question.
func srvAnswers(recs ...dnsmessage.SRVResource) (uint8, []byte) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true})
	b.StartAnswers()
	for _, r := range recs {
		// 0xc00c points at the question's name.
		b.SRVResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("x."), Class: dnsmessage.ClassINET, TTL: 60}, r)
	}
	msg, _ := b.Finish()
	ans := msg[12:]
	// Swap the owner name "x." (3 bytes) for a pointer to the question.
	var out []byte
	for len(ans) > 0 {
		out = append(out, 0xc0, 0x0c)
		ans = ans[3:]
		rdlen := int(binary.BigEndian.Uint16(ans[8:10]))
		out = append(out, ans[:10+rdlen]...)
		ans = ans[10+rdlen:]
	}
	return uint8(len(recs)), out
}

// FuzzSRVAnswer: whatever a DNS server answers to the SRV queries, Find
// neither panics nor hangs, and every server it returns has a host, a
// port and a TLS mode, with the hosts outside the domain marked.
func FuzzSRVAnswer(f *testing.F) {
	n, ans := srvAnswers(dnsmessage.SRVResource{Priority: 10, Weight: 5, Port: 993, Target: dnsmessage.MustNewName("mail.acme.test.")},
		dnsmessage.SRVResource{Priority: 20, Port: 465, Target: dnsmessage.MustNewName("mail.evil.test.")})
	f.Add(n, ans)
	n, ans = srvAnswers(dnsmessage.SRVResource{Port: 0, Target: dnsmessage.MustNewName(".")})
	f.Add(n, ans)
	f.Add(uint8(200), []byte{0xc0, 0x0c, 0, 33, 0, 1})
	f.Fuzz(func(t *testing.T, count uint8, answers []byte) {
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return &streamDNS{count: count, answers: answers}, nil
		}}
		fd := &Finder{Resolver: res, AutoconfigURLs: noAutoconfig, Timeout: time.Second}
		r, err := fd.srv(context.Background(), "acme.test")
		if err != nil {
			return
		}
		for _, s := range []struct {
			host string
			port int
		}{{r.IMAP.Host, r.IMAP.Port}, {r.SMTP.Host, r.SMTP.Port}} {
			if s.host == "" || s.port < 1 || s.port > 65535 {
				t.Fatalf("unusable server %+v", s)
			}
			if !InDomain(s.host, "acme.test") && !strings.Contains(strings.Join(r.Outside, " "), s.host) {
				t.Fatalf("%s is outside acme.test and not marked: %+v", s.host, r)
			}
		}
	})
}

// The fuzzer's DNS stand-in answers as a real server would: with the
// seed, the highest-priority record wins and a foreign host is marked.
func TestStreamDNSAnswers(t *testing.T) {
	n, ans := srvAnswers(dnsmessage.SRVResource{Priority: 20, Port: 993, Target: dnsmessage.MustNewName("mail.acme.test.")},
		dnsmessage.SRVResource{Priority: 10, Port: 465, Target: dnsmessage.MustNewName("mail.evil.test.")})
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return &streamDNS{count: n, answers: ans}, nil
	}}
	r, err := (&Finder{Resolver: res}).srv(context.Background(), "acme.test")
	if err != nil || r.IMAP.Host != "mail.evil.test" || r.IMAP.Port != 465 || len(r.Outside) != 1 {
		t.Fatalf("srv = %+v, %v; want mail.evil.test:465, marked outside", r, err)
	}
}
