//go:build linux

package keyringtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	dbus "github.com/godbus/dbus/v5"
)

// connect opens a private connection (never godbus's shared session
// connection, which would outlive the bus under test).
func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func ownerPID(t *testing.T, conn *dbus.Conn, name string) int {
	t.Helper()
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, name).Store(&pid); err != nil {
		t.Fatalf("pid of %s: %v", name, err)
	}
	return int(pid)
}

func processName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// gone reports whether pid no longer exists (not even as a zombie).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// socketDir extracts the temporary directory from "unix:path=DIR/bus,guid=...".
func socketDir(t *testing.T, addr string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(addr, "unix:path=")
	if !ok {
		t.Fatalf("bus address %q is not unix:path=", addr)
	}
	path, _, _ := strings.Cut(rest, ",")
	return filepath.Dir(path)
}

func TestStart(t *testing.T) {
	// An existing session bus stands in for the developer's own: Start must
	// neither use it nor leave it changed.
	outer, stopOuter, err := StartBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopOuter)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", outer)

	stop, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == outer || addr == "" {
		t.Fatalf("DBUS_SESSION_BUS_ADDRESS = %q, want the private bus", addr)
	}
	conn := connect(t, addr)
	busPID := ownerPID(t, conn, "org.freedesktop.DBus")
	keyringPID := ownerPID(t, conn, "org.freedesktop.secrets")
	if got := processName(keyringPID); got != "gnome-keyring-d" {
		t.Fatalf("org.freedesktop.secrets is owned by %q (pid %d), want gnome-keyring-daemon", got, keyringPID)
	}
	if got := processName(busPID); got != "dbus-daemon" {
		t.Fatalf("bus pid %d is %q, want dbus-daemon", busPID, got)
	}
	v, err := conn.Object("org.freedesktop.secrets", "/org/freedesktop/secrets/collection/login").
		GetProperty("org.freedesktop.Secret.Collection.Locked")
	if err != nil || v.Value() != false {
		t.Fatalf("login collection Locked = %v, %v; want false", v, err)
	}

	// Nothing of ours may appear on the outer bus.
	var names []string
	if err := connect(t, outer).BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, "org.freedesktop.secrets") || len(names) != 2 {
		t.Fatalf("outer bus names = %v, want only the bus and this test's connection", names)
	}

	dir := socketDir(t, addr)
	stop()
	stop() // idempotent
	if got := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); got != outer {
		t.Fatalf("after stop DBUS_SESSION_BUS_ADDRESS = %q, want %q restored", got, outer)
	}
	for _, pid := range []int{busPID, keyringPID} {
		if !gone(pid) {
			t.Fatalf("pid %d (%s) still exists after stop", pid, processName(pid))
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary directory %s still there after stop: %v", dir, err)
	}
}

func TestStartRestoresUnsetAddress(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	os.Unsetenv("DBUS_SESSION_BUS_ADDRESS")
	stop, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if v, ok := os.LookupEnv("DBUS_SESSION_BUS_ADDRESS"); ok {
		t.Fatalf("after stop DBUS_SESSION_BUS_ADDRESS = %q, want unset as before", v)
	}
}

func TestStartTwice(t *testing.T) {
	stop, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if stop2, err := Start(); err == nil {
		stop2()
		t.Fatal("second Start succeeded while the first was running")
	}
}

func TestStartMissingBinary(t *testing.T) {
	tests := []struct {
		name    string
		present []string // executables linked into PATH
		want    string
	}{
		{"no gnome-keyring", []string{"dbus-daemon"}, "gnome-keyring-daemon not found: run `make test`, which installs it"},
		{"no dbus-daemon", []string{"gnome-keyring-daemon"}, "dbus-daemon not found: run `make test`, which installs it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			for _, exe := range tt.present {
				real, err := exec.LookPath(exe)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(real, filepath.Join(bin, exe)); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", bin)
			stop, err := Start()
			if err == nil {
				stop()
				t.Fatal("Start succeeded with a binary missing")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestStartBus(t *testing.T) {
	before := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	addr, stop, err := StartBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if got := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); got != before {
		t.Fatalf("StartBus changed DBUS_SESSION_BUS_ADDRESS to %q", got)
	}
	conn := connect(t, addr)
	busPID := ownerPID(t, conn, "org.freedesktop.DBus")
	var activatable []string
	if err := conn.BusObject().Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&activatable); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(activatable, []string{"org.freedesktop.DBus"}) {
		t.Fatalf("activatable names = %v, want none but the bus", activatable)
	}
	dir := socketDir(t, addr)
	stop()
	if !gone(busPID) {
		t.Fatalf("dbus-daemon pid %d still exists after stop", busPID)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary directory %s still there after stop: %v", dir, err)
	}
}
