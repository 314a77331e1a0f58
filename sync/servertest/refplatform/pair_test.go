package refplatform_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestPair(t *testing.T) {
	e := start(t)
	code := e.p.NewPairingCode()

	r := e.postJSON("/v1/pair", "", pairRequest(code))
	if r.status != http.StatusCreated {
		t.Fatalf("first use: status %d %s, want 201", r.status, r.body)
	}
	var got struct {
		DeviceID string `json:"device_id"`
		Token    string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("response %s: %v", r.body, err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(got.Token) {
		t.Errorf("token %q is not 32 bytes of hex", got.Token)
	}
	devs := e.p.Devices()
	if len(devs) != 1 || devs[0].ID != got.DeviceID || devs[0].Name != "laptop" || devs[0].OS != "linux" || devs[0].Version != "1.2.3" {
		t.Errorf("Devices() = %+v, want the laptop %s", devs, got.DeviceID)
	}
	e.noRejections()

	tests := []struct {
		name string
		body string
		want int
	}{
		{"reused code", `{"code":"` + code + `","device":{"name":"a","os":"linux","version":"1.2.3"}}`, http.StatusGone},
		{"unknown code", `{"code":"NOPE-NOPE","device":{"name":"a","os":"linux","version":"1.2.3"}}`, http.StatusNotFound},
		{"not JSON", `code=` + code, http.StatusBadRequest},
		{"array", `[]`, http.StatusBadRequest},
		{"null", `null`, http.StatusBadRequest},
		{"trailing data", `{"code":"X","device":{"name":"a","os":"linux","version":"1.2.3"}} {}`, http.StatusBadRequest},
		{"no code", `{"device":{"name":"a","os":"linux","version":"1.2.3"}}`, http.StatusBadRequest},
		{"no device", `{"code":"X"}`, http.StatusBadRequest},
		{"no name", `{"code":"X","device":{"os":"linux","version":"1.2.3"}}`, http.StatusBadRequest},
		{"no version", `{"code":"X","device":{"name":"a","os":"linux"}}`, http.StatusBadRequest},
		{"os not a GOOS", `{"code":"X","device":{"name":"a","os":"Windows 11","version":"1.2.3"}}`, http.StatusBadRequest},
		{"member in another case", `{"Code":"X","device":{"name":"a","os":"linux","version":"1.2.3"}}`, http.StatusBadRequest},
		{"unknown member", `{"code":"X","device":{"name":"a","os":"linux","version":"1.2.3","arch":"amd64"}}`, http.StatusBadRequest},
		{"number for a string", `{"code":7,"device":{"name":"a","os":"linux","version":"1.2.3"}}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.postJSON("/v1/pair", "", tt.body)
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
		})
	}
	if n := len(e.p.Devices()); n != 1 {
		t.Errorf("%d devices after the failures, want 1", n)
	}
}

func TestPairMalformedCodeIsNotUsedUp(t *testing.T) {
	e := start(t)
	code := e.p.NewPairingCode()
	if r := e.postJSON("/v1/pair", "", `{"code":"`+code+`","device":{"name":"","os":"linux","version":"1.2.3"}}`); r.status != http.StatusBadRequest {
		t.Fatalf("bad request: status %d, want 400", r.status)
	}
	if r := e.postJSON("/v1/pair", "", pairRequest(code)); r.status != http.StatusCreated {
		t.Fatalf("then a good one: status %d %s, want 201", r.status, r.body)
	}
}

func TestPairContentType(t *testing.T) {
	e := start(t)
	body := `{"code":"` + e.p.NewPairingCode() + `","device":{"name":"a","os":"linux","version":"1.2.3"}}`
	r := e.do(http.MethodPost, "/v1/pair", http.Header{"Content-Type": {"text/plain"}}, strings.NewReader(body))
	if r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: status %d, want 415", r.status)
	}
}

func TestUserAgent(t *testing.T) {
	e := start(t)
	token, _ := e.pair()
	tests := []struct {
		name string
		ua   []string
		want int
	}{
		{"valid", []string{"inboxrelay/0.9.0-rc.1+abc (darwin/arm64)"}, http.StatusOK},
		{"missing", nil, http.StatusBadRequest},
		{"Go default", []string{"Go-http-client/1.1"}, http.StatusBadRequest},
		{"no platform", []string{"inboxrelay/1.2.3"}, http.StatusBadRequest},
		{"other product", []string{"mailrelay/1.2.3 (linux/amd64)"}, http.StatusBadRequest},
		{"version not a token", []string{"inboxrelay/(devel) (linux/amd64)"}, http.StatusBadRequest},
		{"empty version", []string{"inboxrelay/ (linux/amd64)"}, http.StatusBadRequest},
		{"missing arch", []string{"inboxrelay/1.2.3 (linux)"}, http.StatusBadRequest},
		{"trailing comment", []string{"inboxrelay/1.2.3 (linux/amd64) extra"}, http.StatusBadRequest},
		{"capitals", []string{"inboxrelay/1.2.3 (Linux/AMD64)"}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.p.URL()+"/v1/outbox", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			// The key with no value stops net/http from adding its own.
			req.Header["User-Agent"] = tt.ua
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := tt.want
			if want == http.StatusOK {
				want = http.StatusNoContent // empty outbox
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d", resp.StatusCode, want)
			}
		})
	}
}
