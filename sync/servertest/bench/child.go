package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/logfile"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/state"
)

// Every client the harness measures runs in a process of its own, so that
// its CPU time and peak RSS are its own and not the platform's or the
// harness's. The Go clients are this test binary run again with ChildEnv
// set: the test's TestMain hands over to ChildMain.

// ChildEnv names the environment variable that makes the test binary a
// measured client: "relay" (the engine) or "bare" (the limit client).
const ChildEnv = "INBOXRELAY_BENCH_CHILD"

// RelaySpec is what the relay child runs: the engine of a fresh home
// with one account, against a platform. It travels on the child's
// standard input, so the password and token touch no file.
type RelaySpec struct {
	Home     string
	Account  config.Account
	Password string
	Platform relay.Options
	// Once makes one pass and exit, as `inboxrelay sync --once`; else the
	// engine relays until SIGTERM and the child prints "ready" on its
	// standard output once every folder is up to date.
	Once bool
	// CPUProfile and AllocProfile, when set, are where the child writes
	// its pprof profiles.
	CPUProfile, AllocProfile string
	// Workers, when not 0, overrides the engine's number of concurrent
	// uploads (for experiments; builds that predate the field ignore it).
	Workers int
}

// BareSpec is what the bare-fetch child reads: every body of Folder on
// one connection, into nothing.
type BareSpec struct {
	Addr     string // host:port of implicit-TLS IMAP
	CAPEM    []byte
	Server   string // TLS server name
	User     string
	Password string
	Folder   string
}

// ChildResult is the child's last line on standard output.
type ChildResult struct {
	Messages int    `json:"messages"`
	Bytes    int64  `json:"bytes"`
	PeakRSS  int64  `json:"peak_rss"` // bytes, the child's VmHWM at its end
	Err      string `json:"err,omitempty"`
}

// ChildMain runs the child named by mode and returns its exit code.
func ChildMain(mode string) int {
	var res ChildResult
	var err error
	switch mode {
	case "relay":
		var spec RelaySpec
		if err = json.NewDecoder(os.Stdin).Decode(&spec); err == nil {
			res, err = runRelay(spec)
		}
	case "bare":
		var spec BareSpec
		if err = json.NewDecoder(os.Stdin).Decode(&spec); err == nil {
			res, err = runBare(spec)
		}
	default:
		err = fmt.Errorf("unknown child mode %q", mode)
	}
	if err != nil {
		res.Err = err.Error()
	}
	res.PeakRSS = procStatus(os.Getpid(), "VmHWM:")
	json.NewEncoder(os.Stdout).Encode(res)
	if err != nil {
		return 1
	}
	return 0
}

// secrets hands the engine the one password it needs.
type secrets map[string]string

func (s secrets) Get(key string) (string, error) {
	if v, ok := s[key]; ok {
		return v, nil
	}
	return "", keychain.ErrNotFound
}

// runRelay runs the engine as `inboxrelay sync --once` (or `run`) does,
// minus the keychain: the same home layout, lock, state database, log file
// and engine options.
func runRelay(spec RelaySpec) (ChildResult, error) {
	home, err := config.OpenHome(spec.Home)
	if err != nil {
		return ChildResult{}, err
	}
	cfg := &config.Config{
		Platform: config.Platform{URL: spec.Platform.BaseURL, CAFile: spec.Platform.CAFile},
		Accounts: []config.Account{spec.Account},
		// The whole mailbox, whatever the age of its messages.
		Settings: settings.Values{BackfillDays: settings.Int(settings.BackfillAll)},
	}
	if err := home.Save(cfg); err != nil {
		return ChildResult{}, err
	}
	unlock, err := home.Lock()
	if err != nil {
		return ChildResult{}, err
	}
	defer unlock()
	lf, err := logfile.Open(home.LogDir(), "inboxrelay.log", 5<<20, 3)
	if err != nil {
		return ChildResult{}, err
	}
	defer lf.Close()
	store, err := state.Open(home.StatePath())
	if err != nil {
		return ChildResult{}, err
	}
	defer store.Close()
	o := engine.Options{
		Home: home, Config: cfg, Store: store, Once: spec.Once, Platform: spec.Platform,
		Secrets: secrets{keychain.AccountKey(spec.Account.Email): spec.Password},
		Log:     slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if spec.Once {
		o.GiveUpAfter = 2 * time.Minute
	}
	if spec.Workers > 0 {
		o.Workers = spec.Workers
	}
	eng, err := engine.New(o)
	if err != nil {
		return ChildResult{}, err
	}

	stopProfile := func() {}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return ChildResult{}, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return ChildResult{}, err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if spec.AllocProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if !spec.Once {
		go announceReady(ctx, eng)
	}
	runErr := eng.Run(ctx)
	stopProfile()
	if spec.AllocProfile != "" {
		if err := writeHeapProfile(spec.AllocProfile); err != nil {
			return ChildResult{}, err
		}
	}
	c, err := store.Counters(spec.Account.Email)
	if err != nil {
		return ChildResult{}, err
	}
	return ChildResult{Messages: c.Relayed}, runErr
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// announceReady prints "ready" once every folder is up to date.
func announceReady(ctx context.Context, eng *engine.Engine) {
	changes, unsubscribe := eng.Subscribe()
	defer unsubscribe()
	for {
		if upToDate(eng.Snapshot()) {
			fmt.Println("ready")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func upToDate(s engine.Snapshot) bool {
	n := 0
	for _, a := range s.Accounts {
		for _, f := range a.Folders {
			if fmt.Sprint(f.State) != "up to date" {
				return false
			}
			n++
		}
	}
	return n > 0
}

// runBare fetches every body of the folder on one connection, in one
// UID FETCH 1:* (BODY.PEEK[]), and throws the bytes away: what any client
// must at least spend to read the mailbox.
func runBare(spec BareSpec) (ChildResult, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(spec.CAPEM) {
		return ChildResult{}, errors.New("no CA certificate")
	}
	c, err := imapclient.DialTLS(spec.Addr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: spec.Server, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return ChildResult{}, err
	}
	defer c.Close()
	if err := c.Login(spec.User, spec.Password).Wait(); err != nil {
		return ChildResult{}, err
	}
	if _, err := c.Select(spec.Folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return ChildResult{}, err
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	cmd := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var res ChildResult
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				n, err := io.Copy(io.Discard, b.Literal)
				if err != nil {
					return res, err
				}
				res.Messages++
				res.Bytes += n
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return res, err
	}
	return res, c.Logout().Wait()
}

// Run is one measured run of a client process.
type Run struct {
	Wall time.Duration
	User time.Duration
	Sys  time.Duration
	// MaxRSS is the peak resident set in bytes. Not from wait4's rusage:
	// a child forked with CLONE_VM starts its count with the parent's
	// resident set.
	MaxRSS int64
	Result ChildResult
	// RSS is the resident set sampled during the run (when StartChild was
	// given a progress function).
	RSS []RSSSample
	// Instructions the child executed, counted by callgrind; 0 when it
	// did not run under it.
	Instructions int64
}

// collected reads callgrind's count of instructions from a child's
// standard error ("==PID== Collected : N"); 0 if absent.
func collected(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if _, v, ok := strings.Cut(l, "Collected :"); ok && strings.HasPrefix(l, "==") {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// CPU is the run's user plus system time.
func (r Run) CPU() time.Duration { return r.User + r.Sys }

// RSSSample is the process's resident set at one moment of a run.
type RSSSample struct {
	At       time.Duration // since the start
	RSS      int64         // bytes
	Progress int           // what the sampler's progress function said then
}

// Child is a running client process.
type Child struct {
	cmd      *exec.Cmd
	start    time.Time
	stdout   *bufio.Reader
	stderr   *os.File
	samples  chan []RSSSample
	stopSamp chan struct{}
}

// StartChild starts the test binary exe (this one when "") as the child
// mode with spec on its standard input. Its standard error goes to errPath.
// When progress is not nil, the child's RSS is sampled every 200 ms along
// with progress(). With callgrind, the child runs under Valgrind's
// callgrind, which counts the instructions it executes (Run.Instructions);
// its times then mean nothing.
func StartChild(exe, mode string, spec any, errPath string, progress func() int, callgrind bool) (*Child, error) {
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	stderr, err := os.Create(errPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), ChildEnv+"="+mode)
	if callgrind {
		// Go's asynchronous preemption signals crash callgrind 3.19.
		cmd = exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", exe)
		cmd.Env = append(os.Environ(), ChildEnv+"="+mode, "GODEBUG=asyncpreemptoff=1")
	}
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Stderr = stderr
	// The child dies with the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		stderr.Close()
		return nil, err
	}
	c := &Child{cmd: cmd, stdout: bufio.NewReader(out), stderr: stderr, samples: make(chan []RSSSample, 1), stopSamp: make(chan struct{})}
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		stderr.Close()
		return nil, err
	}
	go func() {
		var s []RSSSample
		if progress != nil {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
		loop:
			for {
				select {
				case <-c.stopSamp:
					break loop
				case <-t.C:
					if rss := procStatus(cmd.Process.Pid, "VmRSS:"); rss > 0 {
						s = append(s, RSSSample{At: time.Since(c.start), RSS: rss, Progress: progress()})
					}
				}
			}
		}
		c.samples <- s
	}()
	return c, nil
}

// WaitLine waits for the child to print line on its standard output. A
// child that does not within the time is killed; call Wait or Stop after
// either way.
func (c *Child) WaitLine(want string, within time.Duration) error {
	got := make(chan error, 1)
	go func() {
		for {
			l, err := c.stdout.ReadString('\n')
			if err != nil {
				got <- fmt.Errorf("the child ended before saying %q: %v", want, err)
				return
			}
			if strings.TrimSpace(l) == want {
				got <- nil
				return
			}
		}
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(within):
		// Kill it, so that the reader above ends before Wait reads too.
		c.cmd.Process.Kill()
		<-got
		return fmt.Errorf("the child did not say %q within %v", want, within)
	}
}

// Stop asks the child to stop (SIGTERM) and waits for it.
func (c *Child) Stop() (Run, error) {
	c.cmd.Process.Signal(syscall.SIGTERM)
	return c.Wait()
}

// Wait waits for the child to exit and returns its measurements.
func (c *Child) Wait() (Run, error) {
	var last string
	for {
		l, err := c.stdout.ReadString('\n')
		if strings.TrimSpace(l) != "" {
			last = l
		}
		if err != nil {
			break
		}
	}
	werr := c.cmd.Wait()
	wall := time.Since(c.start)
	close(c.stopSamp)
	samples := <-c.samples
	c.stderr.Close()
	ru, _ := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r := Run{Wall: wall, RSS: samples}
	if ru != nil {
		r.User = time.Duration(ru.Utime.Nano())
		r.Sys = time.Duration(ru.Stime.Nano())
	}
	if err := json.Unmarshal([]byte(last), &r.Result); err != nil {
		return r, fmt.Errorf("the child (%v) printed no result; see %s", werr, c.stderr.Name())
	}
	r.MaxRSS = r.Result.PeakRSS
	r.Instructions = collected(c.stderr.Name())
	if r.Result.Err != "" {
		return r, fmt.Errorf("the child failed: %s (see %s)", r.Result.Err, c.stderr.Name())
	}
	if werr != nil {
		return r, fmt.Errorf("the child: %v (see %s)", werr, c.stderr.Name())
	}
	return r, nil
}

// procStatus returns a size field of /proc/PID/status ("VmRSS:", the
// resident set; "VmHWM:", its peak) in bytes, 0 if unknown.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}
