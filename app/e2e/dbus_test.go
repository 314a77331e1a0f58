package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// trayHost is a StatusNotifierWatcher with a host, as a desktop panel
// provides: items register with it, and the test reads their menus over
// com.canonical.dbusmenu as the panel would.
type trayHost struct {
	conn  *dbus.Conn
	mu    sync.Mutex
	items []string // bus names of registered items
}

func (h *trayHost) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasPrefix(service, "/") {
		service = string(sender)
	}
	h.items = append(h.items, service)
	return nil
}

func (h *trayHost) RegisterStatusNotifierHost(service string) *dbus.Error { return nil }

func startTrayHost(t *testing.T) *trayHost {
	t.Helper()
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &trayHost{conn: conn}
	const path = "/StatusNotifierWatcher"
	const iface = "org.kde.StatusNotifierWatcher"
	if err := conn.Export(h, path, iface); err != nil {
		t.Fatal(err)
	}
	if _, err := prop.Export(conn, path, prop.Map{iface: {
		"IsStatusNotifierHostRegistered": {Value: true},
		"ProtocolVersion":                {Value: int32(0)},
		"RegisteredStatusNotifierItems":  {Value: []string{}},
	}}); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(iface, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v (%v)", iface, err, reply)
	}
	return h
}

// menu returns the labels of the first registered item's menu, top level.
func (h *trayHost) menu() ([]string, map[string]int32, error) {
	h.mu.Lock()
	items := append([]string(nil), h.items...)
	h.mu.Unlock()
	if len(items) == 0 {
		return nil, nil, fmt.Errorf("no tray item registered")
	}
	var rev uint32
	var layout struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	obj := h.conn.Object(items[0], "/StatusNotifierMenu")
	if err := obj.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &layout); err != nil {
		return nil, nil, err
	}
	var labels []string
	ids := map[string]int32{}
	for _, c := range layout.Children {
		body, ok := c.Value().([]any)
		if !ok || len(body) < 2 {
			continue
		}
		id, _ := body[0].(int32)
		props, _ := body[1].(map[string]dbus.Variant)
		if v, ok := props["visible"]; ok {
			if vis, _ := v.Value().(bool); !vis {
				continue
			}
		}
		l := ""
		if v, ok := props["label"]; ok {
			l, _ = v.Value().(string)
		}
		labels = append(labels, l)
		ids[l] = id
	}
	return labels, ids, nil
}

// click activates a menu item as a panel does.
func (h *trayHost) click(id int32) error {
	h.mu.Lock()
	item := h.items[0]
	h.mu.Unlock()
	return h.conn.Object(item, "/StatusNotifierMenu").Call("com.canonical.dbusmenu.Event", 0,
		id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
}

// notifications is a notification server (org.freedesktop.Notifications)
// that records what the app shows.
type notifications struct {
	mu   sync.Mutex
	seen []string // "summary: body"
}

func (n *notifications) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seen = append(n.seen, summary+": "+body)
	return uint32(len(n.seen)), nil
}

func (n *notifications) GetCapabilities() ([]string, *dbus.Error) { return []string{"body"}, nil }

func (n *notifications) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "e2e", "inboxrelay", "1", "1.2", nil
}

func (n *notifications) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.seen...)
}

func startNotifications(t *testing.T) *notifications {
	t.Helper()
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifications{}
	if err := conn.Export(n, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.Notifications: %v (%v)", err, reply)
	}
	return n
}
