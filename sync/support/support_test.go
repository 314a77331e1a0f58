package support

import (
	"slices"
	"testing"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/policy"
)

// TestProxyHostsAreLoginKeys: the proxies the settings name are looked up
// in the keychain under the key their logins are stored with, also when
// the setting has no scheme or no port (the bundle must find those
// passwords to scrub them); "direct" and "system" name no proxy.
func TestProxyHostsAreLoginKeys(t *testing.T) {
	cfg := &config.Config{Platform: config.Platform{Proxy: "Proxy.Corp:3128"}}
	it := &policy.Policy{Platform: policy.Platform{Proxy: "http://user@web.corp"}, Mail: policy.Mail{Proxy: "socks5://socks.corp"}}
	want := []string{"Proxy.Corp:3128", "web.corp:80", "socks.corp:1080"}
	if got := proxyHosts(cfg, it); !slices.Equal(got, want) {
		t.Fatalf("proxyHosts = %q, want %q", got, want)
	}
	cfg.Platform.Proxy = "direct"
	it.Platform.Proxy, it.Mail.Proxy = "system", ""
	if got := proxyHosts(cfg, it); len(got) != 0 {
		t.Fatalf("proxyHosts without a proxy = %q", got)
	}
}
