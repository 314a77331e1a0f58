package refplatform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"regexp"
)

// Prefix is the path under which Handler serves the API; URL ends with it.
const Prefix = "/connector"

// apiError is a refusal: the status and the one-line reason sent back.
type apiError struct {
	status int
	reason string
}

func (e *apiError) Error() string { return e.reason }

func refuse(status int, format string, args ...any) error {
	return &apiError{status: status, reason: fmt.Sprintf(format, args...)}
}

// call is what the checks common to every endpoint found out.
type call struct {
	version string // from User-Agent
	goos    string // from User-Agent
	dev     *device
}

// endpoint serves one request that passed the common checks. It writes the
// response itself and returns nil, or returns an error for route to send:
// an *apiError, or anything else as 500.
type endpoint func(w http.ResponseWriter, r *http.Request, c call) error

// Handler returns the handler serving the API under Prefix (/connector/...).
// It may be mounted on any server; requests arriving after Close get 503.
func (p *Platform) Handler() http.Handler { return p.handler }

func (p *Platform) newHandler() http.Handler {
	mux := http.NewServeMux()
	notFound := p.route("", false, nil, nil)
	mux.Handle(Prefix+"/v1/pair", p.route(http.MethodPost, false, nil, p.pair))
	mux.Handle(Prefix+"/v1/messages", p.route(http.MethodPost, true, p.countUpload, p.upload))
	mux.Handle(Prefix+"/v1/messages/check", p.route(http.MethodPost, true, p.checkOffered, p.check))
	mux.Handle(Prefix+"/v1/outbox", p.route(http.MethodGet, true, nil, p.pollOutbox))
	mux.Handle(Prefix+"/v1/outbox/{id}/result", p.route(http.MethodPost, true, nil, p.result))
	mux.Handle(Prefix+"/v1/heartbeat", p.route(http.MethodPost, true, nil, p.heartbeat))
	mux.Handle("/", notFound)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			http.Error(w, "the platform is shutting down", http.StatusServiceUnavailable)
			return
		}
		p.inflight.Add(1)
		intercept := p.intercept
		p.mu.Unlock()
		defer p.inflight.Done()

		if intercept != nil && intercept(w, r) {
			return
		}

		// ServeMux would redirect a path that is not clean; the contract has
		// no such paths, so they are simply not found.
		if r.URL.Path != path.Clean(r.URL.Path) {
			notFound.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// route wraps an endpoint in the checks every request goes through, in this
// order: path known (404), before (when not nil), method (405), User-Agent
// (400), token (401/403). A nil endpoint answers 404.
func (p *Platform) route(method string, auth bool, before func(*http.Request) error, e endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c call
		err := func() error {
			if e == nil {
				return refuse(http.StatusNotFound, "no such endpoint")
			}
			if before != nil {
				if err := before(r); err != nil {
					return err
				}
			}
			if r.Method != method {
				w.Header().Set("Allow", method)
				return refuse(http.StatusMethodNotAllowed, "use %s", method)
			}
			var err error
			if c.version, c.goos, err = parseUserAgent(r.Header); err != nil {
				return err
			}
			if auth {
				if c.dev, err = p.authenticate(w, r); err != nil {
					return err
				}
			}
			return e(w, r, c)
		}()
		if err == nil {
			return
		}
		var deviceID string
		if c.dev != nil {
			deviceID = c.dev.ID
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, err.Error()}
		}
		p.reject(r, deviceID, ae.status, ae.reason)
		http.Error(w, ae.reason, ae.status)
	})
}

// countUpload counts every request to POST /v1/messages, whatever its fate.
func (p *Platform) countUpload(r *http.Request) error {
	if r.Method == http.MethodPost {
		p.mu.Lock()
		p.uploads++
		p.changedLocked()
		p.mu.Unlock()
	}
	return nil
}

// checkOffered answers 404 while SetCheckSupported(false) is in force.
func (p *Platform) checkOffered(*http.Request) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.checkOff {
		return refuse(http.StatusNotFound, "key check is not offered")
	}
	return nil
}

// The version is an RFC 9110 §5.6.2 token; the bearer token an RFC 6750
// §2.1 b64token.
var (
	userAgentRE = regexp.MustCompile("^inboxrelay/([!#$%&'*+.^_`|~0-9A-Za-z-]+) \\(([a-z0-9]+)/([a-z0-9]+)\\)$")
	bearerRE    = regexp.MustCompile(`^[Bb][Ee][Aa][Rr][Ee][Rr] ([0-9A-Za-z._~+/-]+=*)$`)
)

// parseUserAgent checks "inboxrelay/<version> (<GOOS>/<GOARCH>)".
func parseUserAgent(h http.Header) (version, goos string, err error) {
	v := h.Values("User-Agent")
	if len(v) != 1 {
		return "", "", refuse(http.StatusBadRequest, "User-Agent must be inboxrelay/<version> (<GOOS>/<GOARCH>)")
	}
	m := userAgentRE.FindStringSubmatch(v[0])
	if m == nil {
		return "", "", refuse(http.StatusBadRequest, "User-Agent %q is not inboxrelay/<version> (<GOOS>/<GOARCH>)", v[0])
	}
	return m[1], m[2], nil
}

// authenticate checks the bearer token (RFC 6750 §2.1).
func (p *Platform) authenticate(w http.ResponseWriter, r *http.Request) (*device, error) {
	v := r.Header.Values("Authorization")
	if len(v) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="inboxrelay"`)
		return nil, refuse(http.StatusUnauthorized, "a bearer token is required")
	}
	m := bearerRE.FindStringSubmatch(v[0])
	p.mu.Lock()
	defer p.mu.Unlock()
	var d *device
	if m != nil {
		d = p.tokens[m[1]]
	}
	switch {
	case d == nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="inboxrelay", error="invalid_token"`)
		return nil, refuse(http.StatusUnauthorized, "unknown token")
	case d.Removed:
		return nil, refuse(http.StatusForbidden, "device %s was removed", d.ID)
	case d.Revoked:
		w.Header().Set("WWW-Authenticate", `Bearer realm="inboxrelay", error="invalid_token"`)
		return nil, refuse(http.StatusUnauthorized, "token revoked")
	}
	return d, nil
}

// maxJSON bounds the JSON bodies; 1000 keys take about 67 KB.
const maxJSON = 1 << 20

// readJSON reads a JSON request body of at most maxJSON bytes. Its
// Content-Type, when present, must be application/json.
func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, refuse(http.StatusUnsupportedMediaType, "Content-Type must be application/json, not %q", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSON))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, refuse(http.StatusRequestEntityTooLarge, "JSON body over %d bytes", maxJSON)
	}
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "read body: %v", err)
	}
	return body, nil
}

// decodeObject decodes the JSON object data into the fields' targets, each
// member by its exact name: encoding/json alone matches names
// case-insensitively and ignores unknown ones, which would let a misspelt
// member through. A member absent or null leaves its target untouched.
func decodeObject(data []byte, what string, fields map[string]any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return refuse(http.StatusBadRequest, "%s must be a JSON object", what)
	}
	for k, v := range m {
		t, ok := fields[k]
		if !ok {
			return refuse(http.StatusBadRequest, "%s: unknown member %q", what, k)
		}
		if err := json.Unmarshal(v, t); err != nil {
			return refuse(http.StatusBadRequest, "%s: member %q: %v", what, k, err)
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}
