//go:build (dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd

package keychain

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"time"

	dbus "github.com/godbus/dbus/v5"
)

// These build constraints are go-keyring's own for its Secret Service
// provider: on these systems the keychain is whatever owns
// org.freedesktop.secrets on the D-Bus session bus.

const (
	msgNoSecretService = "no Secret Service on the D-Bus session bus: install and start gnome-keyring (or KeePassXC / KWallet's Secret Service bridge)"
	msgNoBusAdvice     = "start Inbox Relay from your desktop session, which provides one with gnome-keyring (or KeePassXC / KWallet's Secret Service bridge); on a machine without a desktop run it under dbus-run-session with gnome-keyring-daemon --unlock"
	msgLocked          = "the login keyring is locked (or missing) and was not unlocked: unlock or create it in your desktop's password manager (e.g. Seahorse) and try again"
)

// preflight refuses to let godbus autolaunch a session bus. With
// DBUS_SESSION_BUS_ADDRESS unset and nothing in /run/user/UID, godbus runs
// dbus-launch, which leaves a new dbus-daemon running forever; that bus then
// activates a gnome-keyring-daemon with no unlocked keyring, which also
// never exits. Each start of the program would leak both.
//
// It also says hello to the bus within timeout/2, on a connection of its
// own: a bus that accepts connections but does not answer would otherwise
// hang go-keyring's connect, holding godbus's session-bus lock and this
// keychain's slot for good.
func preflight(timeout time.Duration) error {
	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" || addr == "autolaunch:" {
		conn, err := dbus.SessionBusPrivateNoAutoStartup() // finds /run/user/UID/bus and sets the variable, or fails
		if err != nil {
			return unavailable("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set and none was found in /run/user): %s", msgNoBusAdvice)
		}
		conn.Close()
		if addr = os.Getenv("DBUS_SESSION_BUS_ADDRESS"); addr == "" {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout/2)
	defer cancel()
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return unavailable("the D-Bus session bus at %q did not answer within %s: %s", addr, timeout/2, msgNoBusAdvice)
		}
		return unavailable("cannot connect to the D-Bus session bus at %q (%v): %s", addr, err, msgNoBusAdvice)
	}
	conn.Close()
	return nil
}

// busKey names the keychain a call reaches: the session bus.
func busKey() string { return os.Getenv("DBUS_SESSION_BUS_ADDRESS") }

// classify turns an error from go-keyring's Secret Service provider (other
// than ErrNotFound) into one wrapping ErrUnavailable whose message says what
// a person can do about it. The errors come from godbus (connecting to the
// bus, method call replies) and from go-keyring itself (a prompt that was
// dismissed).
func classify(err error) error {
	if name, ok := dbusErrorName(err); ok {
		switch {
		case name == "org.freedesktop.DBus.Error.ServiceUnknown",
			name == "org.freedesktop.DBus.Error.NameHasNoOwner",
			strings.HasPrefix(name, "org.freedesktop.DBus.Error.Spawn."):
			// Nothing owns org.freedesktop.secrets and it cannot be
			// activated (or its activation failed).
			return unavailable(msgNoSecretService)
		case name == "org.freedesktop.Secret.Error.IsLocked":
			return unavailable(msgLocked)
		case name == "org.freedesktop.DBus.Error.NoReply",
			name == "org.freedesktop.DBus.Error.Timeout",
			name == "org.freedesktop.DBus.Error.TimedOut",
			name == "org.freedesktop.DBus.Error.Disconnected":
			return unavailable("the Secret Service stopped answering (%v): restart your keyring (e.g. gnome-keyring) and try again", err)
		}
		return unavailable("the Secret Service refused the request (%s: %v): check that your keyring is unlocked and working, then try again", name, err)
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "failed to unlock correct collection"):
		// go-keyring's own error after the unlock prompt was dismissed or
		// could not be shown, or when there is no login collection at all.
		return unavailable(msgLocked)
	case errors.Is(err, dbus.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return unavailable("lost the connection to the D-Bus session bus: %s", msgNoBusAdvice)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) || strings.HasPrefix(msg, "dbus: ") {
		// Dialling or authenticating to the address in
		// DBUS_SESSION_BUS_ADDRESS failed.
		return unavailable("cannot connect to the D-Bus session bus at %q (%v): %s", os.Getenv("DBUS_SESSION_BUS_ADDRESS"), err, msgNoBusAdvice)
	}
	return unavailable("the keychain failed (%v): check that your keyring is unlocked and working, then try again", err)
}

// dbusErrorName returns the D-Bus error name of a method call's error reply.
func dbusErrorName(err error) (string, bool) {
	var v dbus.Error
	if errors.As(err, &v) {
		return v.Name, true
	}
	var p *dbus.Error
	if errors.As(err, &p) && p != nil {
		return p.Name, true
	}
	return "", false
}
