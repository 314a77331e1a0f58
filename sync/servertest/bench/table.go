package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Config says what a Table run measures.
type Config struct {
	Mixes   []Mix
	Media   []Medium
	Clients []string // "bare", "mbsync", "relay"
	Runs    int      // timed runs of each client, each mix, each medium
	Seed    uint64

	SlowPlatform time.Duration // the slower platform's answer time; 0 skips it
	Latency      int           // new messages for the EXISTS → 201 delay; 0 skips it
	Big          int           // messages of the big mailbox; 0 skips it
	CLI          string        // the inboxrelay binary, for `status` in the big case; "" skips that
	// Builds are the engine builds to compare, each a test binary of this
	// package built from another commit (so that "before" and "after"
	// share one run, one mailbox and the same moments of the machine's
	// load). None: this binary alone.
	Builds []Build
	// Callgrind runs the Inbox Relay clients under callgrind, which counts
	// the instructions of each run: a measure the machine's load does not
	// blur. Their times are then meaningless.
	Callgrind  bool
	ProfileDir string    // where to write the engine's pprof profiles; "" skips profiling
	Out        io.Writer // the table; progress notes go to the test log
}

// Medium is where the clients write: their state and what they store
// (Inbox Relay's home and the platform's bodies; mbsync's Maildir).
type Medium struct {
	Name string // "tmpfs" or "disk"
	Dir  string
}

// Build is one engine build: Exe is a test binary of this package ("" for
// this one), Label names it in the table. Workers, when not 0, sets the
// engine's number of concurrent uploads.
type Build struct {
	Label   string
	Exe     string
	Workers int
}

// Clients measured by the table. With several Builds, "relay" stands for
// one client per build, "relay:" + its label.
const (
	ClientBare   = "bare"
	ClientMbsync = "mbsync"
	ClientRelay  = "relay"
)

// Table runs the benchmark described by cfg and writes its table to
// cfg.Out. It measures; it asserts nothing about the numbers. It fails t
// only when a run did not do its job (a message missing on the platform,
// a client that failed).
func Table(t testing.TB, cfg Config) {
	if len(cfg.Builds) == 0 {
		cfg.Builds = []Build{{}}
	}
	var clients []string
	for _, c := range cfg.Clients {
		if c != ClientRelay || len(cfg.Builds) == 1 {
			clients = append(clients, c)
			continue
		}
		for _, bd := range cfg.Builds {
			clients = append(clients, ClientRelay+":"+bd.Label)
		}
	}
	cfg.Clients = clients
	b := &tableRun{t: t, cfg: cfg, out: cfg.Out, loadStart: LoadAverage()}
	b.srv = dovecottest.Start(t, dovecottest.Options{MaxUserIPConnections: 50})
	b.marker = filepath.Join(b.srv.Dir, "dovecot.conf")
	stop := removeOnInterrupt(b.srv.Dir)
	defer stop()
	b.header()
	for _, mix := range cfg.Mixes {
		b.backfill(mix)
	}
	relays := b.relayClients()
	if cfg.SlowPlatform > 0 && len(cfg.Mixes) > 0 && len(relays) > 0 {
		b.slowPlatform(cfg.Mixes[0], relays)
	}
	for _, c := range relays {
		if cfg.Latency > 0 {
			b.latency(c)
		}
	}
	for _, c := range relays {
		if cfg.Big > 0 {
			b.big(c)
		}
	}
	b.footer()
}

type tableRun struct {
	t         testing.TB
	cfg       Config
	out       io.Writer
	srv       *dovecottest.Server
	marker    string // picks Dovecot's processes out of /proc
	loadStart float64

	seeded map[string]mailbox // by mix name
}

// mailbox is a seeded account.
type mailbox struct {
	user, password string
	mix            Mix
	seeded         Seeded
}

// sample is one measured run of one client.
type sample struct {
	run       Run
	serverCPU time.Duration // Dovecot's CPU over the run
	// platformCPU is this process's CPU over the run: the platform
	// receiving Inbox Relay's uploads (0 for the other clients).
	platformCPU time.Duration
}

func (b *tableRun) printf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

func (b *tableRun) header() {
	b.printf("\n## Inbox Relay backfill benchmark (issue 12)\n\n")
	b.printf("%s, Go %s %s/%s, %d CPUs, load average %.2f at the start.\n", time.Now().Format("2006-01-02 15:04"),
		strings.TrimPrefix(runtime.Version(), "go"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), b.loadStart)
	b.printf("Dovecot over IMAPS on 127.0.0.2 (mail in %s); the reference platform over HTTPS with HTTP/2 on 127.0.0.1.\n", filepath.Dir(b.srv.Dir))
	var media []string
	for _, m := range b.cfg.Media {
		media = append(media, fmt.Sprintf("%s = %s", m.Name, m.Dir))
	}
	b.printf("Media (Inbox Relay's home and the platform's store; mbsync's Maildir): %s.\n", strings.Join(media, ", "))
	b.printf("Each cell: the median of %d runs; × is the ratio to the bare fetch's median in the same row; ± is the runs' spread, (max−min)/min.\n\n", b.cfg.Runs)
}

func (b *tableRun) footer() {
	b.printf("\nLoad average %.2f at the start, %.2f at the end (the machine's other work shares its %d CPUs).\n",
		b.loadStart, LoadAverage(), runtime.NumCPU())
}

// seed makes (once) the account holding mix.
func (b *tableRun) seed(mix Mix) mailbox {
	if mb, ok := b.seeded[mix.Name]; ok && mb.mix.Count == mix.Count {
		return mb
	}
	t := b.t
	mb := mailbox{user: mix.Name + "@bench.test", password: "bench password " + mix.Name, mix: mix}
	b.srv.AddUser(t, mb.user, mb.password)
	// A first session makes Dovecot create the Maildir, owned by the user
	// it runs as.
	c := b.srv.Login(t, mb.user, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select INBOX of %s: %v", mb.user, err)
	}
	c.Logout().Wait()
	c.Close()
	start := time.Now()
	g := &Generator{Mix: mix, Seed: b.cfg.Seed, Account: mb.user, Now: time.Now()}
	var err error
	mb.seeded, err = Seed(filepath.Join(b.srv.Dir, "mail", mb.user, "Maildir"), g)
	if err != nil {
		t.Fatalf("seed %s: %v", mix.Name, err)
	}
	t.Logf("seeded %d %s messages (%s) in %v", mb.seeded.Messages, mix.Name, MB(mb.seeded.Bytes), time.Since(start).Round(time.Millisecond))
	if b.seeded == nil {
		b.seeded = map[string]mailbox{}
	}
	b.seeded[mix.Name] = mb
	return mb
}

func describe(mix Mix, s Seeded) string {
	var bands []string
	for _, c := range mix.Classes {
		bands = append(bands, fmt.Sprintf("%d %% %s", c.Weight, band(c)))
	}
	if len(mix.Classes) == 1 {
		bands = []string{band(mix.Classes[0])}
	}
	return fmt.Sprintf("%s %s: %s (%s)", Thousands(s.Messages), mix.Name, strings.Join(bands, ", "), MB(s.Bytes))
}

func band(c Class) string {
	kb := func(n int) string {
		if n >= 1<<20 {
			return fmt.Sprintf("%d", n>>20)
		}
		return fmt.Sprintf("%d", n>>10)
	}
	unit := "KB"
	if c.Min >= 1<<20 {
		unit = "MB"
	}
	return fmt.Sprintf("%s–%s %s", kb(c.Min), kb(c.Max), unit)
}

// backfill measures every client on mix, on every medium.
func (b *tableRun) backfill(mix Mix) {
	mb := b.seed(mix)
	// One untimed round first: Dovecot builds its index and caches (the
	// first client would pay for them) and the page cache fills.
	warm := b.cfg.Media[0]
	for _, c := range b.cfg.Clients {
		s := b.runClient(c, mb, warm, 0, "")
		b.t.Logf("warm-up %s %s: %v", mix.Name, c, s.run.Wall.Round(time.Millisecond))
	}
	if b.cfg.ProfileDir != "" {
		for _, c := range b.relayClients() {
			b.profile(c, mb, warm)
		}
	}
	type cell map[string][]sample
	results := map[string]cell{}
	for _, m := range b.cfg.Media {
		results[m.Name] = cell{}
		for r := 0; r < b.cfg.Runs; r++ {
			// Rotate the order, so that a slow spell of the machine does
			// not always hit the same client.
			order := slices.Clone(b.cfg.Clients)
			for i := 0; i < r%len(order); i++ {
				order = append(order[1:], order[0])
			}
			for _, c := range order {
				s := b.runClient(c, mb, m, 0, "")
				results[m.Name][c] = append(results[m.Name][c], s)
				b.t.Logf("%s %s %s run %d: %v, CPU %v, server CPU %v, %d instructions", mix.Name, m.Name, c, r+1,
					s.run.Wall.Round(time.Millisecond), s.run.CPU().Round(time.Millisecond), s.serverCPU.Round(time.Millisecond), s.run.Instructions)
			}
		}
	}

	n := mb.seeded.Messages
	b.printf("### %s\n\n", describe(mix, mb.seeded))
	head := []string{"medium"}
	for _, c := range b.cfg.Clients {
		head = append(head, b.clientName(c))
	}
	b.printf("| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	for _, m := range b.cfg.Media {
		bare := walls(results[m.Name][ClientBare])
		row := []string{m.Name}
		for _, c := range b.cfg.Clients {
			w := walls(results[m.Name][c])
			cellText := fmt.Sprintf("%s ±%.0f %%", Seconds(Median(w)), 100*Spread(w))
			if c != ClientBare && len(bare) > 0 {
				cellText = fmt.Sprintf("**%s** (%s)", Ratio(Median(w), Median(bare)), cellText)
			}
			row = append(row, cellText)
		}
		b.printf("| %s |\n", strings.Join(row, " | "))
	}
	b.printf("\nPer message (medians): CPU of the client (user + system), of Dovecot and of the platform (for Inbox Relay) meanwhile; the client's peak RSS.\n\n")
	ir := ""
	if b.cfg.Callgrind {
		ir = " instructions |"
		b.printf("The Go clients ran under callgrind: their times and memory are not meaningful, their instructions are.\n\n")
	}
	b.printf("| medium | client | client CPU | Dovecot CPU | platform CPU | peak RSS | messages/s |%s\n|%s\n", ir, strings.Repeat(" --- |", 7+len(ir)/len(" instructions |")))
	for _, m := range b.cfg.Media {
		for _, c := range b.cfg.Clients {
			ss := results[m.Name][c]
			var cpu, srv, plat []time.Duration
			var rss, instr []int64
			for _, s := range ss {
				cpu = append(cpu, s.run.CPU())
				srv = append(srv, s.serverCPU)
				plat = append(plat, s.platformCPU)
				rss = append(rss, s.run.MaxRSS)
				instr = append(instr, s.run.Instructions)
			}
			slices.Sort(rss)
			slices.Sort(instr)
			rate := float64(n) / Median(walls(ss)).Seconds()
			platText := "-"
			if isRelay(c) {
				platText = PerMessage(Median(plat), n)
			}
			b.printf("| %s | %s | %s | %s | %s | %s | %.0f |", m.Name, b.clientName(c), PerMessage(Median(cpu), n), PerMessage(Median(srv), n), platText, MiB(rss[len(rss)/2]), rate)
			if b.cfg.Callgrind {
				b.printf(" %s |", perMessageCount(instr[len(instr)/2], n))
			}
			b.printf("\n")
		}
	}
	b.printf("\n")
}

// relayClients returns the Inbox Relay clients: one per build.
func (b *tableRun) relayClients() []string {
	var out []string
	for _, c := range b.cfg.Clients {
		if isRelay(c) {
			out = append(out, c)
		}
	}
	return out
}

func isRelay(c string) bool { return c == ClientRelay || strings.HasPrefix(c, ClientRelay+":") }

// build returns the build of the relay client c.
func (b *tableRun) build(c string) Build {
	label, _ := strings.CutPrefix(c, ClientRelay+":")
	for _, bd := range b.cfg.Builds {
		if bd.Label == label || c == ClientRelay {
			return bd
		}
	}
	b.t.Fatalf("no build for client %q", c)
	return Build{}
}

// exe returns the test binary of the relay client c.
func (b *tableRun) exe(c string) string { return b.build(c).Exe }

func (b *tableRun) clientName(c string) string {
	switch {
	case c == ClientBare:
		return "bare fetch"
	case c == ClientMbsync:
		return "mbsync (Maildir)"
	case c == ClientRelay:
		return "Inbox Relay"
	case isRelay(c):
		return "Inbox Relay " + strings.TrimPrefix(c, ClientRelay+":")
	}
	return c
}

func walls(ss []sample) []time.Duration {
	var w []time.Duration
	for _, s := range ss {
		w = append(w, s.run.Wall)
	}
	return w
}

// runClient makes one measured run of client c over mailbox mb, writing
// on medium m. delay slows the platform's answers (relay only).
func (b *tableRun) runClient(c string, mb mailbox, m Medium, delay time.Duration, profile string) sample {
	t := b.t
	dir, remove := tempDir(t, m.Dir, c)
	defer remove()
	before, selfBefore := GroupCPU(b.marker), SelfCPU()
	var run Run
	switch {
	case c == ClientBare:
		ch, err := StartChild("", "bare", BareSpec{Addr: b.srv.IMAPS, CAPEM: b.srv.CAPEM, Server: "127.0.0.2",
			User: mb.user, Password: mb.password, Folder: "INBOX"}, filepath.Join(dir, "stderr"), nil, b.cfg.Callgrind)
		if err != nil {
			t.Fatal(err)
		}
		if run, err = ch.Wait(); err != nil {
			t.Fatalf("bare fetch: %v", err)
		}
		if run.Result.Messages != mb.seeded.Messages || run.Result.Bytes != mb.seeded.Bytes {
			t.Fatalf("bare fetch read %d messages, %d bytes; the mailbox has %d, %d", run.Result.Messages, run.Result.Bytes, mb.seeded.Messages, mb.seeded.Bytes)
		}
	case c == ClientMbsync:
		var err error
		run, err = RunMbsync(MbsyncSpec{Addr: b.srv.IMAPS, CertPEM: append(slices.Clone(b.srv.CertPEM), b.srv.CAPEM...),
			User: mb.user, Password: mb.password, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if run.Result.Messages != mb.seeded.Messages {
			t.Fatalf("mbsync stored %d messages; the mailbox has %d", run.Result.Messages, mb.seeded.Messages)
		}
	case isRelay(c):
		run = b.runRelay(c, mb, dir, delay, profile, nil)
	default:
		t.Fatalf("unknown client %q", c)
	}
	s := sample{run: run, serverCPU: GroupCPU(b.marker) - before}
	if isRelay(c) {
		s.platformCPU = SelfCPU() - selfBefore
	}
	return s
}

// account returns the engine's account for mb.
func (b *tableRun) account(mb mailbox) config.Account {
	imapSrv, err := config.ParseServer(b.srv.IMAPS, config.SecurityTLS, 993)
	if err != nil {
		b.t.Fatal(err)
	}
	smtpSrv, err := config.ParseServer(b.srv.Submission, config.SecurityStartTLS, 587)
	if err != nil {
		b.t.Fatal(err)
	}
	return config.Account{Email: mb.user, IMAP: imapSrv, SMTP: smtpSrv, Pins: []trust.Pin{
		{Server: imapSrv.Addr(), Fingerprint: b.srv.Fingerprint},
		{Server: smtpSrv.Addr(), Fingerprint: b.srv.Fingerprint},
	}}
}

// runRelay runs `sync --once` of a fresh home in dir into a fresh
// platform and checks that the platform then holds every message.
// during, when set, runs while the engine relays, with the platform.
func (b *tableRun) runRelay(c string, mb mailbox, dir string, delay time.Duration, profile string, during func(*Platform, string)) Run {
	t := b.t
	p, err := StartPlatform(filepath.Join(dir, "platform"), delay, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts, err := p.Pair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := RelaySpec{Home: filepath.Join(dir, "home"), Account: b.account(mb), Password: mb.password, Platform: opts, Once: true, Workers: b.build(c).Workers}
	if profile != "" {
		spec.CPUProfile, spec.AllocProfile = profile+".cpu.pprof", profile+".allocs.pprof"
	}
	var progress func() int
	if during != nil {
		progress = p.Stored
	}
	ch, err := StartChild(b.exe(c), "relay", spec, filepath.Join(dir, "stderr"), progress, b.cfg.Callgrind)
	if err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(p, spec.Home)
	}
	run, err := ch.Wait()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(spec.Home, "logs", "inboxrelay.log"))
		t.Fatalf("Inbox Relay: %v\nlog tail:\n%s", err, tail(log, 2000))
	}
	b.checkStored(p, mb)
	return run
}

// checkStored fails the benchmark unless the platform holds exactly the
// mailbox's messages, each once, and refused nothing.
func (b *tableRun) checkStored(p *Platform, mb mailbox) {
	t := b.t
	msgs := p.Ref.Messages()
	if len(msgs) != mb.seeded.Messages {
		t.Fatalf("the platform holds %d messages; the mailbox has %d", len(msgs), mb.seeded.Messages)
	}
	for _, m := range msgs {
		if !mb.seeded.Keys[m.Key] {
			t.Fatalf("the platform holds a message that is not in the mailbox (key %s)", m.Key)
		}
	}
	if rej := p.Ref.Rejections(); len(rej) > 0 {
		t.Fatalf("the platform refused %d requests, the first: %+v", len(rej), rej[0])
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// profile runs the engine once more with CPU and allocation profiles.
func (b *tableRun) profile(c string, mb mailbox, m Medium) {
	if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	base := filepath.Join(b.cfg.ProfileDir, strings.ReplaceAll(c, ":", "-")+"-"+mb.mix.Name)
	s := b.runClient(c, mb, m, 0, base)
	b.t.Logf("profiled %s run: %v; profiles %s.{cpu,allocs}.pprof", mb.mix.Name, s.run.Wall.Round(time.Millisecond), base)
}

// slowPlatform measures the backfill of mix into a platform that takes
// SlowPlatform to answer each upload, against the usual one.
func (b *tableRun) slowPlatform(mix Mix, relays []string) {
	mb := b.seed(mix)
	m := b.cfg.Media[0]
	fast, slow := map[string][]time.Duration{}, map[string][]time.Duration{}
	for r := 0; r < b.cfg.Runs; r++ {
		for _, c := range relays {
			fast[c] = append(fast[c], b.runClient(c, mb, m, 0, "").run.Wall)
			slow[c] = append(slow[c], b.runClient(c, mb, m, b.cfg.SlowPlatform, "").run.Wall)
		}
	}
	b.printf("### A slower platform\n\n%s on %s, the platform answering each upload after %v:\n\n", describe(mix, mb.seeded), m.Name, b.cfg.SlowPlatform)
	b.printf("| client | platform answers at once | after %v | slower by |\n| --- | --- | --- | --- |\n", b.cfg.SlowPlatform)
	n := float64(mb.seeded.Messages)
	for _, c := range relays {
		f, s := fast[c], slow[c]
		b.printf("| %s | %s ±%.0f %% (%.0f messages/s) | %s ±%.0f %% (%.0f messages/s) | **%s** |\n", b.clientName(c),
			Seconds(Median(f)), 100*Spread(f), n/Median(f).Seconds(), Seconds(Median(s)), 100*Spread(s), n/Median(s).Seconds(),
			Ratio(Median(s), Median(f)))
	}
	b.printf("\n")
}

// big measures a mailbox of cfg.Big small messages: time, memory over
// the run, `inboxrelay status` while it runs and after, and a second
// pass with nothing to do.
func (b *tableRun) big(c string) {
	t := b.t
	mix := Small.WithCount(b.cfg.Big)
	mix.Name = "big"
	mb := b.seed(mix)
	m := b.cfg.Media[0]
	bare := b.runClient(ClientBare, mb, m, 0, "") // warm-up
	bare = b.runClient(ClientBare, mb, m, 0, "")

	dir, remove := tempDir(t, m.Dir, "big")
	defer remove()
	var during, after []time.Duration
	n := mb.seeded.Messages
	run := b.runRelay(c, mb, dir, 0, "", func(p *Platform, home string) {
		if b.cfg.CLI == "" {
			return
		}
		for p.Stored() < n/2 {
			time.Sleep(100 * time.Millisecond)
		}
		for i := 0; i < 5; i++ {
			during = append(during, b.status(home))
		}
	})
	if b.cfg.CLI != "" {
		for i := 0; i < 5; i++ {
			after = append(after, b.status(filepath.Join(dir, "home")))
		}
	}
	// Nothing left to do: how long does a pass over 100 000 take then?
	again := b.rerun(c, mb, dir)
	dbSize := int64(0)
	if fi, err := os.Stat(filepath.Join(dir, "home", "state.db")); err == nil {
		dbSize = fi.Size()
	}

	b.printf("### %s, %s\n\nOn %s, one run:\n\n", describe(mix, mb.seeded), b.clientName(c), m.Name)
	b.printf("| measure | value |\n| --- | --- |\n")
	b.printf("| bare fetch | %s |\n", Seconds(bare.run.Wall))
	b.printf("| Inbox Relay | %s (**%s**), %.0f messages/s, engine CPU %s per message |\n", Seconds(run.Wall), Ratio(run.Wall, bare.run.Wall),
		float64(n)/run.Wall.Seconds(), PerMessage(run.CPU(), n))
	b.printf("| peak RSS | %s |\n", MiB(run.MaxRSS))
	b.printf("| RSS at 10 / 25 / 50 / 75 / 100 %% relayed | %s |\n", rssAt(run.RSS, n, 0.10, 0.25, 0.50, 0.75, 1))
	b.printf("| rate in each tenth of the run | %s |\n", rateTenths(run.RSS, n))
	if len(during) > 0 {
		b.printf("| `inboxrelay status` while relaying / after (median of 5) | %s / %s |\n", Millis(Median(during)), Millis(Median(after)))
	}
	b.printf("| second `sync --once`, nothing to do | %s, CPU %s |\n", Seconds(again.Wall), Millis(again.CPU()))
	b.printf("| state database | %s |\n\n", MiB(dbSize))
}

// rerun runs `sync --once` again on the home in dir, into a new platform
// that already has nothing to receive (nothing is pending).
func (b *tableRun) rerun(c string, mb mailbox, dir string) Run {
	t := b.t
	p, err := StartPlatform(filepath.Join(dir, "platform2"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts, err := p.Pair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := RelaySpec{Home: filepath.Join(dir, "home"), Account: b.account(mb), Password: mb.password, Platform: opts, Once: true}
	ch, err := StartChild(b.exe(c), "relay", spec, filepath.Join(dir, "stderr2"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	run, err := ch.Wait()
	if err != nil {
		t.Fatalf("Inbox Relay, second pass: %v", err)
	}
	if p.Stored() != 0 {
		t.Fatalf("the second pass uploaded %d messages; everything was relayed already", p.Stored())
	}
	return run
}

// status times `inboxrelay --home home status`.
func (b *tableRun) status(home string) time.Duration {
	start := time.Now()
	out, err := exec.Command(b.cfg.CLI, "--home", home, "status").CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.t.Fatalf("inboxrelay status: %v: %s", err, out)
	}
	return d
}

func rssAt(s []RSSSample, n int, fracs ...float64) string {
	var out []string
	for _, f := range fracs {
		v := "-"
		for _, x := range s {
			if float64(x.Progress) >= f*float64(n) {
				v = MiB(x.RSS)
				break
			}
		}
		if f == 1 && v == "-" && len(s) > 0 {
			v = MiB(s[len(s)-1].RSS)
		}
		out = append(out, v)
	}
	return strings.Join(out, " / ")
}

// rateTenths gives the relay rate over each tenth of the messages, from
// the samples taken during the run: a rate that falls as the mailbox fills
// means a cost that grows with it.
func rateTenths(s []RSSSample, n int) string {
	at := func(count int) (RSSSample, bool) {
		for _, x := range s {
			if x.Progress >= count {
				return x, true
			}
		}
		return RSSSample{}, false
	}
	var rates []string
	prev, ok := at(1)
	for t := 1; t <= 10 && ok; t++ {
		next, found := at(n * t / 10)
		if !found || next.At <= prev.At {
			break
		}
		rates = append(rates, fmt.Sprintf("%.0f", float64(next.Progress-prev.Progress)/(next.At-prev.At).Seconds()))
		prev = next
	}
	if len(rates) == 0 {
		return "-"
	}
	return strings.Join(rates, " / ") + " messages/s"
}

// Interrupting a run (^C) skips the test's cleanups: the mailboxes (a GB
// or more) and the clients' directories would stay behind. They are
// removed on the signal; Dovecot and the clients die with the harness.
var interrupted struct {
	sync.Mutex
	dirs map[string]bool
}

func removeOnInterrupt(dir string) (stop func()) {
	interrupted.Lock()
	if interrupted.dirs == nil {
		interrupted.dirs = map[string]bool{}
	}
	interrupted.dirs[dir] = true
	interrupted.Unlock()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			interrupted.Lock()
			for d := range interrupted.dirs {
				os.RemoveAll(d)
			}
			fmt.Fprintf(os.Stderr, "bench: %v: removed the benchmark's directories\n", s)
			os.Exit(2)
		case <-done:
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}

// tempDir makes a directory for one run under parent; remove removes it
// (the caller defers it), as does an interrupt.
func tempDir(t testing.TB, parent, what string) (dir string, remove func()) {
	dir, err := os.MkdirTemp(parent, "inboxrelay-bench-"+what+"-")
	if err != nil {
		t.Fatal(err)
	}
	interrupted.Lock()
	if interrupted.dirs == nil {
		interrupted.dirs = map[string]bool{}
	}
	interrupted.dirs[dir] = true
	interrupted.Unlock()
	return dir, func() {
		os.RemoveAll(dir)
		interrupted.Lock()
		delete(interrupted.dirs, dir)
		interrupted.Unlock()
	}
}

// perMessageCount formats count/n, in thousands.
func perMessageCount(count int64, n int) string {
	if count == 0 || n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f k", float64(count)/float64(n)/1000)
}
