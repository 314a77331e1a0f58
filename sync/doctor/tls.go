package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// plainError is a failure of the plaintext exchange before STARTTLS, or of
// the greeting: it fails the step with its own cause and words.
type plainError struct{ cause, summary, advice string }

func (e *plainError) Error() string { return e.summary }

// opener returns a connection ready for the TLS handshake: the first call
// gets the TCP step's connection, later ones dial again. For STARTTLS it
// has done the plaintext exchange.
type opener func(ctx context.Context, first bool) (net.Conn, error)

// handshake runs the TLS step: the handshake with the account's policy
// (a certificate pinned for this server is trusted whatever its name and
// dates, which are shown), and the diagnosis of a failure. It returns the
// encrypted connection.
func (r *runner) handshake(ctx context.Context, s *stepStart, pol *trust.Policy, host string, port int, alpn string, open opener, mode string) (*tls.Conn, bool) {
	server := net.JoinHostPort(host, strconv.Itoa(port))
	raw, err := open(ctx, true)
	if err != nil {
		var pe *plainError
		if errors.As(err, &pe) {
			r.fail(s, pe.cause, pe.summary, pe.advice)
			return nil, false
		}
		cause, summary, advice := classifyTCP(host, port, "", r.o.StepTimeout.String(), err)
		r.fail(s, cause, summary, advice)
		return nil, false
	}
	cfg := pol.Config(server)
	if alpn != "" {
		cfg.NextProtos = []string{alpn}
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err == nil {
		cs := tc.ConnectionState()
		r.tlsFacts(s, cs, len(cs.PeerCertificates) > 0 && pol.Pinned(server, cs.PeerCertificates[0]))
		return tc, true
	}
	raw.Close()
	r.tlsFailure(ctx, s, err, host, port, open, mode)
	return nil, false
}

// tlsFacts records what was negotiated and the certificate.
func (r *runner) tlsFacts(s *stepStart, cs tls.ConnectionState, pinned bool) {
	s.fact("version", tls.VersionName(cs.Version))
	s.fact("cipher", tls.CipherSuiteName(cs.CipherSuite))
	if len(cs.PeerCertificates) > 0 {
		certFacts(s, cs.PeerCertificates)
	}
	switch {
	case pinned:
		s.fact("trusted by", "the certificate pinned for this server (its name, issuer and dates are not checked)")
	case r.o.Roots != nil:
		s.fact("trusted by", "the configured roots")
	default:
		s.fact("trusted by", "the system's certificate authorities")
	}
	s.Summary = fmt.Sprintf("%s with %s; the certificate verifies", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	if cs.Version < tls.VersionTLS12 {
		r.warn(s, CauseTLSOldVersion, fmt.Sprintf("the server offers only %s, accepted because this account allows it (--min-tls)", tls.VersionName(cs.Version)),
			"Ask IT to enable TLS 1.2 or newer on the server: TLS 1.0 and 1.1 have known weaknesses.")
		return
	}
	// Warn when less than two weeks are left, or less than a third of the
	// lifetime of a short-lived certificate.
	if leaf := cs.PeerCertificates; pinned && len(leaf) > 0 && time.Now().After(leaf[0].NotAfter) {
		r.warn(s, CauseTLSExpired, fmt.Sprintf("the pinned certificate expired on %s; it is trusted because it is pinned for this server, which does not check dates", leaf[0].NotAfter.UTC().Format(time.DateOnly)),
			"Tell IT that the mail server's certificate should be renewed; pin the new one when they confirm its fingerprint.")
		return
	}
	if leaf := cs.PeerCertificates; len(leaf) > 0 && time.Until(leaf[0].NotAfter) < min(14*24*time.Hour, leaf[0].NotAfter.Sub(leaf[0].NotBefore)/3) {
		r.warn(s, CauseTLSExpired, fmt.Sprintf("the certificate expires on %s", leaf[0].NotAfter.UTC().Format(time.DateOnly)),
			"Tell IT that the mail server's certificate must be renewed soon.")
	}
}

func certFacts(s *stepStart, chain []*x509.Certificate) {
	leaf := chain[0]
	s.fact("subject", leaf.Subject.String())
	s.fact("issuer", leaf.Issuer.String())
	var names []string
	names = append(names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	s.fact("names", strings.Join(names, ", "))
	s.fact("valid", fmt.Sprintf("%s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)))
	var subj []string
	for _, c := range chain {
		subj = append(subj, c.Subject.CommonName)
	}
	s.fact("chain", strings.Join(subj, " < "))
	s.fact("sha256 fingerprint", trust.Fingerprint(leaf))
}

// tlsFailure explains a failed handshake; a certificate the policy refused
// is a *trust.UntrustedError holding the chain.
func (r *runner) tlsFailure(ctx context.Context, s *stepStart, err error, host string, port int, open opener, mode string) {
	var ue *trust.UntrustedError
	if errors.As(err, &ue) && len(ue.Chain) > 0 {
		certFacts(s, ue.Chain)
	}
	var cve *tls.CertificateVerificationError
	var inv x509.CertificateInvalidError
	var hn x509.HostnameError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		leaf := inv.Cert
		if time.Now().Before(leaf.NotBefore) {
			r.fail(s, CauseTLSNotYetValid, fmt.Sprintf("the certificate of %s is not valid before %s", host, leaf.NotBefore.UTC().Format(time.RFC3339)),
				"Check this computer's date and time; if they are right, ask IT to fix the server's certificate.")
			return
		}
		r.fail(s, CauseTLSExpired, fmt.Sprintf("the certificate of %s expired on %s", host, leaf.NotAfter.UTC().Format(time.DateOnly)),
			"Ask IT to renew the mail server's certificate.")
		return
	case errors.As(err, &hn) && errors.As(err, &ue):
		r.fail(s, CauseTLSNameMismatch, fmt.Sprintf("the certificate of %s is for %s, not for %s", host, certNames(hn.Certificate), host),
			fmt.Sprintf("Use the server name the certificate carries, or, if IT confirms its SHA-256 fingerprint %s, pin it for this server with --trust-fingerprint %s.", ue.Fingerprint, ue.Pin()))
		return
	case errors.As(err, &ue):
		s.fact("verification", ue.Reason.Error())
		r.fail(s, CauseTLSUntrusted, fmt.Sprintf("the certificate of %s is not signed by an authority this computer trusts (self-signed or a private CA)", host),
			fmt.Sprintf("If IT confirms the SHA-256 fingerprint %s, pin it for this server: add the account with --trust-fingerprint %s.", ue.Fingerprint, ue.Pin()))
		return
	case errors.As(err, &cve):
		r.fail(s, CauseTLSUntrusted, fmt.Sprintf("the certificate of %s does not verify: %v", host, cve.Err),
			"Ask IT to check the server's certificate.")
		return
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		if mode == "starttls" {
			r.fail(s, CauseStartTLSInjection, "the server answered STARTTLS but then sent unencrypted data instead of starting TLS",
				"Someone on the network may be tampering with the connection: ask IT to check it, or use the server's implicit TLS port (993 or 465).")
			return
		}
		r.fail(s, CauseTLSNotTLS, fmt.Sprintf("%s does not speak TLS on port %d (it answered in plain text)", host, port),
			"This is probably a STARTTLS port: use --imap-security starttls (port 143) or --smtp-security starttls (port 587), or the TLS port 993 or 465.")
		return
	}
	// Not a certificate problem: does the server speak only an old TLS?
	if v, ok := r.probeOldTLS(ctx, host, open); ok {
		s.fact("server offers", tls.VersionName(v))
		r.fail(s, CauseTLSOldVersion, fmt.Sprintf("%s offers only %s, older than this account accepts (TLS 1.2)", host, tls.VersionName(v)),
			fmt.Sprintf("Ask IT to enable TLS 1.2 or newer; only if that is impossible and you accept the risk (%s has known weaknesses), add the account with --min-tls %s.",
				tls.VersionName(v), strings.TrimPrefix(tls.VersionName(v), "TLS ")))
		return
	}
	r.fail(s, CauseTLSHandshake, fmt.Sprintf("the TLS handshake with %s failed: %v", host, err),
		"Ask IT which TLS versions and ciphers the server offers; this computer needs TLS 1.2 or newer.")
}

func certNames(c *x509.Certificate) string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = append(names, c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

// probeOldTLS makes one more connection offering only TLS 1.0 and 1.1, to
// tell "the server is too old" from other handshake failures. Nothing but
// the handshake is sent. The certificate is verified as usual, but its
// verdict does not matter here: a verification error comes after the
// version was agreed, which is all the probe asks (the certificate is
// judged for real once the account allows the version).
func (r *runner) probeOldTLS(ctx context.Context, host string, open opener) (uint16, bool) {
	raw, err := open(ctx, false)
	if err != nil {
		return 0, false
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, RootCAs: r.o.Roots})
	hctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	err = tc.HandshakeContext(hctx)
	var cve *tls.CertificateVerificationError
	if err != nil && !errors.As(err, &cve) {
		return 0, false
	}
	v := tc.ConnectionState().Version
	return v, v != 0
}
