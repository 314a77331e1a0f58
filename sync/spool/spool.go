// Package spool holds message bodies between their download from IMAP and
// their upload to the platform: small ones in memory, big ones in 0600
// files, so memory does not grow with message size.
package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DefaultThreshold is the size above which a body goes to disk.
const DefaultThreshold = 1 << 20

// Spool stores bodies under Dir. Safe for concurrent use.
type Spool struct {
	Dir       string
	Threshold int64 // bodies larger than this go to a file; 0 means DefaultThreshold
}

// Body is one message exactly as read, with its SHA-256. Not safe for
// concurrent Open and Remove.
type Body struct {
	Size int64
	// Key is the lowercase hex SHA-256 of the bytes: the relay API's
	// Idempotency-Key.
	Key  string
	mem  []byte
	path string
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
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove spooled message: %w", err)
	}
	return nil
}

// Read consumes r to its end and returns the body. Memory use is bounded by
// the threshold whatever the size of r. When r tells its size (a Size()
// int64 method, as an IMAP literal has), a body under the threshold is
// read straight into one buffer of that size: one copy, hashed once.
func (s *Spool) Read(r io.Reader) (*Body, error) {
	limit := s.Threshold
	if limit <= 0 {
		limit = DefaultThreshold
	}
	if sr, ok := r.(interface{ Size() int64 }); ok {
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
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fail(fmt.Errorf("write spool file: %w", err))
	}
	buf = bytes.Buffer{}
	m, err := io.Copy(f, io.TeeReader(r, h))
	if err != nil {
		return fail(fmt.Errorf("read message: %w", err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("write spool file: %w", err))
	}
	return &Body{Size: n + m, Key: hex.EncodeToString(h.Sum(nil)), path: f.Name()}, nil
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
