// Package trust decides which TLS servers the connector talks to: the
// system's roots, plus certificates the user pinned by their SHA-256
// fingerprint, at a minimum TLS version.
//
// Verification is never switched off. A pinned certificate that no root
// vouches for is learned from the failed handshake, checked against the pin,
// added as a root of its own, and the handshake is made again.
package trust

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Fingerprint returns the lowercase hex SHA-256 of the certificate's DER,
// the form the connector stores and prints.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint normalises a fingerprint as openssl prints it
// ("SHA256 Fingerprint=AB:CD:..."), with or without colons, any case.
func ParseFingerprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "="); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
	if len(s) != 64 {
		return "", fmt.Errorf("fingerprint %q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("fingerprint %q is not hexadecimal", s)
	}
	return s, nil
}

// ParseMinVersion maps "1.0" … "1.3" to a tls.Version*; "" is TLS 1.2.
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("TLS version %q is not one of 1.0, 1.1, 1.2, 1.3", s)
}

// UntrustedError reports a server certificate that no root vouches for and
// that is not pinned. Its message says which fingerprint to pin.
type UntrustedError struct {
	Host        string
	Fingerprint string // of the leaf certificate, lowercase hex
	Reason      error  // what verification said
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("the certificate of %s is not trusted (%v); if your IT team confirms its SHA-256 fingerprint %s, pin it with --trust-fingerprint %s",
		e.Host, e.Reason, e.Fingerprint, e.Fingerprint)
}

// Unwrap returns the verification error.
func (e *UntrustedError) Unwrap() error { return e.Reason }

// Policy is the trust of one account's servers. The zero value is not
// usable; make one with NewPolicy. Safe for concurrent use.
type Policy struct {
	min   uint16
	roots *x509.CertPool // nil: the system roots (SSL_CERT_FILE/SSL_CERT_DIR honoured by Go)
	pins  map[string]bool

	mu      sync.Mutex
	learned map[string]*x509.Certificate // fingerprint -> pinned certificate seen from the server
}

// NewPolicy returns a Policy accepting TLS minTLS ("" is 1.2) and newer,
// certificates chaining to roots (nil: the system roots), and certificates
// whose fingerprint is in pins.
func NewPolicy(minTLS string, pins []string, roots *x509.CertPool) (*Policy, error) {
	min, err := ParseMinVersion(minTLS)
	if err != nil {
		return nil, err
	}
	p := &Policy{min: min, roots: roots, pins: map[string]bool{}, learned: map[string]*x509.Certificate{}}
	for _, f := range pins {
		n, err := ParseFingerprint(f)
		if err != nil {
			return nil, err
		}
		p.pins[n] = true
	}
	return p, nil
}

// Config returns a fresh tls.Config for a connection to host. A caller
// whose handshake fails passes the error to Retry.
func (p *Policy) Config(host string) *tls.Config {
	cfg := &tls.Config{ServerName: host, MinVersion: p.min, RootCAs: p.roots}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.learned) == 0 {
		return cfg
	}
	pool := p.roots
	if pool == nil {
		var err error
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
	} else {
		pool = pool.Clone()
	}
	for _, c := range p.learned {
		pool.AddCert(c)
		// A pinned certificate is trusted for what it is, whatever names
		// it carries: verify it under a name it does carry.
		if c.VerifyHostname(host) != nil {
			if n := certName(c); n != "" {
				cfg.ServerName = n
			}
		}
	}
	cfg.RootCAs = pool
	return cfg
}

func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return ""
}

// Retry inspects a failed handshake with host. When the server presented
// a pinned certificate, it is learned (if it was not yet) and retry is true:
// the caller connects once more. err is never nil: it is the failure to
// report when the caller does not retry, an *UntrustedError when the
// certificate is neither trusted nor pinned.
func (p *Policy) Retry(host string, err error) (retry bool, _ error) {
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
		return false, err
	}
	chain := cve.UnverifiedCertificates
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range chain {
		fp := Fingerprint(c)
		if p.pins[fp] {
			if p.learned[fp] == nil {
				p.learned[fp] = c
			}
			return true, fmt.Errorf("the pinned certificate of %s does not verify: %w", host, cve.Err)
		}
	}
	return false, &UntrustedError{Host: host, Fingerprint: Fingerprint(chain[0]), Reason: cve.Err}
}
