// Command inboxrelay relays a mailbox to the customer-success platform from
// the user's own machine. See README.md.
package main

import (
	"os"

	"github.com/inboxrelay/inboxrelay/app/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
