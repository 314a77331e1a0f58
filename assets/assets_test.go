package assets

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

var states = []string{UpToDate, Syncing, Paused, Attention, Offline}

// TestTrayIconsAreDistinctPNGs fails when a state has no icon, an icon is
// not a decodable PNG (SVG would not reach Linux trays) or two states or
// panels share an image.
func TestTrayIconsAreDistinctPNGs(t *testing.T) {
	seen := map[string]string{}
	for _, st := range states {
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

// TestTrayStatesDifferInShape shrinks every icon to the sizes panels
// show (16 and 22 px) and compares silhouettes only (opacity, no colour):
// two states whose outlines differ in fewer than a few pixels would be
// told apart by colour alone, which a colour-blind user or a panel that
// tints its icons cannot do.
func TestTrayStatesDifferInShape(t *testing.T) {
	for _, n := range []int{16, 22} {
		for _, dark := range []bool{false, true} {
			masks := map[string][]float64{}
			for _, st := range states {
				img, err := png.Decode(bytes.NewReader(Tray(st, dark)))
				if err != nil {
					t.Fatal(err)
				}
				masks[st] = silhouette(img, n)
			}
			for i, a := range states {
				for _, b := range states[i+1:] {
					if d := differing(masks[a], masks[b]); d < n/2 {
						t.Errorf("at %d px (dark=%v) %s and %s differ in shape in only %d pixels", n, dark, a, b, d)
					}
				}
			}
		}
	}
}

// TestTrayMarkFollowsThePanel checks the mark's ink contrasts with the
// panel it is drawn for: dark ink on light panels, light ink on dark ones.
func TestTrayMarkFollowsThePanel(t *testing.T) {
	for _, st := range states {
		for _, dark := range []bool{false, true} {
			img, err := png.Decode(bytes.NewReader(Tray(st, dark)))
			if err != nil {
				t.Fatal(err)
			}
			// (12,21) is on the first chevron, far from every badge.
			r, g, b, a := img.At(12, 21).RGBA()
			if a == 0 {
				t.Fatalf("%s: no mark at (12,21)", st)
			}
			lum := (299*r + 587*g + 114*b) / 1000 * 0xffff / a
			if light := lum > 0x8000; light != dark {
				t.Errorf("%s dark=%v: the mark's luminance is %#x", st, dark, lum)
			}
		}
	}
}

// silhouette is img's opacity averaged down to n×n.
func silhouette(img image.Image, n int) []float64 {
	b := img.Bounds()
	out := make([]float64, n*n)
	cnt := make([]float64, n*n)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			_, _, _, a := img.At(x, y).RGBA()
			i := (y-b.Min.Y)*n/b.Dy()*n + (x-b.Min.X)*n/b.Dx()
			out[i] += float64(a) / 0xffff
			cnt[i]++
		}
	}
	for i := range out {
		out[i] /= cnt[i]
	}
	return out
}

// differing counts the pixels whose opacity differs by more than 40%.
func differing(a, b []float64) int {
	n := 0
	for i := range a {
		if d := a[i] - b[i]; d > 0.4 || d < -0.4 {
			n++
		}
	}
	return n
}
