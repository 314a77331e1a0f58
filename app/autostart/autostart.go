// Package autostart starts the tray app when the user logs in: an XDG
// autostart entry on Linux and other Unix desktops, a LaunchAgent on macOS,
// the Run key of the current user on Windows. Only the current user's
// session is touched; nothing needs administrator rights.
package autostart

// Entry is the login item of one program. The zero value is not usable;
// set every field.
type Entry struct {
	// ID names the entry (reverse-DNS, e.g. com.inboxrelay.app); it is the
	// file or value name.
	ID string
	// Name is what the desktop shows.
	Name string
	// Exec is the absolute path of the program; Args are its arguments.
	Exec string
	Args []string
}

// Enabled reports whether the entry is installed.
func (e Entry) Enabled() bool { return e.enabled() }

// SetEnabled installs (on) or removes (off) the entry. Both are idempotent.
func (e Entry) SetEnabled(on bool) error {
	if on {
		return e.install()
	}
	return e.remove()
}
