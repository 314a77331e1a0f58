//go:build !linux

package keyringtest

import (
	"errors"
	"fmt"
)

// Start is only implemented on Linux, where the Secret Service can be run
// privately; elsewhere it returns an error wrapping errors.ErrUnsupported
// rather than touching the real keychain.
func Start() (stop func(), err error) {
	return nil, fmt.Errorf("keyringtest: a private keychain can only be started on Linux: %w", errors.ErrUnsupported)
}

// StartBus is only implemented on Linux; elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func StartBus() (addr string, stop func(), err error) {
	return "", nil, fmt.Errorf("keyringtest: a private D-Bus can only be started on Linux: %w", errors.ErrUnsupported)
}
