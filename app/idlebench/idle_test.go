//go:build linux

package idlebench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

var (
	idleFor    = flag.Duration("idle.for", time.Minute, "how long each phase is measured")
	settle     = flag.Duration("idle.settle", 10*time.Second, "how long the app is left alone before each phase is measured")
	messages   = flag.Int("idle.messages", 20, "messages in the mailbox, relayed before the measures")
	profileDir = flag.String("idle.profile", "", "directory for the app's profiles (INBOXRELAY_PROFILE): CPU of the whole run, heap and runtime metrics at its end")
	binFlag    = flag.String("idle.bin", "", "the inboxrelay binary to measure; empty: build one")
	smapsTop   = flag.Int("idle.smaps", 0, "print this many of the largest mappings (by resident size, with their anonymous part) after each phase")
)

// appBinary is the inboxrelay binary measured: -idle.bin, or one TestMain
// builds.
var appBinary string

// TestMain builds the real binary (unless -idle.bin names one) and gives
// the benchmark (and the binary) a private D-Bus session with a throw-away
// keyring. Without -test.bench (as in `make test`) it does neither: the
// package has no test.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	appBinary = *binFlag
	if appBinary != "" {
		os.Exit(testrig.Run(m))
	}
	dir, err := os.MkdirTemp("", "inboxrelay-idle-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	appBinary = filepath.Join(dir, "inboxrelay")
	out, err := exec.Command("go", "build", "-o", appBinary, "github.com/inboxrelay/inboxrelay").CombinedOutput()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "build inboxrelay: %v\n%s", err, out)
	} else {
		code = testrig.Run(m)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// BenchmarkIdle starts the real app on a home paired with the reference
// platform, whose one mailbox's messages the headless engine (`inboxrelay
// run`) relayed first, and leaves it alone: it measures the engine alone,
// then the tray app with its window never opened, open (brought forward by
// a second launch), and closed again (as a window manager closes it). For
// each, it prints the CPU time the process used over the wall time (% of
// one core, from /proc/PID/stat), its threads' context switches a second
// (wake-ups), its resident memory split into anonymous (Go heap, C heap,
// driver buffers) and file-backed (code, fonts), and the CPU the X server
// and the panel spent meanwhile (the app's redraws and menu updates cost
// them too). It measures and prints; it asserts only that the app got to
// rest.
func BenchmarkIdle(b *testing.B) {
	for _, p := range []string{"Xvfb", "xdotool", "gtk-sni-tray-standalone"} {
		if _, err := exec.LookPath(p); err != nil {
			b.Fatalf("%s is missing: run `make bench`, which installs it", p)
		}
	}
	if b.N > 1 {
		b.Skip("one run is the measure")
	}
	rig := testrig.New(b, testrig.Options{})
	now := time.Now()
	for i := range *messages {
		rig.Append(b, "INBOX", []byte(fmt.Sprintf("From: bob@customer.test\r\nTo: %s\r\nSubject: idle %d\r\nMessage-ID: <idle-%d@customer.test>\r\nDate: %s\r\n\r\nHello %d\r\n",
			rig.Email, i, i, now.Format(time.RFC1123Z), i)), now.Add(-time.Duration(i)*time.Minute))
	}
	tmp := b.TempDir()
	display, xvfb := startX(b)
	panel := startPanel(b, display)
	env := append(os.Environ(), "DISPLAY="+display, "SSL_CERT_FILE="+rig.RootsFile(b), "INBOXRELAY_POLICY="+os.DevNull,
		"HOME="+filepath.Join(tmp, "user"), "XDG_CONFIG_HOME="+filepath.Join(tmp, "user", ".config"), "LANG=C.UTF-8")
	home := rig.Home.Dir
	others := []proc{{"Xvfb", xvfb}, {"panel", panel}}
	var rows []row

	// The engine alone relays the mailbox, then rests.
	eng := start(b, env, filepath.Join(tmp, "run.txt"), "--home", home, "run")
	rig.WaitStored(b, *messages, 5*time.Minute)
	waitUpToDate(b, home)
	time.Sleep(*settle)
	rows = append(rows, measure(b, "engine alone (inboxrelay run)", eng.pid(), others))
	eng.stop(b)

	appEnv := env
	if *profileDir != "" {
		dir, err := filepath.Abs(*profileDir)
		if err != nil {
			b.Fatal(err)
		}
		appEnv = append(appEnv, "INBOXRELAY_PROFILE="+dir)
	}
	app := start(b, appEnv, filepath.Join(tmp, "app.txt"), "--home", home)
	waitFor(b, "the app's tray icon", time.Minute, func() bool { return trayItems() > 0 })
	waitUpToDate(b, home)
	if visible(display) != "" {
		b.Fatal("the window opened on its own: the app should rest in the tray")
	}
	time.Sleep(*settle)
	rows = append(rows, measure(b, "tray app, window never opened", app.pid(), others))

	second := exec.Command(appBinary, "--home", home)
	second.Env = env
	if out, err := second.CombinedOutput(); err != nil {
		b.Fatalf("second launch: %v\n%s", err, out)
	}
	var win string
	waitFor(b, "the window", time.Minute, func() bool { win = visible(display); return win != "" })
	time.Sleep(*settle)
	rows = append(rows, measure(b, "tray app, window open", app.pid(), others))

	id, err := strconv.ParseUint(win, 10, 32)
	if err != nil {
		b.Fatalf("window id %q: %v", win, err)
	}
	if err := closeWindow(display, uint32(id)); err != nil {
		b.Fatalf("close the window: %v", err)
	}
	waitFor(b, "the window to close", time.Minute, func() bool { return visible(display) == "" })
	time.Sleep(*settle)
	rows = append(rows, measure(b, "tray app, window closed again", app.pid(), others))
	app.stop(b)

	var out bytes.Buffer
	fmt.Fprintf(&out, "\nThe desktop app at rest: %d messages relayed, %v a phase after %v of quiet, 2 cores shared (load: 1-minute average, start→end)\n", *messages, *idleFor, *settle)
	fmt.Fprintf(&out, "%-32s %7s %9s %8s %8s %8s %7s %7s  %s\n", "", "CPU %", "wakeups/s", "RSS MiB", "anon", "file", "Xvfb %", "panel %", "load")
	for _, r := range rows {
		fmt.Fprintf(&out, "%-32s %7.2f %9.1f %8.1f %8.1f %8.1f %7.2f %7.2f  %.1f→%.1f\n", r.name, r.cpu, r.wakeups, mib(r.rss), mib(r.anon), mib(r.file), r.others[0], r.others[1], r.load[0], r.load[1])
	}
	fmt.Print(out.String())
	for i, unit := range []string{"engine", "hidden", "shown", "closed"} {
		b.ReportMetric(rows[i].cpu, "cpu%-"+unit)
		b.ReportMetric(mib(rows[i].rss), "MiB-"+unit)
	}
}

type row struct {
	name            string
	cpu, wakeups    float64
	rss, anon, file uint64
	others          []float64
	load            [2]float64
}

type proc struct {
	name string
	pid  int
}

// measure samples pid (and others' CPU) over idleFor.
func measure(b *testing.B, name string, pid int, others []proc) row {
	b.Helper()
	fmt.Printf("measuring %s (pid %d) for %v\n", name, pid, *idleFor)
	r := row{name: name, load: [2]float64{loadavg(), 0}}
	t0 := time.Now()
	c0, s0 := cpuTicks(pid), switches(pid)
	o0 := make([]uint64, len(others))
	for i, o := range others {
		o0[i] = cpuTicks(o.pid)
	}
	time.Sleep(*idleFor)
	wall := time.Since(t0).Seconds()
	c1, s1 := cpuTicks(pid), switches(pid)
	r.cpu = 100 * float64(c1-c0) / clkTck / wall
	r.wakeups = float64(s1-s0) / wall
	for i, o := range others {
		r.others = append(r.others, 100*float64(cpuTicks(o.pid)-o0[i])/clkTck/wall)
	}
	r.load[1] = loadavg()
	st := status(pid)
	r.rss, r.anon, r.file = st["VmRSS"], st["RssAnon"], st["RssFile"]+st["RssShmem"]
	if *smapsTop > 0 {
		fmt.Printf("\n%s: largest resident mappings\n%s", name, topMappings(pid, *smapsTop))
	}
	return r
}

// clkTck is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clkTck = 100

// cpuTicks is the user and system time pid used so far, its live and
// exited threads', in clock ticks (/proc/PID/stat fields 14 and 15).
func cpuTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}

// switches sums the voluntary and involuntary context switches of pid's
// threads: each is a thread that went to sleep or was put off the CPU,
// so their rate counts the process's wake-ups.
func switches(pid int) uint64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n uint64
	for _, t := range tasks {
		st := readStatus(t)
		n += st["voluntary_ctxt_switches"] + st["nonvoluntary_ctxt_switches"]
	}
	return n
}

// status reads /proc/PID/status's numeric fields (sizes in bytes).
func status(pid int) map[string]uint64 { return readStatus(fmt.Sprintf("/proc/%d/status", pid)) }

func readStatus(path string) map[string]uint64 {
	m := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fs) > 1 && fs[1] == "kB" {
			n *= 1024
		}
		m[k] = n
	}
	return m
}

// topMappings lists pid's n largest mappings by resident size, grouped by
// what they map (a file, [heap], [stack], or anonymous), with how much of
// that is the process's own (smaps' Anonymous: heap, or a library's
// relocated data) rather than the file's pages.
func topMappings(pid, n int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err.Error() + "\n"
	}
	defer f.Close()
	rss, anon := map[string]uint64{}, map[string]uint64{}
	cur := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fs := strings.Fields(line)
		if len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			cur = "[anonymous]"
			if len(fs) >= 6 {
				cur = strings.Join(fs[5:], " ")
			}
			continue
		}
		if len(fs) >= 2 && (fs[0] == "Rss:" || fs[0] == "Anonymous:") {
			kb, _ := strconv.ParseUint(fs[1], 10, 64)
			if fs[0] == "Rss:" {
				rss[cur] += kb * 1024
			} else {
				anon[cur] += kb * 1024
			}
		}
	}
	names := make([]string, 0, len(rss))
	for k := range rss {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return rss[names[i]] > rss[names[j]] })
	var out strings.Builder
	fmt.Fprintf(&out, "  %8s  %8s\n", "RSS MiB", "anon")
	for i, k := range names {
		if i == n {
			break
		}
		fmt.Fprintf(&out, "  %8.1f  %8.1f  %s\n", mib(rss[k]), mib(anon[k]), k)
	}
	return out.String()
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func loadavg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// running is a process the benchmark started.
type running struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (r *running) pid() int { return r.cmd.Process.Pid }

// stop ends the process as the desktop does at logout (SIGTERM) and waits
// for it: the app writes its profiles then.
func (r *running) stop(b *testing.B) {
	b.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		// SIGQUIT: the Go runtime prints every goroutine's stack.
		r.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
		}
		b.Fatalf("%s did not stop within 30 s of SIGTERM", r.cmd.Args)
	}
}

func start(b *testing.B, env []string, output string, args ...string) *running {
	b.Helper()
	out, err := os.Create(output)
	if err != nil {
		b.Fatal(err)
	}
	r := &running{cmd: exec.Command(appBinary, args...), exited: make(chan struct{})}
	r.cmd.Env, r.cmd.Stdout, r.cmd.Stderr = env, out, out
	if err := r.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); out.Close(); close(r.exited) }()
	b.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Kill()
			<-r.exited
		}
		if b.Failed() {
			text, _ := os.ReadFile(output)
			b.Logf("%s said:\n%s", args, text)
		}
	})
	return r
}

// waitUpToDate waits until status.json says every account is up to date.
func waitUpToDate(b *testing.B, home string) {
	b.Helper()
	waitFor(b, "the accounts to be up to date", 5*time.Minute, func() bool {
		var st struct {
			Accounts []struct {
				State string `json:"state"`
			} `json:"accounts"`
		}
		data, err := os.ReadFile(filepath.Join(home, "status.json"))
		if err != nil || json.Unmarshal(data, &st) != nil || len(st.Accounts) == 0 {
			return false
		}
		for _, a := range st.Accounts {
			if a.State != "up to date" {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond every 200 ms; limit only guards against a hang.
func waitFor(b *testing.B, what string, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// visible returns the id of the app's visible window, "" when none is.
func visible(display string) string {
	cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^Inbox Relay$")
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, _ := cmd.Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// watcher reads a property of the panel's StatusNotifierWatcher.
func watcher(prop string) (dbus.Variant, error) {
	conn, err := dbus.SessionBus()
	if err != nil {
		return dbus.Variant{}, err
	}
	return conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher").GetProperty("org.kde.StatusNotifierWatcher." + prop)
}

// trayItems counts the items registered with the panel's watcher.
func trayItems() int {
	v, err := watcher("RegisteredStatusNotifierItems")
	if err != nil {
		return 0
	}
	items, _ := v.Value().([]string)
	return len(items)
}

// startX starts a private Xvfb on a free display above 200 and returns its
// DISPLAY, once a client can connect, and its pid.
func startX(b *testing.B) (string, int) {
	b.Helper()
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
			b.Fatal(err)
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
				b.Cleanup(func() { cmd.Process.Kill(); <-exited })
				return display, cmd.Process.Pid
			}
			time.Sleep(100 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
	}
	b.Fatal("Xvfb did not start on any display")
	return "", 0
}

// startPanel starts gtk-sni-tray-standalone, a panel with its own
// StatusNotifierWatcher, on display, and returns its pid once its host is
// registered.
func startPanel(b *testing.B, display string) int {
	b.Helper()
	cmd := exec.Command("gtk-sni-tray-standalone", "--watcher", "--top", "--end", "--size", "24")
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := filepath.Join(b.TempDir(), "panel.txt")
	out, err := os.Create(log)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(exited) }()
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-exited
		if b.Failed() {
			text, _ := os.ReadFile(log)
			b.Logf("the panel said:\n%s", text)
		}
	})
	waitFor(b, "the panel's tray host", time.Minute, func() bool {
		v, err := watcher("IsStatusNotifierHostRegistered")
		on, _ := v.Value().(bool)
		return err == nil && on
	})
	return cmd.Process.Pid
}
