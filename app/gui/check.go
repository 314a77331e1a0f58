package gui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/inboxrelay/inboxrelay/app/words"
	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// "Test connection": the connection doctor run on an account before it is
// stored, each step shown live; its words are app/words' (check.go).

// doctorFunc is doctor.Run's shape.
type doctorFunc func(context.Context, doctor.Options) *doctor.Report

// checkSteps are the doctor's steps for an account, in the order it runs
// them: "Test connection" lists them all from the start, pending.
var checkSteps = []struct{ target, id string }{
	{doctor.TargetIMAP, doctor.StepDNS}, {doctor.TargetIMAP, doctor.StepTCP}, {doctor.TargetIMAP, doctor.StepTLS},
	{doctor.TargetIMAP, doctor.StepGreeting}, {doctor.TargetIMAP, doctor.StepLogin}, {doctor.TargetIMAP, doctor.StepFolders},
	{doctor.TargetSMTP, doctor.StepDNS}, {doctor.TargetSMTP, doctor.StepTCP}, {doctor.TargetSMTP, doctor.StepTLS},
	{doctor.TargetSMTP, doctor.StepGreeting}, {doctor.TargetSMTP, doctor.StepLogin},
}

// checkAccount runs "Test connection": the connection doctor on both
// servers (the platform is paired before, so not checked), each step
// shown live through progress. A security left automatic is found out
// first (autoconfig.Probe) and returned filled in. A failed step is the
// error; an untrusted certificate is a *trust.UntrustedError, so that
// setup can show its fingerprint and ask.
func checkAccount(ctx context.Context, acct config.Account, password string, progress func([]Step), run doctorFunc) (config.Account, error) {
	steps := make([]Step, len(checkSteps))
	at := map[string]int{}
	for i, s := range checkSteps {
		steps[i] = Step{Title: words.StepTitle(s.target, s.id, "")}
		at[s.target+"/"+s.id] = i
	}
	report := func() {
		if progress != nil {
			progress(slices.Clone(steps))
		}
	}
	report()

	// The doctor checks the security it is given: find out the automatic
	// one from what the server says first. Both at once: a TLS server
	// makes the probe wait for a greeting that never comes (2 s).
	var wg sync.WaitGroup
	for _, srv := range []*config.Server{&acct.IMAP, &acct.SMTP} {
		if srv.Security != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sec, err := autoconfig.Probe(ctx, srv.Addr(), 0)
			if err != nil {
				// Unreachable: the doctor's own steps say why, with the
				// security the port usually has.
				sec = config.SecurityTLS
				if srv.Port == 143 || srv.Port == 587 || srv.Port == 25 {
					sec = config.SecurityStartTLS
				}
			}
			srv.Security = sec
		}()
	}
	wg.Wait()

	rep := run(ctx, doctor.Options{Account: acct, Password: password, Progress: func(ds doctor.Step) {
		k := ds.Target + "/" + ds.ID
		i, ok := at[k]
		if !ok { // a step this list does not know yet: shown all the same
			i = len(steps)
			at[k] = i
			steps = append(steps, Step{})
		}
		steps[i] = guiStep(ds)
		report()
	}})
	failed, ok := rep.Failed()
	if !ok {
		return acct, nil
	}
	srv := acct.IMAP
	if failed.Target == doctor.TargetSMTP {
		srv = acct.SMTP
	}
	fp := failed.Fact("sha256 fingerprint")
	pinned := slices.ContainsFunc(acct.PinsFor(srv.Addr()), func(p trust.Pin) bool { return p.Fingerprint == fp })
	if failed.ID == doctor.StepTLS && fp != "" && !pinned &&
		(failed.Cause == doctor.CauseTLSUntrusted || failed.Cause == doctor.CauseTLSNameMismatch) {
		return acct, fmt.Errorf("%s: %w", words.Target(failed.Target), &trust.UntrustedError{
			Server: srv.Addr(), Host: srv.Host, Fingerprint: fp, Reason: errors.New(failed.Summary)})
	}
	return acct, fmt.Errorf("%s: %s", words.StepTitle(failed.Target, failed.ID, failed.Title), failed.Summary)
}

// guiStep turns a doctor step into a row of "Test connection".
func guiStep(ds doctor.Step) Step {
	st := Step{Title: words.StepTitle(ds.Target, ds.ID, ds.Title), Detail: words.StepDetail(ds)}
	switch ds.Status {
	case doctor.Running:
		st.State = StepRunning
	case doctor.OK:
		st.State = StepPassed
	case doctor.Warn:
		st.State = StepWarned
	case doctor.Fail:
		st.State = StepFailed
	default:
		st.State = StepSkipped
	}
	return st
}
