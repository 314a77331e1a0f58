//go:build !(linux || freebsd || openbsd || netbsd)

package gui

// trayHostPresent: macOS and Windows always have a tray (menu bar extras,
// the notification area).
func trayHostPresent() bool { return true }

// meteredNow: the OS is not asked yet on macOS and Windows.
func meteredNow() (metered, ok bool) { return false, false }
