package words

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
)

// The words of setup: what the lookup of an address's servers found, the
// advice of the big providers, and why pairing or a test failed, telling
// apart a wrong address, a bad code, no network and a misspelt name.

// provider is a mailbox provider whose users need advice before the test.
type provider struct {
	name    string
	domains []string // the addresses' domains
	hosts   []string // the IMAP host suffixes (a company domain hosted there)
	hint    string
}

var providers = []provider{
	{"Gmail", []string{"gmail.com", "googlemail.com"}, []string{".gmail.com", ".google.com"},
		"Gmail refuses your usual password here when 2-Step Verification is on: create an app password (Google Account › Security › App passwords) and enter that."},
	{"Outlook.com", []string{"outlook.com", "hotmail.com", "live.com", "msn.com"}, []string{".outlook.com", ".office365.com"},
		"Outlook.com and Microsoft 365 may refuse your usual password here: if two-step verification is on, create an app password (account.microsoft.com › Security) or ask IT whether IMAP is enabled."},
	{"iCloud Mail", []string{"icloud.com", "me.com", "mac.com"}, []string{".mail.me.com"},
		"iCloud Mail needs an app-specific password here, not your Apple ID password: create one at appleid.apple.com › Sign-In and Security."},
	{"Yahoo Mail", []string{"yahoo.com", "ymail.com", "rocketmail.com", "aol.com"}, []string{".mail.yahoo.com", ".aol.com"},
		"Yahoo and AOL need an app password here: create one under Account security › Generate app password."},
}

// Provider returns the name of the provider of an address's domain or
// IMAP host ("" when not a known one) and the advice its users need about
// passwords ("" when none).
func Provider(domain, imapHost string) (name, hint string) {
	domain, imapHost = strings.ToLower(domain), strings.ToLower(imapHost)
	for _, p := range providers {
		for _, d := range p.domains {
			if domain == d {
				return p.name, p.hint
			}
		}
		for _, h := range p.hosts {
			if imapHost != "" && strings.HasSuffix("."+imapHost, h) {
				return p.name, p.hint
			}
		}
	}
	return "", ""
}

// Found is the one line saying what the lookup found: "Found: Gmail —
// imap.gmail.com, smtp.gmail.com".
func Found(domain string, r autoconfig.Result) string {
	who, _ := Provider(domain, r.IMAP.Host)
	if who == "" {
		who = domain
	}
	from := map[string]string{"DNS SRV": " (from " + domain + "'s DNS)", "autoconfig": " (from " + domain + "'s mail settings)"}[r.Source]
	return "Found: " + who + " — " + r.IMAP.Host + ", " + r.SMTP.Host + from
}

// ForeignServers asks before testing servers found outside the address's
// domain: the lookup may have been tampered with, and the test sends the
// password there.
func ForeignServers(domain string, r autoconfig.Result) string {
	servers := strings.Join(r.Outside, " and ")
	if servers == "" {
		servers = r.IMAP.Host + " and " + r.SMTP.Host
	}
	return "Your domain's settings say that the mail of " + domain + " is handled by " + servers + ", outside " + domain +
		". Such answers can be forged: use these servers only if your IT department confirms them, as your password will be sent to them."
}

// LookupFailed says the servers could not be found, and what to do.
func LookupFailed(domain string, err error) string {
	if errors.Is(err, autoconfig.ErrNotFound) {
		return "No settings were found for " + domain + ": enter the servers your IT department gives you below."
	}
	if errors.Is(err, context.DeadlineExceeded) || offline(err) {
		return "The settings for " + domain + " could not be looked up (is this computer online?): enter the servers below, or try again."
	}
	return "The settings for " + domain + " could not be looked up: enter the servers your IT department gives you below."
}

// GuessedNameMissing says that a server name setup filled in from a
// lookup does not exist: the person did not type it, so it is not their
// spelling to check.
func GuessedNameMissing(host, source string) string {
	from := "the settings found for your address"
	switch source {
	case "DNS SRV":
		from = "your domain's DNS"
	case "autoconfig":
		from = "your domain's mail settings"
	}
	return "No server named " + host + " exists, though " + from + " named it; ask your IT department for the right server name and enter it under Server settings."
}

// StepName is a doctor step's name in the window ("Server name").
func StepName(id string) string { return stepNames[id] }

// offline reports whether err means this computer has no network: no
// route, no name service.
func offline(err error) bool {
	var de *net.DNSError
	if errors.As(err, &de) && !de.IsNotFound {
		return true
	}
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETDOWN)
}

// pairingNet says a network failure of pairing: a misspelt name, no
// network, a wrong port; "" when err is none of these.
func pairingNet(err error) string {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return "No server named " + de.Name + " exists: check the platform address for a typing mistake (copy it from the platform)."
	case offline(err):
		return "This computer cannot reach the platform: check that it is online (or, behind a company proxy, enter it under Advanced), then try again."
	case errors.Is(err, syscall.ECONNREFUSED):
		return "The platform's server refused the connection: check the platform address (copy it from the platform), then try again."
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "The platform did not answer in time: check that this computer is online (or, behind a company proxy, enter it under Advanced), then try again."
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
