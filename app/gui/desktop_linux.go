//go:build linux || freebsd || openbsd || netbsd

package gui

import (
	"github.com/godbus/dbus/v5"
)

// trayHostPresent reports whether a StatusNotifier host (a panel that shows
// tray items) is on the session bus: without one the tray icon would be
// registered nowhere, so the window must be the app's face.
func trayHostPresent() bool {
	conn, err := dbus.SessionBus()
	if err != nil {
		return false
	}
	obj := conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher")
	v, err := obj.GetProperty("org.kde.StatusNotifierWatcher.IsStatusNotifierHostRegistered")
	if err != nil {
		return false
	}
	ok, _ := v.Value().(bool)
	return ok
}

// meteredNow asks NetworkManager whether the primary connection is metered
// (NM_METERED_YES or NM_METERED_GUESS_YES). ok is false when NetworkManager
// is not there to say.
func meteredNow() (metered, ok bool) {
	conn, err := dbus.SystemBus()
	if err != nil {
		return false, false
	}
	v, err := conn.Object("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager").
		GetProperty("org.freedesktop.NetworkManager.Metered")
	if err != nil {
		return false, false
	}
	m, isU32 := v.Value().(uint32)
	if !isU32 {
		return false, false
	}
	return m == 1 || m == 3, true
}
