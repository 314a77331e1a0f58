package netdial

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// systemTimeout bounds reading the system's settings (a gsettings or
// scutil run).
const systemTimeout = 5 * time.Second

// System reads the proxy settings of the operating system or desktop:
// GNOME's (gsettings, org.gnome.system.proxy) on Linux and the BSDs,
// Windows' Internet settings (the WinINET values in the registry of the
// current user), macOS' network settings (scutil --proxy). Where none
// can be read it returns the zero SystemSettings and no error; the error
// is for settings that exist and cannot be read. Bounded by a few seconds.
func System(ctx context.Context) (SystemSettings, error) {
	ctx, cancel := context.WithTimeout(ctx, systemTimeout)
	defer cancel()
	return system(ctx)
}

// runOutput runs a program and returns its standard output; ok is false
// when it is not installed or fails.
func runOutput(ctx context.Context, name string, args ...string) (string, bool) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", false
	}
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return "", false
	}
	return string(out), true
}

// --- GNOME (gsettings) ---

// gnomeSettings reads org.gnome.system.proxy through get, which returns
// the output of `gsettings get SCHEMA KEY` (a GVariant text).
func gnomeSettings(get func(schema, key string) (string, bool)) SystemSettings {
	s := SystemSettings{Source: "GNOME's proxy settings"}
	mode, ok := get("org.gnome.system.proxy", "mode")
	if !ok {
		return SystemSettings{}
	}
	switch gvString(mode) {
	case "manual":
	case "auto":
		if pac, ok := get("org.gnome.system.proxy", "autoconfig-url"); ok {
			s.PAC = gvString(pac)
		}
		if s.PAC == "" {
			s.PAC = "automatic discovery (WPAD)"
		}
		return s
	default:
		return SystemSettings{}
	}
	hostPort := func(schema string) (string, int) {
		h, _ := get(schema, "host")
		p, _ := get(schema, "port")
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(p), "uint32 ")))
		return gvString(h), n
	}
	host, port := hostPort("org.gnome.system.proxy.https")
	if host == "" {
		// GNOME's "use the same proxy for all protocols" fills in the HTTP
		// proxy only.
		if same, _ := get("org.gnome.system.proxy", "use-same-proxy"); strings.TrimSpace(same) != "false" {
			host, port = hostPort("org.gnome.system.proxy.http")
		}
	}
	if host != "" && port > 0 {
		s.HTTPS = hostURL("http", host, port)
	}
	if h, p := hostPort("org.gnome.system.proxy.socks"); h != "" && p > 0 {
		s.SOCKS = hostURL("socks5", h, p)
	}
	if ig, ok := get("org.gnome.system.proxy", "ignore-hosts"); ok {
		s.Bypass = gvStrings(ig)
	}
	return s
}

// hostURL builds scheme://host:port from a host a setting gave, which may
// itself carry a scheme ("http://proxy").
func hostURL(scheme, host string, port int) *url.URL {
	host = strings.TrimSpace(host)
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host = strings.TrimSuffix(host, "/")
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))}
}

// gvString decodes a GVariant string as gsettings prints it: 'text'.
func gvString(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
		s = strings.ReplaceAll(s, `\'`, `'`)
		s = strings.ReplaceAll(s, `\\`, `\`)
	}
	return s
}

// gvStrings decodes a GVariant array of strings: ['a', 'b'] or @as [].
func gvStrings(s string) []string {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "@as"))
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return nil
	}
	var out []string
	for _, part := range strings.Split(s[1:len(s)-1], ",") {
		if v := gvString(part); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// --- Windows (WinINET) ---

// wininetSettings interprets the WinINET values of
// HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings:
// ProxyEnable, ProxyServer ("host:port", or "http=h:p;https=h:p;socks=h:p"),
// ProxyOverride ("<local>;*.corp;10.*") and AutoConfigURL.
func wininetSettings(enable uint64, server, override, autoConfig string) SystemSettings {
	s := SystemSettings{Source: "Windows' Internet settings"}
	var httpProxy *url.URL
	if enable != 0 && strings.TrimSpace(server) != "" {
		if !strings.Contains(server, "=") {
			s.HTTPS = parseHostPort("http", server)
		} else {
			for _, part := range strings.Split(server, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
				if !ok {
					continue
				}
				switch strings.ToLower(k) {
				case "https":
					s.HTTPS = parseHostPort("http", v)
				case "http":
					httpProxy = parseHostPort("http", v)
				case "socks":
					s.SOCKS = parseHostPort("socks5", v)
				}
			}
			if s.HTTPS == nil {
				// WinINET sends https:// URLs through the HTTP proxy
				// when no secure one is set.
				s.HTTPS = httpProxy
			}
		}
		for _, o := range strings.Split(override, ";") {
			o = strings.TrimSpace(o)
			switch {
			case o == "":
			case strings.EqualFold(o, "<local>"):
				s.Bypass = append(s.Bypass, "localhost", "127.0.0.1", "::1")
			default:
				// WinINET wildcards: "*.corp" and "10.*".
				if strings.HasSuffix(o, ".*") {
					if cidr := wildcardCIDR(o); cidr != "" {
						s.Bypass = append(s.Bypass, cidr)
						continue
					}
				}
				s.Bypass = append(s.Bypass, o)
			}
		}
	}
	if strings.TrimSpace(autoConfig) != "" && s.HTTPS == nil {
		s.PAC = strings.TrimSpace(autoConfig)
	}
	if s.HTTPS == nil && s.PAC == "" {
		return SystemSettings{}
	}
	return s
}

// wildcardCIDR turns "10.*" or "192.168.*" into a CIDR range.
func wildcardCIDR(o string) string {
	parts := strings.Split(strings.TrimSuffix(o, ".*"), ".")
	if len(parts) == 0 || len(parts) > 3 {
		return ""
	}
	octets := make([]string, 4)
	for i := range octets {
		octets[i] = "0"
	}
	for i, p := range parts {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 255 {
			return ""
		}
		octets[i] = p
	}
	return strings.Join(octets, ".") + "/" + strconv.Itoa(8*len(parts))
}

// parseHostPort parses "host:port" or "scheme://host:port" into a URL
// with scheme when it has none; nil when it is not usable.
func parseHostPort(scheme, v string) *url.URL {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if !strings.Contains(v, "://") {
		v = scheme + "://" + v
	}
	u, err := ParseProxy(v)
	if err != nil {
		return nil
	}
	return u
}

// --- macOS (scutil --proxy) ---

// scutilSettings parses the dictionary `scutil --proxy` prints.
func scutilSettings(out string) SystemSettings {
	s := SystemSettings{Source: "macOS' network settings"}
	vals := map[string]string{}
	var inExceptions bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "ExceptionsList :"):
			inExceptions = true
			continue
		case inExceptions && line == "}":
			inExceptions = false
			continue
		}
		k, v, ok := strings.Cut(line, " : ")
		if !ok {
			continue
		}
		if inExceptions {
			s.Bypass = append(s.Bypass, strings.TrimSpace(v))
			continue
		}
		vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	port := func(k string) int { n, _ := strconv.Atoi(vals[k]); return n }
	if vals["HTTPSEnable"] == "1" && vals["HTTPSProxy"] != "" && port("HTTPSPort") > 0 {
		s.HTTPS = hostURL("http", vals["HTTPSProxy"], port("HTTPSPort"))
	}
	if vals["SOCKSEnable"] == "1" && vals["SOCKSProxy"] != "" && port("SOCKSPort") > 0 {
		s.SOCKS = hostURL("socks5", vals["SOCKSProxy"], port("SOCKSPort"))
	}
	if vals["ProxyAutoConfigEnable"] == "1" {
		s.PAC = vals["ProxyAutoConfigURLString"]
	} else if vals["ProxyAutoDiscoveryEnable"] == "1" {
		s.PAC = "automatic discovery (WPAD)"
	}
	if vals["ExcludeSimpleHostnames"] == "1" {
		s.Bypass = append(s.Bypass, "localhost")
	}
	if s.HTTPS == nil && s.SOCKS == nil && s.PAC == "" {
		return SystemSettings{}
	}
	return s
}
