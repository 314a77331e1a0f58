package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/relay"
)

// inspectors are the issuers of the TLS-inspecting proxies companies run.
var inspectors = regexp.MustCompile(`(?i)zscaler|fortinet|fortigate|palo alto|blue ?coat|symantec web|sophos|netskope|` +
	`mcafee web|skyhigh|forcepoint|websense|check ?point|cisco umbrella|barracuda|watchguard|untangle|smoothwall|` +
	`lightspeed|iboss|menlo|kaspersky|eset|avast|avg|bitdefender|securly|contentkeeper|squid|mitmproxy|charles proxy|fiddler`)

func (r *runner) checkPlatform(ctx context.Context) {
	p := r.o.Platform.Platform
	server := p.URL
	u, err := url.Parse(p.URL)
	s := r.begin(TargetPlatform, StepDNS, titles[StepDNS], server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		r.fail(&s, CausePlatformUnpaired, fmt.Sprintf("the platform URL %q is not an https:// URL", p.URL),
			"Pair again with the URL the platform shows: inboxrelay pair --platform URL --code CODE.")
		r.end(s)
		r.skip(TargetPlatform, server, StepTLS, StepPairing)
		return
	}
	// The proxy, chosen as the engine chooses it.
	choice := r.o.Platform.Proxy
	if choice == nil {
		c, err := netdial.PlatformProxy(ctx, netdial.Setting{Value: p.Proxy, Source: "the settings"}, u, nil)
		if err != nil {
			r.fail(&s, CausePlatformDown, err.Error(), "Set a proxy URL such as http://proxy.example.com:3128, or \"direct\".")
			r.end(s)
			r.skip(TargetPlatform, server, StepTLS, StepPairing)
			return
		}
		choice = &c
	}
	var proxy *url.URL
	if choice.Proxy != nil {
		proxy = choice.Proxy.URL
	}
	if choice.Note != "" {
		s.fact("note", choice.Note)
	}
	lookup := u.Hostname()
	s.fact("proxy", choice.String())
	if proxy != nil {
		lookup = proxy.Hostname()
	}
	ok := r.lookupInto(ctx, &s, lookup, proxy != nil)
	r.end(s)
	if !ok {
		r.skip(TargetPlatform, server, StepTLS, StepPairing)
		return
	}

	s = r.begin(TargetPlatform, StepTLS, titles[StepTLS], server)
	s.fact("proxy", choice.String())
	if !r.platformTLS(ctx, &s, u, p.CAFile, proxy) {
		r.end(s)
		r.skip(TargetPlatform, server, StepPairing)
		return
	}
	r.end(s)

	s = r.begin(TargetPlatform, StepPairing, titles[StepPairing], server)
	s.fact("proxy", choice.String())
	if p.DeviceID != "" {
		s.fact("device", p.DeviceID)
	}
	if r.o.Platform.Token == "" {
		r.fail(&s, CausePlatformUnpaired, "this computer is not paired with the platform (no device token)",
			"Pair it: inboxrelay pair --platform URL --code CODE, with a code from the platform.")
		r.end(s)
		return
	}
	via := relay.ProxyDirect
	if proxy != nil {
		via = proxy.String()
	}
	c, err := relay.New(relay.Options{BaseURL: p.URL, CAFile: p.CAFile, Proxy: via, Token: r.o.Platform.Token})
	if err != nil {
		r.fail(&s, CausePlatformDown, err.Error(), "Pair again with a valid platform URL.")
		r.end(s)
		return
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	// A key check changes nothing on the platform; any key will do.
	_, offered, err := c.Check(cctx, []string{strings.Repeat("0", 64)})
	switch {
	case errors.Is(err, relay.ErrUnauthorized):
		r.fail(&s, CausePlatformRefused, "the platform no longer accepts this device (its token was revoked or the device removed)",
			"Pair again: inboxrelay pair --platform URL --code CODE, with a new code from the platform.")
	case err != nil:
		r.fail(&s, CausePlatformDown, fmt.Sprintf("the platform did not answer the check: %v", err), "Try again later; if it persists, tell the platform's support.")
	default:
		s.Summary = "the platform accepts this device"
		if !offered {
			s.fact("key check", "not offered by the platform (uploads work without it)")
		}
	}
	r.end(s)
}

// lookupInto resolves host into s; it reports success.
func (r *runner) lookupInto(ctx context.Context, s *stepStart, host string, viaProxy bool) bool {
	what := "the platform"
	if viaProxy {
		what = "the proxy"
	}
	if ip := net.ParseIP(host); ip != nil {
		s.fact("addresses", ip.String())
		s.Summary = fmt.Sprintf("%s is at %s", what, ip)
		return true
	}
	dctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	addrs, err := r.o.Resolver.LookupIPAddr(dctx, host)
	if err != nil {
		cause, summary, advice := classifyDNS(host, err)
		r.fail(s, cause, summary, advice)
		return false
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IP.String())
	}
	s.fact("addresses", strings.Join(out, ", "))
	s.Summary = fmt.Sprintf("%s %s resolves to %s", what, host, strings.Join(out, ", "))
	return true
}

// platformTLS makes one HTTPS request as the relay client would (system
// roots plus the CA bundle, TLS 1.2+, the same proxy) and looks at the
// certificate it got, to name a TLS-inspecting proxy when there is one.
func (r *runner) platformTLS(ctx context.Context, s *stepStart, u *url.URL, caFile string, proxy *url.URL) bool {
	system, err := x509.SystemCertPool()
	if err != nil {
		system = x509.NewCertPool()
	}
	roots := system.Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil || !roots.AppendCertsFromPEM(pem) {
			r.fail(s, CausePlatformUntrusted, fmt.Sprintf("the CA bundle %s cannot be read or holds no certificate", caFile), "Pair again with --ca-file pointing to a PEM file.")
			return false
		}
		s.fact("extra CA bundle", caFile)
	}
	tr := &http.Transport{
		Proxy:           func(*http.Request) (*url.URL, error) { return proxy, nil },
		DialContext:     (&net.Dialer{Timeout: r.o.StepTimeout}).DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
	defer tr.CloseIdleConnections()
	rctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodHead, u.String(), nil)
	req.Header.Set("User-Agent", relay.UserAgent())
	resp, err := (&http.Client{Transport: tr}).Do(req)
	var chain []*x509.Certificate
	if err == nil {
		resp.Body.Close()
		chain = resp.TLS.PeerCertificates
		s.fact("version", tls.VersionName(resp.TLS.Version))
		s.fact("cipher", tls.CipherSuiteName(resp.TLS.CipherSuite))
	}
	var cve *tls.CertificateVerificationError
	if err != nil && errors.As(err, &cve) {
		chain = cve.UnverifiedCertificates
	}
	if len(chain) == 0 {
		cause, summary, advice := classifyTCP(u.Host, 443, "HTTPS", r.o.StepTimeout.String(), err)
		if proxy != nil {
			summary += fmt.Sprintf(" (through the proxy %s)", netdial.Redact(proxy))
			advice = "Check the proxy setting (--proxy, HTTPS_PROXY) with IT."
		}
		if cause == CauseTCPFailed {
			summary = fmt.Sprintf("the platform cannot be reached: %v", err)
		}
		r.fail(s, CausePlatformDown, summary, advice)
		return false
	}
	leaf := chain[0]
	certFacts(s, chain)

	// Is someone re-signing the connection? The issuer differs from the one
	// a direct connection sees, or it is a known inspection product.
	direct := ""
	if proxy != nil {
		if d := r.directIssuer(ctx, u); d != "" {
			direct = d
			s.fact("issuer without the proxy", d)
		}
	}
	issuer := leaf.Issuer.String()
	inspected := (direct != "" && direct != issuer) || inspectors.MatchString(issuer)
	if inspected {
		s.fact("inspected by", issuer)
	}
	switch {
	case err != nil && inspected:
		r.fail(s, CauseTLSInspection, fmt.Sprintf("a TLS-inspecting proxy re-signs the connection to the platform (issuer %q instead of the platform's own)", issuer),
			fmt.Sprintf("Ask IT for the inspecting proxy's CA certificate (the policy's [platform] ca_file, or pair again with --ca-file FILE), or ask them to exempt %s from inspection.", u.Hostname()))
		return false
	case err != nil:
		r.fail(s, CausePlatformUntrusted, fmt.Sprintf("the platform's certificate (issuer %q) is not trusted: %v", issuer, cve.Err),
			"If the platform uses a private CA, pair again with --ca-file pointing to its CA certificate; otherwise tell the platform's support.")
		return false
	case inspected:
		r.warn(s, CauseTLSInspection, fmt.Sprintf("a TLS-inspecting proxy (issuer %q) re-signs the connection, and this computer trusts it", issuer),
			"Nothing to do if IT intends it; the proxy can read every message relayed.")
	}
	if s.Summary == "" {
		s.Summary = "the platform's certificate verifies"
	}
	return true
}

// directIssuer returns the issuer of the platform's certificate as seen
// without the proxy, "" when it cannot be reached directly. Only the
// certificate is looked at: nothing is sent on this connection.
func (r *runner) directIssuer(ctx context.Context, u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	dctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout/3)
	defer cancel()
	// Verified as usual: a certificate no root vouches for still shows its
	// issuer in the verification error.
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{ServerName: u.Hostname()}}
	c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	var cve *tls.CertificateVerificationError
	switch {
	case err == nil:
		defer c.Close()
		if certs := c.(*tls.Conn).ConnectionState().PeerCertificates; len(certs) > 0 {
			return certs[0].Issuer.String()
		}
	case errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0:
		return cve.UnverifiedCertificates[0].Issuer.String()
	}
	return ""
}
