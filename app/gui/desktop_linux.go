//go:build linux || freebsd || openbsd || netbsd

package gui

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"github.com/godbus/dbus/v5"
)

const (
	watcherName  = "org.kde.StatusNotifierWatcher"
	watcherPath  = "/StatusNotifierWatcher"
	notifierName = "org.freedesktop.Notifications"
	notifierPath = "/org/freedesktop/Notifications"
)

// trayHostPresent reports whether a StatusNotifier host (a panel that shows
// tray items) is on the session bus: without one the tray icon would be
// registered nowhere, so the window must be the app's face.
func trayHostPresent() bool {
	conn, err := dbus.SessionBus()
	if err != nil {
		return false
	}
	return hostRegistered(conn)
}

func hostRegistered(conn *dbus.Conn) bool {
	v, err := conn.Object(watcherName, watcherPath).GetProperty(watcherName + ".IsStatusNotifierHostRegistered")
	if err != nil {
		return false
	}
	ok, _ := v.Value().(bool)
	return ok
}

// watchTrayHost calls changed(present) whenever a tray host appears or
// goes away (a panel started after the app, or restarted), until ctx
// ends. It listens on a connection of its own: systray's handler on the
// shared one takes every signal it sees for its own.
func watchTrayHost(ctx context.Context, changed func(present bool)) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	for _, opt := range [][]dbus.MatchOption{
		{dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, watcherName)},
		{dbus.WithMatchInterface(watcherName), dbus.WithMatchMember("StatusNotifierHostRegistered")},
		{dbus.WithMatchInterface(watcherName), dbus.WithMatchMember("StatusNotifierHostUnregistered")},
	} {
		if err := conn.AddMatchSignal(opt...); err != nil {
			return
		}
	}
	sigs := make(chan *dbus.Signal, 8)
	conn.Signal(sigs)
	last := hostRegistered(conn)
	for range sigs {
		now := hostRegistered(conn)
		if now && !last {
			registerItem()
		}
		if now != last {
			last = now
			changed(now)
		}
	}
}

// registerItem registers the app's tray item with the watcher again.
// systray does so when the watcher's name appears, but some watchers take
// the name before they answer (gtk-sni-tray's fails that call with
// UnknownObject) and systray never tries again: a panel started after the
// app would then stay empty. The call must come from the connection
// systray exported the item on, the shared session bus, whose name the
// watcher records.
func registerItem() {
	conn, err := dbus.SessionBus()
	if err != nil {
		return
	}
	conn.Object(watcherName, watcherPath).Call(watcherName+".RegisterStatusNotifierItem", 0, "/StatusNotifierItem")
}

// desktopNotifier sends notifications over org.freedesktop.Notifications
// with a default action, so that clicking one opens the window (fyne's
// own have no action). Safe for concurrent use.
type desktopNotifier struct {
	conn    *dbus.Conn
	appName string
	icon    string
	mu      sync.Mutex
	ours    map[uint32]bool // notifications sent, by id
}

// newDesktopNotifier connects to the session bus and calls onClick when one
// of its notifications is clicked; nil when there is no session bus.
func newDesktopNotifier(ctx context.Context, appName, icon string, onClick func()) *desktopNotifier {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	n := &desktopNotifier{conn: conn, appName: appName, icon: icon, ours: map[uint32]bool{}}
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(notifierName), dbus.WithMatchMember("ActionInvoked")); err != nil {
		return n
	}
	sigs := make(chan *dbus.Signal, 8)
	conn.Signal(sigs)
	go func() {
		for s := range sigs {
			if len(s.Body) < 2 {
				continue
			}
			id, _ := s.Body[0].(uint32)
			n.mu.Lock()
			ours := n.ours[id]
			n.mu.Unlock()
			if ours {
				onClick()
			}
		}
	}()
	return n
}

// send shows a notification; its default action (a click) opens the
// window. Errors are dropped: a desktop without a notification server
// simply shows none.
func (n *desktopNotifier) send(note *fyne.Notification) {
	var id uint32
	err := n.conn.Object(notifierName, notifierPath).Call(notifierName+".Notify", 0,
		n.appName, uint32(0), n.icon, note.Title, note.Content,
		[]string{"default", "Open Inbox Relay"}, map[string]dbus.Variant{}, int32(-1)).Store(&id)
	if err == nil {
		n.mu.Lock()
		n.ours[id] = true
		n.mu.Unlock()
	}
}

// panelDark guesses whether the desktop's panel (where the tray icon
// shows) is dark; the app's own theme says nothing about it. The
// INBOXRELAY_PANEL environment variable ("dark" or "light") decides when
// set. GNOME's and most of its relatives' top bars are dark in light and
// dark styles alike; KDE Plasma's panel follows its Plasma style or colour
// scheme; elsewhere the desktop's dark preference is the best guess.
func panelDark() bool {
	switch strings.ToLower(os.Getenv("INBOXRELAY_PANEL")) {
	case "dark":
		return true
	case "light":
		return false
	}
	desk := strings.ToUpper(os.Getenv("XDG_CURRENT_DESKTOP"))
	switch {
	case strings.Contains(desk, "GNOME"), strings.Contains(desk, "UNITY"), strings.Contains(desk, "PANTHEON"), strings.Contains(desk, "CINNAMON"):
		return true
	case strings.Contains(desk, "KDE"):
		cfg := os.Getenv("XDG_CONFIG_HOME")
		if cfg == "" {
			home, _ := os.UserHomeDir()
			cfg = filepath.Join(home, ".config")
		}
		if theme := iniValue(filepath.Join(cfg, "plasmarc"), "Theme", "name"); theme != "" && theme != "default" {
			return strings.Contains(strings.ToLower(theme), "dark")
		}
		return strings.Contains(strings.ToLower(iniValue(filepath.Join(cfg, "kdeglobals"), "General", "ColorScheme")), "dark")
	}
	out, err := exec.Command("gsettings", "get", "org.gnome.desktop.interface", "color-scheme").Output()
	return err == nil && strings.Contains(string(out), "dark")
}

// iniValue reads key in [section] of an INI file; "" when absent.
func iniValue(path, section, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == "["+section+"]"
			continue
		}
		if k, v, ok := strings.Cut(line, "="); in && ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
