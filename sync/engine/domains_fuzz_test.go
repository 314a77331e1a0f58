package engine

import (
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/imapsync"
)

// corporaAddresses returns up to n addresses from the From, To and Cc of
// the messages in shared/corpora (looked for in the parents of this
// folder), or none when it is not there.
func corporaAddresses(n int) []string {
	dir, _ := filepath.Abs(".")
	var root string
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if fi, err := os.Stat(filepath.Join(dir, "shared", "corpora")); err == nil && fi.IsDir() {
			root = filepath.Join(dir, "shared", "corpora")
			break
		}
	}
	if root == "" {
		return nil
	}
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || len(out) >= n {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		m, err := mail.ReadMessage(f)
		if err != nil {
			return nil
		}
		for _, h := range []string{"From", "To", "Cc"} {
			list, _ := m.Header.AddressList(h)
			for _, a := range list {
				out = append(out, a.Address)
			}
		}
		return nil
	})
	return out
}

// FuzzInDomains: relay_domains lets a message out when one of its
// addresses is in a listed domain or below it, and never because a domain
// merely ends like a listed one ("evilacme.com" is not "acme.com"),
// whatever the addresses (from the server's ENVELOPE, kept as their
// domains by imapsync.AddressDomain) and the domains (from the platform).
func FuzzInDomains(f *testing.F) {
	f.Add("alice@acme.com", "acme.com")
	f.Add("bob@mail.EU.Acme.com.", ".ACME.com.")
	f.Add("mallory@evilacme.com", "acme.com")
	f.Add("x@", "")
	f.Add(`"odd@local"@acme.com`, "acme.com")
	f.Add("x@"+strings.Repeat("long.", 80)+"acme.com", "acme.com")
	for _, a := range corporaAddresses(60) {
		if at := strings.LastIndexByte(a, '@'); at >= 0 {
			f.Add(a, a[at+1:])
			f.Add(a, "example.com")
		}
	}
	// domainsOf is what FetchMeta keeps of an address mailbox@host.
	domainsOf := func(addr string) []string {
		at := strings.LastIndexByte(addr, '@')
		if at < 0 {
			return nil
		}
		if d := imapsync.AddressDomain(addr[:at], addr[at+1:]); d != "" {
			return []string{d}
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, addr, domain string) {
		if !inDomains(domainsOf(addr), nil) {
			t.Fatal("no relay_domains must let everything out")
		}
		d := strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(domain, "."), "."))
		if d == "" || len(d) > 253 {
			return // the settings refuse an empty domain, or one longer than DNS allows, before it gets here
		}
		got := inDomains(domainsOf(addr), []string{domain})
		at := strings.LastIndexByte(addr, '@')
		if at <= 0 || at == len(addr)-1 {
			if got {
				t.Fatalf("%q has no mailbox or no domain and passed %q", addr, domain)
			}
			return
		}
		host := strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
		want := host == d || strings.HasSuffix(host, "."+d)
		if got != want {
			t.Fatalf("inDomains(%q, %q) = %v, want %v", addr, domain, got, want)
		}
		if got && !inDomains(domainsOf("someone@sub."+addr[at+1:]), []string{domain}) {
			t.Fatalf("a subdomain of %q did not pass %q", host, domain)
		}
	})
}
