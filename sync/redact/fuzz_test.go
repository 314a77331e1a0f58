package redact

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzString: whatever the secret and the text around it, no form of the
// secret survives, and text without a secret is left alone.
func FuzzString(f *testing.F) {
	f.Add("correct horse", "BAD LOGIN \"alice\" ", "\r\n", "alice")
	f.Add(`p"a\ss`, "NO [AUTHENTICATIONFAILED] ", " end", "bob@x.test")
	f.Add("ünïcödé-pässwörd", "535 5.7.8 ", "", "u")
	f.Add("abcde", "", "", "")
	f.Fuzz(func(t *testing.T, secret, before, after, user string) {
		s := ForLogin(user, secret)
		if before+after != "" && !strings.Contains(secret, "*") {
			if got := s.String(before + after); got != before+after && !s.Contains(before+after) {
				t.Fatalf("text without the secret changed: %q → %q", before+after, got)
			}
		}
		if secret == "" || strings.Contains(secret, "*") {
			return // "***" may spell a secret made of stars
		}
		lower := string(lowerASCII([]byte(secret)))
		forms := []string{secret, strconv.Quote(secret), url.QueryEscape(secret), url.PathEscape(secret),
			strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(secret)}
		for _, form := range forms {
			got := s.String(before + form + after)
			if strings.Contains(string(lowerASCII([]byte(got))), lower) {
				t.Fatalf("form %q of %q survives in %q", form, secret, got)
			}
		}
		// Base64 of anything holding the secret, as SASL sends it: the
		// base64 word is gone, unless the secret is too short to be found
		// at any offset (then only the exact SASL messages are).
		msgs := []string{"\x00" + user + "\x00" + secret, secret}
		if len(secret) >= 5 {
			msgs = append(msgs, before+secret+after)
		}
		for _, m := range msgs {
			enc := base64.StdEncoding.EncodeToString([]byte(m))
			got := s.String("AUTH " + enc + " x")
			if strings.Contains(got, enc) || s.Contains(got) {
				t.Fatalf("base64 %q of %q survives: %q", enc, m, got)
			}
		}
	})
}
