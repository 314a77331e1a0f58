//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

var binary string

// TestMain builds the real binary and gives the test (and the binary) a
// private D-Bus session with a throw-away keyring.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "inboxrelay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "inboxrelay")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/inboxrelay/inboxrelay").CombinedOutput()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "build inboxrelay: %v\n%s", err, out)
	} else {
		code = testrig.Run(m)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// need fails the test when a program `make test` installs is missing.
func need(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is missing: run `make test`, which installs it (packages xvfb, xdotool, imagemagick)", p)
		}
	}
}

// startX starts a private Xvfb on a free display above 200 (clear of
// any desktop's and of servers whose lock file was lost) and returns its
// DISPLAY once a client can connect.
func startX(t *testing.T) string {
	t.Helper()
	for try := 0; try < 5; try++ {
		n := 200 + rand.IntN(700)
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		display := ":" + strconv.Itoa(n)
		cmd := exec.Command("Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{} // it lost a race for the display: try another
				continue
			default:
			}
			probe := exec.Command("xdotool", "getdisplaygeometry")
			probe.Env = append(os.Environ(), "DISPLAY="+display)
			if probe.Run() == nil {
				t.Cleanup(func() { cmd.Process.Kill(); <-exited })
				return display
			}
			time.Sleep(100 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
	}
	t.Fatal("Xvfb did not start on any display")
	return ""
}

// desk drives the private X display.
type desk struct {
	t       *testing.T
	display string
	out     string
}

func (d *desk) run(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "DISPLAY="+d.display)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// window waits for the visible app window and gives it the keyboard.
func (d *desk) window() string {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^Inbox Relay$")
		cmd.Env = append(os.Environ(), "DISPLAY="+d.display)
		out, _ := cmd.Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			d.run("xdotool", "windowfocus", ids[0])
			return ids[0]
		}
		if time.Now().After(deadline) {
			d.screenshot("no-window")
			d.t.Fatal("the app window did not appear")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *desk) typeText(s string) {
	d.run("xdotool", "type", "--delay", "15", s)
	time.Sleep(150 * time.Millisecond)
}

func (d *desk) key(keys ...string) {
	for _, k := range keys {
		d.run("xdotool", "key", k)
		time.Sleep(120 * time.Millisecond)
	}
}

func (d *desk) screenshot(name string) string {
	p := filepath.Join(d.out, name+".png")
	d.run("import", "-window", "root", p)
	d.t.Logf("screenshot: %s", p)
	return p
}

// eventually polls cond every 200 ms until it holds or the time is up.
func eventually(t *testing.T, d *desk, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			d.screenshot("timeout")
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

// outputDir is where screenshots go: -outputdir when given (go test
// -outputdir DIR), else screenshots/ beside the test; emptied first.
func outputDir(t *testing.T) string {
	t.Helper()
	dir := "screenshots"
	if f := flag.Lookup("test.outputdir"); f != nil && f.Value.String() != "" {
		dir = filepath.Join(f.Value.String(), "inboxrelay-e2e")
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		os.RemoveAll(abs)
		err = os.MkdirAll(abs, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestDesktopApp is the acceptance run: a person pairs the app
// and adds a Dovecot mailbox from the window alone (keyboard only), sees
// "up to date" in the tray menu; when the password changes on the server,
// gets exactly one notification, and a second launch brings forward a
// window offering the fix. Quit from the tray stops within 5 s. Screenshots
// go to outputDir.
func TestDesktopApp(t *testing.T) {
	need(t, "Xvfb", "xdotool", "import")
	const email, password = "alice@example.test", "first-Passw0rd"
	rig := testrig.New(t, testrig.Options{Email: email, Password: password, Unpaired: true})
	dove, plat := rig.Dovecot, rig.Platform
	dove.Append(t, email, "INBOX", []byte("From: bob@customer.test\r\nTo: alice@example.test\r\nSubject: hello\r\nMessage-ID: <e2e-1@customer.test>\r\nDate: "+time.Now().Format(time.RFC1123Z)+"\r\n\r\nHi Alice\r\n"), time.Now())

	tmp := t.TempDir()
	roots := rig.RootsFile(t)

	host := startTrayHost(t)
	notes := startNotifications(t)
	d := &desk{t: t, display: startX(t), out: outputDir(t)}
	home := rig.Home.Dir
	logPath := filepath.Join(home, "logs", "inboxrelay.log")
	t.Cleanup(func() {
		// Keep the app's log beside the screenshots (it holds no secret).
		if b, err := os.ReadFile(logPath); err == nil {
			os.WriteFile(filepath.Join(d.out, "inboxrelay.log"), b, 0o644)
		}
	})
	env := append(os.Environ(), "DISPLAY="+d.display, "SSL_CERT_FILE="+roots,
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
	exited := make(chan struct{}) // closed when the app ended; then exitErr is set
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

	// First start, no account: the window opens on setup, the platform
	// address field has the keyboard.
	d.window()
	time.Sleep(time.Second)
	d.screenshot("1-welcome")
	d.typeText(plat.URL())
	d.key("Tab")
	d.typeText(plat.NewPairingCode())
	d.key("Return")
	eventually(t, d, "pairing", 30*time.Second, func() bool { return fileHas(filepath.Join(home, "config.json"), plat.URL()) })

	// The mailbox: address, password, then the servers Dovecot listens on;
	// security is left automatic, the test finds it out.
	time.Sleep(time.Second)
	d.window()
	d.typeText(email)
	d.key("Tab")
	d.typeText(password)
	d.key("Tab")
	d.typeText(dove.IMAPS)
	d.key("Tab", "Tab")
	d.typeText(dove.Submission)
	d.key("shift+Tab", "shift+Tab", "shift+Tab") // back to the password
	d.key("Return")                              // Enter in the password runs "Test connection"
	eventually(t, d, "the connection test", 60*time.Second, func() bool { return fileHas(logPath, "connection test passed") })
	time.Sleep(time.Second)
	d.screenshot("2-test-passed")
	d.key("space") // the passed test gave "Add mailbox" the keyboard
	eventually(t, d, "the account to be stored", 60*time.Second, func() bool { return fileHas(filepath.Join(home, "config.json"), email) })
	setupTook := time.Since(started)
	t.Logf("setup from first window to stored account: %v", setupTook.Round(time.Second))
	if setupTook > 2*time.Minute {
		t.Errorf("setup took %v, more than two minutes", setupTook)
	}

	// The tray says "up to date".
	var labels []string
	var ids map[string]int32
	eventually(t, d, "\"up to date\" in the tray menu", 90*time.Second, func() bool {
		labels, ids, _ = host.menu()
		return len(labels) > 0 && strings.HasPrefix(labels[0], email+" — up to date")
	})
	for _, want := range []string{"Sync now", "Pause syncing", "Open Inbox Relay…", "Settings…", "Quit"} {
		if !slices.Contains(labels, want) {
			t.Errorf("tray menu %q lacks %q", labels, want)
		}
	}
	eventually(t, d, "the message on the platform", 30*time.Second, func() bool { return len(plat.Messages()) >= 1 })
	time.Sleep(1500 * time.Millisecond)
	d.screenshot("3-up-to-date")
	if n := notes.list(); len(n) != 0 {
		t.Fatalf("notifications while all is well: %q", n)
	}

	// The password changes on the server: one notification, however long
	// the problem lasts.
	dove.SetPassword(t, email, "second-Passw0rd")
	dove.KickUser(t, email)
	eventually(t, d, "the notification", 90*time.Second, func() bool { return len(notes.list()) > 0 })
	time.Sleep(5 * time.Second)
	if n := notes.list(); len(n) != 1 || !strings.HasPrefix(n[0], "Password needed for "+email) {
		t.Fatalf("notifications %q, want exactly one about the password", n)
	}
	labels, ids, _ = host.menu()
	if !strings.HasPrefix(labels[0], email+" — password needed") {
		t.Errorf("tray menu after the password change: %q", labels)
	}

	// A second launch brings the window forward, and it offers the fix.
	second := exec.Command(binary, "--home", home)
	second.Env = env
	if out, err := second.CombinedOutput(); err != nil || !strings.Contains(string(out), "brought forward") {
		t.Fatalf("second launch: %v\n%s", err, out)
	}
	d.window()
	time.Sleep(1500 * time.Millisecond)
	d.screenshot("4-needs-password")

	// The fix, from the keyboard: the window's first button is "Enter
	// password…"; its dialog takes the new password.
	d.key("Tab", "space")
	time.Sleep(time.Second)
	d.typeText("second-Passw0rd")
	d.screenshot("5-password-dialog")
	d.key("Return")
	eventually(t, d, "\"up to date\" again after the fix", 90*time.Second, func() bool {
		labels, ids, _ = host.menu()
		return len(labels) > 0 && strings.HasPrefix(labels[0], email+" — up to date")
	})
	time.Sleep(1500 * time.Millisecond)
	d.screenshot("6-fixed")
	if n := notes.list(); len(n) != 1 {
		t.Errorf("notifications after the fix: %q", n)
	}

	// Quit from the tray: the process ends within 5 s.
	t0 := time.Now()
	if err := host.click(ids["Quit"]); err != nil {
		t.Fatal(err)
	}
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
	var st struct {
		Running  bool `json:"running"`
		Accounts []struct {
			Email string `json:"email"`
		} `json:"accounts"`
	}
	b, _ := os.ReadFile(filepath.Join(home, "status.json"))
	if err := json.Unmarshal(b, &st); err != nil || st.Running {
		t.Errorf("status after quit: %v running=%v", err, st.Running)
	}
	if _, err := os.Stat(filepath.Join(home, "ui.sock")); err == nil {
		t.Error("the instance socket outlived the app")
	}
}
