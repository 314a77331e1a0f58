package connector

// How this connector reaches the network: the proxy chosen for the
// platform, the route of the mail connections, and the proxies' logins,
// which live in the keychain and never in config.json.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// ProxyLoginKey is the keychain key of the login for the proxy at
// host:port.
func ProxyLoginKey(hostport string) string { return "proxy:" + strings.ToLower(hostport) }

type proxyLogin struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// StoreProxyLogin keeps a proxy's user name and password in the keychain,
// for the proxy at proxyURL (its own login, if any, is ignored).
func StoreProxyLogin(home config.Home, proxyURL, user, password string) error {
	u, err := netdial.ParseProxy(proxyURL)
	if err != nil {
		return err
	}
	if user == "" || password == "" {
		return errors.New("a proxy login needs a user name and a password")
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(proxyLogin{User: user, Password: password})
	if err := kc.Set(ProxyLoginKey((&netdial.Proxy{URL: u}).Addr()), string(b)); err != nil {
		return fmt.Errorf("store the proxy's login: %w", err)
	}
	return nil
}

// withLogin returns p with the login stored for it, if any (a login in the
// keychain wins over a user name in the URL).
func withLogin(kc *keychain.Store, p *netdial.Proxy) (*netdial.Proxy, error) {
	if p == nil {
		return nil, nil
	}
	s, err := kc.Get(ProxyLoginKey(p.Addr()))
	if errors.Is(err, keychain.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the proxy's login from the keychain: %w", err)
	}
	var l proxyLogin
	if json.Unmarshal([]byte(s), &l) != nil || l.User == "" {
		return p, nil
	}
	u := *p.URL
	u.User = url.UserPassword(l.User, l.Password)
	return &netdial.Proxy{URL: &u, Source: p.Source}, nil
}

// splitProxyLogin returns the proxy setting to store (without a password)
// and the login it held, if any.
func splitProxyLogin(setting string) (string, *proxyLogin) {
	u, err := netdial.ParseProxy(setting)
	if err != nil || u.User == nil {
		return setting, nil
	}
	pw, has := u.User.Password()
	if !has {
		return setting, nil
	}
	l := &proxyLogin{User: u.User.Username(), Password: pw}
	u.User = nil
	return u.String(), l
}

// proxySource names where a platform proxy setting comes from.
func proxySource(cfg *config.Config, pol *policy.Policy) string {
	if pol != nil && pol.Platform.Proxy != "" && strings.EqualFold(pol.Platform.Proxy, cfg.Platform.Proxy) {
		return "the policy " + pol.Path
	}
	return "the settings of Inbox Relay (config.json)"
}

// PlatformProxy chooses the proxy for the paired platform as the engine
// does: the proxy setting (the policy's, or the user's --proxy), else
// HTTPS_PROXY/NO_PROXY, else the system's settings; with the proxy's login
// from the keychain. pol may be nil.
func PlatformProxy(ctx context.Context, home config.Home, cfg *config.Config, pol *policy.Policy) (netdial.Choice, error) {
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return netdial.Choice{}, err
	}
	return platformChoice(ctx, kc, netdial.Setting{Value: cfg.Platform.Proxy, Source: proxySource(cfg, pol)}, cfg.Platform.URL)
}

func platformChoice(ctx context.Context, kc *keychain.Store, s netdial.Setting, platformURL string) (netdial.Choice, error) {
	c, err := platformRoute(ctx, s, platformURL)
	if err != nil {
		return c, err
	}
	if c.Proxy, err = withLogin(kc, c.Proxy); err != nil {
		return c, err
	}
	return c, nil
}

// platformRoute chooses the proxy for platformURL from setting s, the
// environment and the system's settings, without its login.
func platformRoute(ctx context.Context, s netdial.Setting, platformURL string) (netdial.Choice, error) {
	target, err := url.Parse(platformURL)
	if err != nil || target.Host == "" {
		return netdial.Choice{}, fmt.Errorf("platform URL %q must be an https:// URL", platformURL)
	}
	return netdial.PlatformProxy(ctx, s, target, nil)
}

// via is what relay.Options.Proxy takes for a choice.
func via(c netdial.Choice) string {
	if c.Proxy == nil {
		return relay.ProxyDirect
	}
	return c.Proxy.URL.String()
}

// MailRoute is how the engine connects to the mail servers: through the
// policy's [mail] proxy (with its login from the keychain) or directly.
// pol may be nil (direct).
func MailRoute(home config.Home, pol *policy.Policy) (netdial.Route, error) {
	if pol == nil || pol.Mail.Proxy == "" || strings.EqualFold(pol.Mail.Proxy, netdial.SettingDirect) || strings.EqualFold(pol.Mail.Proxy, "none") {
		return netdial.Route{}, nil
	}
	u, err := netdial.ParseProxy(pol.Mail.Proxy)
	if err != nil {
		return netdial.Route{}, fmt.Errorf("the policy %s: [mail] proxy: %w", pol.Path, err)
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return netdial.Route{}, err
	}
	p, err := withLogin(kc, &netdial.Proxy{URL: u, Source: "the policy " + pol.Path})
	if err != nil {
		return netdial.Route{}, err
	}
	return netdial.Route{Proxy: p, Bypass: pol.Mail.NoProxy}, nil
}

// WithMailRoute returns ctx carrying the mail route (MailRoute) for
// netdial.Dial: a front end wraps the context of every call that reaches a
// mail server (adding an account, the doctor) in it.
func WithMailRoute(ctx context.Context, home config.Home, pol *policy.Policy) (context.Context, error) {
	r, err := MailRoute(home, pol)
	if err != nil {
		return ctx, err
	}
	return netdial.WithRoute(ctx, r), nil
}

// CheckPair refuses pairing with another platform, CA file or proxy than
// the policy's when it locks the platform (a *policy.LockedError); a new
// code for the same platform is fine: a revoked device pairs again. it may
// be nil.
func CheckPair(it *policy.Policy, o PairOptions) error {
	if !it.Locks(policy.LockPlatform) {
		return nil
	}
	stored, _ := splitProxyLogin(o.Proxy)
	if !strings.EqualFold(strings.TrimRight(o.URL, "/"), it.Platform.URL) || o.CAFile != it.Platform.CAFile || stored != it.Platform.Proxy {
		return it.Refuse(policy.LockPlatform)
	}
	return nil
}

// MailContext returns ctx carrying the runner's mail route (WithMailRoute
// under the runner's policy), for calls a front end makes itself to the
// mail servers (the doctor's "Test connection").
func (r *Runner) MailContext(ctx context.Context) (context.Context, error) {
	return WithMailRoute(ctx, r.home, r.o.IT)
}

// IT returns the policy file the runner was opened with; nil when none.
func (r *Runner) IT() *policy.Policy { return r.o.IT }

// PlatformLayer returns the platform's settings as last received (the
// platform layer of sync/settings), for reports made while the runner
// holds the state database (support.Options.Platform).
func (r *Runner) PlatformLayer() (settings.Values, error) {
	st, err := r.store.Settings()
	if err != nil {
		return settings.Values{}, err
	}
	return st.Layer(), nil
}
