package netdial

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Words a proxy setting may hold instead of a URL.
const (
	// SettingDirect forces direct connections, whatever the environment
	// and the system settings say.
	SettingDirect = "direct"
	// SettingSystem (or an empty setting) uses HTTPS_PROXY/NO_PROXY, else
	// the system's proxy settings, else a direct connection.
	SettingSystem = "system"
)

// Setting is a proxy setting as the policy or the user's settings give it,
// with where it came from.
type Setting struct {
	Value  string // a proxy URL, SettingDirect, SettingSystem or ""
	Source string // "the policy /etc/inboxrelay/policy.toml", "your settings", …
}

// CheckSetting validates a setting's value: a proxy URL, "direct",
// "system" or "". It never contacts anything.
func CheckSetting(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", SettingDirect, SettingSystem, "none":
		return nil
	}
	_, err := ParseProxy(v)
	return err
}

// SystemSettings are the proxy settings of the operating system (or the
// desktop), as System reads them.
type SystemSettings struct {
	// Source names where they were read: "GNOME's proxy settings",
	// "Windows' Internet settings", "macOS' network settings".
	Source string
	// HTTPS is the proxy for https:// URLs; nil when none is set.
	HTTPS *url.URL
	// SOCKS is the SOCKS proxy the system names, if any (never used for the
	// platform; reported by the doctor).
	SOCKS *url.URL
	// Bypass lists the hosts reached directly (NO_PROXY syntax).
	Bypass []string
	// PAC is the URL of a proxy auto-configuration script the system is set
	// to use; Inbox Relay does not evaluate PAC scripts (see PlatformProxy).
	PAC string
}

// Choice is the proxy chosen for the platform, and what a person should
// know about the choice.
type Choice struct {
	Proxy *Proxy // nil: direct
	// Note, when not empty, is a sentence about a setting that was not
	// followed (a PAC script, say), for the log and the doctor.
	Note string
}

// String describes the choice for people.
func (c Choice) String() string {
	if c.Proxy == nil {
		return "direct connection"
	}
	return c.Proxy.String()
}

// PlatformProxy chooses the proxy for HTTPS requests to target, the
// platform's URL, in this order: an explicit URL in s; "direct" (no proxy
// at all); otherwise HTTPS_PROXY/NO_PROXY from the environment (as Go's
// http.ProxyFromEnvironment reads them); otherwise the system's settings
// (sys; nil reads them with System); otherwise direct. A system set to a
// PAC script is reported in Choice.Note and not followed: Inbox Relay
// does not run PAC scripts (no maintained Go library evaluates them), so
// IT sets [platform] proxy in the policy instead.
func PlatformProxy(ctx context.Context, s Setting, target *url.URL, sys *SystemSettings) (Choice, error) {
	v := strings.TrimSpace(s.Value)
	switch strings.ToLower(v) {
	case SettingDirect, "none":
		return Choice{}, nil
	case "", SettingSystem:
	default:
		u, err := ParseProxy(v)
		if err != nil {
			return Choice{}, fmt.Errorf("%s: %w", s.Source, err)
		}
		return Choice{Proxy: &Proxy{URL: u, Source: s.Source}}, nil
	}
	if p, name := fromEnvironment(target); p != nil || name != "" {
		if p == nil {
			return Choice{}, nil // NO_PROXY exempts the platform
		}
		return Choice{Proxy: &Proxy{URL: p, Source: name}}, nil
	}
	if sys == nil {
		got, err := System(ctx)
		if err != nil {
			return Choice{Note: fmt.Sprintf("the system's proxy settings could not be read (%v): connecting directly", err)}, nil
		}
		sys = &got
	}
	if sys.HTTPS != nil {
		if bypassed(target.Hostname(), sys.Bypass) {
			return Choice{}, nil
		}
		return Choice{Proxy: &Proxy{URL: sys.HTTPS, Source: sys.Source}}, nil
	}
	if sys.PAC != "" {
		return Choice{Note: fmt.Sprintf("%s name a proxy auto-configuration script (%s), which Inbox Relay does not run: it connects directly unless the policy's [platform] proxy or HTTPS_PROXY names the proxy", sys.Source, sys.PAC)}, nil
	}
	return Choice{}, nil
}

// fromEnvironment applies HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy
// to target. name is the variable that decided ("" when none is set).
func fromEnvironment(target *url.URL) (*url.URL, string) {
	cfg := httpproxy.FromEnvironment()
	if cfg.HTTPSProxy == "" {
		return nil, ""
	}
	name := "HTTPS_PROXY"
	if os.Getenv("HTTPS_PROXY") == "" {
		name = "https_proxy"
	}
	u, err := cfg.ProxyFunc()(target)
	if err != nil || u == nil {
		return nil, "NO_PROXY"
	}
	return u, name
}
