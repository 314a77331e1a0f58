// Package spool holds message bodies between their download from IMAP and
// their upload to the platform: small ones in memory, big ones in 0600
// files, so memory does not grow with message size. The files have a disk
// budget (Spool.Budget, budget.go), and the disk keeps some free space
// (Spool.Reserve): a server cannot fill the disk with one endless message.
package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// DefaultThreshold is the size above which a body goes to disk.
const DefaultThreshold = 1 << 20

// Spool stores bodies under Dir. Safe for concurrent use; the zero value
// of every field but Dir is the default.
type Spool struct {
	Dir       string
	Threshold int64 // bodies larger than this go to a file; 0 means DefaultThreshold
	// Budget bounds the bytes of all spool files at once; 0 means
	// DefaultBudget. A body that alone passes it can never be spooled.
	Budget int64
	// Reserve is the free space a spool file never eats into on its
	// disk; 0 means DefaultReserve.
	Reserve int64

	mu   sync.Mutex
	used int64 // bytes of the spool files alive (Body.Remove gives them back)
}

// Body is one message exactly as read, with its SHA-256. Not safe for
// concurrent Open and Remove.
type Body struct {
	Size int64
	// Key is the lowercase hex SHA-256 of the bytes: the relay API's
	// Idempotency-Key.
	Key   string
	mem   []byte
	path  string
	spool *Spool // of a body on disk, to give its bytes back
}

// Open returns a reader of the bytes from the start. Each call returns a
// new reader; close it.
func (b *Body) Open() (io.ReadCloser, error) {
	if b.path == "" {
		return io.NopCloser(bytes.NewReader(b.mem)), nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("open spooled message: %w", err)
	}
	return f, nil
}

// OnDisk reports whether the body is in a spool file.
func (b *Body) OnDisk() bool { return b.path != "" }

// Remove frees the body; its file, if any, is deleted. Safe to call twice.
func (b *Body) Remove() error {
	b.mem = nil
	if b.path == "" {
		return nil
	}
	p := b.path
	b.path = ""
	b.spool.release(b.Size)
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove spooled message: %w", err)
	}
	return nil
}

// Read consumes r to its end and returns the body. Memory use is bounded by
// the threshold whatever the size of r, disk use by the budget and the
// reserve: a body that does not fit fails with a *FullError (wrapping
// ErrFull), its file removed. When r tells its size (a Size() int64
// method, as an IMAP literal has), a body larger than the budget fails
// before anything is read, and a body under the threshold is read straight
// into one buffer of that size: one copy, hashed once.
func (s *Spool) Read(r io.Reader) (*Body, error) {
	limit := s.Threshold
	if limit <= 0 {
		limit = DefaultThreshold
	}
	if sr, ok := r.(interface{ Size() int64 }); ok {
		if err := s.TooBig(sr.Size()); err != nil {
			return nil, err
		}
		if n := sr.Size(); n >= 0 && n <= limit {
			return readKnown(r, n)
		}
	}
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.TeeReader(io.LimitReader(r, limit+1), h))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	if n <= limit {
		return &Body{Size: n, Key: hex.EncodeToString(h.Sum(nil)), mem: buf.Bytes()}, nil
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool: %w", err)
	}
	f, err := os.CreateTemp(s.Dir, "msg-*")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	fail := func(err error) (*Body, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(fmt.Errorf("spool file: %w", err))
	}
	bw := &budgetWriter{s: s, f: f}
	_, err = bw.Write(buf.Bytes())
	buf = bytes.Buffer{}
	if err == nil {
		_, err = io.Copy(bw, io.TeeReader(r, h))
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		s.release(bw.n)
		var fe *FullError
		if errors.As(err, &fe) {
			return fail(err)
		}
		return fail(fmt.Errorf("read message: %w", err))
	}
	return &Body{Size: bw.n, Key: hex.EncodeToString(h.Sum(nil)), path: f.Name(), spool: s}, nil
}

// readKnown reads a body that said it holds n bytes, at most the
// threshold. A reader that then gives more than it said is an error, not
// a body cut short.
func readKnown(r io.Reader, n int64) (*Body, error) {
	mem := make([]byte, n)
	if _, err := io.ReadFull(r, mem); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("the message ended after fewer bytes than the %d announced", n)
		}
		return nil, fmt.Errorf("read message: %w", err)
	}
	var more [1]byte
	if k, err := io.ReadFull(r, more[:]); k > 0 {
		return nil, fmt.Errorf("read message: it holds more than the %d bytes announced", n)
	} else if err != io.EOF {
		return nil, fmt.Errorf("read message: %w", err)
	}
	sum := sha256.Sum256(mem)
	return &Body{Size: n, Key: hex.EncodeToString(sum[:]), mem: mem}, nil
}

// Clean removes spool files left by a process that died; call it before
// the engine starts, while holding the home's lock.
func (s *Spool) Clean() error {
	files, err := filepath.Glob(filepath.Join(s.Dir, "msg-*"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("clean spool: %w", err)
		}
	}
	return nil
}
