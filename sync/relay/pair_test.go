package relay

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestPairTellsAWrongAddressFromABadCode: a web page answering the pairing
// request (the wrong address) is ErrNotPlatform, whatever its status; the
// API's refusals of a code, with a JSON body or none, are ErrBadCode.
func TestPairTellsAWrongAddressFromABadCode(t *testing.T) {
	for _, c := range []struct {
		name, ctype, body string
		status            int
		want              error
	}{
		{"a site's 404 page", "text/html; charset=utf-8", "<html><body>Not Found</body></html>", 404, ErrNotPlatform},
		{"a site's home page", "text/html", "<!doctype html><title>Acme</title>", 200, ErrNotPlatform},
		{"the API's 404 for a code", "application/json", `{"error":"unknown pairing code"}`, 404, ErrBadCode},
		{"a bare 410", "", "", 410, ErrBadCode},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.ctype != "" {
					w.Header().Set("Content-Type", c.ctype)
				}
				w.WriteHeader(c.status)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			cl, err := New(Options{BaseURL: srv.URL + "/connector", CAFile: ca})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			_, _, err = cl.Pair(context.Background(), "7KQ-93F", Device{Name: "pc", OS: "linux", Version: "1"})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
