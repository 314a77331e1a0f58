package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

func files(t *testing.T, dir string) int {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	return len(entries)
}

// TestBudget: the spool's files never pass the budget; a body that alone
// passes it fails for good (before anything is written when its size is
// announced), one that waits for others fails for now; nothing is left
// behind either way, and a removed body gives its bytes back.
func TestBudget(t *testing.T) {
	dir := t.TempDir()
	s := &Spool{Dir: dir, Threshold: 1 << 10, Budget: 1 << 20}
	big := bytes.Repeat([]byte("x"), 2<<20)

	_, err := s.Read(bytes.NewReader(big))
	var fe *FullError
	if !errors.As(err, &fe) || !fe.Permanent || !errors.Is(err, ErrFull) || files(t, dir) != 0 || s.Used() != 0 {
		t.Fatalf("a body over the budget: %v (permanent %v), %d files, %d used; want refused for good, nothing left", err, fe != nil && fe.Permanent, files(t, dir), s.Used())
	}
	r := &countingReader{r: bytes.NewReader(big)}
	if _, err := s.Read(sized{r, int64(len(big))}); !errors.As(err, &fe) || !fe.Permanent || r.n != 0 {
		t.Fatalf("an announced body over the budget: %v, %d bytes read; want refused before reading", err, r.n)
	}

	first, err := s.Read(bytes.NewReader(big[:700<<10]))
	if err != nil || s.Used() != 700<<10 {
		t.Fatalf("first body: %v, %d used", err, s.Used())
	}
	_, err = s.Read(bytes.NewReader(big[:700<<10]))
	if !errors.As(err, &fe) || fe.Permanent || files(t, dir) != 1 || s.Used() != 700<<10 {
		t.Fatalf("a body that waits for another: %v; want refused for now, the other kept", err)
	}
	first.Remove()
	if s.Used() != 0 {
		t.Fatalf("%d bytes used after Remove", s.Used())
	}
	second, err := s.Read(bytes.NewReader(big[:700<<10]))
	if err != nil {
		t.Fatalf("once the first is gone: %v", err)
	}
	second.Remove()
	second.Remove() // twice: gives back once
	if s.Used() != 0 || files(t, dir) != 0 {
		t.Fatalf("%d used, %d files left", s.Used(), files(t, dir))
	}
}

// The disk's free space less the reserve bounds the spool too.
func TestReserve(t *testing.T) {
	dir := t.TempDir()
	free, ok := freeSpace(dir)
	if !ok {
		t.Skip("free space is not known on this system")
	}
	s := &Spool{Dir: dir, Threshold: 1 << 10, Reserve: free} // nothing may be written
	_, err := s.Read(bytes.NewReader(bytes.Repeat([]byte("x"), 4<<10)))
	var fe *FullError
	if !errors.As(err, &fe) || !fe.Disk || files(t, dir) != 0 || s.Used() != 0 {
		t.Fatalf("got %v; want the disk said to be full, nothing left", err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
