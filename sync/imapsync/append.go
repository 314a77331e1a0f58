package imapsync

import (
	"fmt"
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
		return 0, false, c.wrap("search by Message-ID", err)
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
	defer c.await(fmt.Sprintf("filing a message in %q", folder))()
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
			return 0, c.wrap("leave the open folder before appending", err)
		}
		c.open = false
	}
	cmd := c.c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return 0, c.wrap(fmt.Sprintf("append to %q", folder), err)
	}
	if err := cmd.Close(); err != nil {
		return 0, c.wrap(fmt.Sprintf("append to %q", folder), err)
	}
	d, err := cmd.Wait()
	if err != nil {
		return 0, c.wrap(fmt.Sprintf("append to %q", folder), err)
	}
	return uint32(d.UID), nil
}
