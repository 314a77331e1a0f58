//go:build linux

package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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

// visible reports whether the app window is shown.
func (d *desk) visible() bool {
	cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^Inbox Relay$")
	cmd.Env = append(os.Environ(), "DISPLAY="+d.display)
	out, _ := cmd.Output()
	return len(strings.Fields(string(out))) > 0
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

// drawn says whether the window id shows something drawn: text and
// widgets, in many colours, where a window that was never painted has one
// (or a few).
func (d *desk) drawn(id string) bool {
	d.t.Helper()
	cmd := exec.Command("import", "-window", id, "png:-")
	cmd.Env = append(os.Environ(), "DISPLAY="+d.display)
	out, err := cmd.Output()
	if err != nil {
		return false // the window may be on its way still
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		d.t.Fatalf("the window's image: %v", err)
	}
	return colours(img) > 16
}

// colours counts the distinct colours of img.
func colours(img image.Image) int {
	seen := map[color.RGBA64]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			seen[color.RGBA64Model.Convert(img.At(x, y)).(color.RGBA64)] = true
		}
	}
	return len(seen)
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
