package bench

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	flagMixes     = flag.String("table.mixes", "small,realistic", "mailboxes to measure: small, realistic")
	flagMedia     = flag.String("table.media", "tmpfs,disk", "where the clients write: tmpfs, disk")
	flagClients   = flag.String("table.clients", "bare,mbsync,relay", "clients to measure: bare, mbsync, relay")
	flagRuns      = flag.Int("table.runs", 3, "timed runs of each client")
	flagScale     = flag.Float64("table.scale", 1, "multiplies the number of messages of each mix (0.1 for a quick look)")
	flagSeed      = flag.Uint64("table.seed", 12, "seed of the generated mailboxes")
	flagSlow      = flag.Duration("table.slow", 20*time.Millisecond, "answer time of the slower platform; 0 skips it")
	flagLatency   = flag.Int("table.latency", 200, "new messages for the EXISTS → 201 delay; 0 skips it")
	flagBig       = flag.Int("table.big", 0, "messages of the big mailbox (100000 in issue 12); 0 skips it")
	flagCLI       = flag.String("table.cli", "", "the inboxrelay binary, to time `status` in the big case")
	flagProfile   = flag.String("table.profile", "", "directory for the engine's CPU and allocation profiles")
	flagTmpfs     = flag.String("table.tmpfs", "/dev/shm", "a directory on tmpfs")
	flagDisk      = flag.String("table.disk", "", "a directory on disk (default: the temporary directory, or /var/tmp when it is a tmpfs)")
	flagTableOut  = flag.String("table.out", "", "also write the table to this file")
	flagCallgrind = flag.Bool("table.callgrind", false, "run the Go clients under callgrind and count their instructions (use a small -table.scale)")
	flagWorkers   = flag.String("table.workers", "", "the engine's concurrent uploads, a list to compare (8,32); empty keeps its default")
	flagBuilds    = flag.String("table.builds", "", "engine builds to compare, label=test-binary,... (test binaries of this package built from other commits)")
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(ChildEnv); mode != "" {
		os.Exit(ChildMain(mode))
	}
	os.Exit(m.Run())
}

// BenchmarkTable prints issue 12's table: bare fetch, mbsync and Inbox
// Relay on the two mixes, on tmpfs and on disk, a slower platform, the
// new-mail delay and, with -table.big, a big mailbox. Run it with
// -benchtime 1x (`make bench` does); it measures once whatever b.N.
func BenchmarkTable(b *testing.B) {
	cfg := Config{Runs: *flagRuns, Seed: *flagSeed, SlowPlatform: *flagSlow, Latency: *flagLatency, Big: *flagBig,
		CLI: *flagCLI, ProfileDir: *flagProfile, Callgrind: *flagCallgrind, Out: os.Stdout}
	for _, name := range split(*flagMixes) {
		var mix Mix
		switch name {
		case "small":
			mix = Small
		case "realistic":
			mix = Realistic
		default:
			b.Fatalf("unknown mix %q", name)
		}
		cfg.Mixes = append(cfg.Mixes, mix.WithCount(max(1, int(float64(mix.Count)**flagScale))))
	}
	cfg.Clients = split(*flagClients)
	for _, w := range split(*flagWorkers) {
		n, err := strconv.Atoi(w)
		if err != nil || n <= 0 {
			b.Fatalf("-table.workers: %q is not a number of uploads", w)
		}
		if *flagBuilds != "" {
			b.Fatal("-table.workers and -table.builds do not mix")
		}
		cfg.Builds = append(cfg.Builds, Build{Label: "w" + w, Workers: n})
	}
	for _, bd := range split(*flagBuilds) {
		label, exe, ok := strings.Cut(bd, "=")
		if !ok {
			b.Fatalf("-table.builds: %q is not label=binary", bd)
		}
		abs, err := filepath.Abs(exe)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Builds = append(cfg.Builds, Build{Label: label, Exe: abs})
	}
	for _, name := range split(*flagMedia) {
		switch name {
		case "tmpfs":
			if !IsTmpfs(*flagTmpfs) {
				b.Logf("%s is not a tmpfs: the tmpfs rows are left out", *flagTmpfs)
				continue
			}
			cfg.Media = append(cfg.Media, Medium{Name: "tmpfs", Dir: *flagTmpfs})
		case "disk":
			dir := *flagDisk
			if dir == "" {
				dir = os.TempDir()
				if IsTmpfs(dir) {
					dir = "/var/tmp"
				}
			}
			if IsTmpfs(dir) {
				b.Logf("%s is a tmpfs: the disk rows are left out", dir)
				continue
			}
			cfg.Media = append(cfg.Media, Medium{Name: "disk", Dir: dir})
		default:
			b.Fatalf("unknown medium %q", name)
		}
	}
	if len(cfg.Media) == 0 {
		b.Fatal("no medium to write on")
	}
	if *flagCLI != "" {
		abs, err := filepath.Abs(*flagCLI)
		if err != nil {
			b.Fatal(err)
		}
		cfg.CLI = abs
	}
	if *flagTableOut != "" {
		f, err := os.Create(*flagTableOut)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cfg.Out = io.MultiWriter(os.Stdout, f)
	}
	b.ResetTimer()
	Table(b, cfg)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
