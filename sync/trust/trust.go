// Package trust decides which TLS servers the connector talks to: the
// system's roots, plus certificates the user pinned for one server each, at
// a minimum TLS version.
//
// A pin is a certificate exception, as mail clients make them: it trusts
// exactly one leaf certificate (the SHA-256 of its DER) for exactly one
// server (host:port), and nothing else. For that certificate on that server
// the name, the issuer and the dates are not checked (they are shown to
// people: Describe); any other certificate, on that server or another, is
// verified as usual against the roots and the host name. Verification is
// never switched off: every handshake runs Policy's own check in
// VerifyConnection, and the TLS server name is always the host dialled.
package trust

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
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

// NormalizeServer returns server ("host:port") in the form pins are keyed
// by: the host in lower case without a trailing dot, IPv6 in brackets. It
// fails when server has no port or a port outside 1–65535.
func NormalizeServer(server string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(server))
	if err != nil {
		return "", fmt.Errorf("server %q is not host:port", server)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" {
		return "", fmt.Errorf("server %q is not host:port with a port from 1 to 65535", server)
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.ToLower(host), "."), strconv.Itoa(n)), nil
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

// Pin trusts one certificate for one server.
type Pin struct {
	// Server is host:port, as config.Server.Addr writes it.
	Server string `json:"server"`
	// Fingerprint is the lowercase hex SHA-256 of the leaf certificate's
	// DER (any form ParseFingerprint accepts is normalised by NewPolicy).
	Fingerprint string `json:"sha256"`
	// Certificate describes the certificate as it was when pinned, for
	// people (status, setup); it is never used to decide trust. May be nil.
	Certificate *CertInfo `json:"certificate,omitempty"`
}

// String is "host:port=fingerprint", the form --trust-fingerprint takes.
func (p Pin) String() string { return p.Server + "=" + p.Fingerprint }

// CertInfo is what a person is shown about a certificate: none of it is
// checked for a pinned certificate, all of it is shown.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Names     []string  `json:"names,omitempty"` // DNS names and IP addresses; empty for a certificate with only a common name
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Describe returns what a person is shown about cert.
func Describe(cert *x509.Certificate) *CertInfo {
	ci := &CertInfo{Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC()}
	ci.Names = append(ci.Names, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		ci.Names = append(ci.Names, ip.String())
	}
	return ci
}

// String is one line: subject, names, issuer and validity, with the dates
// that a pin does not enforce marked when they are passed.
func (ci *CertInfo) String() string {
	if ci == nil {
		return "no certificate details recorded"
	}
	names := "no names besides the subject"
	if len(ci.Names) > 0 {
		names = "names " + strings.Join(ci.Names, ", ")
	}
	s := fmt.Sprintf("subject %s; %s; issued by %s; valid %s to %s", ci.Subject, names, ci.Issuer,
		ci.NotBefore.Format(time.DateOnly), ci.NotAfter.Format(time.DateOnly))
	if now := time.Now(); now.After(ci.NotAfter) {
		s += " (expired)"
	} else if now.Before(ci.NotBefore) {
		s += " (not valid yet)"
	}
	return s
}

// The TLS problems a person fixes in the account's settings; check them
// with errors.Is. Their text says what to change, not which command or
// field changes it: each front end adds its own way.
var (
	// ErrUseImplicitTLS means STARTTLS cannot be used safely with this
	// server (refused, or the exchange was tampered with): the account must
	// use TLS from the first byte, on the server's TLS port.
	ErrUseImplicitTLS = errors.New("use TLS from the first byte on the server's TLS port instead of STARTTLS")
	// ErrTLSTooOld means the server offers only TLS versions older than the
	// account accepts.
	ErrTLSTooOld = errors.New("the server offers only a TLS version older than this account accepts: ask IT to enable TLS 1.2 or newer")
)

// UntrustedError reports a server certificate that no root vouches for
// (for this host name) and that is not pinned for this server. Its message
// names the server and the fingerprint to check; how to pin it is the
// front end's to say (Pin returns the pin).
type UntrustedError struct {
	Server      string              // host:port
	Host        string              // the name the certificate was checked against
	Fingerprint string              // of the leaf certificate, lowercase hex
	Reason      error               // what verification said
	Chain       []*x509.Certificate // as the server sent it, leaf first
}

// Error names the server, why the certificate is not trusted and its
// fingerprint, and says to pin it only once IT confirms it.
func (e *UntrustedError) Error() string {
	return fmt.Sprintf("the certificate of %s is not trusted (%v); its SHA-256 fingerprint is %s: pin it for this server only if your IT team confirms it",
		e.Server, e.Reason, e.Fingerprint)
}

// Unwrap returns the verification error.
func (e *UntrustedError) Unwrap() error { return e.Reason }

// Pin returns the pin that would trust this certificate for this server.
func (e *UntrustedError) Pin() Pin {
	p := Pin{Server: e.Server, Fingerprint: e.Fingerprint}
	if len(e.Chain) > 0 {
		p.Certificate = Describe(e.Chain[0])
	}
	return p
}

// Policy is the trust of one account's servers. The zero value is not
// usable; make one with NewPolicy. Safe for concurrent use.
type Policy struct {
	min   uint16
	roots *x509.CertPool             // nil: the system roots (SSL_CERT_FILE/SSL_CERT_DIR honoured by Go)
	pins  map[string]map[string]bool // normalised server -> fingerprints

	mu   sync.Mutex
	seen map[string]seenCert // normalised server -> the last certificate it presented that was trusted
}

type seenCert struct {
	cert   *x509.Certificate
	pinned bool
}

// NewPolicy returns a Policy accepting TLS minTLS ("" is 1.2) and newer,
// certificates that chain to roots (nil: the system roots) and carry the
// host name dialled, and on each pin's server the pinned certificate.
func NewPolicy(minTLS string, pins []Pin, roots *x509.CertPool) (*Policy, error) {
	min, err := ParseMinVersion(minTLS)
	if err != nil {
		return nil, err
	}
	p := &Policy{min: min, roots: roots, pins: map[string]map[string]bool{}, seen: map[string]seenCert{}}
	for _, pin := range pins {
		srv, err := NormalizeServer(pin.Server)
		if err != nil {
			return nil, fmt.Errorf("pinned certificate: %w", err)
		}
		fp, err := ParseFingerprint(pin.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("pinned certificate of %s: %w", srv, err)
		}
		if p.pins[srv] == nil {
			p.pins[srv] = map[string]bool{}
		}
		p.pins[srv][fp] = true
	}
	return p, nil
}

// Config returns a fresh tls.Config for a connection to server
// ("host:port"). Its ServerName is the host; its VerifyConnection is the
// Policy's check (see the package comment), which fails the handshake with
// an *UntrustedError for a certificate that is neither pinned for server
// nor verified. Go's built-in verification is replaced by that check
// (InsecureSkipVerify with VerifyConnection, as crypto/tls documents), not
// dropped: callers must not change VerifyConnection or ServerName.
func (p *Policy) Config(server string) *tls.Config {
	key, err := NormalizeServer(server)
	host := server
	if err == nil {
		host, _, _ = net.SplitHostPort(key)
	}
	return &tls.Config{
		ServerName:         host,
		MinVersion:         p.min,
		RootCAs:            p.roots,
		InsecureSkipVerify: true, // replaced, not skipped: VerifyConnection below verifies every handshake
		VerifyConnection: func(cs tls.ConnectionState) error {
			return p.verify(key, host, cs.PeerCertificates)
		},
	}
}

func (p *Policy) verify(server, host string, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return &UntrustedError{Server: server, Host: host, Reason: errors.New("the server sent no certificate")}
	}
	leaf := certs[0]
	fp := Fingerprint(leaf)
	if server != "" && p.pins[server][fp] {
		p.remember(server, leaf, true)
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, DNSName: host, Intermediates: inter}); err != nil {
		return &UntrustedError{Server: server, Host: host, Fingerprint: fp, Reason: err, Chain: certs}
	}
	p.remember(server, leaf, false)
	return nil
}

func (p *Policy) remember(server string, cert *x509.Certificate, pinned bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[server] = seenCert{cert, pinned}
}

// Pinned reports whether cert is pinned for server (host:port).
func (p *Policy) Pinned(server string, cert *x509.Certificate) bool {
	key, err := NormalizeServer(server)
	return err == nil && cert != nil && p.pins[key][Fingerprint(cert)]
}

// Presented returns the leaf certificate server (host:port) presented in
// the last handshake that this Policy accepted, and whether a pin (rather
// than the roots) made it trusted; nil when none was accepted yet.
func (p *Policy) Presented(server string) (cert *x509.Certificate, pinned bool) {
	key, err := NormalizeServer(server)
	if err != nil {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.seen[key]
	return s.cert, s.pinned
}
