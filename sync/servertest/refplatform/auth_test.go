package refplatform_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	tests := []struct {
		name string
		auth []string
		want int
	}{
		{"valid", []string{"Bearer " + token}, http.StatusNoContent},
		{"scheme in another case", []string{"bearer " + token}, http.StatusNoContent},
		{"missing", nil, http.StatusUnauthorized},
		{"unknown token", []string{"Bearer " + strings.Repeat("0", 64)}, http.StatusUnauthorized},
		{"basic scheme", []string{"Basic " + token}, http.StatusUnauthorized},
		{"no scheme", []string{token}, http.StatusUnauthorized},
		{"two spaces", []string{"Bearer  " + token}, http.StatusUnauthorized},
		{"twice", []string{"Bearer " + token, "Bearer " + token}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/outbox", http.Header{"Authorization": tt.auth}, nil)
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
			if r.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// Every endpoint but pairing wants the token.
func TestEveryEndpointNeedsToken(t *testing.T) {
	e := start(t)
	id := e.p.Enqueue(testItem())
	for _, ep := range []struct{ method, path string }{
		{http.MethodPost, "/v1/messages"},
		{http.MethodPost, "/v1/messages/check"},
		{http.MethodGet, "/v1/outbox"},
		{http.MethodPost, "/v1/outbox/" + id + "/result"},
		{http.MethodPost, "/v1/heartbeat"},
	} {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			if r := e.do(ep.method, ep.path, nil, strings.NewReader("{}")); r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", r.status)
			}
		})
	}
}

func TestRevokeAll(t *testing.T) {
	e := start(t)
	first, _ := e.pair()
	second, _ := e.pair()
	e.p.RevokeAll()
	for _, tok := range []string{first, second} {
		if r := e.do(http.MethodGet, "/v1/outbox", http.Header{"Authorization": {"Bearer " + tok}}, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("revoked token: status %d, want 401", r.status)
		}
	}
	third, _ := e.pair()
	if r := e.do(http.MethodGet, "/v1/outbox", http.Header{"Authorization": {"Bearer " + third}}, nil); r.status != http.StatusNoContent {
		t.Fatalf("token paired after RevokeAll: status %d, want 204", r.status)
	}
}

func TestRemoveDevice(t *testing.T) {
	e := start(t)
	token, id := e.pair()
	if !e.p.RemoveDevice(id) {
		t.Fatalf("RemoveDevice(%s) = false", id)
	}
	if e.p.RemoveDevice("dev_nobody") {
		t.Errorf("RemoveDevice of an unknown device = true")
	}
	if r := e.do(http.MethodGet, "/v1/outbox", http.Header{"Authorization": {"Bearer " + token}}, nil); r.status != http.StatusForbidden {
		t.Fatalf("removed device: status %d, want 403", r.status)
	}
}

func TestRouting(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	auth := http.Header{"Authorization": {"Bearer " + token}}
	tests := []struct {
		method, path string
		want         int
		allow        string
	}{
		{http.MethodGet, "/v1/pair", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/messages", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/v1/messages", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "/v1/outbox", http.StatusMethodNotAllowed, "GET"},
		{http.MethodHead, "/v1/outbox", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/heartbeat", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/outbox/x/result", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, ""},
		{http.MethodPost, "/v2/messages", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/messages/", http.StatusNotFound, ""},
		{http.MethodPost, "/v1//messages", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/outbox/x/y/result", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/outbox/unknown/result", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.do(tt.method, tt.path, auth, nil)
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
	// Outside the API prefix nothing is served.
	resp, err := e.client.Get(strings.TrimSuffix(e.p.URL(), "/connector") + "/v1/outbox")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("outside the prefix: status %d, want 404", resp.StatusCode)
	}
}
