// Package support writes the support bundle: one zip that says what
// support needs to know about a connector (version, OS, the effective
// settings and where they come from, the settings and policy files, the
// status, a fresh connection check of every account, the last logs), and
// never anything secret: no password, device token, proxy login, pairing
// code or message content.
//
// Secrets are kept out twice: each part is written without them (the
// settings file holds none, the policy's pairing code and URL passwords are
// removed, the doctor's report redacts its own), and as a last line of
// defence every secret the keychain holds for the home is removed from
// every byte of the bundle before it is written.
//
// The command line's `support-bundle` and the window's button call
// WriteFile.
package support

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// MaxLogBytes bounds the logs in a bundle: the newest bytes are kept.
const MaxLogBytes = 2 << 20

// Options say what to bundle.
type Options struct {
	Home config.Home
	// IT is IT's policy file (nil: none).
	IT *policy.Policy
	// Platform is the platform's layer of the settings when the caller has
	// the state database open (a running Runner's); nil reads it, or says
	// in the bundle that it could not.
	Platform *settings.Values
	// StepTimeout bounds each step of the connection checks; 10 s when 0.
	StepTimeout time.Duration
	// Now is the time written in about.txt; time.Now when nil.
	Now func() time.Time
}

// WriteFile writes the bundle to path, atomically (a partial file never
// stays behind). It takes as long as the connection checks, a minute at
// most; ctx cancels it.
func WriteFile(ctx context.Context, path string, o Options) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write the support bundle: %w", err)
	}
	defer os.Remove(f.Name())
	if err := Write(ctx, f, o); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the support bundle: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write the support bundle: %w", err)
	}
	return nil
}

// Write writes the bundle, a zip, to w.
func Write(ctx context.Context, w io.Writer, o Options) error {
	if o.StepTimeout <= 0 {
		o.StepTimeout = 10 * time.Second
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	kc, err := keychain.New(o.Home.Dir)
	if err != nil {
		return err
	}
	cfg, err := o.Home.Load()
	if err != nil {
		return err
	}
	// The proxies in use, with the logins the keychain holds for them:
	// the doctor goes through them, and their passwords are secrets.
	var platformProxy *netdial.Choice
	if cfg.Platform.URL != "" {
		if c, err := connector.PlatformProxy(ctx, o.Home, cfg, o.IT); err == nil {
			platformProxy = &c
		}
	}
	route, routeErr := connector.MailRoute(o.Home, o.IT)
	var inUse []*netdial.Proxy
	if platformProxy != nil {
		inUse = append(inUse, platformProxy.Proxy)
	}
	inUse = append(inUse, route.Proxy)
	b := &bundle{secrets: collectSecrets(kc, cfg, o.IT, inUse)}

	b.add("about.txt", []byte(fmt.Sprintf("Inbox Relay %s\nOS: %s/%s\nhome: %s\npolicy: %s\nmade: %s\n",
		version.Version, runtime.GOOS, runtime.GOARCH, o.Home.Dir, policyPath(o.IT), now().UTC().Format(time.RFC3339))))

	if rep, err := connector.Effective(ctx, o.Home, o.IT, o.Platform); err != nil {
		b.add("settings.json", []byte(fmt.Sprintf("the effective settings could not be read: %v\n", err)))
	} else {
		b.addJSON("settings.json", rep)
	}

	if raw, err := os.ReadFile(o.Home.ConfigPath()); err == nil {
		b.add("config.json", redactURLs(raw))
	} else if !errors.Is(err, os.ErrNotExist) {
		b.add("config.json", []byte(fmt.Sprintf("cannot be read: %v\n", err)))
	}
	if o.IT != nil {
		if raw, err := os.ReadFile(o.IT.Path); err == nil {
			b.add("policy.toml", redactPolicy(raw))
		}
	}
	if raw, err := os.ReadFile(o.Home.StatusPath()); err == nil {
		b.add("status.json", raw)
	}
	if raw, err := os.ReadFile(connector.EnrolmentPath(o.Home)); err == nil {
		b.add("enrolment.json", raw)
	}

	// A fresh connection check of every account, as `diagnose --json`.
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if routeErr != nil {
		b.add("diagnose-error.txt", []byte(routeErr.Error()+"\n"))
	} else {
		dctx = netdial.WithRoute(dctx, route)
	}
	var platform *doctor.PlatformCheck
	if cfg.Platform.URL != "" {
		platform = &doctor.PlatformCheck{Platform: cfg.Platform, Proxy: platformProxy}
		platform.Token, _ = kc.Get(keychain.DeviceTokenKey)
	}
	for i, a := range cfg.Accounts {
		pw, _ := kc.Get(keychain.AccountKey(a.Email))
		opts := doctor.Options{Account: a, Password: pw, StepTimeout: o.StepTimeout}
		if i == 0 {
			opts.Platform = platform // the platform once is enough
		}
		b.addJSON("diagnose-"+fileName(a.Email)+".json", doctor.Run(dctx, opts))
	}

	if err := b.addLogs(o.Home.LogDir()); err != nil {
		b.add("logs/error.txt", []byte(err.Error()+"\n"))
	}
	return b.write(w)
}

func policyPath(it *policy.Policy) string {
	if it == nil {
		p, _ := policy.Path()
		return "none (" + p + " does not exist)"
	}
	return it.Path
}

// collectSecrets returns every secret the bundle must not hold: the
// passwords of the accounts and of the proxies (those the settings name,
// and inUse, the proxies chosen now with their logins), the device token,
// the pairing code. Only secrets of 4 bytes or more are looked for
// (shorter ones would erase ordinary text).
func collectSecrets(kc *keychain.Store, cfg *config.Config, it *policy.Policy, inUse []*netdial.Proxy) []string {
	var s []string
	add := func(v string) {
		if len(v) >= 4 {
			s = append(s, v)
		}
	}
	if tok, err := kc.Get(keychain.DeviceTokenKey); err == nil {
		add(tok)
	}
	for _, a := range cfg.Accounts {
		if pw, err := kc.Get(keychain.AccountKey(a.Email)); err == nil {
			add(pw)
		}
	}
	for _, p := range proxyHosts(cfg, it) {
		if v, err := kc.Get(connector.ProxyLoginKey(p)); err == nil {
			var l struct{ Password string }
			if json.Unmarshal([]byte(v), &l) == nil {
				add(l.Password)
			}
			add(v)
		}
	}
	for _, p := range inUse {
		if p != nil && p.URL.User != nil {
			pw, _ := p.URL.User.Password()
			add(pw)
		}
	}
	if it != nil {
		add(it.Platform.PairingCode)
	}
	// The longest first, so that a secret containing another is removed
	// whole.
	sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
	return s
}

// proxyHosts are the host:port of every proxy the settings name, the
// default port of its scheme filled in, as connector.ProxyLoginKey keys
// their logins.
func proxyHosts(cfg *config.Config, it *policy.Policy) []string {
	var out []string
	for _, raw := range []string{cfg.Platform.Proxy, policyProxy(it, false), policyProxy(it, true)} {
		switch strings.ToLower(strings.TrimSpace(raw)) {
		case "", netdial.SettingDirect, netdial.SettingSystem, "none":
			continue
		}
		if u, err := netdial.ParseProxy(raw); err == nil {
			out = append(out, (&netdial.Proxy{URL: u}).Addr())
		}
	}
	return out
}

func policyProxy(it *policy.Policy, mail bool) string {
	if it == nil {
		return ""
	}
	if mail {
		return it.Mail.Proxy
	}
	return it.Platform.Proxy
}

var (
	// userinfo with a password in a URL: scheme://user:password@
	urlPasswordRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s"']*):[^@/\s"']*@`)
	pairingCodeRE = regexp.MustCompile(`(?m)^(\s*pairing_code\s*=\s*).*$`)
)

func redactURLs(b []byte) []byte {
	return urlPasswordRE.ReplaceAll(b, []byte("$1:***@"))
}

// redactPolicy removes the pairing code and URL passwords from a policy
// file, keeping its lines (errors name them).
func redactPolicy(b []byte) []byte {
	return redactURLs(pairingCodeRE.ReplaceAll(b, []byte(`${1}"(removed from the support bundle)"`)))
}

func fileName(email string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' {
			return '_'
		}
		return r
	}, strings.ToLower(email))
}

// bundle is the zip's content, scrubbed on the way in.
type bundle struct {
	secrets []string
	names   []string
	files   map[string][]byte
}

func (b *bundle) add(name string, data []byte) {
	if b.files == nil {
		b.files = map[string][]byte{}
	}
	for _, s := range b.secrets {
		data = bytes.ReplaceAll(data, []byte(s), []byte("***"))
	}
	if _, seen := b.files[name]; !seen {
		b.names = append(b.names, name)
	}
	b.files[name] = data
}

func (b *bundle) addJSON(name string, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		data = []byte(fmt.Sprintf("cannot be encoded: %v", err))
	}
	b.add(name, append(data, '\n'))
}

// addLogs adds the newest log files, MaxLogBytes in all (the newest bytes
// of the file that passes the limit).
func (b *bundle) addLogs(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the log folder: %w", err)
	}
	type logf struct {
		name string
		mod  time.Time
	}
	var logs []logf
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			logs = append(logs, logf{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].mod.After(logs[j].mod) })
	left := int64(MaxLogBytes)
	for _, l := range logs {
		if left <= 0 {
			break
		}
		data, err := tail(filepath.Join(dir, l.name), left)
		if err != nil {
			return err
		}
		left -= int64(len(data))
		b.add("logs/"+l.name, data)
	}
	return nil
}

// tail returns the last n bytes of a file, from a line start.
func tail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := fi.Size() - n
	if off < 0 {
		off = 0
	}
	data, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return data, nil
}

func (b *bundle) write(w io.Writer) error {
	zw := zip.NewWriter(w)
	for _, name := range b.names {
		f, err := zw.Create(name)
		if err != nil {
			return fmt.Errorf("write the support bundle: %w", err)
		}
		if _, err := f.Write(b.files[name]); err != nil {
			return fmt.Errorf("write the support bundle: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write the support bundle: %w", err)
	}
	return nil
}
