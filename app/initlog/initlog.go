// Package initlog keeps the standard log quiet while the program's
// packages initialise, and gives it back with Done. fyne's lang package
// logs an error at init when the locale is C.UTF-8 (as in most containers),
// which would otherwise land on the stderr of every command, the command
// line's included.
//
// It works because packages initialise in import-path order among those
// whose imports are ready (Go spec, "Package initialization"): this one
// imports only the standard library and sorts before the fyne packages'
// third-party dependencies, so its init runs before theirs. Import it from
// main.
package initlog

import (
	"io"
	"log"
	"os"
)

func init() { log.SetOutput(io.Discard) }

// Done restores the standard log's output to stderr. Call it first thing
// in main.
func Done() { log.SetOutput(os.Stderr) }
