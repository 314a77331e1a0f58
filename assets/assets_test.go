package assets

import (
	"bytes"
	"image/png"
	"testing"
)

// TestTrayIconsAreDistinctPNGs fails when a state has no icon, an icon is
// not a decodable PNG (SVG would not reach Linux trays) or two states or
// panels share an image.
func TestTrayIconsAreDistinctPNGs(t *testing.T) {
	seen := map[string]string{}
	for _, st := range []string{UpToDate, Syncing, Paused, Attention, Offline} {
		for _, dark := range []bool{false, true} {
			b := Tray(st, dark)
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s dark=%v: %v", st, dark, err)
			}
			if img.Bounds().Dx() < 22 || img.Bounds().Dy() < 22 {
				t.Fatalf("%s dark=%v: %v is too small for a tray", st, dark, img.Bounds())
			}
			name := st + map[bool]string{false: "-light", true: "-dark"}[dark]
			if prev, dup := seen[string(b)]; dup {
				t.Fatalf("%s is the same image as %s", name, prev)
			}
			seen[string(b)] = name
		}
	}
	if _, err := png.Decode(bytes.NewReader(App())); err != nil {
		t.Fatalf("app icon: %v", err)
	}
}
