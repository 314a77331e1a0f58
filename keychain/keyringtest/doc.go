// Package keyringtest runs a private, throw-away Secret Service for tests:
// its own D-Bus session bus and its own gnome-keyring-daemon with a fresh,
// unlocked login keyring in a temporary directory. Tests that use the real
// keychain (package keychain, CLI tests that run the binary) call Start from
// TestMain, so they never read or write the keyring of the person running
// them and need no desktop session:
//
//	func TestMain(m *testing.M) {
//		stop, err := keyringtest.Start()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
//
// Child processes see the private keychain through DBUS_SESSION_BUS_ADDRESS:
// a test that sets exec.Cmd.Env itself must start from os.Environ() or copy
// that variable.
//
// It needs dbus-daemon and gnome-keyring-daemon on PATH (Debian packages
// dbus-daemon and gnome-keyring); `make test` installs them. Only Linux is
// supported; elsewhere Start returns an error wrapping errors.ErrUnsupported.
package keyringtest
