package doctor_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// TestReportHoldsNoEchoedPassword: IMAP and SMTP servers that echo the
// password in every form: the doctor's report (and each step it showed
// live) holds none of them.
func TestReportHoldsNoEchoedPassword(t *testing.T) {
	const user = "alice@acme.test"
	for _, pw := range []string{`Echo"Pa\ss-1234`, "Echo-pässwörd-1234"} {
		for _, mode := range hostile.EchoModes {
			t.Run(mode.String()+"/"+pw, func(t *testing.T) {
				is := hostile.StartEchoIMAP(t, user, pw, mode)
				ss := hostile.StartEchoSMTP(t, user, pw, mode, false)
				acct := config.Account{Email: user, IMAP: server(t, is.Addr, config.SecurityTLS), SMTP: server(t, ss.Addr, config.SecurityTLS),
					Pins: []trust.Pin{{Server: is.Addr, Fingerprint: is.Cert.Fingerprint}, {Server: ss.Addr, Fingerprint: ss.Cert.Fingerprint}}}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var live []doctor.Step
				rep := doctor.Run(ctx, doctor.Options{Account: acct, Password: pw, StepTimeout: 30 * time.Second,
					Progress: func(s doctor.Step) { live = append(live, s) }})
				if is.Echoed()+ss.Echoed() == 0 {
					t.Fatal("no server echoed the password: the test tests nothing")
				}
				if _, failed := rep.Failed(); !failed {
					t.Fatal("no step failed against servers that refuse")
				}
				b, _ := json.Marshal(struct {
					Report *doctor.Report
					Live   []doctor.Step
				}{rep, live})
				if leaks := hostile.Leaks(string(b), user, pw); len(leaks) > 0 {
					t.Fatalf("the report holds the password (%v):\n%s", leaks, b)
				}
			})
		}
	}
}
