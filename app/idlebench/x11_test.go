//go:build linux

package idlebench

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// closeWindow asks the X client that owns window id to close it, as a
// window manager does when the user clicks the title bar's close button:
// a WM_DELETE_WINDOW client message (ICCCM 4.2.8.1). Xvfb runs no window
// manager and no packaged tool sends this message, so it speaks the X11
// protocol itself, little-endian, over the display's local socket.
func closeWindow(display string, id uint32) error {
	n := strings.TrimPrefix(display, ":")
	if i := strings.IndexByte(n, '.'); i >= 0 {
		n = n[:i]
	}
	c, err := net.DialTimeout("unix", "/tmp/.X11-unix/X"+n, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	le := binary.LittleEndian

	// Connection setup, no authorization (Xvfb's local socket allows it).
	setup := make([]byte, 12)
	setup[0] = 'l'
	le.PutUint16(setup[2:], 11)
	if _, err := c.Write(setup); err != nil {
		return err
	}
	head := make([]byte, 8)
	if _, err := io.ReadFull(c, head); err != nil {
		return err
	}
	if head[0] != 1 {
		return fmt.Errorf("the X server refused the connection (status %d)", head[0])
	}
	if _, err := io.CopyN(io.Discard, c, int64(le.Uint16(head[6:]))*4); err != nil {
		return err
	}

	reply := make([]byte, 32)
	intern := func(name string) (uint32, error) {
		pad := (4 - len(name)%4) % 4
		req := make([]byte, 8+len(name)+pad)
		req[0] = 16 // InternAtom
		le.PutUint16(req[2:], uint16(len(req)/4))
		le.PutUint16(req[4:], uint16(len(name)))
		copy(req[8:], name)
		if _, err := c.Write(req); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return 0, err
		}
		if reply[0] != 1 {
			return 0, fmt.Errorf("InternAtom %s: X error %d", name, reply[1])
		}
		return le.Uint32(reply[8:]), nil
	}
	protocols, err := intern("WM_PROTOCOLS")
	if err != nil {
		return err
	}
	del, err := intern("WM_DELETE_WINDOW")
	if err != nil {
		return err
	}

	req := make([]byte, 44)
	req[0] = 25 // SendEvent; no propagation, empty mask: to the window's owner
	le.PutUint16(req[2:], 11)
	le.PutUint32(req[4:], id)
	ev := req[12:]
	ev[0] = 33 // ClientMessage
	ev[1] = 32 // format
	le.PutUint32(ev[4:], id)
	le.PutUint32(ev[8:], protocols)
	le.PutUint32(ev[12:], del)
	// GetInputFocus: its reply tells that the event was sent.
	sync := []byte{43, 0, 1, 0}
	if _, err := c.Write(append(req, sync...)); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, reply); err != nil {
		return err
	}
	if reply[0] != 1 {
		return fmt.Errorf("SendEvent: X error %d", reply[1])
	}
	return nil
}
