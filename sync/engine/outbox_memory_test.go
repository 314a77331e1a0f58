package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/backoff"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/dovecottest"
	"github.com/inboxrelay/inboxrelay/sync/servertest/smtpsink"
	"github.com/inboxrelay/inboxrelay/sync/state"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// memChildEnv names the file that tells a re-executed test binary to run
// one engine pass as the connector would, and report its peak memory.
const memChildEnv = "INBOXRELAY_OUTBOX_MEMORY_CHILD"

// memChild is what the parent test hands to the child process.
type memChild struct {
	Home     string         `json:"home"`
	Config   *config.Config `json:"config"`
	Platform relay.Options  `json:"platform"`
	Email    string         `json:"email"`
	Password string         `json:"password"`
}

// TestOutboxBigItemMemory sends a 200 MiB reply for the platform over SMTP
// and files it in Dovecot's Sent, with the connector in a process of its
// own, and fails when that process's peak resident memory goes over
// 100 MiB: the item is streamed from the platform's answer to disk, to
// SMTP and to IMAP, never held whole. The platform, Dovecot and the SMTP
// server run in this process, so their copies are not counted. Under the
// race detector (make test), which makes it twenty times slower, the item
// is 32 MiB: five copies of it would still break the bound. (Before: a
// 150 MiB item took 979 MiB; a 200 MiB one could not even be read, its
// answer being over the 256 MiB the client read of one.)
func TestOutboxBigItemMemory(t *testing.T) {
	size := 200 << 20
	if raceDetector {
		size = 32 << 20
	}
	peak := measureOutboxItem(t, size)
	t.Logf("sending a %d MiB item: the connector's peak resident memory was %.1f MiB", size>>20, float64(peak)/(1<<20))
	if peak > memoryBound {
		t.Fatalf("sending a %d MiB item took %.1f MiB of memory, over the %d MiB bound", size>>20, float64(peak)/(1<<20), memoryBound>>20)
	}
}

// BenchmarkOutboxBigItemMemory is TestOutboxBigItemMemory's 200 MiB item
// for make bench: it reports the connector's peak memory (peak-rss-MiB).
func BenchmarkOutboxBigItemMemory(b *testing.B) {
	const size = 200 << 20
	worst := 0
	for i := 0; i < b.N; i++ {
		worst = max(worst, measureOutboxItem(b, size))
	}
	b.ReportMetric(float64(worst)/(1<<20), "peak-rss-MiB")
	b.SetBytes(size)
	if worst > memoryBound {
		b.Fatalf("sending a %d MiB item took %.1f MiB of memory, over the %d MiB bound", size>>20, float64(worst)/(1<<20), memoryBound>>20)
	}
}

// memoryBound is the most memory the connector may use while sending one
// outbox item, whatever its size (issue 9: under 100 MiB).
const memoryBound = 100 << 20

// measureOutboxItem sends a reply of size bytes with the connector in its
// own process and returns that process's peak resident memory.
func measureOutboxItem(tb testing.TB, size int) int {
	tb.Helper()
	r := newRig(tb, dovecottest.Options{})
	// Dovecot's submission service refuses messages over 40 MiB: the go-smtp
	// sink takes the SMTP side, Dovecot still the Sent copy.
	sink := smtpsink.Start(tb, r.email, r.password)
	r.cfg.Accounts[0].SMTP, _ = config.ParseServer(sink.Addr, config.SecurityTLS, 465)
	r.cfg.Accounts[0].Pins = append(r.cfg.Accounts[0].Pins, trust.Pin{Server: sink.Addr, Fingerprint: sink.Fingerprint})
	id := r.enqueue(bigReply(size))

	spec := memChild{Home: r.home.Dir, Config: r.cfg, Email: r.email, Password: r.password,
		Platform: relay.Options{BaseURL: r.platform.URL(), CAFile: r.caFile, Token: r.token}}
	b, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	specPath := tb.TempDir() + "/child.json"
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOutboxMemoryChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), memChildEnv+"="+specPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("the connector process failed: %v\n%s", err, tail(out, 4000))
	}
	peak := -1
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "peak-rss-bytes: "); ok {
			peak, _ = strconv.Atoi(v)
		}
	}
	if peak < 0 {
		tb.Fatalf("the connector process did not report its memory:\n%s", tail(out, 4000))
	}
	res := r.result(id)
	if len(res) != 1 || res[0].State != "sent" || res[0].SentUID == 0 {
		tb.Fatalf("results %+v, want one sent with its Sent UID\n%s", res, tail(out, 4000))
	}
	dl := sink.Delivered()
	if len(dl) != 1 || len(dl[0].Data) < size {
		tb.Fatalf("delivered %d messages, want one of at least %d bytes", len(dl), size)
	}
	return peak
}

// TestOutboxMemoryChild is the connector side of TestOutboxBigItemMemory;
// it runs only in the process that test starts.
func TestOutboxMemoryChild(t *testing.T) {
	path := os.Getenv(memChildEnv)
	if path == "" {
		t.Skip("run by TestOutboxBigItemMemory")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec memChild
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	home, err := config.OpenHome(spec.Home)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(home.StatePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := New(Options{
		Home: home, Config: spec.Config, Store: st, Once: true, GiveUpAfter: 30 * time.Second,
		Secrets:  staticSecrets{keychain.AccountKey(spec.Email): spec.Password},
		Platform: spec.Platform,
		Log:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Backoff:  backoff.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Error(err)
	}
	fmt.Printf("peak-rss-bytes: %d\n", peakRSS(t))
}

// staticSecrets serves the child's password without a keychain.
type staticSecrets map[string]string

func (s staticSecrets) Get(key string) (string, error) {
	if v, ok := s[key]; ok {
		return v, nil
	}
	return "", fmt.Errorf("no secret %q", key)
}

// peakRSS returns the process's peak resident set size (VmHWM).
func peakRSS(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// bigReply is a reply of about size bytes, with bare LF line ends as the
// platform may send them.
func bigReply(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 200)
	b.WriteString("From: Alice <alice@acme.test>\nTo: customer@client.test\nSubject: The big attachment\n\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
