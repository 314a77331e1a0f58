// Package cli is the connector's command line: pairing, accounts, one-shot
// and continuous sync, status and the demo. It holds no sync logic; it
// parses, calls the engine and prints.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/trust"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

const usage = `Inbox Relay relays your mailbox to the customer-success platform.

Usage: inboxrelay [--home DIR] <command>

  pair --platform URL --code CODE [--ca-file PEM] [--proxy URL]
                     pair this computer with the platform
  account add --email ADDR [--username U] [--imap HOST:PORT [--imap-security tls|starttls]
              --smtp HOST:PORT [--smtp-security tls|starttls]] [--backfill-days N|all]
              [--trust-fingerprint [imap=|smtp=|HOST:PORT=]SHA256]... [--min-tls 1.0|1.1|1.2|1.3] --password-stdin
                     --backfill-days sets how much existing mail every account of this
                     home relays (one window for all; the platform's setting wins)
                     without --imap and --smtp the servers are looked up (known providers,
                     DNS, the domain's autoconfig); servers DNS names outside the domain
                     are only used once you name them yourself
                     --trust-fingerprint trusts exactly that certificate for that server,
                     whatever its name, issuer or dates; a bare SHA256 is pinned for the
                     server that shows that certificate
  account list [--json]
  account remove ADDR
  account password --email ADDR --password-stdin
                     check and store the password of an account (one set up by IT's policy, say)
  proxy login [--proxy URL] --username U --password-stdin
                     store the login of the proxy (in the keychain)
  policy [--json]    the effective settings and where each comes from (IT's policy file, the
                     platform, your choices, the defaults)
  support-bundle OUT.zip
                     write what support needs (versions, settings, status, checks, logs; no secret)
  sync --once        relay everything pending now, then exit (0: nothing left pending)
  run                relay continuously until interrupted
  status [--json]    where every account stands
  diagnose --email ADDR [--json]  check every step to the servers and the platform (same flags as account add to check an account before adding it)
  demo               a sample mailbox and platform, with the engine relaying between them
  version

--home DIR (or INBOXRELAY_HOME) keeps settings, state, logs and keychain entries apart.
IT's policy file: /etc/inboxrelay/policy.toml (Linux), /Library/Application Support/InboxRelay/policy.toml
(macOS), %ProgramData%\InboxRelay\policy.toml (Windows), or the file INBOXRELAY_POLICY names.
`

// env is what a command works with.
type env struct {
	home   config.Home
	it     *policy.Policy // IT's policy file; nil when there is none
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	finder *autoconfig.Finder // finds an address's servers; nil: the system's resolver and HTTPS
}

// Main runs the command line args (without the program name) and returns
// the process exit code: 0 on success, 1 when the command failed (one line
// on stderr says why and what to do), 2 for a usage error.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	homeDir := ""
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch {
		case args[0] == "--home" || args[0] == "-home":
			if len(args) < 2 {
				fmt.Fprintln(stderr, "--home needs a directory")
				return 2
			}
			homeDir, args = args[1], args[2:]
		case strings.HasPrefix(args[0], "--home="):
			homeDir, args = strings.TrimPrefix(args[0], "--home="), args[1:]
		case args[0] == "-h" || args[0] == "--help":
			fmt.Fprint(stdout, usage)
			return 0
		default:
			fmt.Fprintf(stderr, "unknown option %s\n\n%s", args[0], usage)
			return 2
		}
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] == "version" {
		fmt.Fprintf(stdout, "inboxrelay %s\n", version.Version)
		return 0
	}
	var home config.Home
	var err error
	if homeDir != "" {
		home, err = config.OpenHome(homeDir)
	} else {
		home, err = config.DefaultHome()
	}
	if err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		return 1
	}
	// A policy file that cannot be used stops every command: relaying on
	// half of IT's rules is worse than not relaying.
	it, err := policy.Current()
	if err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		return 1
	}
	if args[0] != "demo" {
		// The policy's platform and accounts are the home's from the
		// first command on (no network here: pairing waits for `run`).
		if _, err := connector.ApplyPolicy(home, it); err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
	}
	e := &env{home: home, it: it, stdin: stdin, stdout: stdout, stderr: stderr}
	cmds := map[string]func([]string) error{
		"pair":     e.pair,
		"account":  e.account,
		"sync":     e.sync,
		"run":      e.run,
		"status":   e.status,
		"demo":     e.demo,
		"diagnose": e.diagnose,
		"policy":   e.policy,
		"proxy":    e.proxy,

		"support-bundle": e.supportBundle,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err := cmd(args[1:]); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintln(stderr, oneLine(err)+hint(err))
		return 1
	}
	return 0
}

// hint is what the command line adds to an error a command fixes: the
// engine's errors say what is wrong, never which command fixes it.
func hint(err error) string {
	var ue *trust.UntrustedError
	var pe *netdial.ProxyError
	var se *connector.SpentCodeError
	switch {
	case errors.Is(err, connector.ErrNotPaired):
		return ": run `inboxrelay pair --platform URL --code CODE`"
	case errors.Is(err, engine.ErrNoAccount):
		return ": add one with `inboxrelay account add`"
	case errors.Is(err, connector.ErrNoToken):
		return ": pair again with `inboxrelay pair --platform URL --code CODE`"
	case errors.Is(err, connector.ErrAccountExists):
		return ": remove it first with `inboxrelay account remove`"
	case errors.Is(err, config.ErrRunning):
		return ", or use another --home"
	case errors.Is(err, trust.ErrUseImplicitTLS):
		return " (--imap-security tls or --smtp-security tls, with the TLS port)"
	case errors.Is(err, trust.ErrTLSTooOld):
		return "; only if that is impossible and you accept the risk, lower the account's minimum with --min-tls"
	case errors.As(err, &ue):
		return fmt.Sprintf(" (--trust-fingerprint %s=%s)", ue.Server, ue.Fingerprint)
	case errors.Is(err, engine.ErrNoPassword):
		return ": remove the account with `inboxrelay account remove` and add it again with `inboxrelay account add`"
	case errors.As(err, &pe) && pe.Status == http.StatusProxyAuthRequired:
		return " (`inboxrelay proxy login --username U --password-stdin`)"
	case errors.As(err, &se):
		return " (`inboxrelay pair --platform URL --code CODE`)"
	}
	return ""
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// oneLine keeps an error on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

// flags returns a FlagSet that reports errors as usage errors.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usagef("%s: %v (see inboxrelay --help)", fs.Name(), err)
	}
	return nil
}

func (e *env) pair(args []string) error {
	fs := flags("pair")
	platform := fs.String("platform", "", "platform base URL")
	code := fs.String("code", "", "one-time pairing code")
	caFile := fs.String("ca-file", "", "extra CA bundle (PEM) to trust for the platform")
	proxy := fs.String("proxy", "", "HTTPS proxy URL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *platform == "" || *code == "" {
		return usagef("pair needs --platform URL and --code CODE")
	}
	if *caFile != "" {
		abs, err := absPath(*caFile)
		if err != nil {
			return err
		}
		*caFile = abs
	}
	o := connector.PairOptions{URL: *platform, Code: *code, CAFile: *caFile, Proxy: *proxy, ProxySource: "the --proxy option"}
	if err := connector.CheckPair(e.it, o); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := connector.Pair(ctx, e.home, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "paired with %s as device %s\n", strings.TrimRight(*platform, "/"), id)
	return nil
}

func (e *env) sync(args []string) error {
	fs := flags("sync")
	once := fs.Bool("once", false, "one pass, then exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*once {
		return usagef("sync needs --once (use `inboxrelay run` to relay continuously)")
	}
	r, err := connector.Open(e.home, connector.Options{Once: true, IT: e.it})
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := r.Run(ctx)
	eng := r.Engine()
	if eng == nil {
		return runErr
	}
	for _, a := range eng.Snapshot().Accounts {
		fmt.Fprintf(e.stdout, "%s: %s; relayed %d in total, backlog %d, rejected %d, skipped %d\n",
			a.Email, a.State, a.Relayed, a.Backlog, a.Rejected, a.Skipped)
	}
	if runErr == nil && ctx.Err() != nil {
		return errors.New("interrupted; what was not relayed is relayed next time")
	}
	return runErr
}

func (e *env) run(args []string) error {
	fs := flags("run")
	if err := parse(fs, args); err != nil {
		return err
	}
	r, err := connector.Open(e.home, connector.Options{LogTo: e.stderr, IT: e.it})
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	r.Log().Info("Inbox Relay running", "version", version.Version, "home", e.home.Dir)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	r.Log().Info("stopping")
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		// Every checkpoint is already durable: stopping now loses nothing.
		r.Log().Warn("the engine did not stop within 5 s; exiting anyway")
		return nil
	}
}
