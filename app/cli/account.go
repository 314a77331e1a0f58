package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

func goos() string { return runtime.GOOS }

func absPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return abs, nil
}

// multi is a flag that may be given several times.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func (e *env) account(args []string) error {
	if len(args) == 0 {
		return usagef("account needs add, list, remove or password")
	}
	switch args[0] {
	case "add":
		return e.accountAdd(args[1:])
	case "list":
		return e.accountList(args[1:])
	case "remove":
		return e.accountRemove(args[1:])
	case "password":
		return e.accountPassword(args[1:])
	}
	return usagef("unknown account command %q: use add, list, remove or password", args[0])
}

// serverFlags are the flags that describe an account's servers, shared by
// `account add` and `diagnose`.
type serverFlags struct {
	email, username, imap, imapSec, smtp, smtpSec, backfill, minTLS *string
	passwordStdin                                                   *bool
	pins                                                            multi
}

func addServerFlags(fs *flag.FlagSet) *serverFlags {
	f := &serverFlags{
		email: fs.String("email", "", ""), username: fs.String("username", "", ""),
		imap: fs.String("imap", "", ""), imapSec: fs.String("imap-security", "tls", ""),
		smtp: fs.String("smtp", "", ""), smtpSec: fs.String("smtp-security", "tls", ""),
		backfill: fs.String("backfill-days", "", ""),
		minTLS:   fs.String("min-tls", "", ""), passwordStdin: fs.Bool("password-stdin", false, ""),
	}
	fs.Var(&f.pins, "trust-fingerprint", "")
	return f
}

// account builds the account the flags describe; errors are usage errors.
func (f *serverFlags) account() (config.Account, error) {
	if !strings.Contains(*f.email, "@") {
		return config.Account{}, usagef("--email %q is not an e-mail address", *f.email)
	}
	acct := config.Account{Email: strings.TrimSpace(*f.email), Username: *f.username, MinTLS: *f.minTLS}
	isec, err := config.ParseSecurity(*f.imapSec)
	if err != nil {
		return acct, usagef("--imap-security: %v", err)
	}
	ssec, err := config.ParseSecurity(*f.smtpSec)
	if err != nil {
		return acct, usagef("--smtp-security: %v", err)
	}
	if acct.IMAP, err = config.ParseServer(*f.imap, isec, config.DefaultPort(false, isec)); err != nil {
		return acct, usagef("--imap: %v", err)
	}
	if acct.SMTP, err = config.ParseServer(*f.smtp, ssec, config.DefaultPort(true, ssec)); err != nil {
		return acct, usagef("--smtp: %v", err)
	}
	if _, err := f.settings(); err != nil {
		return acct, err
	}
	for _, v := range f.pins {
		pins, err := parsePin(v, acct)
		if err != nil {
			return acct, usagef("--trust-fingerprint %s: %v", v, err)
		}
		for _, p := range pins {
			acct.AddPin(p)
		}
	}
	if _, err := trust.ParseMinVersion(*f.minTLS); err != nil {
		return acct, usagef("--min-tls: %v", err)
	}
	return acct, nil
}

// settings returns the settings the flags change: --backfill-days sets
// the one backfill window of the home (every account's).
func (f *serverFlags) settings() (settings.Values, error) {
	var v settings.Values
	if *f.backfill != "" {
		if err := v.Set(settings.BackfillDays, *f.backfill); err != nil {
			return v, usagef("--backfill-days must be a number of days or \"all\"")
		}
	}
	return v, nil
}

// parsePin reads one --trust-fingerprint: "imap=FP" or "smtp=FP" pins the
// certificate for the account's IMAP or SMTP server, "HOST:PORT=FP" for
// that server (one of the two), and a bare fingerprint (the old form, or
// openssl's "SHA256 Fingerprint=…") for whichever of the two presents
// that certificate: it names one certificate, so it cannot trust another,
// and AddAccount stores it only for the server that showed it.
func parsePin(v string, acct config.Account) ([]trust.Pin, error) {
	if left, right, ok := strings.Cut(v, "="); ok {
		var server string
		switch l := strings.ToLower(strings.TrimSpace(left)); {
		case l == "imap":
			server = acct.IMAP.Addr()
		case l == "smtp":
			server = acct.SMTP.Addr()
		default:
			if srv, err := trust.NormalizeServer(left); err == nil {
				if !strings.EqualFold(srv, acct.IMAP.Addr()) && !strings.EqualFold(srv, acct.SMTP.Addr()) {
					return nil, fmt.Errorf("%s is neither the --imap server (%s) nor the --smtp server (%s)", left, acct.IMAP.Addr(), acct.SMTP.Addr())
				}
				server = srv
			}
		}
		if server != "" {
			fp, err := trust.ParseFingerprint(right)
			if err != nil {
				return nil, err
			}
			return []trust.Pin{{Server: server, Fingerprint: fp}}, nil
		}
	}
	fp, err := trust.ParseFingerprint(v)
	if err != nil {
		return nil, err
	}
	return []trust.Pin{{Server: acct.IMAP.Addr(), Fingerprint: fp}, {Server: acct.SMTP.Addr(), Fingerprint: fp}}, nil
}

// certLine says how a server's certificate was trusted, and what it
// says when a pin trusted it (a pin checks none of it).
func certLine(sc connector.ServerCert) string {
	switch {
	case sc.Cert == nil:
		return ""
	case sc.Pinned:
		return fmt.Sprintf("certificate pinned for this server (SHA-256 %s; not checked: %s)", trust.Fingerprint(sc.Cert), trust.Describe(sc.Cert))
	}
	return "certificate verified by the system's authorities"
}

func (e *env) accountAdd(args []string) error {
	fs := flags("account add")
	sf := addServerFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *sf.email == "" || (*sf.imap == "") != (*sf.smtp == "") || !*sf.passwordStdin {
		return usagef("account add needs --email, --password-stdin (the password on standard input), and --imap and --smtp unless they can be found")
	}
	// What IT's policy locks is refused before anything is looked up.
	if err := e.it.Refuse(policy.LockAccount); err != nil {
		return err
	}
	if change, _ := sf.settings(); !change.Empty() {
		if err := e.refuseLocked(change); err != nil {
			return err
		}
	}
	if *sf.imap == "" {
		if err := e.findServers(sf); err != nil {
			return err
		}
	}
	acct, err := sf.account()
	if err != nil {
		return err
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
	chk, err := connector.AddAccount(ctx, e.home, acct, password)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "IMAP %s (%s): login ok, INBOX and Sent %q (found %s); %s\n", acct.IMAP.Addr(), acct.IMAP.Security, chk.Sent.Name, chk.Sent.How, certLine(chk.IMAPCert))
	fmt.Fprintf(e.stdout, "SMTP %s (%s): login ok; %s\n", acct.SMTP.Addr(), acct.SMTP.Security, certLine(chk.SMTPCert))
	if change, _ := sf.settings(); !change.Empty() {
		// The window is the home's, not the account's: stored once the
		// account is, so a failed check leaves it unchanged too.
		if err := connector.StoreUserSettings(e.home, e.it.Settings(), change); err != nil {
			fmt.Fprintf(e.stdout, "the backfill window was not changed: %v\n", err)
		} else {
			days, _ := change.Text(settings.BackfillDays)
			fmt.Fprintf(e.stdout, "backfill window: %s for every account of this home (the platform's setting wins when it sends one)\n", daysWords(days))
		}
	}
	msg := "added %s\n"
	if e.home.Running() {
		msg = "added %s; restart Inbox Relay to start relaying it\n"
	}
	fmt.Fprintf(e.stdout, msg, acct.Email)
	return nil
}

// findServers fills in the server flags for the address from a known
// provider, DNS SRV or the domain's autoconfig document, and says so.
// Servers that plain DNS names outside the address's domain are not used
// (RFC 6186 §6: DNS can be forged, and the password would go there): the
// user confirms them by naming them with --imap and --smtp.
func (e *env) findServers(sf *serverFlags) error {
	f := e.finder
	if f == nil {
		f = &autoconfig.Finder{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := f.Find(ctx, strings.TrimSpace(*sf.email))
	if errors.Is(err, autoconfig.ErrNotFound) {
		return usagef("no server settings were found for %s: give --imap and --smtp (ask IT for them)", *sf.email)
	}
	if err != nil {
		return err
	}
	flagsFor := fmt.Sprintf("--imap %s --imap-security %s --smtp %s --smtp-security %s", r.IMAP.Addr(), r.IMAP.Security, r.SMTP.Addr(), r.SMTP.Security)
	if len(r.Outside) > 0 {
		_, domain, _ := strings.Cut(*sf.email, "@")
		return fmt.Errorf("the DNS of %s names mail servers outside %s (%s), and DNS answers can be forged, so the password was not sent to them: if IT confirms these servers, add the account with %s",
			domain, domain, strings.Join(r.Outside, ", "), flagsFor)
	}
	fmt.Fprintf(e.stdout, "found by %s: %s\n", r.Source, flagsFor)
	*sf.imap, *sf.imapSec, *sf.smtp, *sf.smtpSec = r.IMAP.Addr(), string(r.IMAP.Security), r.SMTP.Addr(), string(r.SMTP.Security)
	if *sf.username == "" {
		*sf.username = r.Username
	}
	return nil
}

// readPassword reads the first line of r; a password never comes from a
// flag, where other users of the machine could read it.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", usagef("--password-stdin: standard input holds no password")
	}
	return pw, nil
}

func (e *env) accountList(args []string) error {
	fs := flags("account list")
	asJSON := fs.Bool("json", false, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := e.home.Load()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		accts := cfg.Accounts
		if accts == nil {
			accts = []config.Account{}
		}
		return enc.Encode(accts)
	}
	if len(cfg.Accounts) == 0 {
		fmt.Fprintln(e.stdout, "no account yet: add one with `inboxrelay account add`")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tIMAP\tSMTP")
	for _, a := range cfg.Accounts {
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s (%s)\n", a.Email, a.IMAP.Addr(), a.IMAP.Security, a.SMTP.Addr(), a.SMTP.Security)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The platform's layer is in the state database, which a running
	// engine holds: said in words rather than read.
	eff := settings.Resolve(e.it.Settings().Layers(cfg.Settings, settings.Values{}))
	days, _ := eff.Values().Text(settings.BackfillDays)
	who := "the platform's setting wins when it sends one"
	if eff.Locked(settings.BackfillDays) {
		who = "set by IT's policy " + e.it.Path
	}
	fmt.Fprintf(e.stdout, "backfill window: %s for every account (%s)\n", daysWords(days), who)
	return nil
}

// daysWords says a backfill window ("30" or "all") in words.
func daysWords(days string) string {
	switch days {
	case "all":
		return "all existing mail"
	case "0":
		return "today's mail only"
	case "1":
		return "the last day"
	}
	return "the last " + days + " days"
}

func (e *env) accountRemove(args []string) error {
	if len(args) != 1 {
		return usagef("account remove needs the e-mail address")
	}
	r, err := connector.Open(e.home, connector.Options{IT: e.it})
	if err != nil {
		return fmt.Errorf("cannot remove an account while Inbox Relay runs: %w", err)
	}
	defer r.Close()
	if err := r.RemoveAccount(args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed %s\n", args[0])
	return nil
}
