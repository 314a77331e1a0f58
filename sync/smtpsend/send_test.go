package smtpsend

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

const testPassword = "correct horse"

// dialScripted logs in to srv as a submission client would.
func dialScripted(t *testing.T, srv *hostile.ScriptedSMTP, tm Timeouts) (*Client, error) {
	t.Helper()
	acct := config.Account{Email: "alice@acme.test", SMTP: config.Server{Host: srv.Host, Port: srv.Port, Security: config.SecurityTLS},
		TrustFingerprints: []string{srv.Fingerprint}}
	pol, err := trust.NewPolicy("", acct.TrustPins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return DialTimeouts(ctx, acct, testPassword, pol, tm)
}

func message(subject string, size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: alice@acme.test\r\nTo: bob@client.test\r\nSubject: " + subject + "\r\n\r\n")
	for b.Len() < size {
		b.WriteString("A line of the message body, long enough to count.\r\n")
	}
	return b.Bytes()
}

func send(c *Client, to string, msg []byte) (int, string, error) {
	return c.Send("alice@acme.test", []string{to}, bytes.NewReader(msg), int64(len(msg)))
}

// commandsAfter returns the commands received after the first one that
// starts with prefix.
func commandsAfter(cmds []string, prefix string) []string {
	for i, c := range cmds {
		if strings.HasPrefix(c, prefix) {
			return cmds[i+1:]
		}
	}
	return nil
}

// TestSendResetsAfterRefusedData: a server refuses DATA for the first
// message and keeps the transaction open, as Postfix does; the second
// message goes out on the same connection because the client said RSET.
// (Before: MAIL for the second message got "503 nested MAIL command", a
// permanent refusal of a message nothing was wrong with.)
func TestSendResetsAfterRefusedData(t *testing.T) {
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword,
		Data: func(from string, to []string) string {
			if to[0] == "refused@client.test" {
				return "554 5.7.1 Relay access denied"
			}
			return ""
		}})
	c, err := dialScripted(t, srv, Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = send(c, "refused@client.test", message("one", 100))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || se.Temporary() {
		t.Fatalf("first message: err %v, want the 554 refusal", err)
	}
	if c.Broken() {
		t.Fatal("a refusal broke the connection")
	}
	if code, _, err := send(c, "bob@client.test", message("two", 100)); err != nil || code != 250 {
		t.Fatalf("second message on the same connection: %d, %v", code, err)
	}
	if got := srv.Accepted(); len(got) != 1 || got[0].To[0] != "bob@client.test" {
		t.Fatalf("accepted %+v, want the second message", got)
	}
	if after := commandsAfter(srv.Commands(), "DATA"); len(after) == 0 || after[0] != "RSET" {
		t.Fatalf("after the refused DATA the client said %q, want RSET first", after)
	}
	if srv.Logins() != 1 {
		t.Fatalf("%d logins, want 1: the connection was not kept", srv.Logins())
	}
}

// TestSendTemporaryRecipientRefusal: a 452 to RCPT is a temporary refusal
// of that message only; the next one goes out on the same connection.
func TestSendTemporaryRecipientRefusal(t *testing.T) {
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword,
		Rcpt: func(addr string) string {
			if addr == "full@client.test" {
				return "452 4.2.2 Mailbox full"
			}
			return ""
		}})
	c, err := dialScripted(t, srv, Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = send(c, "full@client.test", message("one", 100))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || !se.Temporary() {
		t.Fatalf("err %v, want the temporary 452", err)
	}
	if code, _, err := send(c, "bob@client.test", message("two", 100)); err != nil || code != 250 || c.Broken() {
		t.Fatalf("next message: %d, %v", code, err)
	}
	if after := commandsAfter(srv.Commands(), "RCPT TO:<full@"); len(after) == 0 || after[0] != "RSET" {
		t.Fatalf("after the refused RCPT the client said %q, want RSET", after)
	}
}

// TestSendServerSilentMidData: the server stops reading in the middle of
// a 16 MiB message and never answers. Send gives up once nothing moved for
// Timeouts.Stall, says so, and reports the message as not handed over
// (neither sent nor ambiguous). (Before: it waited forever.)
func TestSendServerSilentMidData(t *testing.T) {
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword, StallAfter: 1 << 20})
	c, err := dialScripted(t, srv, Timeouts{Stall: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := send(c, "bob@client.test", message("big", 16<<20))
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute): // a guard against hanging the suite, not a measure
		t.Fatal("Send still waits on a silent server after 2 minutes")
	}
	var amb *AmbiguousError
	var se *smtp.SMTPError
	if err == nil || errors.As(err, &amb) || errors.As(err, &se) {
		t.Fatalf("err %v, want a connection failure that did not hand the message over", err)
	}
	if !strings.Contains(err.Error(), "stopped answering while taking the message (after") {
		t.Fatalf("err %q does not say the server stopped taking the message", err)
	}
	if !c.Broken() || srv.Stalled() != 1 || srv.Received() != 0 {
		t.Fatalf("broken %v, stalled %d, received %d", c.Broken(), srv.Stalled(), srv.Received())
	}
}

// TestSendHugeEHLOAnswer: a server that answers EHLO with 64 MiB of lines
// is dropped after MaxReply bytes instead of being read to the end.
// (Before: go-smtp collected every line of the answer in memory.)
func TestSendHugeEHLOAnswer(t *testing.T) {
	const huge = 64 << 20
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword, HugeEHLO: huge})
	_, err := dialScripted(t, srv, Timeouts{})
	var rt *ReplyTooLongError
	if !errors.As(err, &rt) {
		t.Fatalf("err %v, want a reply too long", err)
	}
	// What the server could write is what the client read (at most
	// MaxReply) plus the socket buffers: far from all of it.
	if w := srv.HugeWritten(); w >= huge/2 {
		t.Fatalf("the server wrote %d of %d bytes: the client kept reading", w, huge)
	}
}

// TestSendHugeAnswerToTheEnd: the message was handed over and the answer
// is one 16 MiB line: the outcome is unknown (ambiguous), said in words,
// and nothing is read past go-smtp's line limit.
func TestSendHugeAnswerToTheEnd(t *testing.T) {
	const huge = 16 << 20
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword, HugeEnd: huge})
	c, err := dialScripted(t, srv, Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = send(c, "bob@client.test", message("one", 100))
	var amb *AmbiguousError
	if !errors.As(err, &amb) || !strings.Contains(err.Error(), "longer than 2000 bytes") {
		t.Fatalf("err %v, want ambiguous, naming the long line", err)
	}
	if srv.Received() != 1 || !c.Broken() {
		t.Fatalf("received %d, broken %v", srv.Received(), c.Broken())
	}
}

// TestSendSizeAnnounced: a message over the SIZE the server announced is
// refused before MAIL, for good, with both sizes named.
func TestSendSizeAnnounced(t *testing.T) {
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword, Size: 2 << 20})
	c, err := dialScripted(t, srv, Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = send(c, "bob@client.test", message("big", 3<<20))
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "at most 2.0 MB") {
		t.Fatalf("err %v, want a refusal naming the server's limit", err)
	}
	for _, cmd := range srv.Commands() {
		if strings.HasPrefix(cmd, "MAIL") {
			t.Fatalf("the client said %q for a message it knew too big", cmd)
		}
	}
	if code, _, err := send(c, "bob@client.test", message("small", 1000)); err != nil || code != 250 {
		t.Fatalf("a small message after: %d, %v", code, err)
	}
	if cmds := srv.Commands(); !strings.Contains(strings.Join(cmds, "\n"), "SIZE=") {
		t.Fatalf("MAIL FROM did not announce the size: %q", cmds)
	}
}

// TestSendAddressGoSMTPRefuses: an address with a CR is refused on this
// side, for good, and the connection stays usable.
func TestSendAddressGoSMTPRefuses(t *testing.T) {
	srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword})
	c, err := dialScripted(t, srv, Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = send(c, "bob@client.test\r\nRCPT TO:<eve@evil.test>", message("one", 100))
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("err %v, want a refusal", err)
	}
	for _, cmd := range srv.Commands() {
		if strings.Contains(cmd, "eve@") {
			t.Fatalf("the injected command reached the server: %q", cmd)
		}
	}
}

func TestCRLFWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\rb\r", "a\r\nb\r\n"},
		{"a\r\r\nb", "a\r\n\r\nb"},
		{"\n.\n", "\r\n.\r\n"},
		{"x\r.\r\nMAIL FROM:<e@x>\r", "x\r\n.\r\nMAIL FROM:<e@x>\r\n"},
		{"", ""},
	} {
		// Every split point: a CR at the end of one write and its LF at
		// the start of the next are one line end.
		for cut := 0; cut <= len(tc.in); cut++ {
			var b bytes.Buffer
			w := &CRLFWriter{W: &b}
			w.Write([]byte(tc.in[:cut]))
			w.Write([]byte(tc.in[cut:]))
			w.Close()
			if b.String() != tc.want {
				t.Errorf("%q cut at %d: %q, want %q", tc.in, cut, b.String(), tc.want)
			}
		}
	}
}

// TestEveryStepHasADeadline: a server that goes silent at any step, from
// the greeting to QUIT, is given up on after Timeouts.Step, and the error
// names the step. (Before: go-smtp waited 5 minutes for each answer, and
// the greeting and STARTTLS were bounded only as a whole.)
func TestEveryStepHasADeadline(t *testing.T) {
	for _, tc := range []struct{ at, want string }{
		{"TLS", "while negotiating TLS"},
		{"GREETING", "while waiting for the greeting"},
		{"EHLO", "while waiting for the greeting"},
		{"AUTH", "while logging in"},
		{"MAIL", "while sending MAIL FROM"},
		{"RCPT", "while sending RCPT TO <bob@client.test>"},
		{"DATA", "while sending DATA"},
		{"QUIT", ""},
	} {
		t.Run(tc.at, func(t *testing.T) {
			srv := hostile.StartScriptedSMTP(t, hostile.SMTPScript{Password: testPassword, SilentAt: tc.at})
			done := make(chan error, 1)
			go func() {
				c, err := dialScripted(t, srv, Timeouts{Step: 300 * time.Millisecond})
				if err == nil {
					if tc.at == "QUIT" {
						_, _, err = send(c, "bob@client.test", message("one", 100))
						if err == nil {
							err = c.Close() // QUIT unanswered: closed anyway
						}
					} else {
						_, _, err = send(c, "bob@client.test", message("one", 100))
						c.Close()
					}
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute): // a guard against hanging the suite, not a measure
				t.Fatalf("still waiting on a server silent at %s after a minute", tc.at)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a server silent at QUIT: %v", err)
				}
				return
			}
			var ne *imapsync.NetError
			if !errors.As(err, &ne) || ne.Kind != imapsync.Silent || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want the server silent %s", err, tc.want)
			}
		})
	}
}
