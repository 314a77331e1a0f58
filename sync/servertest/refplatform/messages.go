package refplatform

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxCheckKeys is the most keys one POST /v1/messages/check may ask about.
const maxCheckKeys = 1000

// The Relay-* headers of an upload, all required, in canonical form.
var (
	hdrAccount      = http.CanonicalHeaderKey("Relay-Account")
	hdrMailbox      = http.CanonicalHeaderKey("Relay-Mailbox")
	hdrFolder       = http.CanonicalHeaderKey("Relay-Folder")
	hdrUID          = http.CanonicalHeaderKey("Relay-UID")
	hdrUIDValidity  = http.CanonicalHeaderKey("Relay-UIDValidity")
	hdrInternalDate = http.CanonicalHeaderKey("Relay-Internal-Date")
	hdrFlags        = http.CanonicalHeaderKey("Relay-Flags")
	relayHeaders    = []string{hdrAccount, hdrMailbox, hdrFolder, hdrUID, hdrUIDValidity, hdrInternalDate, hdrFlags}
)

// nzNumber is RFC 3501 §9 nz-number: no sign, no leading zero.
var nzNumber = regexp.MustCompile(`^[1-9][0-9]*$`)

var errTooLarge = errors.New("body too large")

// upload serves POST /v1/messages.
func (p *Platform) upload(w http.ResponseWriter, r *http.Request, c call) error {
	p.mu.Lock()
	limit := p.maxBody
	p.mu.Unlock()

	if f, ok := p.takeFault(); ok {
		// Read the body first, so the client sees the status and not a reset.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 2*limit))
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((f.retryAfter+time.Second-1)/time.Second), 10))
		}
		http.Error(w, "injected failure", f.status)
		return nil
	}

	m, gz, err := parseUpload(r.Header)
	if err != nil {
		return err
	}
	// A gzip stream of incompressible data is slightly longer than the data.
	wireLimit := limit
	if gz {
		wireLimit = limit + limit/64 + 4096
	}
	if r.ContentLength > wireLimit {
		return refuse(http.StatusRequestEntityTooLarge, "body over %d bytes", limit)
	}
	tmp, size, sum, err := p.receive(r.Body, gz, limit, wireLimit)
	if err != nil {
		return err
	}
	if sum != m.Key {
		_ = os.Remove(tmp)
		return refuse(http.StatusUnprocessableEntity, "body SHA-256 is %s, not the Idempotency-Key %s", sum, m.Key)
	}
	m.Size, m.Gzip, m.DeviceID = size, gz, c.dev.ID
	status, err := p.store(m, tmp)
	if err != nil {
		return err
	}
	w.WriteHeader(status)
	return nil
}

// parseUpload checks the headers of an upload and returns the message they
// describe, and whether the body is gzip-compressed.
func parseUpload(h http.Header) (m Message, gz bool, err error) {
	ct := h.Values("Content-Type")
	if len(ct) != 1 {
		return m, false, refuse(http.StatusUnsupportedMediaType, "Content-Type must be message/rfc822")
	}
	if mt, _, err := mime.ParseMediaType(ct[0]); err != nil || mt != "message/rfc822" {
		return m, false, refuse(http.StatusUnsupportedMediaType, "Content-Type must be message/rfc822, not %q", ct[0])
	}
	switch ce := h.Values("Content-Encoding"); {
	case len(ce) == 0:
	case len(ce) == 1 && strings.EqualFold(ce[0], "gzip"):
		gz = true
	default:
		// RFC 9110 §15.5.16: an unsupported content coding is a 415.
		return m, false, refuse(http.StatusUnsupportedMediaType, "Content-Encoding must be gzip or absent, not %q", strings.Join(ce, ", "))
	}

	key, err := single(h, "Idempotency-Key")
	if err != nil {
		return m, gz, err
	}
	if !isKey(key) {
		return m, gz, refuse(http.StatusBadRequest, "Idempotency-Key %q is not 64 lowercase hex digits", key)
	}
	m.Key = key

	for k := range h {
		if strings.HasPrefix(k, "Relay-") && !slices.Contains(relayHeaders, k) {
			return m, gz, refuse(http.StatusBadRequest, "unknown header %s", k)
		}
	}
	v := make(map[string]string, len(relayHeaders))
	for _, k := range relayHeaders {
		if v[k], err = single(h, k); err != nil {
			return m, gz, err
		}
	}

	m.Account = v[hdrAccount]
	if !utf8.ValidString(m.Account) {
		return m, gz, refuse(http.StatusBadRequest, "%s is not UTF-8", hdrAccount)
	}
	if a, err := mail.ParseAddress(m.Account); err != nil || a.Name != "" || a.Address != m.Account {
		return m, gz, refuse(http.StatusBadRequest, "%s %q is not a bare e-mail address", hdrAccount, m.Account)
	}

	m.Mailbox = v[hdrMailbox]
	if m.Mailbox != "inbox" && m.Mailbox != "sent" {
		return m, gz, refuse(http.StatusBadRequest, "%s %q is neither inbox nor sent", hdrMailbox, m.Mailbox)
	}

	if m.Folder, err = parseFolder(v[hdrFolder]); err != nil {
		return m, gz, err
	}
	if m.UID, err = parseNZNumber(hdrUID, v[hdrUID]); err != nil {
		return m, gz, err
	}
	if m.UIDValidity, err = parseNZNumber(hdrUIDValidity, v[hdrUIDValidity]); err != nil {
		return m, gz, err
	}
	if m.InternalDate, err = time.Parse(time.RFC3339, v[hdrInternalDate]); err != nil {
		return m, gz, refuse(http.StatusBadRequest, "%s %q is not RFC 3339", hdrInternalDate, v[hdrInternalDate])
	}
	if m.Flags, err = parseFlags(v[hdrFlags]); err != nil {
		return m, gz, err
	}
	return m, gz, nil
}

// single returns the one value of header k: absent or repeated is a 400.
func single(h http.Header, k string) (string, error) {
	switch v := h.Values(k); len(v) {
	case 0:
		return "", refuse(http.StatusBadRequest, "header %s is missing", k)
	case 1:
		return v[0], nil
	default:
		return "", refuse(http.StatusBadRequest, "header %s is repeated", k)
	}
}

// parseFolder percent-decodes Relay-Folder (RFC 3986 §2.1: "+" is a plus,
// not a space). Anything but visible ASCII must arrive encoded: a raw space
// or UTF-8 byte means the connector forgot to encode.
func parseFolder(raw string) (string, error) {
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return "", refuse(http.StatusBadRequest, "%s %q is not percent-encoded", hdrFolder, raw)
		}
	}
	f, err := url.PathUnescape(raw)
	if err != nil {
		return "", refuse(http.StatusBadRequest, "%s %q: %v", hdrFolder, raw, err)
	}
	if f == "" || !utf8.ValidString(f) {
		return "", refuse(http.StatusBadRequest, "%s %q does not decode to a UTF-8 folder name", hdrFolder, raw)
	}
	return f, nil
}

// parseNZNumber parses a UID or UIDVALIDITY: RFC 3501 §2.3.1.1, a non-zero
// 32-bit unsigned integer.
func parseNZNumber(k, v string) (uint32, error) {
	if nzNumber.MatchString(v) {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			return uint32(n), nil
		}
	}
	return 0, refuse(http.StatusBadRequest, "%s %q is not a positive 32-bit integer", k, v)
}

// parseFlags splits Relay-Flags on single spaces; each flag must be an
// RFC 3501 §9 flag-fetch: an atom, optionally preceded by a backslash.
func parseFlags(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	flags := strings.Split(v, " ")
	for _, f := range flags {
		if !isFlag(f) {
			return nil, refuse(http.StatusBadRequest, "%s %q: %q is not an IMAP flag", hdrFlags, v, f)
		}
	}
	return flags, nil
}

func isFlag(f string) bool {
	f = strings.TrimPrefix(f, `\`)
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		// ATOM-CHAR: CHAR except atom-specials and "]".
		if c := f[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// receive streams the body, decompressed, to a temporary file in dir while
// hashing it, and returns the file's path, the body's size and its SHA-256
// in lowercase hex. On error nothing is left on disk.
func (p *Platform) receive(body io.Reader, gz bool, limit, wireLimit int64) (path string, size int64, sum string, err error) {
	f, err := os.CreateTemp(p.dir, ".upload-*")
	if err != nil {
		return "", 0, "", fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()

	src := body
	what := "body"
	if gz {
		what = "gzip body"
		zr, err := gzip.NewReader(&capReader{r: body, n: wireLimit})
		if err != nil {
			return "", 0, "", readError(what, limit, err)
		}
		src = zr // multistream: reads to the end, so trailing garbage is an error
	}
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for {
		n, rerr := src.Read(buf)
		size += int64(n)
		if size > limit {
			return "", 0, "", readError(what, limit, errTooLarge)
		}
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return "", 0, "", fmt.Errorf("write body: %w", err)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", 0, "", readError(what, limit, rerr)
		}
	}
	if size == 0 {
		return "", 0, "", refuse(http.StatusBadRequest, "empty body")
	}
	if err := f.Close(); err != nil {
		return "", 0, "", fmt.Errorf("write body: %w", err)
	}
	return f.Name(), size, hex.EncodeToString(h.Sum(nil)), nil
}

func readError(what string, limit int64, err error) error {
	if errors.Is(err, errTooLarge) {
		return refuse(http.StatusRequestEntityTooLarge, "body over %d bytes", limit)
	}
	return refuse(http.StatusBadRequest, "read %s: %v", what, err)
}

// capReader fails with errTooLarge once more than n bytes were read.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.n < 0 {
		return 0, errTooLarge
	}
	if int64(len(b)) > c.n+1 {
		b = b[:c.n+1]
	}
	n, err := c.r.Read(b)
	c.n -= int64(n)
	if c.n < 0 {
		return n, errTooLarge
	}
	return n, err
}

// store keeps the message whose body is at tmp, unless its key is already
// stored; it returns 201 or 200.
func (p *Platform) store(m Message, tmp string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.changedLocked()
	if old, ok := p.messages[m.Key]; ok {
		old.Accepted++
		return http.StatusOK, os.Remove(tmp)
	}
	m.Path = filepath.Join(p.dir, m.Key+".eml")
	if err := os.Rename(tmp, m.Path); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("store body: %w", err)
	}
	m.StoredAt = time.Now()
	m.Accepted = 1
	p.messages[m.Key] = &m
	p.order = append(p.order, m.Key)
	return http.StatusCreated, nil
}

// check serves POST /v1/messages/check.
func (p *Platform) check(w http.ResponseWriter, r *http.Request, _ call) error {
	body, err := readJSON(w, r)
	if err != nil {
		return err
	}
	var keys []string
	if err := decodeObject(body, "check request", map[string]any{"keys": &keys}); err != nil {
		return err
	}
	switch {
	case keys == nil:
		return refuse(http.StatusBadRequest, "check request: keys must be an array")
	case len(keys) > maxCheckKeys:
		return refuse(http.StatusBadRequest, "check request: %d keys, at most %d allowed", len(keys), maxCheckKeys)
	}
	for _, k := range keys {
		if !isKey(k) {
			return refuse(http.StatusBadRequest, "check request: %q is not 64 lowercase hex digits", k)
		}
	}
	missing := []string{}
	seen := make(map[string]bool, len(keys))
	p.mu.Lock()
	for _, k := range keys {
		if _, ok := p.messages[k]; !ok && !seen[k] {
			missing = append(missing, k)
		}
		seen[k] = true
	}
	p.mu.Unlock()
	return writeJSON(w, http.StatusOK, map[string][]string{"missing": missing})
}
