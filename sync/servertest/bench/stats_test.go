package bench

import (
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"testing"
	"time"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func base64Reader(r io.Reader) io.Reader { return base64.NewDecoder(base64.StdEncoding, r) }

func qpReader(r io.Reader) io.Reader { return quotedprintable.NewReader(r) }

func ms(v ...int) []time.Duration {
	var out []time.Duration
	for _, x := range v {
		out = append(out, time.Duration(x)*time.Millisecond)
	}
	return out
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{ms(5), 5 * time.Millisecond},
		{ms(9, 1, 5), 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond},
	} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
		{hundred, 0, time.Millisecond},
		{ms(7, 3), 99, 7 * time.Millisecond},
		{nil, 50, 0},
	} {
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("Percentile(%d values, %v) = %v, want %v", len(c.in), c.p, got, c.want)
		}
	}
	if hundred[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its argument in place")
	}
}

func TestSpreadAndFormats(t *testing.T) {
	if got := Spread(ms(10, 12, 11)); got < 0.199 || got > 0.201 {
		t.Errorf("Spread = %v, want 0.2", got)
	}
	for _, c := range []struct{ got, want string }{
		{Thousands(100000), "100 000"},
		{Thousands(999), "999"},
		{Thousands(5000), "5 000"},
		{Ratio(3*time.Second, 2*time.Second), "1.50×"},
		{Seconds(1750 * time.Millisecond), "1.75 s"},
		{Seconds(17500 * time.Millisecond), "17.5 s"},
		{Millis(4300 * time.Microsecond), "4.3 ms"},
		{PerMessage(time.Second, 2000), "500 µs"},
		{PerMessage(time.Second, 0), "-"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestMbsyncConfigHoldsNoPassword(t *testing.T) {
	conf, err := mbsyncConfig(MbsyncSpec{Addr: "127.0.0.2:993", User: "a@b.test", Password: "s3cret pw"}, "/x/cert.pem", "/x/Maildir")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(conf, "s3cret") {
		t.Fatal("the mbsync configuration holds the password")
	}
	for _, want := range []string{"Host 127.0.0.2\n", "Port 993\n", "SSLType IMAPS\n", "Patterns INBOX\n", "Sync Pull\n", "PassCmd "} {
		if !strings.Contains(conf, want) {
			t.Fatalf("the configuration lacks %q:\n%s", want, conf)
		}
	}
}

func TestExistsLogWhen(t *testing.T) {
	l := &existsLog{at: map[uint32]time.Time{}, grown: make(chan struct{}, 1)}
	if _, ok := l.when(1); ok {
		t.Fatal("an empty log knows a count")
	}
	l.heard(3) // two messages announced at once
	first, _ := l.when(3)
	time.Sleep(time.Millisecond)
	l.heard(3) // repeated: keeps the first time
	l.heard(4)
	if got, ok := l.when(2); !ok || !got.Equal(first) {
		t.Fatalf("when(2) = %v, %v; want the time 3 was heard", got, ok)
	}
	if got, _ := l.when(3); !got.Equal(first) {
		t.Fatal("a repeated EXISTS moved the time")
	}
	if _, ok := l.when(5); ok {
		t.Fatal("a count never heard is known")
	}
}

func TestRateTenthsAndRSSAt(t *testing.T) {
	// 1 000 messages: 100 a second for the first half, 50 a second after.
	var s []RSSSample
	at := time.Duration(0)
	for p := 0; p <= 1000; p += 50 {
		s = append(s, RSSSample{At: at, RSS: int64(20+p/100) << 20, Progress: p})
		if p < 500 {
			at += 500 * time.Millisecond
		} else {
			at += time.Second
		}
	}
	got := rateTenths(s, 1000)
	want := "100 / 100 / 100 / 100 / 100 / 50 / 50 / 50 / 50 / 50 messages/s"
	if got != want {
		t.Fatalf("rateTenths = %q, want %q", got, want)
	}
	// The first tenth starts at the first message, not at zero.
	s[0].Progress = 0
	if got := rssAt(s, 1000, 0.10, 0.5, 1); got != "21 MiB / 25 MiB / 30 MiB" {
		t.Fatalf("rssAt = %q", got)
	}
	if got := rateTenths(nil, 1000); got != "-" {
		t.Fatalf("rateTenths of no samples = %q", got)
	}
}
