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
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// errDiagnoseFailed makes diagnose exit 1 once the report is printed.
var errDiagnoseFailed = errors.New("a check failed: see the step marked FAIL above")

// diagnose runs the connection doctor for an account that exists (--email
// alone) or one that does not yet (--imap, --smtp, --password-stdin).
func (e *env) diagnose(args []string) error {
	fs := flags("diagnose")
	email := fs.String("email", "", "")
	asJSON := fs.Bool("json", false, "")
	username := fs.String("username", "", "")
	imapAddr := fs.String("imap", "", "")
	imapSec := fs.String("imap-security", "tls", "")
	smtpAddr := fs.String("smtp", "", "")
	smtpSec := fs.String("smtp-security", "tls", "")
	minTLS := fs.String("min-tls", "", "")
	pwStdin := fs.Bool("password-stdin", false, "")
	var pins multi
	fs.Var(&pins, "trust-fingerprint", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return usagef("diagnose needs --email ADDR (and, for an account not added yet, --imap, --smtp and --password-stdin)")
	}
	cfg, err := e.home.Load()
	if err != nil {
		return err
	}
	acct, exists := cfg.Account(*email)
	if *imapAddr != "" || *smtpAddr != "" {
		if *imapAddr == "" || *smtpAddr == "" || !*pwStdin {
			return usagef("diagnose with --imap or --smtp needs both, and --password-stdin")
		}
		acct = config.Account{Email: *email, Username: *username, MinTLS: *minTLS}
		isec, err := config.ParseSecurity(*imapSec)
		if err != nil {
			return usagef("--imap-security: %v", err)
		}
		ssec, err := config.ParseSecurity(*smtpSec)
		if err != nil {
			return usagef("--smtp-security: %v", err)
		}
		if acct.IMAP, err = config.ParseServer(*imapAddr, isec, defaultPort(false, isec)); err != nil {
			return usagef("--imap: %v", err)
		}
		if acct.SMTP, err = config.ParseServer(*smtpAddr, ssec, defaultPort(true, ssec)); err != nil {
			return usagef("--smtp: %v", err)
		}
		for _, p := range pins {
			fp, err := trust.ParseFingerprint(p)
			if err != nil {
				return usagef("--trust-fingerprint: %v", err)
			}
			acct.TrustFingerprints = append(acct.TrustFingerprints, fp)
		}
		if _, err := trust.ParseMinVersion(*minTLS); err != nil {
			return usagef("--min-tls: %v", err)
		}
	} else if !exists {
		return fmt.Errorf("no account %s here: give --imap, --smtp and --password-stdin to check one before adding it", *email)
	}

	var password string
	var kc *keychain.Store
	if *pwStdin {
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
		o.Platform = pc
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "Diagnosing %s\n", acct.Email)
		o.Progress = func(s doctor.Step) { printStep(e, s) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
