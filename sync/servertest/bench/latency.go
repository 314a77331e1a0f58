package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// existsLog records when an IDLE session heard of each message count.
type existsLog struct {
	mu    sync.Mutex
	at    map[uint32]time.Time // count → first time the server said it
	grown chan struct{}        // buffer of one: a new count
}

func (l *existsLog) heard(n uint32) {
	now := time.Now()
	l.mu.Lock()
	if _, ok := l.at[n]; !ok {
		l.at[n] = now
	}
	l.mu.Unlock()
	select {
	case l.grown <- struct{}{}:
	default:
	}
}

// when returns the first time the server said the folder held n or more.
func (l *existsLog) when(n uint32) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for c, t := range l.at {
		if c >= n && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// latency measures new mail: with the engine running and idle, messages
// are appended one at a time; each one's delay runs from the moment an
// IDLE session of our own on the same folder hears the server's EXISTS to
// the moment the platform answers its upload 201. Our session stands in
// for the engine's, which is notified by the same server event.
func (b *tableRun) latency(c string) {
	t := b.t
	m := b.cfg.Media[0]
	mb := mailbox{user: "latency-" + strings.ReplaceAll(strings.TrimPrefix(c, ClientRelay), ":", "") + "@bench.test", password: "bench password latency"}
	b.srv.AddUser(t, mb.user, mb.password)
	dir, remove := tempDir(t, m.Dir, "latency")
	defer remove()
	p, err := StartPlatform(filepath.Join(dir, "platform"), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	opts, err := p.Pair(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	log := &existsLog{at: map[uint32]time.Time{}, grown: make(chan struct{}, 1)}
	observer := b.srv.Login(t, mb.user, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				log.heard(*d.NumMessages)
			}
		},
	}})
	if _, err := observer.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := observer.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Close(); idle.Wait() }()

	spec := RelaySpec{Home: filepath.Join(dir, "home"), Account: b.account(mb), Password: mb.password, Platform: opts}
	ch, err := StartChild(b.exe(c), "relay", spec, filepath.Join(dir, "stderr"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.WaitLine("ready", time.Minute); err != nil {
		ch.Stop()
		t.Fatal(err)
	}

	appender := b.srv.Login(t, mb.user, nil)
	g := &Generator{Mix: Small.WithCount(b.cfg.Latency), Seed: b.cfg.Seed + 1, Account: mb.user, Now: time.Now()}
	var delays []time.Duration
	var failure error
	for i := 0; i < b.cfg.Latency && failure == nil; i++ {
		msg := g.Message(i)
		sum := sha256.Sum256(msg.Body)
		key := hex.EncodeToString(sum[:])
		cmd := appender.Append("INBOX", int64(len(msg.Body)), &imap.AppendOptions{Time: time.Now()})
		cmd.Write(msg.Body)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			failure = fmt.Errorf("append: %v", err)
			break
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			exists, heard := log.when(uint32(i + 1))
			stored, ok := p.StoredAt(key)
			if heard && ok {
				delays = append(delays, stored.Sub(exists))
				break
			}
			if time.Now().After(deadline) {
				failure = fmt.Errorf("message %d: EXISTS heard %v, stored %v after 30 s", i+1, heard, ok)
				break
			}
			select {
			case <-log.grown:
			case <-time.After(time.Millisecond):
			}
		}
	}
	_, err = ch.Stop()
	if failure != nil {
		t.Fatal(failure)
	}
	if err != nil {
		t.Fatalf("Inbox Relay: %v", err)
	}
	b.printf("### New mail, %s\n\n%d messages appended one at a time to an idle INBOX (%s): the delay from the server's EXISTS (heard by a second IDLE session on the folder) to the platform's 201.\n\n",
		b.clientName(c), len(delays), m.Name)
	b.printf("| p50 | p90 | p99 | max |\n| --- | --- | --- | --- |\n")
	b.printf("| %s | %s | %s | %s |\n\n", Millis(Percentile(delays, 50)), Millis(Percentile(delays, 90)), Millis(Percentile(delays, 99)),
		Millis(Percentile(delays, 100)))
}
