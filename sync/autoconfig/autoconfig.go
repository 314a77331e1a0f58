// Package autoconfig finds the IMAP and SMTP servers of an e-mail address
// the way mail clients do: a table of well-known providers, then DNS SRV
// records (RFC 6186, with the implicit-TLS submissions service of RFC 8314
// §5.1), then the autoconfig XML that Thunderbird and others publish
// (config-v1.1.xml). It also tells implicit TLS from STARTTLS on a port
// nobody described (Probe).
//
// Nothing here trusts what it finds: the result only fills in a form the
// user can edit, and the account is checked before anything is stored.
// Plain DNS is not authenticated, so a server found by SRV outside the
// address's domain is marked (Result.Outside) and must be shown to the user
// and confirmed before the password is sent to it (RFC 6186 §6). The
// autoconfig document is fetched over HTTPS, following no redirect, and
// read up to MaxDocument bytes.
package autoconfig

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
)

// Result is what Find found for an address.
type Result struct {
	IMAP config.Server
	SMTP config.Server
	// Username is the login name when it is not the address itself ("" means
	// the address).
	Username string
	// Source says where the settings came from: "known provider",
	// "DNS SRV" or "autoconfig".
	Source string
	// Outside lists the servers (host names) that plain DNS named outside
	// the address's domain and its subdomains. DNS answers can be forged:
	// before the password is used with them, the user must be shown them
	// and confirm (RFC 6186 §6). Empty when every server is inside the
	// domain or the source is not DNS.
	Outside []string
}

// InDomain reports whether host is domain or one of its subdomains (case
// and trailing dots aside). Both must be names, not addresses.
func InDomain(host, domain string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if host == "" || domain == "" {
		return false
	}
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// MaxDocument bounds the autoconfig document read; a longer one is refused.
const MaxDocument = 1 << 20

// maxSRV bounds the records of one SRV answer that are looked at; a DNS
// answer is itself at most 64 KiB.
const maxSRV = 64

// ErrNotFound means no source described the address's servers; the user
// must type them in.
var ErrNotFound = errors.New("no server settings were found for this address")

// Finder looks up server settings. The zero value uses the system resolver
// and a plain HTTPS client. Safe for concurrent use.
type Finder struct {
	// Resolver answers the SRV queries; nil: net.DefaultResolver.
	Resolver *net.Resolver
	// HTTP fetches autoconfig documents; nil: a client with a 5 s timeout.
	HTTP *http.Client
	// AutoconfigURLs returns the documents to try for a domain, in order;
	// nil: AutoconfigURLs.
	AutoconfigURLs func(domain, email string) []string
	// Timeout bounds each source; 0: 5 s.
	Timeout time.Duration
}

// Find returns the server settings for email from the first source that
// knows them, or ErrNotFound. ctx bounds the whole search.
func (f *Finder) Find(ctx context.Context, email string) (Result, error) {
	at := strings.LastIndex(email, "@")
	if at < 1 || at == len(email)-1 {
		return Result{}, fmt.Errorf("%q is not an e-mail address", email)
	}
	domain := strings.ToLower(strings.TrimSuffix(email[at+1:], "."))
	if r, ok := Known(domain); ok {
		return r, nil
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	r, err := f.srv(sctx, domain)
	cancel()
	if err == nil {
		return r, nil
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err = f.autoconfig(actx, domain, email)
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	return Result{}, ErrNotFound
}

// provider is one entry of the table of well-known providers.
type provider struct {
	domains    []string
	imap, smtp config.Server
}

// providers are the big mailbox providers, whose settings are stable and
// public.
var providers = []provider{
	{[]string{"gmail.com", "googlemail.com"}, srv("imap.gmail.com", 993, config.SecurityTLS), srv("smtp.gmail.com", 465, config.SecurityTLS)},
	{[]string{"outlook.com", "hotmail.com", "live.com", "msn.com", "office365.com"}, srv("outlook.office365.com", 993, config.SecurityTLS), srv("smtp.office365.com", 587, config.SecurityStartTLS)},
	{[]string{"yahoo.com", "ymail.com"}, srv("imap.mail.yahoo.com", 993, config.SecurityTLS), srv("smtp.mail.yahoo.com", 465, config.SecurityTLS)},
	{[]string{"icloud.com", "me.com", "mac.com"}, srv("imap.mail.me.com", 993, config.SecurityTLS), srv("smtp.mail.me.com", 587, config.SecurityStartTLS)},
	{[]string{"fastmail.com", "fastmail.fm"}, srv("imap.fastmail.com", 993, config.SecurityTLS), srv("smtp.fastmail.com", 465, config.SecurityTLS)},
	{[]string{"aol.com"}, srv("imap.aol.com", 993, config.SecurityTLS), srv("smtp.aol.com", 465, config.SecurityTLS)},
	{[]string{"zoho.com", "zohomail.com"}, srv("imap.zoho.com", 993, config.SecurityTLS), srv("smtp.zoho.com", 465, config.SecurityTLS)},
	{[]string{"gmx.com", "gmx.net", "gmx.de"}, srv("imap.gmx.com", 993, config.SecurityTLS), srv("mail.gmx.com", 465, config.SecurityTLS)},
	{[]string{"proton.me", "protonmail.com"}, srv("127.0.0.1", 1143, config.SecurityStartTLS), srv("127.0.0.1", 1025, config.SecurityStartTLS)}, // Proton Mail Bridge
}

func srv(host string, port int, sec config.Security) config.Server {
	return config.Server{Host: host, Port: port, Security: sec}
}

// Known returns the settings of a well-known provider's domain.
func Known(domain string) (Result, bool) {
	domain = strings.ToLower(domain)
	for _, p := range providers {
		for _, d := range p.domains {
			if d == domain {
				return Result{IMAP: p.imap, SMTP: p.smtp, Source: "known provider"}, true
			}
		}
	}
	return Result{}, false
}

// srv looks up the RFC 6186 services. For each protocol the implicit-TLS
// service is preferred (RFC 8314 §5.1); within one service, the record
// with the lowest priority, then the highest weight (RFC 2782). A target
// of "." means the service is decidedly not offered (RFC 6186 §3.4).
func (f *Finder) srv(ctx context.Context, domain string) (Result, error) {
	res := f.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	find := func(services []string, secs []config.Security) (config.Server, error) {
		var lastErr error = ErrNotFound
		for i, s := range services {
			_, addrs, err := res.LookupSRV(ctx, s, "tcp", domain)
			if err != nil {
				lastErr = err
				continue
			}
			if len(addrs) > maxSRV {
				addrs = addrs[:maxSRV]
			}
			sort.SliceStable(addrs, func(a, b int) bool {
				if addrs[a].Priority != addrs[b].Priority {
					return addrs[a].Priority < addrs[b].Priority
				}
				return addrs[a].Weight > addrs[b].Weight
			})
			for _, a := range addrs {
				host := strings.TrimSuffix(a.Target, ".")
				if host == "" || a.Port == 0 {
					continue
				}
				return config.Server{Host: host, Port: int(a.Port), Security: secs[i]}, nil
			}
		}
		return config.Server{}, lastErr
	}
	imap, err := find([]string{"imaps", "imap"}, []config.Security{config.SecurityTLS, config.SecurityStartTLS})
	if err != nil {
		return Result{}, fmt.Errorf("SRV for IMAP: %w", err)
	}
	smtp, err := find([]string{"submissions", "submission"}, []config.Security{config.SecurityTLS, config.SecurityStartTLS})
	if err != nil {
		return Result{}, fmt.Errorf("SRV for submission: %w", err)
	}
	r := Result{IMAP: imap, SMTP: smtp, Source: "DNS SRV"}
	for _, h := range []string{imap.Host, smtp.Host} {
		if !InDomain(h, domain) && !slices.Contains(r.Outside, h) {
			r.Outside = append(r.Outside, h)
		}
	}
	return r, nil
}

// AutoconfigURLs are the places mail clients look for a domain's
// config-v1.1.xml: the domain's autoconfig host, then its well-known path.
func AutoconfigURLs(domain, email string) []string {
	q := "?emailaddress=" + url.QueryEscape(email)
	return []string{
		"https://autoconfig." + domain + "/mail/config-v1.1.xml" + q,
		"https://" + domain + "/.well-known/autoconfig/mail/config-v1.1.xml",
	}
}

// clientConfig is the part of config-v1.1.xml used here.
type clientConfig struct {
	Providers []struct {
		Domains  []string    `xml:"domain"`
		Incoming []xmlServer `xml:"incomingServer"`
		Outgoing []xmlServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type xmlServer struct {
	Type       string `xml:"type,attr"`
	Hostname   string `xml:"hostname"`
	Port       int    `xml:"port"`
	SocketType string `xml:"socketType"` // SSL, STARTTLS or plain
	Username   string `xml:"username"`
}

func (f *Finder) autoconfig(ctx context.Context, domain, email string) (Result, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	if f.HTTP != nil {
		c := *f.HTTP
		client = &c
	}
	// A domain's own document, from its own host: a redirect could send
	// the question (and the address in it) anywhere, over http:// even.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	urls := f.AutoconfigURLs
	if urls == nil {
		urls = AutoconfigURLs
	}
	lastErr := ErrNotFound
	for _, u := range urls(domain, email) {
		r, err := f.fetch(ctx, client, u, email)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return Result{}, lastErr
}

func (f *Finder) fetch(ctx context.Context, client *http.Client, u, email string) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Result{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return Result{}, fmt.Errorf("autoconfig %s: the server answered with a redirect (%s), which is never followed", u, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("autoconfig %s: %s", u, resp.Status)
	}
	r, err := parseConfig(resp.Body, email)
	if err != nil {
		return Result{}, fmt.Errorf("autoconfig %s: %w", u, err)
	}
	return r, nil
}

// errDocumentTooLong is parseConfig's error for a document past
// MaxDocument.
var errDocumentTooLong = fmt.Errorf("the document is longer than %d bytes: refused", MaxDocument)

// tooLong fails a read past n bytes with errDocumentTooLong.
type tooLong struct {
	r io.Reader
	n int64
}

func (t *tooLong) Read(p []byte) (int, error) {
	if t.n <= 0 {
		var one [1]byte
		if k, _ := io.ReadFull(t.r, one[:]); k > 0 {
			return 0, errDocumentTooLong
		}
		return 0, io.EOF
	}
	if int64(len(p)) > t.n {
		p = p[:t.n]
	}
	k, err := t.r.Read(p)
	t.n -= int64(k)
	return k, err
}

// parseConfig reads a config-v1.1.xml document (at most MaxDocument bytes)
// for email: the first IMAP and SMTP servers with TLS.
func parseConfig(body io.Reader, email string) (Result, error) {
	var cc clientConfig
	if err := xml.NewDecoder(&tooLong{r: body, n: MaxDocument}).Decode(&cc); err != nil {
		if errors.Is(err, errDocumentTooLong) {
			return Result{}, errDocumentTooLong
		}
		return Result{}, err
	}
	var r Result
	for _, p := range cc.Providers {
		for _, s := range p.Incoming {
			if sv, ok := s.server("imap"); ok && r.IMAP.Host == "" {
				r.IMAP, r.Username = sv, username(s.Username, email)
			}
		}
		for _, s := range p.Outgoing {
			if sv, ok := s.server("smtp"); ok && r.SMTP.Host == "" {
				r.SMTP = sv
			}
		}
	}
	if r.IMAP.Host == "" || r.SMTP.Host == "" {
		return Result{}, errors.New("no IMAP and SMTP server with TLS")
	}
	r.Source = "autoconfig"
	return r, nil
}

// server converts an entry; plaintext servers are skipped, since the
// connector never sends a password without TLS.
func (s xmlServer) server(typ string) (config.Server, bool) {
	if !strings.EqualFold(s.Type, typ) || s.Hostname == "" || s.Port <= 0 || s.Port > 65535 {
		return config.Server{}, false
	}
	var sec config.Security
	switch strings.ToUpper(s.SocketType) {
	case "SSL", "TLS":
		sec = config.SecurityTLS
	case "STARTTLS":
		sec = config.SecurityStartTLS
	default:
		return config.Server{}, false
	}
	return config.Server{Host: strings.TrimSuffix(s.Hostname, "."), Port: s.Port, Security: sec}, true
}

// username expands the placeholders of config-v1.1.xml; "" when the
// login name is the address itself.
func username(tmpl, email string) string {
	local, domain, _ := strings.Cut(email, "@")
	u := strings.NewReplacer("%EMAILADDRESS%", email, "%EMAILLOCALPART%", local, "%EMAILDOMAIN%", domain).Replace(tmpl)
	if u == email {
		return ""
	}
	return u
}

// Probe tells whether the server at addr speaks TLS from the first byte or
// expects STARTTLS: an IMAP or SMTP server without TLS greets first ("* OK",
// "220"), a TLS server waits for the client's hello. It needs no
// credentials and sends nothing; wait bounds how long a silent server is
// given before it is taken for implicit TLS (0: 2 s).
func Probe(ctx context.Context, addr string, wait time.Duration) (config.Security, error) {
	if wait <= 0 {
		wait = 2 * time.Second
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4)
	n, err := io.ReadAtLeast(c, buf, 3)
	var ne net.Error
	switch {
	case n >= 3 && (string(buf[:3]) == "* O" || string(buf[:3]) == "220" || string(buf[:3]) == "* P"):
		return config.SecurityStartTLS, nil
	case n == 0 && errors.As(err, &ne) && ne.Timeout():
		return config.SecurityTLS, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return "", fmt.Errorf("%s closed the connection before saying which protocol it speaks: %w", addr, err)
	}
	return "", fmt.Errorf("%s greeted with %q, which is neither IMAP nor SMTP", addr, buf[:n])
}
