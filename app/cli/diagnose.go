package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
)

// errDiagnoseFailed makes diagnose exit 1 once the report is printed.
var errDiagnoseFailed = errors.New("a check failed: see the step marked FAIL above")

// diagnose runs the connection doctor for an account that exists (--email
// alone) or one that does not yet (--imap, --smtp, --password-stdin).
func (e *env) diagnose(args []string) error {
	fs := flags("diagnose")
	sf := addServerFlags(fs)
	asJSON := fs.Bool("json", false, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *sf.email == "" {
		return usagef("diagnose needs --email ADDR (and, for an account not added yet, --imap, --smtp and --password-stdin)")
	}
	cfg, err := e.home.Load()
	if err != nil {
		return err
	}
	acct, exists := cfg.Account(*sf.email)
	if *sf.imap != "" || *sf.smtp != "" {
		if *sf.imap == "" || *sf.smtp == "" || !*sf.passwordStdin {
			return usagef("diagnose with --imap or --smtp needs both, and --password-stdin")
		}
		if acct, err = sf.account(); err != nil {
			return err
		}
	} else if !exists {
		return fmt.Errorf("no account %s here: give --imap, --smtp and --password-stdin to check one before adding it", *sf.email)
	}

	var password string
	var kc *keychain.Store
	if *sf.passwordStdin {
		if password, err = readPassword(e.stdin); err != nil {
			return err
		}
	} else {
		if kc, err = keychain.New(e.home.Dir); err != nil {
			return err
		}
		if password, err = kc.Get(keychain.AccountKey(acct.Email)); err != nil {
			return fmt.Errorf("read the password of %s from the keychain: %w", acct.Email, err)
		}
	}
	o := doctor.Options{Account: acct, Password: password}
	if cfg.Platform.URL != "" {
		pc := &doctor.PlatformCheck{Platform: cfg.Platform}
		if kc == nil {
			kc, err = keychain.New(e.home.Dir)
		}
		if err == nil {
			pc.Token, _ = kc.Get(keychain.DeviceTokenKey) // missing: the pairing step says so
		}
		if c, err := connector.PlatformProxy(context.Background(), e.home, cfg, e.it); err == nil {
			pc.Proxy = &c
		}
		o.Platform = pc
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "Diagnosing %s\n", acct.Email)
		o.Progress = func(s doctor.Step) { printStep(e, s) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if ctx, err = connector.WithMailRoute(ctx, e.home, e.it); err != nil {
		return err
	}
	rep := doctor.Run(ctx, o)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if rep.Status != doctor.Fail {
		fmt.Fprintln(e.stdout, "Everything needed to relay this account works.")
	}
	if rep.Status == doctor.Fail {
		return errDiagnoseFailed
	}
	return nil
}

// printStep prints a finished step; running ones are not printed.
func printStep(e *env, s doctor.Step) {
	if s.Status == doctor.Running {
		return
	}
	status := strings.ToUpper(string(s.Status))
	line := fmt.Sprintf("%-8s %-26s %-7s", strings.ToUpper(s.Target), s.Title, status)
	if s.Status != doctor.Skipped {
		line += fmt.Sprintf(" %8s", (time.Duration(s.Duration*1000) * time.Microsecond).Round(100*time.Microsecond))
	}
	fmt.Fprintf(e.stdout, "%s  %s\n", line, s.Summary)
	for _, f := range s.Facts {
		fmt.Fprintf(e.stdout, "           %s: %s\n", f.Name, f.Value)
	}
	if s.Advice != "" {
		fmt.Fprintf(e.stdout, "           → %s\n", s.Advice)
	}
}
