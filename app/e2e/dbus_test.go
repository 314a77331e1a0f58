//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// trayHost is a real StatusNotifier host: gtk-sni-tray-standalone (a
// panel showing tray items, with its own StatusNotifierWatcher), started
// on the test's display. The test reads the app's item as the panel does:
// its properties and its menu over com.canonical.dbusmenu; and it counts
// the menu's LayoutUpdated signals (each one is the panel told to fetch
// the whole menu again).
type trayHost struct {
	t    *testing.T
	conn *dbus.Conn
	cmd  *exec.Cmd

	mu      sync.Mutex
	layouts int // LayoutUpdated signals seen from the app's item
	sender  string
}

// startTrayHost starts the panel at the top of the display, dark or light.
func startTrayHost(t *testing.T, display string, dark bool) *trayHost {
	t.Helper()
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &trayHost{t: t, conn: conn}
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("com.canonical.dbusmenu"), dbus.WithMatchMember("LayoutUpdated")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	go func() {
		for s := range sigs {
			h.mu.Lock()
			if s.Name == "com.canonical.dbusmenu.LayoutUpdated" && (h.sender == "" || s.Sender == h.sender) {
				h.layouts++
			}
			h.mu.Unlock()
		}
	}()
	color := "#f0f0f0"
	if dark {
		color = "#1e1e1e"
	}
	h.cmd = exec.Command("gtk-sni-tray-standalone", "--watcher", "--top", "--end", "--size", "24", "--color", color)
	h.cmd.Env = append(os.Environ(), "DISPLAY="+display)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { h.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { syscall.Kill(-h.cmd.Process.Pid, syscall.SIGTERM); <-exited })
	deadline := time.Now().Add(30 * time.Second)
	for !h.hostRegistered() {
		if time.Now().After(deadline) {
			t.Fatal("the tray host did not register with its watcher")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return h
}

func (h *trayHost) hostRegistered() bool {
	v, err := h.conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher").GetProperty("org.kde.StatusNotifierWatcher.IsStatusNotifierHostRegistered")
	if err != nil {
		return false
	}
	ok, _ := v.Value().(bool)
	return ok
}

// item returns the bus name of the first item registered with the
// watcher, "" when none is.
func (h *trayHost) item() string {
	v, err := h.conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher").GetProperty("org.kde.StatusNotifierWatcher.RegisteredStatusNotifierItems")
	if err != nil {
		return ""
	}
	items, _ := v.Value().([]string)
	if len(items) == 0 {
		return ""
	}
	name, _, _ := strings.Cut(items[0], "/")
	var owner string
	if err := h.conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner); err == nil {
		h.mu.Lock()
		h.sender = owner
		h.mu.Unlock()
	}
	return name
}

// property reads a property of the app's item ("Title", "ToolTip").
func (h *trayHost) property(name string) (dbus.Variant, error) {
	item := h.item()
	if item == "" {
		return dbus.Variant{}, fmt.Errorf("no tray item registered")
	}
	return h.conn.Object(item, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem." + name)
}

// tooltip returns the item's tooltip title.
func (h *trayHost) tooltip() string {
	v, err := h.property("ToolTip")
	if err != nil {
		return ""
	}
	// (sa(iiay)ss): icon name, icon pixmaps, title, text
	body, ok := v.Value().([]any)
	if !ok || len(body) < 4 {
		return ""
	}
	s, _ := body[2].(string)
	if s == "" {
		s, _ = body[3].(string)
	}
	return s
}

// layoutUpdates returns how many LayoutUpdated signals the app's menu
// sent so far.
func (h *trayHost) layoutUpdates() int {
	h.item()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.layouts
}

// menu returns the labels of the app's menu, top level, and their ids.
func (h *trayHost) menu() ([]string, map[string]int32, error) {
	item := h.item()
	if item == "" {
		return nil, nil, fmt.Errorf("no tray item registered")
	}
	var rev uint32
	var layout struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	obj := h.conn.Object(item, "/StatusNotifierMenu")
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

// first returns the menu's first line, "" when there is none.
func (h *trayHost) first() string {
	l, _, err := h.menu()
	if err != nil || len(l) == 0 {
		return ""
	}
	return l[0]
}

// click activates a menu item as a panel does.
func (h *trayHost) click(label string) {
	h.t.Helper()
	_, ids, err := h.menu()
	if err != nil {
		h.t.Fatal(err)
	}
	id, ok := ids[label]
	if !ok {
		h.t.Fatalf("no %q in the tray menu", label)
	}
	if err := h.conn.Object(h.item(), "/StatusNotifierMenu").Call("com.canonical.dbusmenu.Event", 0,
		id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err; err != nil {
		h.t.Fatal(err)
	}
}

// notifications is a notification server (org.freedesktop.Notifications)
// that records what the app shows and can click a notification, as a
// person does, by emitting ActionInvoked with its default action.
type notifications struct {
	conn *dbus.Conn
	mu   sync.Mutex
	seen []string // "summary: body"
	acts [][]string
}

func (n *notifications) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seen = append(n.seen, summary+": "+body)
	n.acts = append(n.acts, actions)
	return uint32(len(n.seen)), nil
}

func (n *notifications) CloseNotification(id uint32) *dbus.Error { return nil }

func (n *notifications) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"body", "actions"}, nil
}

func (n *notifications) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "e2e", "inboxrelay", "1", "1.2", nil
}

func (n *notifications) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.seen...)
}

// click clicks notification number i (from 1) on its default action; it
// fails when the notification offered none.
func (n *notifications) click(t *testing.T, i int) {
	t.Helper()
	n.mu.Lock()
	acts := n.acts[i-1]
	n.mu.Unlock()
	if len(acts) < 2 || acts[0] != "default" {
		t.Fatalf("notification %d has no default action: %q", i, acts)
	}
	if err := n.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", uint32(i), "default"); err != nil {
		t.Fatal(err)
	}
}

func startNotifications(t *testing.T) *notifications {
	t.Helper()
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifications{conn: conn}
	if err := conn.Export(n, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.Notifications: %v (%v)", err, reply)
	}
	return n
}
