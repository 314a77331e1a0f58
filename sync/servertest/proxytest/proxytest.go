// Package proxytest starts the proxies a corporate network puts between the
// connector and the world, for tests: an HTTP proxy with CONNECT
// (github.com/elazarl/goproxy), optionally asking for a login or
// re-signing TLS as an inspecting proxy does; a SOCKS5 proxy (Dante,
// Debian's dante-server); and a Gate, a port in front of a server that lets
// in only connections coming from one address, so a test can prove that
// traffic went through a proxy because the direct route is refused.
//
// Each proxy leaves for its targets from a loopback address of its own
// (FromHTTP, FromSOCKS): a Gate that allows only that address admits
// nothing but that proxy's tunnels.
package proxytest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/inboxrelay/inboxrelay/sync/servertest/procgroup"
)

// The loopback addresses the proxies leave from.
var (
	FromHTTP  = net.IPv4(127, 0, 0, 7)
	FromSOCKS = net.IPv4(127, 0, 0, 8)
)

// HTTPOptions shape an HTTP proxy.
type HTTPOptions struct {
	// User and Password, when User is set, are the login the proxy asks
	// for (HTTP 407 without it or with another).
	User, Password string
	// Inspect makes the proxy re-sign every TLS connection with CA, as a
	// TLS-inspecting proxy does, instead of tunnelling it.
	Inspect *tls.Certificate
}

// HTTPProxy is a running HTTP proxy.
type HTTPProxy struct {
	// Addr is host:port, URL its http:// URL (without the login).
	Addr string
	URL  string

	mu       sync.Mutex
	tunnels  []string // targets of the CONNECTs let through
	refusals int      // CONNECTs refused for a missing or wrong login
}

// StartHTTP starts an HTTP proxy on 127.0.0.1 that tunnels CONNECT
// requests (and forwards plain HTTP), leaving from FromHTTP. It stops when
// the test ends.
func StartHTTP(t testing.TB, o HTTPOptions) *HTTPProxy {
	t.Helper()
	p := &HTTPProxy{}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	out := &net.Dialer{LocalAddr: &net.TCPAddr{IP: FromHTTP}, Timeout: 10 * time.Second}
	gp.ConnectDial = func(network, addr string) (net.Conn, error) { return out.Dial(network, addr) }
	gp.Tr = &http.Transport{DialContext: out.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the proxy's own upstream: a test proxy, as goproxy's default
	var mitm *goproxy.ConnectAction
	if o.Inspect != nil {
		mitm = &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: goproxy.TLSConfigFromCA(o.Inspect)}
	}
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		if o.User != "" && !authorized(ctx.Req, o.User, o.Password) {
			p.mu.Lock()
			p.refusals++
			p.mu.Unlock()
			return &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: func(req *http.Request, client net.Conn, ctx *goproxy.ProxyCtx) {
				io.WriteString(client, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
				client.Close()
			}}, host
		}
		p.mu.Lock()
		p.tunnels = append(p.tunnels, host)
		p.mu.Unlock()
		if mitm != nil {
			return mitm, host
		}
		return goproxy.OkConnect, host
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gp, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.Addr = ln.Addr().String()
	p.URL = "http://" + p.Addr
	return p
}

func authorized(r *http.Request, user, password string) bool {
	h := r.Header.Get("Proxy-Authorization")
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
	return err == nil && strings.HasPrefix(h, "Basic ") && string(b) == user+":"+password
}

// Tunnels returns the host:port of every CONNECT the proxy let through, in
// order.
func (p *HTTPProxy) Tunnels() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tunnels...)
}

// Refusals counts the CONNECTs refused for a missing or wrong login.
func (p *HTTPProxy) Refusals() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refusals
}

// SOCKSProxy is a running Dante SOCKS5 proxy.
type SOCKSProxy struct {
	// Addr is host:port; URL its socks5:// URL.
	Addr string
	URL  string
	log  string
}

// StartSOCKS starts Dante (danted, from Debian's dante-server) as a SOCKS5
// proxy without authentication on 127.0.0.1, leaving from FromSOCKS. It
// fails the test when danted is not installed (make test installs it) and
// stops when the test ends.
func StartSOCKS(t testing.TB) *SOCKSProxy {
	t.Helper()
	bin, err := exec.LookPath("danted")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/danted"); err != nil {
			t.Fatal("danted is not installed (Debian's dante-server; make test installs it)")
		}
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %d
external: %s
socksmethod: none
clientmethod: none
%sclient pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
`, port, FromSOCKS, users())
		cf := filepath.Join(dir, "danted.conf")
		if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, "danted.log")
		lf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-f", cf, "-N", "1", "-p", filepath.Join(dir, "danted.pid"))
		cmd.Stdout, cmd.Stderr = lf, lf
		g, err := procgroup.Start(cmd, func() { lf.Close() })
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = waitListening(addr, g.Done(), 10*time.Second); lastErr == nil {
			t.Cleanup(g.Stop)
			s := &SOCKSProxy{Addr: addr, URL: "socks5://" + addr, log: logPath}
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(logPath)
					t.Logf("danted log:\n%s", lastLines(string(b), 30))
				}
			})
			return s
		}
		g.Stop()
		b, _ := os.ReadFile(logPath)
		lastErr = fmt.Errorf("%v; log:\n%s", lastErr, lastLines(string(b), 20))
	}
	t.Fatalf("danted did not start: %v", lastErr)
	return nil
}

// users are Dante's user lines: as root it must drop privileges.
func users() string {
	if os.Geteuid() == 0 {
		return "user.privileged: root\nuser.unprivileged: nobody\n"
	}
	return ""
}

func waitListening(addr string, dead <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-dead:
			return fmt.Errorf("danted exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v", addr, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Gate is a port in front of a server that forwards the connections coming
// from one address and cuts every other one at once (a TCP reset), as a
// firewall that admits only the proxy would.
type Gate struct {
	// Addr is the gate's host:port: point the client here.
	Addr string

	mu      sync.Mutex
	passed  int
	refused []string // remote addresses cut
}

// StartGate listens on host (":0" port picked) and forwards the connections
// from allow to target. It stops when the test ends.
func StartGate(t testing.TB, host, target string, allow net.IP) *Gate {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{Addr: ln.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ra := c.RemoteAddr().(*net.TCPAddr)
			if !ra.IP.Equal(allow) {
				g.mu.Lock()
				g.refused = append(g.refused, ra.String())
				g.mu.Unlock()
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				continue
			}
			g.mu.Lock()
			g.passed++
			g.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				forward(ctx, c, target)
			}()
		}
	}()
	return g
}

func forward(ctx context.Context, c net.Conn, target string) {
	defer c.Close()
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

// Passed counts the connections let through.
func (g *Gate) Passed() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.passed
}

// Refused returns the remote addresses of the connections cut.
func (g *Gate) Refused() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.refused...)
}

// ProxyURL returns u with a login, for a proxy started with one.
func ProxyURL(raw, user, password string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
