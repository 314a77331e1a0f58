package refplatform_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

const heartbeat = `{"version":"1.2.3","os":"linux","accounts":[
	{"email":"ana@example.com","state":"syncing","last_sync":"2024-05-01T10:20:30Z","backlog":12,"rejected":1,"error":""},
	{"email":"bob@example.com","state":"needs_login","error":"the password was refused"}]}`

func TestHeartbeat(t *testing.T) {
	e := start(t)
	token, deviceID := e.pair()

	if r := e.postJSON("/v1/heartbeat", token, heartbeat); r.status != http.StatusOK || string(r.body) != `{}` {
		t.Fatalf("without settings: %d %s, want 200 {}", r.status, r.body)
	}
	days, zero := 30, 0
	settings := []struct {
		name string
		s    refplatform.Settings
		want string
	}{
		{"both", refplatform.Settings{BackfillDays: &days, RelayDomains: []string{"customer.com"}}, `{"settings":{"backfill_days":30,"relay_domains":["customer.com"]}}`},
		{"no backfill", refplatform.Settings{BackfillDays: &zero}, `{"settings":{"backfill_days":0}}`},
		{"filter lifted", refplatform.Settings{RelayDomains: []string{}}, `{"settings":{"relay_domains":[]}}`},
	}
	for _, tt := range settings {
		t.Run("settings "+tt.name, func(t *testing.T) {
			e.p.SetSettings(tt.s)
			if r := e.postJSON("/v1/heartbeat", token, heartbeat); r.status != http.StatusOK || string(r.body) != tt.want {
				t.Fatalf("%d %s, want 200 %s", r.status, r.body, tt.want)
			}
		})
	}
	days = 1 // SetSettings kept its own copy
	e.p.SetSettings(refplatform.Settings{})
	if r := e.postJSON("/v1/heartbeat", token, `{"version":"1.2.3","os":"linux","accounts":[]}`); r.status != http.StatusOK || string(r.body) != `{}` {
		t.Fatalf("settings cleared: %d %s, want 200 {}", r.status, r.body)
	}

	hbs := e.p.Heartbeats()
	if len(hbs) != 5 {
		t.Fatalf("%d heartbeats, want 5", len(hbs))
	}
	hb := hbs[0]
	if hb.DeviceID != deviceID || hb.Version != "1.2.3" || hb.OS != "linux" || len(hb.Accounts) != 2 {
		t.Fatalf("heartbeat %+v", hb)
	}
	wantAna := refplatform.AccountStatus{Email: "ana@example.com", State: "syncing", LastSync: time.Date(2024, 5, 1, 10, 20, 30, 0, time.UTC), Backlog: 12, Rejected: 1}
	if a := hb.Accounts[0]; a.Email != wantAna.Email || a.State != wantAna.State || !a.LastSync.Equal(wantAna.LastSync) || a.Backlog != 12 || a.Rejected != 1 || a.Error != "" {
		t.Errorf("account %+v, want %+v", a, wantAna)
	}
	if b := hb.Accounts[1]; b.State != "needs_login" || !b.LastSync.IsZero() || b.Error != "the password was refused" {
		t.Errorf("account %+v", b)
	}
	e.noRejections()

	tests := []struct{ name, body string }{
		{"version other than the User-Agent's", `{"version":"1.0.0","os":"linux","accounts":[]}`},
		{"os other than the User-Agent's", `{"version":"1.2.3","os":"darwin","accounts":[]}`},
		{"no accounts", `{"version":"1.2.3","os":"linux"}`},
		{"accounts null", `{"version":"1.2.3","os":"linux","accounts":null}`},
		{"account null", `{"version":"1.2.3","os":"linux","accounts":[null]}`},
		{"unknown state", `{"version":"1.2.3","os":"linux","accounts":[{"email":"a@b.c","state":"sleeping"}]}`},
		{"no email", `{"version":"1.2.3","os":"linux","accounts":[{"state":"idle"}]}`},
		{"last_sync not RFC 3339", `{"version":"1.2.3","os":"linux","accounts":[{"email":"a@b.c","state":"idle","last_sync":"yesterday"}]}`},
		{"last_sync empty", `{"version":"1.2.3","os":"linux","accounts":[{"email":"a@b.c","state":"idle","last_sync":""}]}`},
		{"negative backlog", `{"version":"1.2.3","os":"linux","accounts":[{"email":"a@b.c","state":"idle","backlog":-1}]}`},
		{"unknown member", `{"version":"1.2.3","os":"linux","accounts":[{"email":"a@b.c","state":"idle","queue":3}]}`},
		{"member in another case", `{"Version":"1.2.3","os":"linux","accounts":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.postJSON("/v1/heartbeat", token, tt.body); r.status != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", r.status, r.body)
			}
		})
	}
	if n := len(e.p.Heartbeats()); n != 5 {
		t.Errorf("%d heartbeats after the refusals, want 5", n)
	}
}
