package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"alice@acme.test", ""},
		{"o'brien+tag@sub.acme.test", ""},
		{"jörg@müller.test", ""},
		{"", "is empty"},
		{"alice@acme.test\r\nRCPT TO:<eve@evil.test>", "line break"},
		{"alice@acme.test\n", "line break"},
		{"alice@acme.test\x00", "control character"},
		{"alice@acme.test NOTIFY=NEVER", "space"},
		{"alice@acme.test>", `contains '>'`},
		{"<alice@acme.test>", `contains '<'`},
		{`"a b"@acme.test`, `contains '"'`},
		{"alice", "name@domain"},
		{"alice@", "name@domain"},
		{"@acme.test", "name@domain"},
		{"a@b@acme.test", "more than one @"},
		{"alice@acme..test", "empty label"},
		{strings.Repeat("a", 65) + "@acme.test", "local part longer than 64"},
		{"a@" + strings.Repeat("b", 260) + ".test", "longer than 254"},
		{"al\xffice@acme.test", "not valid UTF-8"},
	} {
		got := checkAddress(tc.addr)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkAddress(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestCheckEnvelope(t *testing.T) {
	aliases := []string{"Support@Acme.test"}
	many := make([]string, 100)
	for i := range many {
		many[i] = "c@client.test"
	}
	for _, tc := range []struct {
		from string
		to   []string
		want string
	}{
		{"alice@acme.test", []string{"c@client.test"}, ""},
		{"ALICE@acme.test", []string{"c@client.test"}, ""},
		{"support@acme.test", many, ""},
		{"ceo@acme.test", []string{"c@client.test"}, "neither the account's address"},
		{"alice@acme.test", nil, "no recipient"},
		{"alice@acme.test", append(many, "one@more.test"), "101 recipients"},
		{"alice@acme.test", []string{"c@client.test", "d@client.test\r"}, "recipient 2"},
	} {
		got := checkEnvelope("alice@acme.test", tc.from, tc.to, aliases, 100)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkEnvelope(%q, %d recipients) = %q, want %q", tc.from, len(tc.to), got, tc.want)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	aliases := []string{"support@acme.test"}
	for _, tc := range []struct{ head, want string }{
		{"From: Alice <alice@acme.test>\r\nTo: c@client.test\r\n", ""},
		{"From: =?utf-8?q?Alice_M=C3=BCller?= <alice@acme.test>\r\n", ""},
		{"From: =?x-unknown?q?J=F6rg?= <alice@acme.test>\r\n", ""},
		{"From: Support\r\n <support@acme.test>\r\nSender: alice@acme.test\r\n", ""},
		{"from: alice@acme.test (Alice)\r\n", ""},
		{"From: \"alice@acme.test\" <ceo@acme.test>\r\n", `names "ceo@acme.test"`},
		{"From: alice@acme.test\r\nFrom: ceo@acme.test\r\n", "more than one From"},
		{"From: alice@acme.test\r\nSender: ceo@acme.test\r\n", "Sender header names"},
		{"From: undisclosed-recipients:;\r\n", "no address that can be read"},
		{"To: c@client.test\r\n", "no From header"},
		{"", "no From header"},
		{"From alice@acme.test\r\n", "cannot be read"},
	} {
		got := checkHeader([]byte(tc.head), "alice@acme.test", aliases)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkHeader(%q) = %q, want %q", tc.head, got, tc.want)
		}
	}
}

// prepare runs prepareFile on raw and returns what it wrote.
func prepare(t testing.TB, raw []byte, check func([]byte) string) ([]byte, prepared) {
	t.Helper()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out.eml")
	if err := os.WriteFile(src, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := prepareFile(src, dst, "alice@acme.test", time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), check)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(dst)
	if p.Refused != "" {
		if !os.IsNotExist(err) {
			t.Fatalf("a refused message left %s behind", dst)
		}
		return nil, p
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 || fi.Size() != p.Size {
		t.Fatalf("mode %v, size %d (said %d)", fi.Mode(), fi.Size(), p.Size)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("files left: %v", ents)
	}
	return out, p
}

func noCheck([]byte) string { return "" }

func TestPrepareFile(t *testing.T) {
	out, p := prepare(t, []byte("From: alice@acme.test\nSubject: x\n\nline one\rline two\n.\n"), noCheck)
	if !strings.HasPrefix(string(out), "Message-ID: <") || !strings.Contains(string(out), "@acme.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nFrom: alice@acme.test\r\n") {
		t.Fatalf("no Message-ID and Date added in front:\n%q", out)
	}
	if !bytes.HasSuffix(out, []byte("\r\n\r\nline one\r\nline two\r\n.\r\n")) || bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\r")) || bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatalf("line ends not all CRLF:\n%q", out)
	}
	if !strings.Contains(string(out), "Message-ID: "+p.MessageID+"\r\n") {
		t.Fatalf("Message-ID %q not the one written", p.MessageID)
	}

	given := "Message-ID: <given@acme.test>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nFrom: alice@acme.test\r\n\r\nbody\r\n"
	if out, p := prepare(t, []byte(given), noCheck); string(out) != given || p.MessageID != "<given@acme.test>" {
		t.Fatalf("a complete message was changed: %q, %q", out, p.MessageID)
	}
	// All header, no body: the header still ends where the message does.
	if out, _ := prepare(t, []byte("Message-ID: <h@acme.test>\r\nDate: x\r\nFrom: a@b"), noCheck); string(out) != "Message-ID: <h@acme.test>\r\nDate: x\r\nFrom: a@b" {
		t.Fatalf("header-only message: %q", out)
	}
	var seen []byte
	_, p = prepare(t, []byte("From: ceo@acme.test\r\nSubject: x\r\n\r\nbody\r\n"), func(h []byte) string { seen = h; return "refused" })
	if p.Refused != "refused" || string(seen) != "From: ceo@acme.test\r\nSubject: x\r\n" {
		t.Fatalf("refused %q, the check saw %q", p.Refused, seen)
	}
	huge := append(bytes.Repeat([]byte("X-Padding: 0123456789012345678901234567890123456789\r\n"), (maxHeader/50)+10), "\r\nbody"...)
	if _, p := prepare(t, huge, noCheck); !strings.Contains(p.Refused, "header is larger than") {
		t.Fatalf("a %d KiB header: %+v", len(huge)>>10, p)
	}
}

// FuzzPrepareFile: for any message, prepareFile either refuses it or
// writes it with only CRLF line ends, ending with the message itself.
func FuzzPrepareFile(f *testing.F) {
	f.Add([]byte("From: alice@acme.test\nSubject: x\n\nbody\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("Message-ID: <x@y>\rDate: now\r\rbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, p := prepare(t, raw, noCheck)
		if p.Refused != "" {
			return
		}
		plain := bytes.ReplaceAll(out, []byte("\r\n"), nil)
		if bytes.ContainsAny(plain, "\r\n") {
			t.Fatalf("a bare CR or LF in %q", out)
		}
		norm := bytes.ReplaceAll(bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		if !bytes.HasSuffix(out, norm) {
			t.Fatalf("%q does not end with the message %q", out, norm)
		}
	})
}
