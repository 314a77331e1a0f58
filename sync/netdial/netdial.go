// Package netdial is the one way the connector opens a TCP connection to a
// mail server: directly, or through an HTTP CONNECT or a SOCKS5 proxy, as
// the Route in the context says.
//
// sync/imapsync, sync/smtpsend and sync/doctor call Dial in the one place
// each of them dials; the connection wrappers (deadlines, size limits) wrap
// what it returns. The front end (sync/connector) puts the Route derived
// from the policy and the settings into the context with WithRoute; a
// context without one dials directly.
//
// Through a proxy the host name is handed to the proxy unresolved (CONNECT
// host:port; SOCKS5 with a domain-name address), so a machine that cannot
// resolve the mail server's name itself still reaches it, exactly as the
// proxy sees fit.
package netdial

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// DialTimeout bounds a TCP connect, to the server or to the proxy.
const DialTimeout = 30 * time.Second

// HandshakeTimeout bounds the exchange with a proxy (CONNECT and its
// answer, or the SOCKS5 negotiation) once its TCP connection is open.
const HandshakeTimeout = 30 * time.Second

// maxProxyAnswer bounds the CONNECT answer (status line and headers) read
// from a proxy: a proxy may lie too.
const maxProxyAnswer = 64 << 10

// Proxy is a proxy to go through, and where that choice came from.
type Proxy struct {
	// URL is http://, https:// (an HTTP proxy reached over TLS) or
	// socks5:// (socks5h:// too: SOCKS5 always resolves names on the proxy
	// here). URL.User, when set, holds the proxy's credentials: in memory
	// only, never printed (see String).
	URL *url.URL
	// Source says, for people, where the proxy was configured: "the policy
	// /etc/inboxrelay/policy.toml", "HTTPS_PROXY", "GNOME's proxy settings"…
	Source string
}

// String is the proxy URL without its password, then its source: what the
// doctor, the log and `inboxrelay policy` print.
func (p *Proxy) String() string {
	if p == nil || p.URL == nil {
		return "none (direct connection)"
	}
	s := Redact(p.URL)
	if p.Source != "" {
		s += " (from " + p.Source + ")"
	}
	return s
}

// Addr is the proxy's own host:port, the default port of its scheme filled
// in.
func (p *Proxy) Addr() string {
	port := p.URL.Port()
	if port == "" {
		port = defaultPort(p.URL.Scheme)
	}
	return net.JoinHostPort(p.URL.Hostname(), port)
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https":
		return "443"
	case "socks5", "socks5h":
		return "1080"
	}
	return "80"
}

// Redact returns u as a string with its password replaced by "***" (the
// user name is kept: it tells IT whose login the proxy saw).
func Redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	s := c.String()
	if u.User == nil {
		return s
	}
	login := url.User(u.User.Username()).String()
	if _, has := u.User.Password(); has {
		login += ":***"
	}
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i+3] + login + "@" + s[i+3:]
	}
	return s
}

// ParseProxy parses a proxy URL as a policy, a setting or an environment
// variable gives it: "http://host:port", "https://…", "socks5://…", or a
// bare "host:port" (HTTP, as curl reads it). The error says what is wrong
// in one sentence.
func ParseProxy(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("the proxy is empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("the proxy %q is not a URL such as http://proxy.example.com:3128", redactString(s))
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("the proxy %q has scheme %q: use http://, https:// or socks5://", Redact(u), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("the proxy %q names no host", Redact(u))
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("the proxy %q has port %q: use a number from 1 to 65535", Redact(u), p)
		}
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("the proxy %q has a path: give only scheme://host:port", Redact(u))
	}
	u.Path = ""
	return u, nil
}

// redactString hides the password of something that did not even parse.
func redactString(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			return s[:i+3] + "***" + s[at:]
		}
		return "***" + s[at:]
	}
	return s
}

// Route is how connections to mail servers are made. The zero Route dials
// directly.
type Route struct {
	// Proxy, when not nil, carries every connection.
	Proxy *Proxy
	// Bypass lists hosts reached directly despite Proxy, in NO_PROXY's
	// syntax: "mail.acme.com", ".acme.com" or "acme.com" (the domain and
	// its subdomains), an IP address, a CIDR range, "*" (everything).
	Bypass []string
	// Forward, when set, opens the TCP connections (to the server, or to
	// the proxy) instead of a net.Dialer: tests use it to pick the source
	// address.
	Forward func(ctx context.Context, network, addr string) (net.Conn, error)
}

// For returns the proxy that carries a connection to host, nil for a
// direct connection.
func (r Route) For(host string) *Proxy {
	if r.Proxy == nil || bypassed(host, r.Bypass) {
		return nil
	}
	return r.Proxy
}

// Describe says, for people, how a connection to host is made: "directly"
// or "through the proxy socks5://proxy.corp:1080 (from the policy …)".
func (r Route) Describe(host string) string {
	if p := r.For(host); p != nil {
		return "through the proxy " + p.String()
	}
	return "directly"
}

// bypassed reports whether host matches an entry of list (NO_PROXY rules).
func bypassed(host string, list []string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	ip := net.ParseIP(host)
	for _, e := range list {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			return true
		}
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h
		}
		e = strings.Trim(e, "[]")
		if _, cidr, err := net.ParseCIDR(e); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return true
			}
			continue
		}
		if eip := net.ParseIP(e); eip != nil {
			if ip != nil && eip.Equal(ip) {
				return true
			}
			continue
		}
		e = strings.TrimPrefix(strings.TrimPrefix(e, "*"), ".")
		if host == e || strings.HasSuffix(host, "."+e) {
			return true
		}
	}
	return false
}

type routeKey struct{}

// WithRoute returns a context whose Dial calls follow r.
func WithRoute(ctx context.Context, r Route) context.Context {
	return context.WithValue(ctx, routeKey{}, r)
}

// RouteFrom returns the Route in ctx; the zero Route (direct) when none.
func RouteFrom(ctx context.Context) Route {
	r, _ := ctx.Value(routeKey{}).(Route)
	return r
}

// ProxyError is a failure of the proxy itself: it cannot be reached, it
// refused the tunnel, it wants a login (Status 407), or it answered
// nonsense. Its message names the proxy (without password) and says what
// to do, naming no command: a front end adds how to store a login.
type ProxyError struct {
	Proxy  string // the proxy, redacted, with its source
	Target string // host:port the tunnel was for
	Status int    // the HTTP status of a refused CONNECT; 0 otherwise
	// Unreachable is true when the proxy itself could not be reached.
	Unreachable bool
	Err         error // the underlying failure, if any
}

// Error says what the proxy did, for which target, and what to do.
func (e *ProxyError) Error() string {
	switch {
	case e.Unreachable:
		return fmt.Sprintf("cannot reach the proxy %s (for %s): %v", e.Proxy, e.Target, e.Err)
	case e.Status == http.StatusProxyAuthRequired:
		return fmt.Sprintf("the proxy %s asks for a login to reach %s (HTTP 407): give Inbox Relay the proxy's user name and password, or ask IT which login it expects", e.Proxy, e.Target)
	case e.Status != 0:
		return fmt.Sprintf("the proxy %s refused the connection to %s (HTTP %d %s): ask IT to allow it", e.Proxy, e.Target, e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("the proxy %s could not connect to %s: %v", e.Proxy, e.Target, e.Err)
}

// Unwrap returns the underlying failure.
func (e *ProxyError) Unwrap() error { return e.Err }

// Timeout reports whether the proxy or the server did not answer in time,
// as net.Error does.
func (e *ProxyError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Temporary is always true: the proxy may let the connection through
// later. (net.Error's deprecated method.)
func (e *ProxyError) Temporary() bool { return true }

// Dial opens a TCP connection to addr (host:port) as ctx's Route says:
// directly, or through the route's proxy. The connect is bounded by
// DialTimeout and the exchange with a proxy by HandshakeTimeout, both also
// by ctx; the returned connection has no deadline set. A failure of the
// proxy is a *ProxyError; a direct failure is the net.Dialer's error.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	r := RouteFrom(ctx)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	forward := r.Forward
	if forward == nil {
		d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
		forward = d.DialContext
	}
	p := r.For(host)
	if p == nil {
		return forward(ctx, "tcp", addr)
	}
	var c net.Conn
	switch p.URL.Scheme {
	case "socks5", "socks5h":
		c, err = dialSOCKS5(ctx, p, addr, forward)
	default:
		c, err = dialCONNECT(ctx, p, addr, forward)
	}
	if err != nil {
		var pe *ProxyError
		if errors.As(err, &pe) || ended(ctx) != nil {
			return nil, err
		}
		return nil, &ProxyError{Proxy: p.String(), Target: addr, Err: err}
	}
	return c, nil
}

// ended returns ctx's error when ctx has ended or its deadline has
// passed, nil otherwise. A failure after ctx's end is ctx's doing, and
// says so rather than "i/o timeout" as if the proxy were silent; the
// deadline is looked at too because a socket deadline set from it (x/net's
// SOCKS5 client sets one) can fire a moment before ctx reports its end.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

type forwardDialer func(ctx context.Context, network, addr string) (net.Conn, error)

func (f forwardDialer) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f forwardDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

func dialSOCKS5(ctx context.Context, p *Proxy, addr string, forward forwardDialer) (net.Conn, error) {
	var auth *proxy.Auth
	if p.URL.User != nil {
		pw, _ := p.URL.User.Password()
		auth = &proxy.Auth{User: p.URL.User.Username(), Password: pw}
	}
	var reachErr error
	reach := forwardDialer(func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := forward(ctx, network, a)
		reachErr = err
		return c, err
	})
	d, err := proxy.SOCKS5("tcp", p.Addr(), auth, reach)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, DialTimeout+HandshakeTimeout)
	defer cancel()
	// x/net's SOCKS5 client sends the host name as is (ATYP domain name),
	// and bounds its negotiation by the context's deadline.
	c, err := d.(proxy.ContextDialer).DialContext(hctx, "tcp", addr)
	if err != nil {
		if err := ended(ctx); err != nil {
			return nil, err
		}
		if reachErr != nil {
			return nil, &ProxyError{Proxy: p.String(), Target: addr, Unreachable: true, Err: reachErr}
		}
		// Its errors repeat the proxy's address and the target:
		// keep only the reason.
		return nil, &ProxyError{Proxy: p.String(), Target: addr, Err: socksReason(err)}
	}
	return c, nil
}

// socksReason trims x/net's "socks connect tcp A->B: " prefix.
func socksReason(err error) error {
	s := err.Error()
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "socks ") && i >= 0 {
		return &reasonError{msg: s[i+2:], err: err}
	}
	return err
}

type reasonError struct {
	msg string
	err error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }

func dialCONNECT(ctx context.Context, p *Proxy, addr string, forward forwardDialer) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	c, err := forward(dctx, "tcp", p.Addr())
	cancel()
	if err != nil {
		if err := ended(ctx); err != nil {
			return nil, err
		}
		return nil, &ProxyError{Proxy: p.String(), Target: addr, Unreachable: true, Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.SetDeadline(time.Now().Add(HandshakeTimeout))
	if err := connectTunnel(ctx, p, addr, &c); err != nil {
		if err := ended(ctx); err != nil {
			return nil, err
		}
		return nil, err
	}
	if !stop() {
		// ctx ended while the tunnel opened: its deadline may be on c.
		return nil, ctx.Err()
	}
	c.SetDeadline(time.Time{})
	ok = true
	return c, nil
}

// connectTunnel asks the proxy on *c for a tunnel to addr (after TLS with
// it for an https:// proxy); *c becomes the tunnel.
func connectTunnel(ctx context.Context, p *Proxy, addr string, cp *net.Conn) error {
	c := *cp
	if p.URL.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: p.URL.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with the proxy: %w", err)
		}
		c, *cp = tc, tc
	}
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if p.URL.User != nil {
		pw, _ := p.URL.User.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(p.URL.User.Username()+":"+pw)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return err
	}
	br := bufio.NewReaderSize(io.LimitReader(c, maxProxyAnswer), 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = errors.New("the proxy closed the connection without answering the CONNECT request")
		}
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &ProxyError{Proxy: p.String(), Target: addr, Status: resp.StatusCode}
	}
	if n := br.Buffered(); n > 0 {
		// The server spoke first (a STARTTLS greeting) and its bytes came
		// with the proxy's answer.
		head, _ := br.Peek(n)
		*cp = &prefixConn{Conn: c, head: append([]byte(nil), head...)}
	}
	return nil
}

// prefixConn returns head before reading on from Conn.
type prefixConn struct {
	net.Conn
	head []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
