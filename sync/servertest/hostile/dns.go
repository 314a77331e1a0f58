package hostile

import (
	"context"
	"net"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// SRV is one SRV record StartDNS serves: Target is a host name ("." for
// "not offered").
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// StartDNS starts a real DNS server on loopback (UDP) that answers SRV
// queries from records (keyed by the full query name, such as
// "_imaps._tcp.acme.test."), every other question with NXDOMAIN, and
// returns a resolver that asks only it. It is what plain DNS is to a
// client: unauthenticated, so a test can make it name any server.
func StartDNS(t testing.TB, records map[string][]SRV) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			rrs, ok := records[strings.ToLower(q.Name.String())]
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
			if !ok || q.Type != dnsmessage.TypeSRV {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if rh.RCode == dnsmessage.RCodeSuccess {
				for _, r := range rrs {
					target, err := dnsmessage.NewName(r.Target)
					if err != nil {
						continue
					}
					b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
						dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: target})
				}
			}
			out, err := b.Finish()
			if err == nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}
