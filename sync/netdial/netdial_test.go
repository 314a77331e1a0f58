package netdial_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/servertest/proxytest"
)

// greeter is a server that speaks first, as an IMAP server does before
// STARTTLS, then echoes one line.
func greeter(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				io.WriteString(c, "* OK greeting\r\n")
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					io.WriteString(c, "echo "+line)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// exchange reads the greeting, sends a line and reads its echo.
func exchange(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read the greeting: %v", err)
	}
	io.WriteString(c, "a1 NOOP\r\n")
	echo, err := br.ReadString('\n')
	if err != nil || echo != "echo a1 NOOP\r\n" {
		t.Fatalf("echo %q, %v", echo, err)
	}
	return greeting
}

// gated starts a greeter behind a gate that admits only from; it returns
// the gate's address under the name "localhost", so that the proxy, not
// the connector, resolves it.
func gated(t *testing.T, from net.IP) (*proxytest.Gate, string) {
	g := proxytest.StartGate(t, "127.0.0.1", greeter(t), from)
	_, port, _ := net.SplitHostPort(g.Addr)
	return g, net.JoinHostPort("localhost", port)
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := netdial.ParseProxy(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDirectRouteIsRefusedByTheGate(t *testing.T) {
	g, addr := gated(t, proxytest.FromHTTP)
	// The gate cuts the connection at once: the dial or the first read
	// fails.
	if c, err := netdial.Dial(context.Background(), addr); err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			t.Fatal("a direct connection got through the gate: the proxy tests below would prove nothing")
		}
	}
	if len(g.Refused()) != 1 || g.Passed() != 0 {
		t.Fatalf("gate: refused %v, passed %d", g.Refused(), g.Passed())
	}
}

func TestDialThroughCONNECT(t *testing.T) {
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{})
	g, addr := gated(t, proxytest.FromHTTP)
	ctx := netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, p.URL), Source: "test"}})
	c, err := netdial.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c)
	if tun := p.Tunnels(); len(tun) != 1 || tun[0] != addr {
		t.Fatalf("the proxy tunnelled %v, want [%s] (the name, unresolved)", tun, addr)
	}
	if g.Passed() != 1 || len(g.Refused()) != 0 {
		t.Fatalf("gate: passed %d, refused %v", g.Passed(), g.Refused())
	}
}

func TestDialThroughCONNECTWithLogin(t *testing.T) {
	const user, password = "alice", "pr0xy-Secret-9"
	p := proxytest.StartHTTP(t, proxytest.HTTPOptions{User: user, Password: password})
	_, addr := gated(t, proxytest.FromHTTP)

	// Without the login: a *ProxyError saying the proxy wants one.
	ctx := netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, p.URL), Source: "the policy"}})
	_, err := netdial.Dial(ctx, addr)
	var pe *netdial.ProxyError
	if !errors.As(err, &pe) || pe.Status != 407 || !strings.Contains(err.Error(), "asks for a login") || !strings.Contains(err.Error(), "from the policy") {
		t.Fatalf("no login: %v; want a *ProxyError with status 407 naming the proxy and its source", err)
	}

	// A wrong password: refused again, and the password is not in the error.
	wrong := mustParse(t, proxytest.ProxyURL(p.URL, user, "not-"+password))
	ctx = netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: wrong}})
	if _, err = netdial.Dial(ctx, addr); !errors.As(err, &pe) || pe.Status != 407 || strings.Contains(err.Error(), "not-"+password) {
		t.Fatalf("wrong login: %v", err)
	}

	good := mustParse(t, proxytest.ProxyURL(p.URL, user, password))
	ctx = netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: good}})
	c, err := netdial.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c)
	if p.Refusals() != 2 || len(p.Tunnels()) != 1 {
		t.Fatalf("refusals %d tunnels %v", p.Refusals(), p.Tunnels())
	}
	if s := (&netdial.Proxy{URL: good}).String(); strings.Contains(s, password) || !strings.Contains(s, "alice:***@") {
		t.Fatalf("Proxy.String() = %q", s)
	}
}

func TestDialThroughSOCKS5(t *testing.T) {
	s := proxytest.StartSOCKS(t)
	g, addr := gated(t, proxytest.FromSOCKS)
	ctx := netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, s.URL)}})
	c, err := netdial.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c)
	if g.Passed() != 1 || len(g.Refused()) != 0 {
		t.Fatalf("gate: passed %d, refused %v", g.Passed(), g.Refused())
	}

	// A target where nothing listens: the proxy's failure, named as such.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	if _, err := netdial.Dial(ctx, closed); !isProxyError(err) || !strings.Contains(err.Error(), s.Addr) {
		t.Fatalf("closed target through SOCKS5: %v; want a *ProxyError naming the proxy", err)
	}
}

func isProxyError(err error) bool {
	var pe *netdial.ProxyError
	return errors.As(err, &pe)
}

func TestProxyDownIsAProxyError(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	for _, scheme := range []string{"http", "socks5"} {
		ctx := netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, scheme+"://"+dead), Source: "HTTPS_PROXY"}})
		_, err := netdial.Dial(ctx, "mail.example.com:993")
		if !isProxyError(err) || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "mail.example.com:993") {
			t.Errorf("%s proxy down: %v; want a *ProxyError naming the proxy and the target", scheme, err)
		}
	}
}

// A proxy that accepts the connection and never answers: the dial ends
// with the context, never hangs, and says the context ended.
func TestSilentProxyEndsWithTheContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, scheme := range []string{"http", "socks5"} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		ctx = netdial.WithRoute(ctx, netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, scheme+"://"+ln.Addr().String())}})
		_, err := netdial.Dial(ctx, "mail.example.com:993")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: a silent proxy: %v; want the context's end", scheme, err)
		}
	}
}

// A proxy that answers CONNECT with a line that never ends: the read is
// bounded.
func TestHugeProxyAnswerIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Junk: ")
		junk := []byte(strings.Repeat("x", 4096))
		for i := 0; i < 1024; i++ { // 4 MiB at most
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	ctx := netdial.WithRoute(context.Background(), netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, "http://"+ln.Addr().String())}})
	if _, err := netdial.Dial(ctx, "mail.example.com:993"); !isProxyError(err) {
		t.Fatalf("an endless header: %v; want a *ProxyError", err)
	}
}

func TestBypassGoesDirect(t *testing.T) {
	target := greeter(t)
	_, port, _ := net.SplitHostPort(target)
	// A proxy that is not there: only a direct connection can work.
	r := netdial.Route{Proxy: &netdial.Proxy{URL: mustParse(t, "http://127.0.0.1:1")}, Bypass: []string{".example.org", "127.0.0.0/8"}}
	c, err := netdial.Dial(netdial.WithRoute(context.Background(), r), net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("a bypassed host went to the proxy: %v", err)
	}
	exchange(t, c)
	for host, direct := range map[string]bool{"mail.example.org": true, "example.org": true, "mail.example.com": false, "10.0.0.1": false, "127.0.0.5": true} {
		if got := r.For(host) == nil; got != direct {
			t.Errorf("For(%s) direct=%v, want %v", host, got, direct)
		}
	}
	if d := r.Describe("mail.example.com"); !strings.Contains(d, "through the proxy http://127.0.0.1:1") {
		t.Errorf("Describe = %q", d)
	}
}

func TestParseProxy(t *testing.T) {
	for in, want := range map[string]string{
		"proxy.corp:3128":               "http://proxy.corp:3128",
		"http://proxy.corp:3128/":       "http://proxy.corp:3128",
		"socks5://10.0.0.1:1080":        "socks5://10.0.0.1:1080",
		"https://u:p@proxy.corp":        "https://u:p@proxy.corp",
		" http://[::1]:8080 ":           "http://[::1]:8080",
		"ftp://proxy.corp:21":           "error",
		"http://:3128":                  "error",
		"http://proxy.corp:99999":       "error",
		"http://proxy.corp:3128/a/path": "error",
		"":                              "error",
	} {
		u, err := netdial.ParseProxy(in)
		got := "error"
		if err == nil {
			got = u.String()
		}
		if got != want {
			t.Errorf("ParseProxy(%q) = %s (%v), want %s", in, got, err, want)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("the error shows a password: %v", err)
		}
	}
	if _, err := netdial.ParseProxy("ftp://alice:hunter22@proxy"); err == nil || strings.Contains(err.Error(), "hunter22") {
		t.Errorf("ParseProxy error with a password: %v", err)
	}
}
