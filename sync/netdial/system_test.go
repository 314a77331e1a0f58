package netdial

import (
	"context"
	"net/url"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

func TestPlatformProxyOrder(t *testing.T) {
	target, _ := url.Parse("https://app.example.com/connector")
	sys := &SystemSettings{Source: "GNOME's proxy settings", HTTPS: &url.URL{Scheme: "http", Host: "sys.corp:8080"}, Bypass: []string{".intra"}}
	cases := []struct {
		name, setting, env, noProxy string
		sys                         *SystemSettings
		want, wantSource            string
	}{
		{"explicit wins over everything", "http://policy.corp:3128", "http://env.corp:1", "", sys, "http://policy.corp:3128", "the policy"},
		{"direct ignores environment and system", "direct", "http://env.corp:1", "", sys, "", ""},
		{"environment before system", "", "http://env.corp:1", "", sys, "http://env.corp:1", "HTTPS_PROXY"},
		{"NO_PROXY exempts the platform", "system", "http://env.corp:1", "example.com", sys, "", ""},
		{"system when no environment", "", "", "", sys, "http://sys.corp:8080", "GNOME's proxy settings"},
		{"nothing: direct", "", "", "", &SystemSettings{}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("HTTPS_PROXY", c.env)
			t.Setenv("https_proxy", "")
			t.Setenv("NO_PROXY", c.noProxy)
			t.Setenv("no_proxy", "")
			ch, err := PlatformProxy(context.Background(), Setting{Value: c.setting, Source: "the policy"}, target, c.sys)
			if err != nil {
				t.Fatal(err)
			}
			got, src := "", ""
			if ch.Proxy != nil {
				got, src = ch.Proxy.URL.String(), ch.Proxy.Source
			}
			if got != c.want || src != c.wantSource {
				t.Fatalf("got %q from %q, want %q from %q", got, src, c.want, c.wantSource)
			}
		})
	}
	t.Run("system bypass list", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "")
		t.Setenv("https_proxy", "")
		in, _ := url.Parse("https://relay.intra/connector")
		if ch, _ := PlatformProxy(context.Background(), Setting{}, in, sys); ch.Proxy != nil {
			t.Fatalf("a host in the system's bypass list went to %v", ch.Proxy)
		}
	})
	t.Run("PAC is named, not followed", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "")
		t.Setenv("https_proxy", "")
		ch, _ := PlatformProxy(context.Background(), Setting{}, target, &SystemSettings{Source: "Windows' Internet settings", PAC: "http://wpad.corp/proxy.pac"})
		if ch.Proxy != nil || !strings.Contains(ch.Note, "http://wpad.corp/proxy.pac") {
			t.Fatalf("PAC: %+v", ch)
		}
	})
	t.Run("a bad explicit proxy names its source", func(t *testing.T) {
		_, err := PlatformProxy(context.Background(), Setting{Value: "ftp://x", Source: "the policy /etc/p.toml"}, target, sys)
		if err == nil || !strings.Contains(err.Error(), "/etc/p.toml") {
			t.Fatalf("err %v", err)
		}
	})
}

// GNOME's settings as gsettings really reads them: the keyfile backend
// keeps them in a private XDG_CONFIG_HOME, no dconf service needed.
func TestGNOMESettingsThroughGsettings(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("GNOME's settings are read on Linux and the BSDs")
	}
	if _, err := exec.LookPath("gsettings"); err != nil {
		t.Fatal("gsettings is not installed (libglib2.0-bin; make test installs it)")
	}
	t.Setenv("GSETTINGS_BACKEND", "keyfile")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	set := func(schema, key, value string) {
		t.Helper()
		if out, err := exec.Command("gsettings", "set", schema, key, value).CombinedOutput(); err != nil {
			t.Fatalf("gsettings set %s %s: %v %s (the schemas come with gsettings-desktop-schemas)", schema, key, err, out)
		}
	}
	got, err := System(context.Background())
	if err != nil || got.HTTPS != nil || got.PAC != "" {
		t.Fatalf("default GNOME settings (mode none): %+v %v", got, err)
	}

	set("org.gnome.system.proxy", "mode", "manual")
	set("org.gnome.system.proxy.http", "host", "proxy.corp")
	set("org.gnome.system.proxy.http", "port", "3128")
	set("org.gnome.system.proxy", "ignore-hosts", "['localhost', '.intra', '10.0.0.0/8']")
	got, err = System(context.Background())
	if err != nil || urlString(got.HTTPS) != "http://proxy.corp:3128" || !reflect.DeepEqual(got.Bypass, []string{"localhost", ".intra", "10.0.0.0/8"}) {
		t.Fatalf("manual, same proxy for all: %+v %v", got, err)
	}

	set("org.gnome.system.proxy.https", "host", "secure.corp")
	set("org.gnome.system.proxy.https", "port", "8443")
	set("org.gnome.system.proxy.socks", "host", "socks.corp")
	set("org.gnome.system.proxy.socks", "port", "1080")
	got, _ = System(context.Background())
	if urlString(got.HTTPS) != "http://secure.corp:8443" || urlString(got.SOCKS) != "socks5://socks.corp:1080" || got.Source != "GNOME's proxy settings" {
		t.Fatalf("manual with an HTTPS proxy: %+v", got)
	}

	set("org.gnome.system.proxy", "mode", "auto")
	set("org.gnome.system.proxy", "autoconfig-url", "http://wpad.corp/wpad.dat")
	got, _ = System(context.Background())
	if got.HTTPS != nil || got.PAC != "http://wpad.corp/wpad.dat" {
		t.Fatalf("auto: %+v", got)
	}
}

func TestWinINETSettings(t *testing.T) {
	cases := []struct {
		name                  string
		enable                uint64
		server, override, pac string
		https, socks, wantPAC string
		bypass                []string
	}{
		{"one proxy for all", 1, "proxy.corp:8080", "<local>;*.corp;10.*", "", "http://proxy.corp:8080", "", "", []string{"localhost", "127.0.0.1", "::1", "*.corp", "10.0.0.0/8"}},
		{"per protocol", 1, "http=web.corp:80;https=secure.corp:443;socks=socks.corp:1080", "", "", "http://secure.corp:443", "socks5://socks.corp:1080", "", nil},
		{"http only serves https too", 1, "http=web.corp:80", "", "", "http://web.corp:80", "", "", nil},
		{"disabled", 0, "proxy.corp:8080", "", "", "", "", "", nil},
		{"PAC", 0, "", "", "http://wpad.corp/proxy.pac", "", "", "http://wpad.corp/proxy.pac", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := wininetSettings(c.enable, c.server, c.override, c.pac)
			if urlString(s.HTTPS) != c.https || urlString(s.SOCKS) != c.socks || s.PAC != c.wantPAC || !reflect.DeepEqual(s.Bypass, c.bypass) {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

func TestScutilSettings(t *testing.T) {
	out := `<dictionary> {
  ExceptionsList : <array> {
    0 : *.local
    1 : 169.254/16
    2 : intra.corp
  }
  ExcludeSimpleHostnames : 1
  FTPPassive : 1
  HTTPEnable : 1
  HTTPPort : 80
  HTTPProxy : web.corp
  HTTPSEnable : 1
  HTTPSPort : 3128
  HTTPSProxy : proxy.corp
  SOCKSEnable : 0
}
`
	s := scutilSettings(out)
	if urlString(s.HTTPS) != "http://proxy.corp:3128" || !reflect.DeepEqual(s.Bypass, []string{"*.local", "169.254/16", "intra.corp", "localhost"}) || s.Source != "macOS' network settings" {
		t.Fatalf("scutil: %+v", s)
	}
	pac := scutilSettings("<dictionary> {\n  ProxyAutoConfigEnable : 1\n  ProxyAutoConfigURLString : http://wpad/x.pac\n}\n")
	if pac.HTTPS != nil || pac.PAC != "http://wpad/x.pac" {
		t.Fatalf("scutil PAC: %+v", pac)
	}
	if none := scutilSettings("<dictionary> {\n  HTTPEnable : 0\n}\n"); none.Source != "" {
		t.Fatalf("no proxy: %+v", none)
	}
}
