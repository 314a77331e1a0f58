// Package hostile starts, for tests, the servers a connector meets on bad
// days: a closed port, a port that drops connections, TLS servers with
// self-signed, expired or TLS 1.0-only setups, minimal IMAP servers without
// IDLE, SPECIAL-USE or UIDPLUS and with non-ASCII folder names, and
// STARTTLS servers that strip STARTTLS, inject data before the handshake or
// answer PREAUTH in plain text.
//
// Everything listens on 127.0.0.1 only, on ports chosen by the kernel, and
// is stopped by t.Cleanup. Nothing here touches another address.
package hostile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Host is the address every listener binds.
const Host = "127.0.0.1"

// serveEach accepts connections on l until the test ends and serves each
// on a goroutine of its own, the whole exchange bounded by limit (a hang
// guard); the test's cleanup closes l and waits for every serve to return.
func serveEach(t testing.TB, l net.Listener, limit time.Duration, serve func(net.Conn)) {
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
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(limit))
				serve(c)
			}()
		}
	}()
}

// CertOptions choose the certificate NewCert makes.
type CertOptions struct {
	// SelfSigned makes the leaf its own issuer; otherwise a fresh test CA
	// (in Cert.CAPEM) issues it.
	SelfSigned bool
	// Expired makes the leaf valid from 60 to 30 days ago.
	Expired bool
	// Names are the DNS names of the leaf; "localhost" when empty. The
	// leaf carries 127.0.0.1 as an IP address too, unless CNOnly.
	Names []string
	// Issuer is the common name and organisation of the issuing CA
	// ("Hostile test CA" when empty).
	Issuer string
	// CNOnly leaves out every subject alternative name: the leaf names its
	// server only in its common name (Names[0]), as older corporate
	// servers' certificates do; Go verifies such a certificate for no name.
	CNOnly bool
}

// Cert is a server certificate and what a client needs to trust it.
type Cert struct {
	TLS         tls.Certificate
	Leaf        *x509.Certificate
	CAPEM       []byte         // the issuer's PEM (the leaf's own when self-signed)
	Pool        *x509.CertPool // holds CAPEM
	Fingerprint string         // of the leaf, as trust.Fingerprint prints it
}

// NewCert makes a certificate as o says; it fails the test on error.
func NewCert(t testing.TB, o CertOptions) *Cert {
	t.Helper()
	now := time.Now()
	issuer := o.Issuer
	if issuer == "" {
		issuer = "Hostile test CA"
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: issuer, Organization: []string{issuer}},
		NotBefore: now.Add(-365 * 24 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	names := o.Names
	if len(names) == 0 {
		names = []string{"localhost"}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: names[0], Organization: []string{"Hostile test server"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: names, IPAddresses: []net.IP{net.ParseIP(Host)},
	}
	if o.CNOnly {
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	if o.Expired {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-60*24*time.Hour), now.Add(-30*24*time.Hour)
	}
	parent, signer := ca, caKey
	if o.SelfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	c := &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, Pool: x509.NewCertPool(), Fingerprint: trust.Fingerprint(leaf)}
	if o.SelfSigned {
		c.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		c.Pool.AddCert(leaf)
	} else {
		c.TLS.Certificate = append(c.TLS.Certificate, caDER)
		c.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
		c.Pool.AddCert(ca)
	}
	return c
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	return n
}

// ClosedPort returns host:port of a loopback port nothing listens on: a
// connection is refused.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// DroppingPort returns host:port of a loopback port that silently drops
// new connections, as a firewall that drops packets does: a listener with
// a backlog of zero that never accepts, its one queued slot taken by a
// connection of its own. The kernel drops the SYN of any further
// connection (its accept queue is full), so a client times out.
func DroppingPort(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(Host, strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("fill the accept queue of %s: %v", addr, err)
	}
	t.Cleanup(func() { filler.Close() })
	// Prove the port now drops: a connection must not open.
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("hostile: %s still accepts connections; cannot simulate a dropping firewall here", addr)
	}
	return addr
}
