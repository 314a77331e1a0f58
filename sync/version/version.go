// Package version holds the connector's version. It is written in one
// place, FyneApp.toml's [Details] Version (which `fyne package` reads too):
// main embeds that file and sets Version from it at start, so the
// `version` command, the User-Agent, the heartbeat, the window's About
// and the packages all say the same.
package version

import (
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// Version is the connector's version, set by main from FyneApp.toml
// before anything else runs; "dev" in a binary that did not (the tests of
// the engine's packages).
var Version = "dev"

// FromFyneApp returns [Details] Version of a FyneApp.toml.
func FromFyneApp(b []byte) (string, error) {
	var f struct {
		Details struct {
			Version string
		}
	}
	if _, err := toml.Decode(string(b), &f); err != nil {
		return "", fmt.Errorf("FyneApp.toml: %w", err)
	}
	v := strings.TrimSpace(f.Details.Version)
	if v == "" || strings.ContainsAny(v, " ()/") {
		return "", fmt.Errorf("FyneApp.toml: [Details] Version %q is not a version", v)
	}
	return v, nil
}
