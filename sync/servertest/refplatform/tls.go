package refplatform

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"
)

// Start serves the API over HTTPS on addr ("127.0.0.1:0" when empty, picking
// a free port) and returns once the listener is open. It generates a fresh
// ECDSA CA, returned by CAPEM, and a server certificate it signs for
// 127.0.0.1, ::1 and localhost. TLS 1.2 is the oldest version accepted;
// HTTP/2 and HTTP/1.1 are both offered. Start may be called once; stop with
// Close.
func (p *Platform) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.srv != nil:
		return errors.New("refplatform: already started")
	}
	caPEM, cert, err := newCertificates()
	if err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	host := "127.0.0.1"
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		host = a.IP.String()
	}
	p.srv = &http.Server{
		Handler:           p.handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(quietHandshakes{}, "", log.LstdFlags),
	}
	p.serveErr = make(chan error, 1)
	p.url = "https://" + net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)) + Prefix
	p.caPEM = caPEM
	go func(srv *http.Server) { p.serveErr <- srv.ServeTLS(ln, "", "") }(p.srv)
	return nil
}

// quietHandshakes drops net/http's log lines about failed TLS handshakes:
// the client that refused the certificate already knows, and tests provoke
// them on purpose. Everything else goes to standard error.
type quietHandshakes struct{}

func (quietHandshakes) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("TLS handshake error")) {
		return len(b), nil
	}
	return os.Stderr.Write(b)
}

// URL returns the base URL of the API, like https://127.0.0.1:PORT/connector,
// or "" before Start.
func (p *Platform) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// CAPEM returns the PEM of the CA certificate a client must trust to reach
// the platform, or nil before Start. The caller must not modify it.
func (p *Platform) CAPEM() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.caPEM
}

// newCertificates returns a new CA, as PEM, and a server certificate it
// signed for the loopback addresses.
func newCertificates() (caPEM []byte, server tls.Certificate, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, server, err
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Inbox Relay reference platform CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, server, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, server, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, server, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, server, err
	}
	server = tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), server, nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	return new(big.Int).SetBytes(b)
}
