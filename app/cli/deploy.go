package cli

// The commands IT and unattended installs use: the password of an account
// set up by the policy, the proxy's login, the effective settings.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/support"
)

// refuseLocked refuses a change of settings IT's policy locks, naming the
// policy file.
func (e *env) refuseLocked(change settings.Values) error {
	for _, k := range settings.Keys {
		if change.Has(k) && e.it.Locks(string(k)) {
			return e.it.Refuse(string(k))
		}
	}
	return nil
}

// accountPassword checks a password against an account's servers and
// stores it in the keychain: how the user of a machine set up by IT's
// policy gives the one thing the policy cannot hold.
func (e *env) accountPassword(args []string) error {
	fs := flags("account password")
	email := fs.String("email", "", "")
	stdin := fs.Bool("password-stdin", false, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *email == "" || !*stdin {
		return usagef("account password needs --email ADDR and --password-stdin (the password on standard input)")
	}
	cfg, err := e.home.Load()
	if err != nil {
		return err
	}
	acct, ok := cfg.Account(*email)
	if !ok {
		return fmt.Errorf("no account %s here: add it with `inboxrelay account add`, or ask IT to add it to the policy", *email)
	}
	password, err := readPassword(e.stdin)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if ctx, err = connector.WithMailRoute(ctx, e.home, e.it); err != nil {
		return err
	}
	chk, err := connector.CheckAccount(ctx, acct, password)
	if err != nil {
		return fmt.Errorf("the password was not stored: %w", err)
	}
	kc, err := keychain.New(e.home.Dir)
	if err != nil {
		return err
	}
	if err := kc.Set(keychain.AccountKey(acct.Email), password); err != nil {
		return fmt.Errorf("store the password: %w", err)
	}
	fmt.Fprintf(e.stdout, "IMAP %s (%s): login ok, INBOX and Sent %q\n", acct.IMAP.Addr(), acct.IMAP.Security, chk.Sent.Name)
	fmt.Fprintf(e.stdout, "SMTP %s (%s): login ok\n", acct.SMTP.Addr(), acct.SMTP.Security)
	if e.home.Running() {
		fmt.Fprintf(e.stdout, "password of %s stored; the running Inbox Relay uses it at its next try (within 5 minutes)\n", acct.Email)
	} else {
		fmt.Fprintf(e.stdout, "password of %s stored\n", acct.Email)
	}
	return nil
}

// proxy handles `proxy login`.
func (e *env) proxy(args []string) error {
	if len(args) == 0 || args[0] != "login" {
		return usagef("proxy needs login")
	}
	fs := flags("proxy login")
	proxyURL := fs.String("proxy", "", "")
	user := fs.String("username", "", "")
	stdin := fs.Bool("password-stdin", false, "")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *user == "" || !*stdin {
		return usagef("proxy login needs --username U and --password-stdin (the password on standard input)")
	}
	if *proxyURL == "" {
		// The proxy in use: the mail proxy of the policy, else the
		// platform's.
		cfg, err := e.home.Load()
		if err != nil {
			return err
		}
		route, err := connector.MailRoute(e.home, e.it)
		if err != nil {
			return err
		}
		if route.Proxy != nil {
			*proxyURL = netdial.Redact(route.Proxy.URL)
		}
		if *proxyURL == "" && cfg.Platform.URL != "" {
			c, err := connector.PlatformProxy(context.Background(), e.home, cfg, e.it)
			if err != nil {
				return err
			}
			if c.Proxy != nil {
				*proxyURL = netdial.Redact(c.Proxy.URL)
			}
		}
		if *proxyURL == "" {
			return usagef("no proxy is in use here: name it with --proxy URL")
		}
	}
	password, err := readPassword(e.stdin)
	if err != nil {
		return err
	}
	if err := connector.StoreProxyLogin(e.home, *proxyURL, *user, password); err != nil {
		return err
	}
	u, _ := netdial.ParseProxy(*proxyURL)
	fmt.Fprintf(e.stdout, "login of %s for the proxy %s stored in the keychain\n", *user, (&netdial.Proxy{URL: u}).Addr())
	return nil
}

// policy prints the effective settings and where each comes from.
func (e *env) policy(args []string) error {
	fs := flags("policy")
	asJSON := fs.Bool("json", false, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	rep, err := connector.Effective(context.Background(), e.home, e.it, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.Print(e.stdout)
}

// supportBundle writes the support bundle (sync/support).
func (e *env) supportBundle(args []string) error {
	fs := flags("support-bundle")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("support-bundle needs the file to write, such as inboxrelay-support.zip")
	}
	out, err := absPath(fs.Arg(0))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(e.stdout, "checking the connections of every account (up to a minute)…")
	if err := support.WriteFile(ctx, out, support.Options{Home: e.home, IT: e.it}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: versions, settings, status, connection checks and logs; no password, token or message\n", out)
	return nil
}
