package imapsync_test

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
	"github.com/inboxrelay/inboxrelay/sync/spool"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// allocated runs f and returns the bytes the process allocated meanwhile,
// in all: an upper bound of the heap's growth, whatever the GC did.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeAnswersAreBounded: a server that sends 64 MiB where a line or a
// small literal belongs (greeting, login answer, folder name, search
// result, envelope) is cut off with a LimitError naming the bound and the
// step, having made the client allocate a small bounded amount; a 64 MiB
// message body, which may be real, streams to the spool whole, in bounded
// memory too.
func TestHugeAnswersAreBounded(t *testing.T) {
	const size = 64 << 20
	for _, mode := range hostile.HugeModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := hostile.StartHugeIMAP(t, mode, size)
			srv, _ := config.ParseServer(s.Addr, config.SecurityTLS, 993)
			acct := config.Account{Email: "alice@acme.test", IMAP: srv, Pins: []trust.Pin{{Server: s.Addr, Fingerprint: s.Cert.Fingerprint}}}
			pol, _ := trust.NewPolicy("", acct.TrustPins(), nil)
			sp := &spool.Spool{Dir: t.TempDir()}
			var err error
			var bodySize int64
			grew := allocated(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var c *imapsync.Conn
				if c, err = imapsync.Dial(ctx, acct, "pw", pol); err != nil {
					return
				}
				defer c.Close()
				if _, err = c.FindSent(); err != nil {
					return
				}
				if _, err = c.Examine("INBOX"); err != nil {
					return
				}
				if _, err = c.Search(0, time.Time{}, 0, 1); err != nil {
					return
				}
				if _, err = c.FetchMeta([]uint32{1}, nil); err != nil {
					return
				}
				err = c.FetchBodies([]uint32{1}, sp, func(uid uint32, b *spool.Body) error {
					r, _ := b.Open()
					bodySize, _ = io.Copy(io.Discard, r)
					r.Close()
					return b.Remove()
				})
			})
			t.Logf("64 MiB %s: %v; the server wrote %d MiB of it; the client allocated %.1f MiB in all", mode, err, s.HugeSent()>>20, float64(grew)/(1<<20))
			if mode == hostile.HugeBody {
				if err != nil || bodySize != size {
					t.Fatalf("a 64 MiB body: %v, %d bytes read; want it whole", err, bodySize)
				}
			} else {
				var le *imapsync.LimitError
				if !errors.As(err, &le) || le.Server != s.Addr || !strings.Contains(err.Error(), "sent a "+le.What+" longer than") {
					t.Fatalf("got %v; want a LimitError", err)
				}
			}
			if grew > 100<<20 {
				t.Fatalf("the client allocated %d MiB against a 64 MiB %s; want under 100 MiB", grew>>20, mode)
			}
		})
	}
}

// TestHugeLineAfterSTARTTLS: the bounds hold on a STARTTLS connection
// after the handshake too, where go-imap's own STARTTLS would have put TLS
// out of the wrapper's sight.
func TestHugeLineAfterSTARTTLS(t *testing.T) {
	cert := hostile.NewCert(t, hostile.CertOptions{SelfSigned: true})
	addr := hostile.StartTLSServer(t, hostile.HugeAfterTLS, cert)
	srv, _ := config.ParseServer(addr, config.SecurityStartTLS, 143)
	acct := config.Account{Email: "alice@acme.test", IMAP: srv, Pins: []trust.Pin{{Server: addr, Fingerprint: cert.Fingerprint}}}
	pol, _ := trust.NewPolicy("", acct.TrustPins(), nil)
	var err error
	grew := allocated(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var c *imapsync.Conn
		if c, err = imapsync.Dial(ctx, acct, "pw", pol); err == nil {
			c.Close()
		}
	})
	t.Logf("64 MiB line after STARTTLS: %v; the client allocated %.1f MiB in all", err, float64(grew)/(1<<20))
	var le *imapsync.LimitError
	if !errors.As(err, &le) || le.What != "line" {
		t.Fatalf("got %v; want a LimitError for a line", err)
	}
	if grew > 100<<20 {
		t.Fatalf("allocated %d MiB", grew>>20)
	}
}

// TestHugeBodyStopsAtTheSpoolBudget: a 64 MiB message body, over the
// spool's disk budget (16 MiB here), fails for good with a clear error,
// leaving no file behind and the memory small.
func TestHugeBodyStopsAtTheSpoolBudget(t *testing.T) {
	const size = 64 << 20
	s := hostile.StartHugeIMAP(t, hostile.HugeBody, size)
	srv, _ := config.ParseServer(s.Addr, config.SecurityTLS, 993)
	acct := config.Account{Email: "alice@acme.test", IMAP: srv, Pins: []trust.Pin{{Server: s.Addr, Fingerprint: s.Cert.Fingerprint}}}
	pol, _ := trust.NewPolicy("", acct.TrustPins(), nil)
	dir := t.TempDir()
	sp := &spool.Spool{Dir: dir, Budget: 16 << 20}
	var err error
	grew := allocated(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, derr := imapsync.Dial(ctx, acct, "pw", pol)
		if derr != nil {
			err = derr
			return
		}
		defer c.Close()
		if _, err = c.Examine("INBOX"); err != nil {
			return
		}
		err = c.FetchBodies([]uint32{1}, sp, func(uint32, *spool.Body) error { return nil })
	})
	t.Logf("a 64 MiB body against a 16 MiB spool: %v; allocated %.1f MiB in all", err, float64(grew)/(1<<20))
	var fe *spool.FullError
	if !errors.As(err, &fe) || !fe.Permanent || !strings.Contains(err.Error(), "larger than 16.0 MiB") {
		t.Fatalf("got %v; want the body refused for good by the spool's budget", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 || sp.Used() != 0 {
		t.Fatalf("%d spool files left, %d bytes counted", len(entries), sp.Used())
	}
	if grew > 100<<20 {
		t.Fatalf("allocated %d MiB", grew>>20)
	}
}

// TestCrowdedEnvelopesAreBounded: a server whose messages each have an
// ENVELOPE of 1 MiB (a FETCH line may have 4), crowded with some 35 000
// addresses each in a domain of its own. FetchMeta keeps at most
// MaxDomains domains of each message, and the one that matters (the
// last), so what a batch of them holds stays small. Keeping every
// address held 44 MiB for 10 messages of 4 MiB, 222 MiB for 50.
func TestCrowdedEnvelopesAreBounded(t *testing.T) {
	const n, per = 8, 1 << 20
	s := hostile.StartCrowdIMAP(t, n, per)
	srv, _ := config.ParseServer(s.Addr, config.SecurityTLS, 993)
	acct := config.Account{Email: "alice@acme.test", IMAP: srv, Pins: []trust.Pin{{Server: s.Addr, Fingerprint: s.Cert.Fingerprint}}}
	pol, _ := trust.NewPolicy("", acct.TrustPins(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := imapsync.Dial(ctx, acct, "pw", pol)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Examine("INBOX"); err != nil {
		t.Fatal(err)
	}
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	metas, err := c.FetchMeta(uids, func(d string) bool { return d == hostile.CrowdDomain })
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d envelopes of %.1f MiB (%.1f MiB sent): the facts hold %.2f MiB of heap; %.1f MiB allocated in all",
		n, float64(per)/(1<<20), float64(s.HugeSent())/(1<<20), float64(held)/(1<<20), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if err != nil || len(metas) != n {
		t.Fatalf("FetchMeta: %d messages, %v; want %d", len(metas), err, n)
	}
	for _, m := range metas {
		if !m.DomainsCut || len(m.Domains) != imapsync.MaxDomains+1 || m.Domains[len(m.Domains)-1] != hostile.CrowdDomain {
			t.Fatalf("UID %d: %d domains (cut: %v), the last %q; want %d and %s last, cut", m.UID, len(m.Domains), m.DomainsCut, m.Domains[len(m.Domains)-1], imapsync.MaxDomains+1, hostile.CrowdDomain)
		}
	}
	if held > 4<<20 {
		t.Fatalf("the facts of %d messages hold %d MiB", n, held>>20)
	}
	runtime.KeepAlive(metas)
}
