// Package instance keeps the tray app to one instance per home: the first
// listens on a unix socket in the home, and a second launch asks it to
// bring its window forward instead of starting. No network port is opened;
// the socket lives in the home (mode 0700), so only its owner reaches it.
package instance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// SocketName is the socket's file name inside the home.
const SocketName = "ui.sock"

// showCommand is the one request a second launch sends.
const showCommand = "show"

// Listen serves the socket under dir, calling show for each "show"
// request, until ctx ends. The caller must hold the home's lock: any
// socket file already there is a dead instance's and is replaced. It
// returns once listening; serving goes on in the background.
func Listen(ctx context.Context, dir string, show func()) error {
	path := filepath.Join(dir, SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace the old instance socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen for a second launch: %w", err)
	}
	context.AfterFunc(ctx, func() { ln.Close(); os.Remove(path) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil && line == showCommand+"\n" {
					show()
					fmt.Fprintln(c, "ok")
				}
			}()
		}
	}()
	return nil
}

// Show asks the instance running on dir to bring its window forward. It
// fails when no tray app listens there (none runs, or `inboxrelay run`
// holds the home).
func Show(dir string) error {
	c, err := net.DialTimeout("unix", filepath.Join(dir, SocketName), 5*time.Second)
	if err != nil {
		return fmt.Errorf("reach the running Inbox Relay: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, showCommand); err != nil {
		return fmt.Errorf("reach the running Inbox Relay: %w", err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || reply != "ok\n" {
		return fmt.Errorf("the running Inbox Relay did not answer: %v", err)
	}
	return nil
}
