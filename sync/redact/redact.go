// Package redact removes secrets (a mailbox password, the device token)
// from text and errors before they leave the connection layer, in every
// form a server may echo them back:
//
//   - the secret itself (as sent in an IMAP literal or a JSON body);
//   - IMAP-quoted (RFC 3501 §4.3: \ and " escaped), Go-quoted (%q) and
//     JSON-escaped;
//   - URL-encoded (query and path escaping, upper- or lower-case hex);
//   - base64, standard or URL alphabet, at any offset inside a longer
//     base64 string, which covers the SASL PLAIN and LOGIN exchanges
//     (RFC 4616: base64 of authzid NUL user NUL password): the whole
//     base64 word holding it is removed;
//
// case-insensitively for the text forms. What is removed becomes "***".
//
// A Secrets is immutable and safe for concurrent use. The zero value and
// nil redact nothing.
package redact

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
)

// Mask replaces whatever is removed.
const Mask = "***"

// minBase64Core is the shortest run of base64 characters taken as the
// sign of an encoded secret: one group, 3 bytes of the secret, so a secret
// of 5 bytes or more is found at any offset.
const minBase64Core = 4

// Secrets is a set of secrets and the forms each can take.
type Secrets struct {
	text [][]byte // lower-case ASCII forms, matched case-insensitively
	b64  [][]byte // base64 cores, matched exactly
}

// New returns the Secrets for the given values; empty ones are ignored.
func New(secrets ...string) *Secrets {
	s := &Secrets{}
	for _, v := range secrets {
		s.add(v)
	}
	return s
}

// ForLogin returns the Secrets of a login: the password in every form,
// plus the exact SASL PLAIN and LOGIN messages for user (which catch the
// base64 of a password too short for the offset-free match).
func ForLogin(user, password string) *Secrets {
	s := New(password)
	if password != "" {
		for _, msg := range []string{"\x00" + user + "\x00" + password, user + "\x00" + user + "\x00" + password, password} {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				s.b64 = appendUnique(s.b64, []byte(enc.EncodeToString([]byte(msg))))
			}
		}
	}
	return s
}

// With returns a Secrets holding s's secrets and more.
func (s *Secrets) With(more ...string) *Secrets {
	out := &Secrets{}
	if s != nil {
		out.text = append(out.text, s.text...)
		out.b64 = append(out.b64, s.b64...)
	}
	for _, v := range more {
		out.add(v)
	}
	return out
}

func (s *Secrets) add(v string) {
	if v == "" {
		return
	}
	forms := []string{
		v,
		strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v), // IMAP quoted string
		strings.Trim(strconv.Quote(v), `"`),
		strings.Trim(strconv.QuoteToASCII(v), `"`),
		url.QueryEscape(v),
		url.PathEscape(v),
		lowerHex(url.QueryEscape(v)),
		lowerHex(url.PathEscape(v)),
	}
	if j, err := json.Marshal(v); err == nil {
		forms = append(forms, strings.Trim(string(j), `"`))
	}
	for _, f := range forms {
		s.text = appendUnique(s.text, lowerASCII([]byte(f)))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for off := 0; off < 3; off++ {
			if c := base64Core(enc, []byte(v), off); len(c) >= minBase64Core {
				s.b64 = appendUnique(s.b64, c)
			}
		}
	}
}

// base64Core returns the base64 characters that encode secret wherever it
// starts at byte offset off (mod 3) of a longer input: the 4-character
// groups whose 3 input bytes all belong to secret.
func base64Core(enc *base64.Encoding, secret []byte, off int) []byte {
	skip := (3 - off) % 3 // bytes of secret in the group it shares with what precedes it
	if len(secret) < skip+3 {
		return nil
	}
	whole := secret[skip:]
	whole = whole[:len(whole)/3*3]
	return []byte(enc.EncodeToString(whole))
}

func appendUnique(list [][]byte, b []byte) [][]byte {
	for _, have := range list {
		if string(have) == string(b) {
			return list
		}
	}
	return append(list, b)
}

func lowerASCII(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// lowerHex writes the hex digits of percent escapes in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerASCII(b[i+1 : i+2])[0], lowerASCII(b[i+2 : i+3])[0]
		}
	}
	return string(b)
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '='
}

// String returns text with every form of every secret replaced by Mask.
func (s *Secrets) String(text string) string {
	if s == nil || (len(s.text) == 0 && len(s.b64) == 0) || text == "" {
		return text
	}
	b := []byte(text)
	// Base64 first, on the original bytes: a text form inside a base64
	// word is removed with the whole word.
	cut := make([]bool, len(b))
	any := false
	for _, core := range s.b64 {
		for i := 0; ; {
			j := indexFrom(b, core, i)
			if j < 0 {
				break
			}
			lo, hi := j, j+len(core)
			for lo > 0 && isBase64Char(b[lo-1]) {
				lo--
			}
			for hi < len(b) && isBase64Char(b[hi]) {
				hi++
			}
			for k := lo; k < hi; k++ {
				cut[k] = true
			}
			any = true
			i = j + 1
		}
	}
	lower := lowerASCII(b)
	for _, f := range s.text {
		for i := 0; ; {
			j := indexFrom(lower, f, i)
			if j < 0 {
				break
			}
			for k := j; k < j+len(f); k++ {
				cut[k] = true
			}
			any = true
			i = j + 1
		}
	}
	if !any {
		return text
	}
	var out strings.Builder
	for i := 0; i < len(b); {
		if !cut[i] {
			out.WriteByte(b[i])
			i++
			continue
		}
		out.WriteString(Mask)
		for i < len(b) && cut[i] {
			i++
		}
	}
	return out.String()
}

func indexFrom(b, sub []byte, from int) int {
	if from > len(b) {
		return -1
	}
	j := strings.Index(string(b[from:]), string(sub))
	if j < 0 {
		return -1
	}
	return from + j
}

// Contains reports whether text holds a form of a secret.
func (s *Secrets) Contains(text string) bool { return s.String(text) != text }

// Error returns err unchanged when neither its message nor that of any
// error it wraps holds a secret; otherwise an error whose message is
// redacted. The returned error keeps errors.Is for every error of err's
// chain, and errors.As for those that can be made clean: the value As
// stores is a copy with its exported text fields (and wrapped errors)
// redacted, and As fails for one that still holds a secret (a secret in an
// unexported field). It does not Unwrap: nothing reaches the original.
func (s *Secrets) Error(err error) error {
	if err == nil || s == nil || (len(s.text) == 0 && len(s.b64) == 0) {
		return err
	}
	if !s.chainContains(err) {
		return err
	}
	return &redacted{msg: s.String(err.Error()), err: err, s: s}
}

// chainContains reports whether err or an error it wraps holds a secret.
func (s *Secrets) chainContains(err error) bool {
	if err == nil {
		return false
	}
	if s.Contains(err.Error()) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return s.chainContains(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if s.chainContains(e) {
				return true
			}
		}
	}
	return false
}

type redacted struct {
	msg string
	err error
	s   *Secrets
}

func (e *redacted) Error() string { return e.msg }

// Is lets errors.Is see the original chain: it returns only a boolean.
func (e *redacted) Is(target error) bool { return errors.Is(e.err, target) }

// As finds target in the original chain and stores a clean copy.
func (e *redacted) As(target any) bool {
	tv := reflect.ValueOf(target)
	if tv.Kind() != reflect.Pointer || tv.IsNil() {
		return false
	}
	probe := reflect.New(tv.Elem().Type())
	if !errors.As(e.err, probe.Interface()) {
		return false
	}
	clean, ok := e.s.clean(probe.Elem())
	if !ok {
		return false
	}
	if er, isErr := clean.Interface().(error); isErr && e.s.Contains(er.Error()) {
		return false
	}
	tv.Elem().Set(clean)
	return true
}

var errorType = reflect.TypeFor[error]()

// clean returns a copy of v (of v's type) with its exported strings, string
// slices and errors redacted; ok is false when v cannot be copied.
func (s *Secrets) clean(v reflect.Value) (reflect.Value, bool) {
	t := v.Type()
	switch t.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return v, true
		}
		inner, ok := s.clean(v.Elem())
		if !ok {
			return v, false
		}
		out := reflect.New(t).Elem()
		out.Set(inner)
		return out, true
	case reflect.Pointer:
		if v.IsNil() {
			return v, true
		}
		if t.Elem().Kind() != reflect.Struct {
			return v, !s.holds(v)
		}
		cp := reflect.New(t.Elem())
		cp.Elem().Set(v.Elem())
		s.cleanFields(cp.Elem())
		return cp, true
	case reflect.Struct:
		cp := reflect.New(t).Elem()
		cp.Set(v)
		s.cleanFields(cp)
		return cp, true
	case reflect.String:
		cp := reflect.New(t).Elem()
		cp.SetString(s.String(v.String()))
		return cp, true
	}
	return v, !s.holds(v)
}

// holds reports whether v, as an error, has a secret in its message.
func (s *Secrets) holds(v reflect.Value) bool {
	if er, ok := v.Interface().(error); ok {
		return s.Contains(er.Error())
	}
	return false
}

func (s *Secrets) cleanFields(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch {
		case f.Kind() == reflect.String:
			f.SetString(s.String(f.String()))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String && !f.IsNil():
			cp := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
			for j := 0; j < f.Len(); j++ {
				cp.Index(j).SetString(s.String(f.Index(j).String()))
			}
			f.Set(cp)
		case f.Type() == errorType && !f.IsNil():
			f.Set(reflect.ValueOf(s.Error(f.Interface().(error))))
		}
	}
}
