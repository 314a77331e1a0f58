// Package assets holds the images embedded in the binary: the tray icons,
// one per state and panel shade, and the application icon. They are PNG,
// because SVG does not reach Linux trays. gen.go draws them (go run gen.go).
package assets

import (
	"embed"
	"fmt"
)

//go:embed *.png
var files embed.FS

// The tray states, as the icon files name them.
const (
	UpToDate  = "uptodate"
	Syncing   = "syncing"
	Paused    = "paused"
	Attention = "attention"
	Offline   = "offline"
)

// Tray returns the PNG for a tray state (one of the constants above), drawn
// for a dark panel when dark is true and for a light one otherwise. It
// panics on an unknown state: the set is fixed at build time.
func Tray(state string, dark bool) []byte {
	panel := "light"
	if dark {
		panel = "dark"
	}
	b, err := files.ReadFile(fmt.Sprintf("tray-%s-%s.png", state, panel))
	if err != nil {
		panic(fmt.Sprintf("assets: no tray icon for state %q", state))
	}
	return b
}

// App returns the application icon (PNG, 64×64).
func App() []byte {
	b, err := files.ReadFile("app.png")
	if err != nil {
		panic("assets: app.png missing")
	}
	return b
}
