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

// serve answers one TLS handshake with cert on loopback and returns the
// address.
func serve(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
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
	return l.Addr().String()
}

func selfSigned(t *testing.T, names ...string) (tls.Certificate, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mail.corp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, Fingerprint(leaf)
}

// dial handshakes with addr as the engine does: once, and once more when
// Retry says so.
func dial(p *Policy, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		c, err := tls.Dial("tcp", addr, p.Config(host))
		if err == nil {
			c.Close()
			return nil
		}
		retry, rerr := p.Retry(host, err)
		if !retry || attempt > 0 {
			return rerr
		}
	}
}

func TestPinnedSelfSigned(t *testing.T) {
	// The certificate names another host than the one dialled: a pin
	// trusts the certificate itself, whatever names it carries.
	cert, fp := selfSigned(t, "mail.corp.test")
	addr := serve(t, cert)

	none, _ := NewPolicy("", nil, x509.NewCertPool())
	err := dial(none, addr)
	var ue *UntrustedError
	if !errors.As(err, &ue) || ue.Fingerprint != fp || !strings.Contains(err.Error(), "--trust-fingerprint "+fp) {
		t.Fatalf("unpinned: %v; want an UntrustedError naming %s", err, fp)
	}

	pinned, _ := NewPolicy("", []string{strings.ToUpper(fp)}, x509.NewCertPool())
	for i := 0; i < 2; i++ { // the second dial uses the learned certificate at once
		if err := dial(pinned, addr); err != nil {
			t.Fatalf("pinned, dial %d: %v", i, err)
		}
	}

	other, _ := NewPolicy("", []string{strings.Repeat("00", 32)}, x509.NewCertPool())
	if err := dial(other, addr); !errors.As(err, &ue) {
		t.Fatalf("pinned to another fingerprint: %v; want untrusted", err)
	}
}

func TestMinVersionRefusesOlder(t *testing.T) {
	cert, fp := selfSigned(t, "mail.corp.test")
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
	strict, _ := NewPolicy("", []string{fp}, x509.NewCertPool())
	if err := dial(strict, l.Addr().String()); err == nil {
		t.Fatal("a TLS 1.1 server was accepted with the default minimum of 1.2")
	}
	legacy, _ := NewPolicy("1.0", []string{fp}, x509.NewCertPool())
	if err := dial(legacy, l.Addr().String()); err != nil {
		t.Fatalf("with --min-tls 1.0: %v", err)
	}
}
