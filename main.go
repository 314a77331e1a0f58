// Command inboxrelay relays a mailbox to the customer-success platform from
// the user's own machine. Without a command it starts the desktop app (the
// tray app); with one, the command line. See README.md.
package main

import (
	"os"

	"github.com/inboxrelay/inboxrelay/app/cli"
	"github.com/inboxrelay/inboxrelay/app/gui"
	"github.com/inboxrelay/inboxrelay/app/initlog"
)

func main() {
	initlog.Done()
	if gui.IsGUI(os.Args[1:]) {
		os.Exit(gui.Main(os.Args[1:], os.Stderr))
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
