// Command inboxrelay relays a mailbox to the customer-success platform from
// the user's own machine. Without a command it starts the desktop app (the
// tray app); with one, the command line. See README.md.
//
// GOMAXPROCS is set once at start: Go 1.25's runtime otherwise reads the
// cgroup's CPU quota again every second, a wake-up for each second the
// app rests, to follow limits that do not change on a desktop.
//
//go:debug updatemaxprocs=0
package main

import (
	_ "embed"
	"fmt"
	"os"

	"github.com/inboxrelay/inboxrelay/app/cli"
	"github.com/inboxrelay/inboxrelay/app/gui"
	"github.com/inboxrelay/inboxrelay/app/initlog"
	"github.com/inboxrelay/inboxrelay/app/profile"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

// fyneApp is FyneApp.toml: the one place the version is written.
//
//go:embed FyneApp.toml
var fyneApp []byte

func main() {
	initlog.Done()
	v, err := version.FromFyneApp(fyneApp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	version.Version = v
	stop := profile.Start()
	var code int
	if gui.IsGUI(os.Args[1:]) {
		code = gui.Main(os.Args[1:], os.Stderr)
	} else {
		code = cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}
