package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/inboxrelay/inboxrelay/sync/netdial"
)

// resolve runs the DNS step for host; it returns the addresses to try.
func (r *runner) resolve(ctx context.Context, target, host, server string) ([]string, bool) {
	s := r.begin(target, StepDNS, titles[StepDNS], server)
	if p := netdial.RouteFrom(ctx).For(host); p != nil {
		// The proxy resolves the server's name: look up the proxy's.
		s.fact("proxy", p.String())
		s.fact("resolved by", "the proxy (the name is sent to it as is)")
		ph := p.URL.Hostname()
		if net.ParseIP(ph) == nil {
			dctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
			defer cancel()
			addrs, err := r.o.Resolver.LookupIPAddr(dctx, ph)
			if err != nil {
				cause, summary, advice := classifyDNS(ph, err)
				r.fail(&s, cause, "the proxy's name: "+summary, "Check the proxy setting with IT; "+lowerFirst(advice))
				r.end(s)
				return nil, false
			}
			var out []string
			for _, a := range addrs {
				out = append(out, a.IP.String())
			}
			s.fact("proxy addresses", strings.Join(out, ", "))
		}
		s.Summary = fmt.Sprintf("%s is looked up by the proxy %s", host, p.Addr())
		return []string{host}, r.end(s)
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		s.fact("addresses", ip.String())
		s.Summary = fmt.Sprintf("%s is an IP address: nothing to look up", host)
		return []string{ip.String()}, r.end(s)
	}
	dctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	addrs, err := r.o.Resolver.LookupIPAddr(dctx, host)
	if err != nil {
		cause, summary, advice := classifyDNS(host, err)
		r.fail(&s, cause, summary, advice)
		r.end(s)
		return nil, false
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IP.String())
	}
	s.fact("addresses", strings.Join(out, ", "))
	s.Summary = fmt.Sprintf("%s resolves to %s", host, strings.Join(out, ", "))
	return out, r.end(s)
}

func classifyDNS(host string, err error) (cause, summary, advice string) {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return CauseDNSNotFound, fmt.Sprintf("the name %s does not exist in DNS", host),
			"Check the spelling of the server name; your IT team or mail provider can tell you the right one."
	}
	if errors.As(err, &de) && de.IsTimeout || errors.Is(err, context.DeadlineExceeded) {
		return CauseDNSFailed, fmt.Sprintf("no DNS server answered for %s in time", host),
			"Check that this computer is online (and on the VPN if the server is internal)."
	}
	return CauseDNSFailed, fmt.Sprintf("looking up %s failed: %v", host, err),
		"Check that this computer is online (and on the VPN if the server is internal)."
}

// dial opens a connection as the engine would (netdial.Dial: directly or
// through ctx's proxy), its connect bounded by the step timeout.
func (r *runner) dial(ctx context.Context, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	return netdial.Dial(dctx, addr)
}

// connect runs the TCP step: it tries each address in turn and returns the
// first connection that opens, and the address to dial again for the
// same server. Through a proxy, addrs is the server's name and the
// connection is the proxy's tunnel.
func (r *runner) connect(ctx context.Context, target, server string, addrs []string, port int, service string) (net.Conn, string, bool) {
	s := r.begin(target, StepTCP, titles[StepTCP], server)
	if len(addrs) > 0 {
		if p := netdial.RouteFrom(ctx).For(addrs[0]); p != nil {
			s.fact("proxy", p.String())
			addr := net.JoinHostPort(addrs[0], strconv.Itoa(port))
			c, err := r.dial(ctx, addr)
			if err == nil {
				s.fact("connected to", c.RemoteAddr().String()+" (the proxy)")
				s.fact("from", c.LocalAddr().String())
				s.Summary = fmt.Sprintf("the proxy %s opened a connection to %s", p.Addr(), addr)
				r.end(s)
				return c, addr, true
			}
			cause, summary, advice := classifyProxy(p, addr, service, err)
			r.fail(&s, cause, summary, advice)
			r.end(s)
			return nil, "", false
		}
	}
	var firstErr error
	var firstAddr string
	for _, a := range addrs {
		addr := net.JoinHostPort(a, strconv.Itoa(port))
		c, err := r.dial(ctx, addr)
		if err == nil {
			s.fact("connected to", c.RemoteAddr().String())
			s.fact("from", c.LocalAddr().String())
			s.Summary = fmt.Sprintf("port %d answers on %s", port, a)
			r.end(s)
			return c, addr, true
		}
		s.fact("failed "+a, tcpReason(err))
		if firstErr == nil {
			firstErr, firstAddr = err, a
		}
	}
	cause, summary, advice := classifyTCP(firstAddr, port, service, r.o.StepTimeout.String(), firstErr)
	r.fail(&s, cause, summary, advice)
	r.end(s)
	return nil, "", false
}

// classifyProxy explains a connection through a proxy that failed: the
// proxy cannot be reached, or it refused or could not open the tunnel.
func classifyProxy(p *netdial.Proxy, addr, service string, err error) (cause, summary, advice string) {
	var pe *netdial.ProxyError
	switch {
	case errors.As(err, &pe) && pe.Status == 407:
		return CauseProxyRefused, pe.Error(), "Store the proxy's login with `inboxrelay proxy login`, or ask IT which login the proxy expects."
	case errors.As(err, &pe) && pe.Status != 0:
		return CauseProxyRefused, pe.Error(), fmt.Sprintf("Ask IT to let the proxy connect to %s (%s).", addr, service)
	case errors.As(err, &pe) && pe.Unreachable:
		return CauseProxyFailed, pe.Error(), "Check the proxy setting with IT (the policy's proxy, or HTTPS_PROXY): this computer must be able to reach it."
	case errors.As(err, &pe):
		return CauseProxyFailed, pe.Error(), fmt.Sprintf("Ask IT whether the proxy may connect to %s (%s), and check the server address.", addr, service)
	}
	return CauseProxyFailed, fmt.Sprintf("the connection to %s through the proxy %s failed: %v", addr, p, err), "Check the proxy setting with IT."
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func tcpReason(err error) string {
	switch cause, _, _ := classifyTCP("", 0, "", "", err); cause {
	case CauseTCPRefused:
		return "refused"
	case CauseTCPTimeout:
		return "timed out"
	case CauseTCPUnreachable:
		return "unreachable"
	}
	return err.Error()
}

// classifyTCP tells refused, timed out and unreachable apart.
func classifyTCP(addr string, port int, service, timeout string, err error) (cause, summary, advice string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseTCPRefused, fmt.Sprintf("%s refused the connection to port %d: nothing listens there", addr, port),
			fmt.Sprintf("Check the port number (%s usually uses %s) and that the mail server is running.", service, usualPorts(service))
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return CauseTCPUnreachable, fmt.Sprintf("%s is unreachable from this computer (no route to it)", addr),
			"Check the network connection, and connect to the VPN if the server is only reachable from the office network."
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CauseTCPTimeout, fmt.Sprintf("%s did not answer on port %d within %s", addr, port, timeout),
			fmt.Sprintf("A firewall on your network is probably dropping connections to port %d: ask IT to allow outbound connections to it.", port)
	}
	return CauseTCPFailed, fmt.Sprintf("connecting to %s port %d failed: %v", addr, port, err),
		"Check the network connection and the server address."
}

func usualPorts(service string) string {
	if service == "SMTP" {
		return "465 (TLS) or 587 (STARTTLS)"
	}
	return "993 (TLS) or 143 (STARTTLS)"
}
