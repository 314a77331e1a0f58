package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
)

// Seeded is what Seed wrote.
type Seeded struct {
	Messages int
	Bytes    int64
	Keys     map[string]bool // lowercase hex SHA-256 of every body: the relay API's keys
}

// Seed writes messages [0, g.Mix.Count) of g straight into the Maildir at
// dir (its cur/ folder, created if missing), as a delivery agent would,
// owned by dir's owner (the user the IMAP server runs as). The file names
// carry the size (S=, W=) and seen flag, the modification time is the
// INTERNALDATE; the server assigns UIDs at its next look, in date order.
// Far faster than APPENDing every message. No IMAP session may have the
// folder open while Seed runs.
func Seed(dir string, g *Generator) (Seeded, error) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return Seeded{}, err
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return Seeded{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := int(st.Uid), int(st.Gid)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Lchown(filepath.Join(dir, sub), uid, gid); err != nil {
			return Seeded{}, err
		}
	}

	out := Seeded{Keys: make(map[string]bool, g.Mix.Count)}
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := g.Message(i)
				err := writeMaildirFile(dir, m, uid, gid)
				sum := sha256.Sum256(m.Body)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out.Messages++
				out.Bytes += int64(len(m.Body))
				out.Keys[hex.EncodeToString(sum[:])] = true
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < g.Mix.Count; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, firstErr
}

// writeMaildirFile writes m through tmp/ into cur/ under the name a
// delivery agent gives it (Maildir++: S= is the file size, W= the size
// with CRLF line ends, which the generator already uses).
func writeMaildirFile(dir string, m Message, uid, gid int) error {
	flags := ""
	if m.Seen {
		flags = "S"
	}
	base := fmt.Sprintf("%d.M%06dP%dQ%d.bench", m.Date.Unix(), m.Index%1000000, os.Getpid(), m.Index)
	tmp := filepath.Join(dir, "tmp", base)
	if err := os.WriteFile(tmp, m.Body, 0o600); err != nil {
		return err
	}
	if err := os.Lchown(tmp, uid, gid); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, m.Date, m.Date); err != nil {
		return err
	}
	name := fmt.Sprintf("%s,S=%d,W=%d:2,%s", base, len(m.Body), len(m.Body), flags)
	return os.Rename(tmp, filepath.Join(dir, "cur", name))
}
