//go:build !darwin && !windows

package autostart

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// path is $XDG_CONFIG_HOME/autostart/ID.desktop (XDG Autostart spec).
func (e Entry) path() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "autostart", e.ID+".desktop"), nil
}

func (e Entry) enabled() bool {
	p, err := e.path()
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// quote quotes an Exec argument as the Desktop Entry spec asks.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`%") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\\\`, `"`, `\\"`, "`", "\\\\`", `$`, `\\$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

func (e Entry) install() error {
	p, err := e.path()
	if err != nil {
		return err
	}
	args := []string{quote(e.Exec)}
	for _, a := range e.Args {
		args = append(args, quote(a))
	}
	body := fmt.Sprintf("[Desktop Entry]\nType=Application\nName=%s\nExec=%s\nTerminal=false\nX-GNOME-Autostart-enabled=true\n", e.Name, strings.Join(args, " "))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	return nil
}

func (e Entry) remove() error {
	p, err := e.path()
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop starting at login: %w", err)
	}
	return nil
}
