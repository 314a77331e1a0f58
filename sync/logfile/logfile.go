// Package logfile is a size-capped, rotating log file: when the current
// file passes its size, it becomes name.1 (the older ones shift up to Keep)
// and a new one starts.
package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Writer is an io.Writer onto rotating files. Safe for concurrent use.
type Writer struct {
	path    string
	maxSize int64
	keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (appending) dir/name, mode 0600, rotating past maxSize bytes
// and keeping keep old files.
func Open(dir, name string, maxSize int64, keep int) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log folder: %w", err)
	}
	w := &Writer{path: filepath.Join(dir, name), maxSize: maxSize, keep: keep}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	// Never through a link (it could make the log someone else's file),
	// and only into a regular file (a FIFO would block every write).
	linkErr := fmt.Errorf("the log file %s is a link to another file, which Inbox Relay would write into: remove the link", w.path)
	if fi, err := os.Lstat(w.path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return linkErr
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|noFollow|nonBlock, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(w.path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return linkErr
		}
		return fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("the log file %s is not a regular file: remove it", w.path)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first when p would pass the size cap.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, os.ErrClosed
	}
	if w.size+int64(len(p)) > w.maxSize && w.size > 0 {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *Writer) rotate() error {
	w.f.Close()
	for i := w.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
	}
	if w.keep > 0 {
		os.Rename(w.path, w.path+".1")
	} else {
		os.Remove(w.path)
	}
	return w.open()
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
