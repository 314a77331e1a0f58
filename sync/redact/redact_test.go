package redact

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"
)

const pw = `Tr0ub4dor&"3\x`

// echoes are the ways servers have been seen, or could be, to echo a
// password back.
func echoes(user, pass string) map[string]string {
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	return map[string]string{
		"literal":          "BAD Invalid arguments: LOGIN " + user + " {14}\r\n" + pass,
		"IMAP quoted":      `BAD Error in IMAP command LOGIN "` + user + `" "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(pass) + `"`,
		"Go quoted":        fmt.Sprintf("login failed for %q", pass),
		"SASL PLAIN":       "535 5.7.8 Authentication failed: AUTH PLAIN " + plain,
		"SASL PLAIN authz": "NO [AUTHENTICATIONFAILED] " + base64.StdEncoding.EncodeToString([]byte(user+"\x00"+user+"\x00"+pass)),
		"SASL LOGIN":       "535 bad password " + base64.StdEncoding.EncodeToString([]byte(pass)),
		"URL query":        "GET /login?u=" + user + "&p=" + url.QueryEscape(pass) + " failed",
		"URL path":         "no route to /auth/" + url.PathEscape(pass),
		"lower-case hex":   "p=" + strings.ToLower(url.QueryEscape(pass)),
		"upper case":       "BAD LOGIN " + strings.ToUpper(pass),
		"JSON":             `{"error":"bad password \"` + strings.ReplaceAll(strings.ReplaceAll(pass, `\`, `\\`), `"`, `\"`) + `\""}`,
		"URL base64":       "token " + base64.URLEncoding.EncodeToString([]byte("xy"+pass)),
	}
}

func TestStringRemovesEveryForm(t *testing.T) {
	s := ForLogin("alice@acme.test", pw)
	for name, text := range echoes("alice@acme.test", pw) {
		got := s.String(text)
		if strings.Contains(strings.ToLower(got), strings.ToLower(pw)) || !strings.Contains(got, Mask) || s.Contains(got) {
			t.Errorf("%s: %q → %q", name, text, got)
		}
		if strings.Contains(got, "Tr0ub") || strings.Contains(got, "4dor") {
			t.Errorf("%s: part of the password is left: %q", name, got)
		}
	}
	// What surrounds the secret stays readable.
	if got := s.String(`BAD Error in IMAP command LOGIN "alice@acme.test" "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(pw) + `"`); got != `BAD Error in IMAP command LOGIN "alice@acme.test" "***"` {
		t.Errorf("quoted: %q", got)
	}
	if got := s.String("no secret here"); got != "no secret here" {
		t.Errorf("clean text changed: %q", got)
	}
}

// A base64 secret is found at every offset of a longer encoded message,
// whatever came before it.
func TestBase64AtAnyOffset(t *testing.T) {
	s := New("hunter2hunter2")
	for pre := 0; pre < 7; pre++ {
		msg := strings.Repeat("z", pre) + "hunter2hunter2" + "tail"
		enc := base64.StdEncoding.EncodeToString([]byte(msg))
		got := s.String("AUTH PLAIN " + enc + " refused")
		if got != "AUTH PLAIN *** refused" {
			t.Errorf("prefix %d: %q → %q", pre, enc, got)
		}
	}
	// A short password is still found in the exact SASL messages.
	short := ForLogin("bob", "abc")
	enc := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00abc"))
	if got := short.String("535 " + enc); got != "535 ***" {
		t.Errorf("short password in PLAIN: %q", got)
	}
}

func TestNilAndEmptyRedactNothing(t *testing.T) {
	var s *Secrets
	if s.String("abc") != "abc" || s.Error(nil) != nil {
		t.Error("nil Secrets changed something")
	}
	err := errors.New("x")
	if New("").Error(err) != err {
		t.Error("empty Secrets wrapped an error")
	}
}

func TestErrorKeepsTypesButNotTheSecret(t *testing.T) {
	s := ForLogin("alice", "s3cr3t-passw0rd")
	sentinel := errors.New("the mail server refused the login")
	imapErr := &imap.Error{Type: imap.StatusResponseTypeBad, Text: `LOGIN "alice" "s3cr3t-passw0rd"`}
	err := fmt.Errorf("login: %w", fmt.Errorf("%w: %w", sentinel, imapErr))
	red := s.Error(err)
	if strings.Contains(red.Error(), "s3cr3t") || !strings.Contains(red.Error(), `LOGIN "alice" "***"`) {
		t.Fatalf("message %q", red)
	}
	if !errors.Is(red, sentinel) {
		t.Error("errors.Is lost the sentinel")
	}
	var ie *imap.Error
	if !errors.As(red, &ie) || ie.Type != imap.StatusResponseTypeBad || strings.Contains(ie.Text, "s3cr3t") {
		t.Fatalf("errors.As(*imap.Error) = %+v", ie)
	}
	if imapErr.Text != `LOGIN "alice" "s3cr3t-passw0rd"` {
		t.Error("the original error was changed")
	}
	if errors.Unwrap(red) != nil {
		t.Error("the redacted error unwraps to the original")
	}

	se := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00s3cr3t-passw0rd"))}
	var got *smtp.SMTPError
	if !errors.As(s.Error(se), &got) || got.Code != 535 || s.Contains(got.Message) || got.Message != "bad ***" {
		t.Fatalf("errors.As(*smtp.SMTPError) = %+v", got)
	}

	// An interface target: the net.Error found is a clean copy.
	op := &net.OpError{Op: "read", Net: "tcp", Err: fmt.Errorf("peer said s3cr3t-passw0rd")}
	var ne net.Error
	if !errors.As(s.Error(fmt.Errorf("x: %w", op)), &ne) || strings.Contains(ne.Error(), "s3cr3t") {
		t.Fatalf("errors.As(net.Error) = %v", ne)
	}

	// A secret in an unexported field cannot be cleaned: As refuses.
	var h *hidden
	if errors.As(s.Error(&hidden{"s3cr3t-passw0rd"}), &h) {
		t.Fatalf("As handed out %q", h.Error())
	}

	// Clean errors pass through untouched, types and all.
	clean := &imap.Error{Type: imap.StatusResponseTypeNo, Text: "nope"}
	if s.Error(clean) != error(clean) {
		t.Error("a clean error was wrapped")
	}
}

type hidden struct{ secret string }

func (h *hidden) Error() string { return "server said " + h.secret }

func TestWithAddsSecrets(t *testing.T) {
	s := ForLogin("a", "first-secret").With("device-token-123")
	if got := s.String("first-secret and device-token-123"); got != "*** and ***" {
		t.Errorf("got %q", got)
	}
}
