//go:build !(linux || freebsd || openbsd || netbsd)

package gui

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/systray"
)

// trayHostPresent: macOS and Windows always have a tray (menu bar extras,
// the notification area).
func trayHostPresent() bool { return true }

// watchTrayHost: the tray never comes or goes on macOS and Windows.
func watchTrayHost(ctx context.Context, changed func(present bool)) {}

// meteredNow: the OS is not asked yet on macOS and Windows.
func meteredNow() (metered, ok bool) { return false, false }

type desktopNotifier struct{}

// newDesktopNotifier: fyne's own notifications are used on macOS and
// Windows (a click brings the app forward there).
func newDesktopNotifier(ctx context.Context, appName, icon string, onClick func()) *desktopNotifier {
	return nil
}

func (n *desktopNotifier) send(note *fyne.Notification) {}

// panelDark guesses whether the panel is dark: INBOXRELAY_PANEL decides
// when set; the Windows taskbar is dark unless the system uses the light
// theme (its default since Windows 10 is dark); macOS's menu bar follows
// the system appearance.
func panelDark() bool {
	switch strings.ToLower(os.Getenv("INBOXRELAY_PANEL")) {
	case "dark":
		return true
	case "light":
		return false
	}
	switch runtime.GOOS {
	case "windows":
		return !systemUsesLightTheme()
	case "darwin":
		out, err := exec.Command("defaults", "read", "-g", "AppleInterfaceStyle").Output()
		return err == nil && strings.Contains(string(out), "Dark")
	}
	return true
}

// newTray returns fyne's own tray: on macOS and Windows it needs fyne's
// main loop (and its hidden window costs no GL driver of note).
func newTray(a fyne.App, _ func(func())) Tray {
	if d, ok := a.(desktop.App); ok {
		return desktopTray{d}
	}
	return nil
}

// desktopTray is the tray of a desktop fyne app. Its title is the app's
// name (fyne sets it from the app's metadata).
type desktopTray struct{ app desktop.App }

func (t desktopTray) SetIcon(icon fyne.Resource) { t.app.SetSystemTrayIcon(icon) }
func (t desktopTray) SetMenu(menu *fyne.Menu)    { t.app.SetSystemTrayMenu(menu) }
func (t desktopTray) SetTooltip(text string)     { systray.SetTooltip(text) }

// restingLoop: fyne's loop never rests on macOS and Windows, where the
// tray's clicks go through fyne's own queue, which a rest would hold up.
const restingLoop = false
