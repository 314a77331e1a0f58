//go:build !((dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd)

package keychain

import "time"

// preflight has nothing to check where the keychain is not on D-Bus.
func preflight(time.Duration) error { return nil }

// busKey is the one keychain of the process.
func busKey() string { return "" }

// classify wraps an error from the macOS or Windows keychain (other than
// ErrNotFound) in ErrUnavailable.
func classify(err error) error {
	return unavailable("the keychain failed (%v): check that it is unlocked and working, then try again", err)
}
