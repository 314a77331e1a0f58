// Package doctor diagnoses why an account or the platform cannot be reached:
// the connection doctor behind `inboxrelay diagnose` and the GUI's "Test
// connection".
//
// Run checks, for the account's IMAP and SMTP servers each, one step after
// another and stops that server's checks at the first failure:
//
//	dns       the host resolves (addresses listed)
//	tcp       the port answers; refused, timed out and unreachable told apart
//	tls       version, cipher, certificate chain, names and dates; untrusted
//	          certificates with the fingerprint to pin; TLS 1.0/1.1-only
//	          servers; for STARTTLS also the plaintext exchange before it
//	          (STARTTLS missing or refused, PREAUTH before encryption, data
//	          injected before the handshake)
//	greeting  server software (greeting, ID), capabilities, AUTH mechanisms
//	login     the login exactly as the engine makes it, classified: wrong
//	          credentials, logins blocked for mail apps, account locked,
//	          plaintext refused, password expired
//	folders   (IMAP only) INBOX and Sent: the name and how it was found
//
// then the platform (when paired): dns (or the proxy's), tls (a
// TLS-inspecting proxy is named as such) and pairing (the device token is
// still accepted). Each step has a status (ok, warn, fail, skipped), the
// measured time, facts, and for a failure one sentence on what to do.
//
// The doctor reuses the engine's own pieces (trust.Policy for verification
// and pinning, imapsync.Dial and smtpsend.Dial for the login, FindSent for
// Sent, relay.Client for pairing), so "login ok" means the engine can log
// in too.
//
// # JSON schema (schema "inboxrelay.diagnose/1")
//
// `inboxrelay diagnose --json` prints one Report. The schema is stable:
// fields may be added, none is renamed, removed or changes meaning without
// a new schema name.
//
//	{
//	  "schema":   "inboxrelay.diagnose/1",
//	  "account":  "alice@acme.com",
//	  "started":  "2025-01-02T15:04:05Z",          // RFC 3339
//	  "status":   "ok" | "warn" | "fail",          // the worst step status
//	  "steps": [{
//	    "target":      "imap" | "smtp" | "platform",
//	    "step":        "dns" | "tcp" | "tls" | "greeting" | "login" | "folders" | "pairing",
//	    "title":       "TLS",                     // for people
//	    "server":      "mail.acme.com:993",       // host:port, or the platform URL
//	    "status":      "ok" | "warn" | "fail" | "skipped",
//	    "duration_ms": 12.5,                      // measured, 0 when skipped
//	    "facts":       [{"name": "version", "value": "TLS 1.3"}, ...],
//	    "cause":       "tcp.timeout",             // fail and warn only, see Cause*
//	    "summary":     "what happened, one sentence",
//	    "advice":      "what to do, one sentence"  // fail and warn only
//	  }, ...]
//	}
//
// Steps appear in the order they ran: IMAP, then SMTP, then platform; a
// target whose step failed lists its remaining steps as "skipped". The
// report never holds the password or the device token: Run removes them
// from every string as a last line of defence.
package doctor

import (
	"context"
	"crypto/x509"
	"net"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/netdial"
	"github.com/inboxrelay/inboxrelay/sync/redact"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Schema names the JSON shape of a Report; see the package comment.
const Schema = "inboxrelay.diagnose/1"

// Status is the outcome of one step.
type Status string

// The statuses of a step. Running is only ever seen by Options.Progress.
const (
	Running Status = "running"
	OK      Status = "ok"
	Warn    Status = "warn"
	Fail    Status = "fail"
	Skipped Status = "skipped"
)

// Targets of the steps.
const (
	TargetIMAP     = "imap"
	TargetSMTP     = "smtp"
	TargetPlatform = "platform"
)

// Step identifiers.
const (
	StepDNS      = "dns"
	StepTCP      = "tcp"
	StepTLS      = "tls"
	StepGreeting = "greeting"
	StepLogin    = "login"
	StepFolders  = "folders"
	StepPairing  = "pairing"
)

// Causes: the machine-readable reason of a failed (or warned) step, the
// "cause" of the JSON schema. New causes may be added.
const (
	CauseDNSNotFound       = "dns.not_found"
	CauseDNSFailed         = "dns.failed"
	CauseTCPRefused        = "tcp.refused"
	CauseTCPTimeout        = "tcp.timeout"
	CauseTCPUnreachable    = "tcp.unreachable"
	CauseTCPFailed         = "tcp.failed"
	CauseTLSUntrusted      = "tls.untrusted"
	CauseTLSExpired        = "tls.expired"
	CauseTLSNotYetValid    = "tls.not_yet_valid"
	CauseTLSNameMismatch   = "tls.name_mismatch"
	CauseTLSOldVersion     = "tls.old_version" // fail: refused; warn: allowed by --min-tls
	CauseTLSHandshake      = "tls.handshake"
	CauseTLSNotTLS         = "tls.not_tls"
	CauseStartTLSMissing   = "tls.starttls_missing"
	CauseStartTLSRefused   = "tls.starttls_refused"
	CauseStartTLSInjection = "tls.starttls_injection"
	CausePreauthPlaintext  = "tls.preauth_plaintext"
	CauseGreetingRefused   = "greeting.refused"
	CauseGreetingBad       = "greeting.bad"
	CauseLoginCredentials  = "login.wrong_credentials"
	CauseLoginAppBlocked   = "login.app_blocked"
	CauseLoginLocked       = "login.locked"
	CauseLoginPlaintext    = "login.plaintext_refused"
	CauseLoginExpired      = "login.password_expired"
	CauseLoginUnavailable  = "login.unavailable"
	CauseLoginNoMechanism  = "login.no_mechanism"
	CauseLoginFailed       = "login.failed"
	CauseNoInbox           = "folders.no_inbox"
	CauseNoSent            = "folders.no_sent"
	CauseTLSInspection     = "platform.tls_inspection"
	CausePlatformUntrusted = "platform.untrusted"
	CausePlatformUnpaired  = "platform.unpaired"
	CausePlatformRefused   = "platform.unauthorized"
	CausePlatformDown      = "platform.unavailable"
	CauseProxyFailed       = "tcp.proxy_failed"  // the proxy cannot be reached, or could not connect to the server
	CauseProxyRefused      = "tcp.proxy_refused" // the proxy refused the tunnel or asks for a login
)

// Fact is one thing a step found, in the order found.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Step is one check and its outcome; see the package comment for the JSON.
type Step struct {
	Target   string  `json:"target"`
	ID       string  `json:"step"`
	Title    string  `json:"title"`
	Server   string  `json:"server"`
	Status   Status  `json:"status"`
	Duration float64 `json:"duration_ms"`
	Facts    []Fact  `json:"facts"`
	Cause    string  `json:"cause,omitempty"`
	Summary  string  `json:"summary"`
	Advice   string  `json:"advice,omitempty"`
}

// Fact returns the value of the first fact with this name, "" if none.
func (s Step) Fact(name string) string {
	for _, f := range s.Facts {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Report is the outcome of Run.
type Report struct {
	Schema  string    `json:"schema"`
	Account string    `json:"account"`
	Started time.Time `json:"started"`
	Status  Status    `json:"status"`
	Steps   []Step    `json:"steps"`
}

// Find returns the step of target with id, and whether it ran or was
// skipped (false when it is not in the report at all).
func (r *Report) Find(target, id string) (Step, bool) {
	for _, s := range r.Steps {
		if s.Target == target && s.ID == id {
			return s, true
		}
	}
	return Step{}, false
}

// Failed returns the first failed step, if any.
func (r *Report) Failed() (Step, bool) {
	for _, s := range r.Steps {
		if s.Status == Fail {
			return s, true
		}
	}
	return Step{}, false
}

// PlatformCheck is the paired platform to check, as the engine would reach
// it.
type PlatformCheck struct {
	Platform config.Platform // URL, CAFile, Proxy
	Token    string          // device token; "" skips the pairing step's token check
	// Proxy is the proxy the engine uses for the platform
	// (netdial.PlatformProxy over the effective settings); nil: chosen
	// here from Platform.Proxy, HTTPS_PROXY and the system's settings.
	Proxy *netdial.Choice
}

// Options is what Run checks and how.
type Options struct {
	// Account is the account to check. Its IMAP and SMTP servers are
	// checked when their Host is set.
	Account  config.Account
	Password string
	// Platform, when not nil, is checked after the mail servers.
	Platform *PlatformCheck
	// StepTimeout bounds each network step (a connect, a handshake, an
	// exchange); 15 s when zero.
	StepTimeout time.Duration
	// Roots replaces the system roots for the mail servers (tests).
	Roots *x509.CertPool
	// Resolver resolves host names; net.DefaultResolver when nil.
	Resolver *net.Resolver
	// Progress, when set, is called on Run's goroutine when a step starts
	// (Status Running) and when it ends (its final Step, as it will be in
	// the Report), in order, so a GUI can render the checks live. It must
	// not block for long; it may be called from no other goroutine.
	Progress func(Step)
}

// Run checks everything Options names and returns the report. It never
// fails: every problem is a step of the report. Run takes at most a few
// StepTimeouts per step; ctx cancels it (the remaining steps fail).
func Run(ctx context.Context, o Options) *Report {
	if o.StepTimeout <= 0 {
		o.StepTimeout = 15 * time.Second
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	r := &runner{o: o, route: netdial.RouteFrom(ctx), rep: &Report{Schema: Schema, Account: o.Account.Email, Started: time.Now().UTC().Truncate(time.Second)}}
	pol, err := trust.NewPolicy(o.Account.MinTLS, o.Account.TrustPins(), o.Roots)
	if o.Account.IMAP.Host != "" || o.Account.SMTP.Host != "" {
		if err != nil {
			s := r.begin(TargetIMAP, StepTLS, "TLS", o.Account.IMAP.Addr())
			r.fail(&s, CauseTLSHandshake, err.Error(), "Fix the account's --min-tls or --trust-fingerprint setting.")
			r.end(s)
		} else {
			if o.Account.IMAP.Host != "" {
				r.checkIMAP(ctx, pol)
			}
			if o.Account.SMTP.Host != "" {
				r.checkSMTP(ctx, pol)
			}
		}
	}
	if o.Platform != nil {
		r.checkPlatform(ctx)
	}
	r.rep.Status = OK
	for _, s := range r.rep.Steps {
		if s.Status == Fail {
			r.rep.Status = Fail
			break
		}
		if s.Status == Warn {
			r.rep.Status = Warn
		}
	}
	return r.rep
}

// runner holds one Run.
type runner struct {
	o     Options
	route netdial.Route // how the mail servers are reached (netdial.Dial)
	rep   *Report
	red   *redact.Secrets // built on first use by clean
}

// stepStart is a step under way.
type stepStart struct {
	Step
	began time.Time
}

func (r *runner) begin(target, id, title, server string) stepStart {
	s := stepStart{Step: Step{Target: target, ID: id, Title: title, Server: server, Status: Running, Facts: []Fact{}}, began: time.Now()}
	if r.o.Progress != nil {
		r.o.Progress(r.clean(s.Step))
	}
	return s
}

func (s *stepStart) fact(name, value string) { s.Facts = append(s.Facts, Fact{name, value}) }

func (r *runner) fail(s *stepStart, cause, summary, advice string) {
	s.Status, s.Cause, s.Summary, s.Advice = Fail, cause, summary, advice
}

func (r *runner) warn(s *stepStart, cause, summary, advice string) {
	s.Status, s.Cause, s.Summary, s.Advice = Warn, cause, summary, advice
}

// end records s; a step still Running becomes OK with summary if it has
// none. It reports whether the step did not fail.
func (r *runner) end(s stepStart) bool {
	if s.Status == Running {
		s.Status = OK
	}
	r.nameProxy(&s.Step)
	s.Duration = float64(time.Since(s.began).Microseconds()) / 1000
	st := r.clean(s.Step)
	r.rep.Steps = append(r.rep.Steps, st)
	if r.o.Progress != nil {
		r.o.Progress(st)
	}
	return st.Status != Fail
}

// nameProxy adds the proxy a mail server's step went through to its facts
// (the DNS and TCP steps name it themselves), so that every step says it.
func (r *runner) nameProxy(s *Step) {
	if s.Target != TargetIMAP && s.Target != TargetSMTP || s.Fact("proxy") != "" {
		return
	}
	host, _, err := net.SplitHostPort(s.Server)
	if err != nil {
		return
	}
	if p := r.route.For(host); p != nil {
		s.Facts = append(s.Facts, Fact{"proxy", p.String()})
	}
}

// skip records the steps of target that did not run.
func (r *runner) skip(target, server string, ids ...string) {
	for _, id := range ids {
		st := Step{Target: target, ID: id, Title: titles[id], Server: server, Status: Skipped, Facts: []Fact{},
			Summary: "not checked: an earlier step failed"}
		r.rep.Steps = append(r.rep.Steps, st)
		if r.o.Progress != nil {
			r.o.Progress(st)
		}
	}
}

var titles = map[string]string{
	StepDNS: "DNS", StepTCP: "Connection", StepTLS: "TLS", StepGreeting: "Greeting and capabilities",
	StepLogin: "Login", StepFolders: "Folders", StepPairing: "Pairing",
}

// clean removes the password and the token, in every form a server may
// echo them (package redact), from every string of s.
func (r *runner) clean(s Step) Step {
	if r.red == nil {
		r.red = redact.ForLogin(r.o.Account.Login(), r.o.Password)
		if r.o.Platform != nil {
			r.red = r.red.With(r.o.Platform.Token)
		}
	}
	red := r.red.String
	s.Summary, s.Advice, s.Server = red(s.Summary), red(s.Advice), red(s.Server)
	facts := make([]Fact, len(s.Facts))
	for i, f := range s.Facts {
		facts[i] = Fact{red(f.Name), red(f.Value)}
	}
	s.Facts = facts
	return s
}
