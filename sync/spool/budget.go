package spool

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// DefaultBudget is the disk a spool's files may use at once: far above
// any message a mail server accepts (Exchange's default limit is 150 MB),
// so only a broken or hostile server reaches it.
const DefaultBudget = 2 << 30

// DefaultReserve is the free space left on the spool's disk.
const DefaultReserve = 512 << 20

// ErrFull is wrapped by every *FullError.
var ErrFull = errors.New("the spool is full")

// FullError means a body did not fit the spool; nothing of it is kept.
type FullError struct {
	Size   int64 // bytes of the body read when it stopped, or its announced size
	Budget int64 // the spool's budget
	// Permanent is true when the body alone passes the budget: it can
	// never be spooled, so it cannot be relayed. Otherwise other bodies
	// or the disk's free space are in the way, and it may fit later.
	Permanent bool
	// Disk is true when the disk's free space (less the reserve), not the
	// budget, is what was missing.
	Disk bool
}

// Error says what is full (the budget or the disk), what to do, and
// whether the message is tried again.
func (e *FullError) Error() string {
	switch {
	case e.Disk:
		return fmt.Sprintf("the disk holding Inbox Relay's spool is nearly full, so a message of more than %s could not be stored on its way to the platform: free some disk space; it is tried again", size(e.Size))
	case e.Permanent:
		return fmt.Sprintf("the message is larger than %s, the most Inbox Relay stores on disk on its way to the platform (the server announced or sent %s): it cannot be relayed", size(e.Budget), size(e.Size))
	}
	return fmt.Sprintf("Inbox Relay's spool holds %s of messages on their way to the platform, its limit: this message waits until they are relayed", size(e.Budget))
}

// Is makes errors.Is(err, ErrFull) true.
func (e *FullError) Is(target error) bool { return target == ErrFull }

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// TooBig returns the *FullError, Permanent, of a body of size bytes that
// can never be spooled, being larger than the budget; nil when it may fit.
// A caller that knows a message's size before downloading it (IMAP's
// RFC822.SIZE) asks first, so as not to download it for nothing.
func (s *Spool) TooBig(size int64) error {
	if size <= s.budget() {
		return nil
	}
	return &FullError{Size: size, Budget: s.budget(), Permanent: true}
}

func (s *Spool) budget() int64 {
	if s.Budget > 0 {
		return s.Budget
	}
	return DefaultBudget
}

func (s *Spool) reserveBytes() int64 {
	if s.Reserve > 0 {
		return s.Reserve
	}
	return DefaultReserve
}

func (s *Spool) release(n int64) {
	if s == nil || n == 0 {
		return
	}
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
}

// Used returns the bytes of the spool's files alive now.
func (s *Spool) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// diskCheckEvery is how many bytes a spool file grows between two looks
// at the disk's free space.
const diskCheckEvery = 8 << 20

// budgetWriter writes a spool file, taking each byte from the budget
// first. n is the file's size so far (all of it taken from the budget).
type budgetWriter struct {
	s         *Spool
	f         *os.File
	n         int64
	sinceDisk int64
}

// reserve takes k bytes from the budget (already written or about to be).
func (w *budgetWriter) reserve(k int64) error {
	s := w.s
	s.mu.Lock()
	if s.used+k > s.budget() {
		permanent := w.n+k > s.budget()
		s.mu.Unlock()
		return &FullError{Size: w.n + k, Budget: s.budget(), Permanent: permanent}
	}
	s.used += k
	s.mu.Unlock()
	w.sinceDisk += k
	if w.sinceDisk >= diskCheckEvery || w.sinceDisk == k {
		w.sinceDisk = 0
		if free, ok := freeSpace(s.Dir); ok && free < s.reserveBytes()+diskCheckEvery {
			s.release(k)
			return &FullError{Size: w.n + k, Budget: s.budget(), Disk: true}
		}
	}
	return nil
}

func (w *budgetWriter) Write(p []byte) (int, error) {
	if err := w.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	m, err := w.f.Write(p)
	w.n += int64(m)
	if m < len(p) {
		w.s.release(int64(len(p) - m))
	}
	return m, err
}
