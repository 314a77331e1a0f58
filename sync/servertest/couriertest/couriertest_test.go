package couriertest

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestCourier: Courier greets over TLS, logs a userdb user in through the
// real authdaemond, refuses a wrong password, keeps Sent as "INBOX.Sent"
// with "." as delimiter, takes appends, and leaves no process behind and
// nothing in the system's /etc or /run.
func TestCourier(t *testing.T) {
	var pgid int
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		pgid = s.cmd.Process.Pid
		s.AddUser(t, "alice", "correct horse battery")
		s.Append(t, "alice", "correct horse battery", "INBOX.Sent", []byte("Subject: hi\r\n\r\nhello\r\n"), time.Now())

		c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: s.tlsConfig()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Courier answers a wrong password after 5 s, by design.
		if err := c.Login("alice", "wrong").Wait(); err == nil {
			t.Fatal("a wrong password was accepted")
		}
		if err := c.Login("alice", "correct horse battery").Wait(); err != nil {
			t.Fatalf("login: %v", err)
		}
		list, err := c.List("", "*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]rune{}
		for _, m := range list {
			names[m.Mailbox] = m.Delim
		}
		if d, ok := names["INBOX.Sent"]; !ok || d != '.' {
			t.Fatalf("folders %v, want INBOX.Sent with delimiter '.'", names)
		}
		sd, err := c.Select("INBOX.Sent", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || sd.NumMessages != 1 {
			t.Fatalf("examine INBOX.Sent: %v, %d messages, want 1", err, sd.NumMessages)
		}
		c.Logout().Wait()
	})
	if pgid == 0 {
		return
	}
	if err := exec.Command("kill", "-0", "--", "-"+strconv.Itoa(pgid)).Run(); err == nil {
		t.Errorf("processes of group %d outlived the test", pgid)
	}
	for _, p := range []string{"/etc/courier", "/run/courier", "/usr/lib/courier-authlib"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists outside the namespace", p)
		}
	}
	out, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(out), "couriertest-") {
		t.Errorf("a mount of the test leaked into the test's namespace:\n%s", out)
	}
}
