package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{hex, hex, true},
		{strings.ToUpper(hex), hex, true},
		{colons, hex, true},
		{"SHA256 Fingerprint=" + colons, hex, true},
		{"  " + hex + "\n", hex, true},
		{hex[:62], "", false},
		{strings.Repeat("zz", 32), "", false},
		{"", "", false},
	} {
		got, err := ParseFingerprint(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestNormalizeServer(t *testing.T) {
	for in, want := range map[string]string{
		"Mail.Corp.TEST:993": "mail.corp.test:993", "mail.corp.test.:465": "mail.corp.test:465",
		"[::1]:143": "[::1]:143", "127.0.0.1:0993": "127.0.0.1:993",
		"mail.corp.test": "", ":993": "", "mail:0": "", "mail:70000": "", "mail:x": "",
	} {
		got, err := NormalizeServer(in)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("NormalizeServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseMinVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS12, "1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if got, err := ParseMinVersion(in); err != nil || got != want {
			t.Errorf("ParseMinVersion(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	if _, err := ParseMinVersion("1.4"); err == nil {
		t.Error("ParseMinVersion(1.4) accepted")
	}
}

// certOpts shape a test certificate.
type certOpts struct {
	cn       string
	dns      []string
	ips      []net.IP
	expired  bool
	issuer   *tls.Certificate // nil: self-signed
	isCA     bool
	notAfter time.Time
}

func makeCert(t *testing.T, o certOpts) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: o.cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: o.dns, IPAddresses: o.ips, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if o.isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	if o.expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-60*24*time.Hour), time.Now().Add(-30*24*time.Hour)
	}
	parent, signer := tmpl, any(key)
	if o.issuer != nil {
		parent, signer = o.issuer.Leaf, o.issuer.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	if o.issuer != nil {
		c.Certificate = append(c.Certificate, o.issuer.Certificate[0])
	}
	return c
}

// server answers TLS handshakes with cert on loopback; it records the
// server name each client asked for.
type server struct {
	addr string
	mu   sync.Mutex
	sni  []string
}

func serve(t *testing.T, cert tls.Certificate) *server {
	t.Helper()
	s := &server{}
	cfg := &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		s.mu.Lock()
		s.sni = append(s.sni, hi.ServerName)
		s.mu.Unlock()
		return nil, nil
	}, Certificates: []tls.Certificate{cert}}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	s.addr = l.Addr().String()
	return s
}

func (s *server) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...)
}

// at returns the server's address under another host name that resolves
// to the same loopback address.
func (s *server) at(host string) string {
	_, port, _ := net.SplitHostPort(s.addr)
	return net.JoinHostPort(host, port)
}

// dial handshakes with addr under p, once, as every caller does.
func dial(p *Policy, addr string) error {
	c, err := tls.Dial("tcp", addr, p.Config(addr))
	if err == nil {
		c.Close()
	}
	return err
}

func pin(addr string, c tls.Certificate) Pin {
	return Pin{Server: addr, Fingerprint: Fingerprint(c.Leaf)}
}

// The case: IMAP and SMTP with their own self-signed certificates,
// the SMTP one with only a common name (no SANs, as older corporate servers
// have), both pinned: every handshake with either succeeds, every time.
func TestTwoPinnedServersEachWithItsOwnCertificate(t *testing.T) {
	imapCert := makeCert(t, certOpts{cn: "imap.corp.test", dns: []string{"imap.corp.test"}})
	smtpCert := makeCert(t, certOpts{cn: "smtp.corp.test"}) // CN only
	imap, smtp := serve(t, imapCert), serve(t, smtpCert)
	p, err := NewPolicy("", []Pin{pin(imap.addr, imapCert), pin(smtp.addr, smtpCert)}, x509.NewCertPool())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := dial(p, imap.addr); err != nil {
			t.Fatalf("IMAP, dial %d: %v", i, err)
		}
		if err := dial(p, smtp.addr); err != nil {
			t.Fatalf("SMTP, dial %d: %v", i, err)
		}
	}
	for _, s := range []*server{imap, smtp} {
		if len(s.names()) != 20 {
			t.Fatalf("%s saw %d handshakes, want 20", s.addr, len(s.names()))
		}
		for _, n := range s.names() {
			if n != "" { // an IP address is never sent as SNI
				t.Fatalf("server name sent %q, want none for 127.0.0.1", n)
			}
		}
	}
	if c, pinned := p.Presented(smtp.addr); c == nil || !pinned || Fingerprint(c) != Fingerprint(smtpCert.Leaf) {
		t.Errorf("Presented(smtp) = %v, %v; want the pinned SMTP certificate", c, pinned)
	}
}

// A pin trusts its certificate for its server only: not the other
// server's certificate there, not its certificate on another server.
func TestPinIsForOneServerAndOneCertificate(t *testing.T) {
	a := makeCert(t, certOpts{cn: "a.corp.test", dns: []string{"a.corp.test"}})
	b := makeCert(t, certOpts{cn: "b.corp.test", dns: []string{"b.corp.test"}})
	sa, sb := serve(t, a), serve(t, b)
	var ue *UntrustedError

	onlyA, _ := NewPolicy("", []Pin{pin(sa.addr, a)}, x509.NewCertPool())
	if err := dial(onlyA, sb.addr); !errors.As(err, &ue) || ue.Server != sb.addr || ue.Fingerprint != Fingerprint(b.Leaf) {
		t.Fatalf("B with only A pinned: %v; want untrusted, naming B and its fingerprint", err)
	}
	// The server and the fingerprint to check, in words any front end can
	// show; how to pin (a flag, a button) is the front end's to add.
	if msg := ue.Error(); !strings.Contains(msg, sb.addr) || !strings.Contains(msg, Fingerprint(b.Leaf)) || strings.Contains(msg, "--") {
		t.Errorf("the error does not name B's server and fingerprint, or names a command-line flag: %v", ue)
	}
	if len(ue.Chain) != 1 || ue.Pin().Certificate == nil || ue.Pin().Certificate.Subject != "CN=b.corp.test" {
		t.Errorf("the error does not carry B's certificate: %+v", ue.Pin())
	}

	// A's certificate pinned for B's address: B presents its own, refused.
	crossed, _ := NewPolicy("", []Pin{{Server: sb.addr, Fingerprint: Fingerprint(a.Leaf)}}, x509.NewCertPool())
	if err := dial(crossed, sb.addr); !errors.As(err, &ue) {
		t.Fatalf("B with A's certificate pinned for B: %v; want untrusted", err)
	}
	// A's certificate, pinned for B's address, is not trusted on A's.
	if err := dial(crossed, sa.addr); !errors.As(err, &ue) {
		t.Fatalf("A with A's certificate pinned for B only: %v; want untrusted", err)
	}
	// The same address under another name is another server.
	if err := dial(onlyA, sa.at("localhost")); !errors.As(err, &ue) {
		t.Fatalf("A as localhost with A pinned as 127.0.0.1: %v; want untrusted", err)
	}
}

// A pinned certificate is not checked for its name or dates (it is shown
// instead); the same certificate unpinned fails for exactly those reasons.
func TestPinIgnoresNameAndDates(t *testing.T) {
	old := makeCert(t, certOpts{cn: "legacy", expired: true})
	s := serve(t, old)
	unpinned, _ := NewPolicy("", nil, x509.NewCertPool())
	var ue *UntrustedError
	if err := dial(unpinned, s.addr); !errors.As(err, &ue) {
		t.Fatalf("unpinned: %v; want untrusted", err)
	}
	pinned, _ := NewPolicy("", []Pin{{Server: strings.ToUpper(s.addr), Fingerprint: strings.ToUpper(Fingerprint(old.Leaf))}}, x509.NewCertPool())
	if err := dial(pinned, s.addr); err != nil {
		t.Fatalf("pinned expired CN-only certificate: %v", err)
	}
	info := Describe(old.Leaf).String()
	if !strings.Contains(info, "CN=legacy") || !strings.Contains(info, "(expired)") || !strings.Contains(info, "no names besides the subject") {
		t.Errorf("Describe = %q; want the subject, the missing names and the expiry", info)
	}
}

// A pinned self-signed IMAP certificate must not change how a publicly
// trusted (here: CA-issued) SMTP server is verified, nor the name sent.
func TestPinLeavesVerifiedServersAlone(t *testing.T) {
	ca := makeCert(t, certOpts{cn: "Test CA", isCA: true})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	public := makeCert(t, certOpts{cn: "localhost", dns: []string{"localhost"}, issuer: &ca})
	self := makeCert(t, certOpts{cn: "imap.corp.test", dns: []string{"imap.corp.test"}})
	smtp, imap := serve(t, public), serve(t, self)
	p, _ := NewPolicy("", []Pin{pin(imap.addr, self)}, roots)
	for i := 0; i < 20; i++ {
		if err := dial(p, imap.addr); err != nil {
			t.Fatalf("pinned IMAP, dial %d: %v", i, err)
		}
		if err := dial(p, smtp.at("localhost")); err != nil {
			t.Fatalf("CA-verified SMTP, dial %d: %v", i, err)
		}
	}
	for _, n := range smtp.names() {
		if n != "localhost" {
			t.Fatalf("SMTP saw server name %q, want localhost", n)
		}
	}
	if c, pinned := p.Presented(smtp.at("localhost")); c == nil || pinned {
		t.Errorf("Presented(smtp) = %v, pinned %v; want verified by the roots", c, pinned)
	}
	// Under a name the certificate does not carry, the CA-issued server is
	// refused for its name: verification is on.
	var ue *UntrustedError
	var hn x509.HostnameError
	if err := dial(p, smtp.addr); !errors.As(err, &ue) || !errors.As(err, &hn) {
		t.Fatalf("CA-issued certificate under a name it does not carry: %v; want a host name error", err)
	}
	// And a policy with no roots of ours refuses the test CA.
	system, _ := NewPolicy("", nil, x509.NewCertPool())
	if err := dial(system, smtp.at("localhost")); !errors.As(err, &ue) {
		t.Fatalf("CA unknown to the roots: %v; want untrusted", err)
	}
}

func TestConfigNeverRenamesTheServer(t *testing.T) {
	c := makeCert(t, certOpts{cn: "other.name", dns: []string{"other.name"}})
	p, _ := NewPolicy("", []Pin{{Server: "mail.corp.test:993", Fingerprint: Fingerprint(c.Leaf)}}, nil)
	for _, addr := range []string{"mail.corp.test:993", "mail.corp.test:465", "127.0.0.1:993"} {
		host, _, _ := net.SplitHostPort(addr)
		if got := p.Config(addr).ServerName; got != host {
			t.Errorf("Config(%q).ServerName = %q, want %q", addr, got, host)
		}
	}
}

func TestNewPolicyRefusesBadPins(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, p := range []Pin{{Server: "mail.corp.test", Fingerprint: fp}, {Server: "mail.corp.test:993", Fingerprint: "abc"}} {
		if _, err := NewPolicy("", []Pin{p}, nil); err == nil {
			t.Errorf("NewPolicy accepted %+v", p)
		}
	}
}

func TestMinVersionRefusesOlder(t *testing.T) {
	cert := makeCert(t, certOpts{cn: "old", dns: []string{"old"}})
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	addr := l.Addr().String()
	strict, _ := NewPolicy("", []Pin{pin(addr, cert)}, x509.NewCertPool())
	if err := dial(strict, addr); err == nil {
		t.Fatal("a TLS 1.1 server was accepted with the default minimum of 1.2")
	}
	legacy, _ := NewPolicy("1.0", []Pin{pin(addr, cert)}, x509.NewCertPool())
	if err := dial(legacy, addr); err != nil {
		t.Fatalf("with --min-tls 1.0: %v", err)
	}
}
