package refplatform

import (
	"net/http"
	"net/mail"
	"time"
)

var accountStates = map[string]bool{
	"syncing": true, "idle": true, "paused": true, "error": true, "needs_login": true, "needs_trust": true,
}

// heartbeat serves POST /v1/heartbeat.
func (p *Platform) heartbeat(w http.ResponseWriter, r *http.Request, c call) error {
	body, err := readJSON(w, r)
	if err != nil {
		return err
	}
	hb := Heartbeat{DeviceID: c.dev.ID, ReceivedAt: time.Now()}
	var accounts *[]rawJSON
	if err := decodeObject(body, "heartbeat", map[string]any{"version": &hb.Version, "os": &hb.OS, "accounts": &accounts}); err != nil {
		return err
	}
	switch {
	case hb.Version != c.version:
		return refuse(http.StatusBadRequest, "heartbeat: version %q differs from the User-Agent's %q", hb.Version, c.version)
	case hb.OS != c.goos:
		return refuse(http.StatusBadRequest, "heartbeat: os %q differs from the User-Agent's %q", hb.OS, c.goos)
	case accounts == nil:
		return refuse(http.StatusBadRequest, "heartbeat: accounts must be an array")
	}
	for i, raw := range *accounts {
		a, err := decodeAccount(raw)
		if err != nil {
			return refuse(http.StatusBadRequest, "heartbeat: accounts[%d]: %v", i, err)
		}
		hb.Accounts = append(hb.Accounts, a)
	}

	p.mu.Lock()
	p.heartbeats = append(p.heartbeats, hb)
	s := p.settings
	p.changedLocked()
	p.mu.Unlock()

	settings := map[string]any{}
	if s.BackfillDays != nil {
		settings["backfill_days"] = *s.BackfillDays
	}
	if s.RelayDomains != nil {
		settings["relay_domains"] = s.RelayDomains
	}
	resp := map[string]any{}
	if len(settings) > 0 {
		resp["settings"] = settings
	}
	return writeJSON(w, http.StatusOK, resp)
}

// decodeAccount decodes and checks one account of a heartbeat. Email and
// state are required; last_sync, when given, is RFC 3339.
func decodeAccount(raw []byte) (AccountStatus, error) {
	var (
		a        AccountStatus
		lastSync *string
	)
	if raw == nil {
		return a, refuse(http.StatusBadRequest, "must be an object")
	}
	err := decodeObject(raw, "account", map[string]any{
		"email": &a.Email, "state": &a.State, "last_sync": &lastSync,
		"backlog": &a.Backlog, "rejected": &a.Rejected, "error": &a.Error,
	})
	if err != nil {
		return a, err
	}
	if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Name != "" || addr.Address != a.Email {
		return a, refuse(http.StatusBadRequest, "email %q is not a bare e-mail address", a.Email)
	}
	if !accountStates[a.State] {
		return a, refuse(http.StatusBadRequest, "state %q is not one of syncing, idle, paused, error, needs_login, needs_trust", a.State)
	}
	if a.Backlog < 0 || a.Rejected < 0 {
		return a, refuse(http.StatusBadRequest, "backlog and rejected cannot be negative")
	}
	if lastSync != nil {
		t, err := time.Parse(time.RFC3339, *lastSync)
		if err != nil {
			return a, refuse(http.StatusBadRequest, "last_sync %q is not RFC 3339", *lastSync)
		}
		a.LastSync = t
	}
	return a, nil
}
