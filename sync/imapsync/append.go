package imapsync

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
)

// FindMessageID looks in folder (opened read-only) for a message whose
// Message-ID header is messageID ("<…>"), and returns its highest UID.
func (c *Conn) FindMessageID(folder, messageID string) (uid uint32, found bool, err error) {
	defer c.await("looking for a message by its Message-ID")()
	if _, err := c.Examine(folder); err != nil {
		return 0, false, err
	}
	d, err := c.c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: messageID}},
	}, nil).Wait()
	if err != nil {
		return 0, false, c.wrap("looking for a message by its Message-ID", err)
	}
	for _, u := range d.AllUIDs() {
		uid = max(uid, uint32(u))
	}
	return uid, uid != 0, nil
}

// Append stores msg in folder with the \Seen flag and returns its UID when
// the server tells it (UIDPLUS, RFC 4315), else 0. It leaves the folder
// that is open, if any, first.
func (c *Conn) Append(folder string, msg []byte, date time.Time) (uint32, error) {
	return c.AppendFrom(folder, bytes.NewReader(msg), int64(len(msg)), date)
}

// AppendFrom is Append for a message of size bytes read from r, so that a
// big message is never whole in memory. r must yield exactly size bytes:
// when it fails, or yields fewer or more, the error says the message could
// not be read (not that the server failed), and the connection is closed,
// out of step with the server after a literal cut short.
func (c *Conn) AppendFrom(folder string, r io.Reader, size int64, date time.Time) (uint32, error) {
	what := fmt.Sprintf("filing a message in %q", folder)
	defer c.await(what)()
	// Courier-IMAP refuses APPEND while a folder is open read-only ("NO
	// Current box is selected READ-ONLY"), and FindMessageID leaves Sent
	// open that way. UNSELECT (RFC 3691) where offered, else CLOSE: this
	// connection only ever EXAMINEs, and CLOSE removes nothing from a
	// folder opened by EXAMINE (RFC 3501 6.4.2).
	if c.open {
		leave := c.c.UnselectAndExpunge
		if c.c.Caps().Has(imap.CapUnselect) {
			leave = c.c.Unselect
		}
		if err := leave().Wait(); err != nil {
			return 0, c.wrap("leaving the open folder before filing a message", err)
		}
		c.open = false
	}
	cmd := c.c.Append(folder, size, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	src := &sourceReader{r: r}
	n, err := io.Copy(cmd, src)
	var local error // the message could not be read as announced: no fault of the server
	switch {
	case src.err != nil:
		local = src.err
	case src.n > size: // go-imap refused to write past the literal
		local = fmt.Errorf("it holds more than the %d bytes announced", size)
	case err == nil && n != size:
		local = fmt.Errorf("it ended before the %d bytes announced", size)
	}
	if err != nil || local != nil {
		// A literal cut short leaves the connection out of step: close it.
		cmd.Close()
		c.c.Close()
		if local != nil {
			return 0, fmt.Errorf("read the message to file in %q: %w", folder, local)
		}
		return 0, c.wrap(what, err)
	}
	if err := cmd.Close(); err != nil {
		return 0, c.wrap(what, err)
	}
	d, err := cmd.Wait()
	if err != nil {
		return 0, c.wrap(what, err)
	}
	return uint32(d.UID), nil
}

// sourceReader counts the bytes read from the reader it wraps and keeps
// its error other than io.EOF: a message that cannot be read is told from
// a connection that broke.
type sourceReader struct {
	r   io.Reader
	n   int64
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}
