//go:build linux

package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

// tlsFront is the mail server's implicit-TLS port as the app sees it: it
// ends TLS with a certificate the test chooses (one the app trusts, or
// one it does not), and passes the session on to Dovecot's plain IMAP
// port; it can also refuse every connection (the network is gone).
type tlsFront struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	cert   *tls.Certificate
	refuse bool
	conns  map[net.Conn]bool
}

func startFront(t *testing.T, upstream string, cert *hostile.Cert) *tlsFront {
	t.Helper()
	ln, err := net.Listen("tcp", hostile.Host+":0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{ln: ln, upstream: upstream, cert: &cert.TLS, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); f.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *tlsFront) addr() string { return f.ln.Addr().String() }

func (f *tlsFront) serve(c net.Conn) {
	f.mu.Lock()
	if f.refuse {
		f.mu.Unlock()
		c.Close()
		return
	}
	cert := f.cert
	f.conns[c] = true
	f.mu.Unlock()
	defer func() { f.mu.Lock(); delete(f.conns, c); f.mu.Unlock(); c.Close() }()
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		return
	}
	// From Dovecot's own address: it then allows a plain login (its
	// loopback rule), as the session is encrypted up to here.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	up, err := d.Dial("tcp", f.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, tc); done <- struct{}{} }()
	go func() { io.Copy(tc, up); done <- struct{}{} }()
	<-done
}

// cut closes every open connection.
func (f *tlsFront) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// use presents cert from now on and cuts the open connections.
func (f *tlsFront) use(cert *hostile.Cert) {
	f.mu.Lock()
	f.cert = &cert.TLS
	f.mu.Unlock()
	f.cut()
}

// setRefuse refuses (or accepts again) every connection, cutting the open
// ones.
func (f *tlsFront) setRefuse(on bool) {
	f.mu.Lock()
	f.refuse = on
	f.mu.Unlock()
	f.cut()
}

// appLog follows the app's log file: what the window said, in order.
type appLog struct{ path string }

// said returns every verdict the window showed so far ("the window says").
func (l appLog) said() []string {
	f, err := os.Open(l.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg     string `json:"msg"`
			Verdict string `json:"verdict"`
		}
		line := sc.Text()
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "the window says" {
			out = append(out, rec.Verdict)
			continue
		}
		// The text log: msg="the window says" verdict="…" (or verdict=Paused).
		if strings.Contains(line, `msg="the window says"`) {
			if _, v, ok := strings.Cut(line, " verdict="); ok {
				if strings.HasPrefix(v, `"`) {
					if i := strings.LastIndex(v, `"`); i > 0 {
						v, _ = strconv.Unquote(v[:i+1])
					}
				} else {
					v, _, _ = strings.Cut(v, " ")
				}
				out = append(out, v)
			}
		}
	}
	return out
}

// last returns the window's current verdict, "" before any.
func (l appLog) last() string {
	s := l.said()
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func (l appLog) has(s string) bool { return fileHas(l.path, s) }

// count returns how many times s occurs in the log.
func (l appLog) count(s string) int {
	b, _ := os.ReadFile(l.path)
	return strings.Count(string(b), s)
}

// headline is the verdict without the window's "· 2 min ago".
func headline(v string) string {
	h, _, _ := strings.Cut(v, " · ")
	return h
}

// TestDesktopApp is the acceptance run on the real binary, with a
// real StatusNotifier host that appears only after the app started, a
// notification server, Dovecot behind a TLS front and the reference
// platform behind a fault proxy. A person pairs the app and adds the
// mailbox from the window alone (keyboard only). Then, after each of:
// first sync done, paused, wrong password, offline, untrusted
// certificate, platform refusing the token, the tray's first line is the
// window's verdict (read from what the app logs it showed) within a
// second, and the tooltip says it too. While new mail arrives every two
// seconds (the engine flipping between relaying and up to date), the menu
// is not rebuilt once. A notification click opens the window; Quit from
// the tray stops the app within 5 s. Screenshots go to outputDir.
func TestDesktopApp(t *testing.T) {
	need(t, "Xvfb", "xdotool", "import", "gtk-sni-tray-standalone")
	const email, password = "alice@example.test", "first-Passw0rd"
	rig := testrig.New(t, testrig.Options{Email: email, Password: password, Unpaired: true, FaultProxies: true})
	dove, plat := rig.Dovecot, rig.Platform
	msg := func(i int) []byte {
		return []byte("From: bob@customer.test\r\nTo: alice@example.test\r\nSubject: hello " + strconv.Itoa(i) + "\r\nMessage-ID: <e2e-" + strconv.Itoa(i) +
			"@customer.test>\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nHi Alice\r\n")
	}
	dove.Append(t, email, "INBOX", msg(1), time.Now())

	good := hostile.NewCert(t, hostile.CertOptions{})
	bad := hostile.NewCert(t, hostile.CertOptions{SelfSigned: true, Issuer: "Somebody else"})
	front := startFront(t, dove.IMAP, good)
	tmp := t.TempDir()
	roots := filepath.Join(tmp, "roots.pem")
	rb, err := os.ReadFile(rig.RootsFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(roots, append(rb, good.CAPEM...), 0o600); err != nil {
		t.Fatal(err)
	}

	notes := startNotifications(t)
	d := &desk{t: t, display: startX(t), out: outputDir(t)}
	home := rig.Home.Dir
	log := appLog{filepath.Join(home, "logs", "inboxrelay.log")}
	t.Cleanup(func() {
		if b, err := os.ReadFile(log.path); err == nil {
			os.WriteFile(filepath.Join(d.out, "inboxrelay.log"), b, 0o644)
		}
	})
	env := append(os.Environ(), "DISPLAY="+d.display, "SSL_CERT_FILE="+roots, "INBOXRELAY_PANEL=dark",
		"HOME="+filepath.Join(tmp, "user"), "XDG_CONFIG_HOME="+filepath.Join(tmp, "user", ".config"), "LANG=C.UTF-8")
	appOut, err := os.Create(filepath.Join(d.out, "app-output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer appOut.Close()
	app := exec.Command(binary, "--home", home)
	app.Env, app.Stdout, app.Stderr = env, appOut, appOut
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = app.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			app.Process.Kill()
			<-exited
		}
	})
	started := time.Now()

	// No tray yet: the window opens on setup; the tray host starts after
	// the app and is used.
	d.window()
	host := startTrayHost(t, d.display, true)
	eventually(t, d, "the app's item in the tray that appeared", 30*time.Second, func() bool { return host.item() != "" })
	eventually(t, d, "the app to notice the tray", 30*time.Second, func() bool { return log.has(`"present":true`) || log.has("present=true") })
	if v, err := host.property("Title"); err != nil || v.Value() != "Inbox Relay" {
		t.Errorf("tray title %v (%v), want Inbox Relay", v, err)
	}
	d.screenshot("1-welcome")

	// Pairing: the address field has the keyboard; Enter pairs.
	d.window()
	d.typeText(rig.PlatformURL())
	d.key("Tab")
	d.typeText(plat.NewPairingCode())
	d.key("Return")
	eventually(t, d, "pairing", 30*time.Second, func() bool { return fileHas(filepath.Join(home, "config.json"), rig.PlatformURL()) })

	// The mailbox: address and password first; nothing is found for
	// example.test, so the server settings open for typing.
	time.Sleep(time.Second)
	d.window()
	d.typeText(email)
	eventually(t, d, "the settings lookup", 60*time.Second, func() bool { return log.has("server settings looked up") })
	time.Sleep(500 * time.Millisecond)
	d.key("Tab")
	d.typeText(password)
	d.key("Tab", "Tab") // past the "Server settings" header, opened for typing
	d.typeText(front.addr())
	d.key("Tab", "Tab")
	d.typeText(rig.SMTPAddr())
	d.key("shift+Tab", "shift+Tab", "shift+Tab", "shift+Tab") // back to the password
	d.key("Return")                                           // Enter in the password runs the test
	eventually(t, d, "the connection test", 90*time.Second, func() bool { return log.has("connection test passed") })
	time.Sleep(time.Second)
	d.screenshot("2-test-passed")
	d.key("Return") // the passed test gave "Add mailbox" the keyboard
	eventually(t, d, "the account to be stored", 60*time.Second, func() bool { return fileHas(filepath.Join(home, "config.json"), email) })
	t.Logf("setup from first window to stored account: %v", time.Since(started).Round(time.Second))

	// agree waits until the window shows a verdict for which ok holds and
	// then checks the tray says the same within a second.
	agree := func(what string, ok func(string) bool) string {
		t.Helper()
		eventually(t, d, "the window to say "+what, 120*time.Second, func() bool { return ok(headline(log.last())) })
		want := headline(log.last())
		deadline := time.Now().Add(time.Second)
		for host.first() != want || !strings.Contains(host.tooltip(), want) {
			if time.Now().After(deadline) {
				d.screenshot("disagree")
				t.Fatalf("after %s the window says %q, the tray %q (tooltip %q)", what, want, host.first(), host.tooltip())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return want
	}
	is := func(s string) func(string) bool { return func(v string) bool { return v == s } }

	// 1. First sync done.
	agree("the first sync done", is("All mail relayed"))
	eventually(t, d, "the message on the platform", 30*time.Second, func() bool { return len(plat.Messages()) >= 1 })
	d.window()
	time.Sleep(time.Second)
	d.screenshot("3-all-relayed")

	// Mail every two seconds for 20 s: relayed, and the menu never
	// rebuilt (the verdict stays "All mail relayed").
	before := host.layoutUpdates()
	for i := 2; i <= 11; i++ {
		dove.Append(t, email, "INBOX", msg(i), time.Now())
		time.Sleep(2 * time.Second)
	}
	eventually(t, d, "the ten new messages on the platform", 60*time.Second, func() bool { return len(plat.Messages()) >= 11 })
	time.Sleep(2 * time.Second)
	if n := host.layoutUpdates() - before; n != 0 {
		t.Errorf("the menu was rebuilt %d times while mail flowed and nothing changed for the person", n)
	}
	if host.first() != "All mail relayed" {
		t.Errorf("the tray says %q while mail flows", host.first())
	}
	if n := notes.list(); len(n) != 0 {
		t.Fatalf("notifications while all is well: %q", n)
	}

	// 2. Paused, from the tray; then resumed.
	host.click("Pause syncing")
	agree("paused", is("Paused"))
	host.click("Resume syncing")
	agree("resumed", is("All mail relayed"))

	// 3. Wrong password: one notification; clicking it opens the window.
	// Closed, the window lets go of what it held, GL driver pages too;
	// opened again, it draws.
	d.window()
	released := log.count("closed windows released")
	d.key("Escape") // the window closes; the tray stays
	eventually(t, d, "Esc to close the window", 10*time.Second, func() bool { return !d.visible() })
	eventually(t, d, "the closed window's memory released", 30*time.Second, func() bool { return log.count("closed windows released") > released })
	dove.SetPassword(t, email, "second-Passw0rd")
	dove.KickUser(t, email)
	agree("the password refused", is("Action needed: enter the password for "+email))
	eventually(t, d, "the notification", 30*time.Second, func() bool { return len(notes.list()) > 0 })
	if n := notes.list(); len(n) != 1 || !strings.HasPrefix(n[0], "Password needed for "+email) {
		t.Fatalf("notifications %q, want one about the password", n)
	}
	notes.click(t, 1)
	eventually(t, d, "the click to open the window", 10*time.Second, d.visible)
	reopened := d.window()
	eventually(t, d, "the window opened again to draw", 10*time.Second, func() bool { return d.drawn(reopened) })
	time.Sleep(1500 * time.Millisecond)
	d.screenshot("4-needs-password")
	// The fix, from the keyboard: the window's first button is "Enter
	// password…"; Enter in its field saves.
	d.key("Tab", "space")
	time.Sleep(time.Second)
	d.typeText("second-Passw0rd")
	d.screenshot("5-password-dialog")
	d.key("Return")
	agree("the password fixed", is("All mail relayed"))

	// 4. Offline: the mail server and the platform unreachable.
	front.setRefuse(true)
	rig.PlatformProxy.Refuse(true)
	rig.PlatformProxy.CloseAll()
	host.click("Sync now")
	offline := agree("offline", func(v string) bool { return strings.HasSuffix(v, "— will retry") })
	d.window()
	time.Sleep(time.Second)
	d.screenshot("6-offline")
	t.Logf("offline verdict: %q", offline)
	front.setRefuse(false)
	rig.PlatformProxy.Refuse(false)
	host.click("Sync now")
	agree("back online", is("All mail relayed"))

	// 5. An untrusted certificate on the mail server.
	front.use(bad)
	host.click("Sync now")
	agree("the untrusted certificate", is("Action needed: check the certificate of "+email+"'s server"))
	d.window()
	time.Sleep(time.Second)
	d.screenshot("7-certificate")
	front.use(good)
	host.click("Sync now")
	agree("the certificate trusted again", is("All mail relayed"))

	// 6. The platform refuses the computer's token.
	plat.RevokeAll()
	dove.Append(t, email, "INBOX", msg(12), time.Now())
	host.click("Sync now")
	agree("the platform refusing the token", is("Action needed: pair this computer again"))
	d.window()
	time.Sleep(time.Second)
	d.screenshot("8-pair-again")

	// Quit from the tray: the process ends within 5 s.
	t0 := time.Now()
	host.click("Quit")
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("the app exited with %v", exitErr)
		}
		if took := time.Since(t0); took > 5*time.Second {
			t.Errorf("quitting took %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app did not quit within 10 s")
	}
	if _, err := os.Stat(filepath.Join(home, "ui.sock")); err == nil {
		t.Error("the instance socket outlived the app")
	}
	t.Logf("what the window said, in order: %q", log.said())
}
