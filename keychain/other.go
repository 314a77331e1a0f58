//go:build !((dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd)

package keychain

// preflight has nothing to check where the keychain is not on D-Bus.
func preflight() error { return nil }

// classify wraps an error from the macOS or Windows keychain (other than
// ErrNotFound) in ErrUnavailable.
func classify(err error) error {
	return unavailable("the keychain failed (%v): check that it is unlocked and working, then try again", err)
}
