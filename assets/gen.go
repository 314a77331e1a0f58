//go:build ignore

// gen draws the tray and application icons: go run gen.go (from assets/).
// Each tray icon is an envelope with a badge naming the state; the
// envelope is dark for light panels and light for dark panels, the badge
// keeps its colour on both.
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const size = 64

type shape func(x, y float64) bool

// seg is a thick line segment (a capsule) from (ax,ay) to (bx,by).
func seg(ax, ay, bx, by, w float64) shape {
	return func(x, y float64) bool {
		dx, dy := bx-ax, by-ay
		t := ((x-ax)*dx + (y-ay)*dy) / (dx*dx + dy*dy)
		t = math.Max(0, math.Min(1, t))
		px, py := ax+t*dx-x, ay+t*dy-y
		return px*px+py*py <= w*w/4
	}
}

func disc(cx, cy, r float64) shape {
	return func(x, y float64) bool { return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r }
}

func ring(cx, cy, r, w float64) shape {
	return func(x, y float64) bool {
		d := math.Hypot(x-cx, y-cy)
		return d <= r+w/2 && d >= r-w/2
	}
}

// arc is part of a ring between two angles (radians, clockwise from +x).
func arc(cx, cy, r, w, from, to float64) shape {
	rg := ring(cx, cy, r, w)
	return func(x, y float64) bool {
		if !rg(x, y) {
			return false
		}
		a := math.Atan2(y-cy, x-cx)
		for a < from {
			a += 2 * math.Pi
		}
		return a <= to
	}
}

func roundRectOutline(x0, y0, x1, y1, r, w float64) shape {
	inside := func(x, y, x0, y0, x1, y1, r float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx := math.Max(x0+r, math.Min(x1-r, x))
		cy := math.Max(y0+r, math.Min(y1-r, y))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
	}
	return func(x, y float64) bool {
		return inside(x, y, x0, y0, x1, y1, r) && !inside(x, y, x0+w, y0+w, x1-w, y1-w, math.Max(0, r-w))
	}
}

func union(ss ...shape) shape {
	return func(x, y float64) bool {
		for _, s := range ss {
			if s(x, y) {
				return true
			}
		}
		return false
	}
}

func minus(a, b shape) shape { return func(x, y float64) bool { return a(x, y) && !b(x, y) } }

type layer struct {
	s shape
	c color.NRGBA
}

// render paints layers in order with 4×4 supersampling.
func render(layers ...layer) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for _, l := range layers {
				n := 0
				for sy := 0; sy < ss; sy++ {
					for sx := 0; sx < ss; sx++ {
						if l.s(float64(px)+(float64(sx)+0.5)/ss, float64(py)+(float64(sy)+0.5)/ss) {
							n++
						}
					}
				}
				if n == 0 {
					continue
				}
				cov := float64(n) / ss / ss * float64(l.c.A) / 255
				// "over" compositing in premultiplied space
				r = float64(l.c.R)*cov + r*(1-cov)
				g = float64(l.c.G)*cov + g*(1-cov)
				b = float64(l.c.B)*cov + b*(1-cov)
				a = cov + a*(1-cov)
			}
			if a > 0 {
				img.SetNRGBA(px, py, color.NRGBA{uint8(r / a), uint8(g / a), uint8(b / a), uint8(a * 255)})
			}
		}
	}
	return img
}

var (
	green  = color.NRGBA{0x2e, 0xa0, 0x43, 0xff}
	blue   = color.NRGBA{0x1f, 0x6f, 0xeb, 0xff}
	grey   = color.NRGBA{0x8b, 0x94, 0x9e, 0xff}
	orange = color.NRGBA{0xe3, 0x6d, 0x00, 0xff}
	slate  = color.NRGBA{0x57, 0x60, 0x6a, 0xff}
	white  = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	clear  = color.NRGBA{0, 0, 0, 0}
)

// envelope is the Inbox Relay mark, leaving room for a badge at the
// bottom right.
func envelope() shape {
	body := roundRectOutline(4, 12, 52, 46, 5, 4.5)
	flap := union(seg(7, 15, 28, 31, 4.5), seg(28, 31, 49, 15, 4.5))
	return union(body, flap)
}

const bx, by, br = 47, 47, 15 // the badge's centre and radius

func badge(state string) []layer {
	gap := disc(bx, by, br+3.5) // a clear moat between the envelope and the badge
	base := []layer{}
	var fill color.NRGBA
	var mark shape
	switch state {
	case "uptodate":
		fill = green
		mark = union(seg(40, 47.5, 45, 52.5, 4), seg(45, 52.5, 54, 42, 4))
	case "syncing":
		fill = blue
		mark = union(arc(bx, by, 7.5, 3.5, -math.Pi*0.15, math.Pi*0.85), arc(bx, by, 7.5, 3.5, math.Pi*0.85, math.Pi*1.85),
			seg(54.5, 45.5, 54.5, 40, 3.2), seg(54.5, 45.5, 49.5, 45.5, 3.2),
			seg(39.5, 48.5, 39.5, 54, 3.2), seg(39.5, 48.5, 44.5, 48.5, 3.2))
		mark = minus(mark, union(seg(41, 41, 45, 44, 0.1)))
	case "paused":
		fill = grey
		mark = union(seg(43, 41, 43, 53, 4.2), seg(51, 41, 51, 53, 4.2))
	case "attention":
		fill = orange
		mark = union(seg(bx, 39.5, bx, 48.5, 4.2), disc(bx, 54, 2.4))
	case "offline":
		fill = slate
		mark = union(seg(41, 41, 53, 53, 4), seg(53, 41, 41, 53, 4))
	default:
		return nil
	}
	_ = base
	return []layer{{gap, clear}, {disc(bx, by, br), fill}, {mark, white}}
}

func write(name string, img image.Image) {
	f, err := os.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func main() {
	ink := map[string]color.NRGBA{
		"light": {0x24, 0x29, 0x2f, 0xff}, // for light panels
		"dark":  {0xf0, 0xf3, 0xf6, 0xff}, // for dark panels
	}
	for _, st := range []string{"uptodate", "syncing", "paused", "attention", "offline"} {
		for panel, c := range ink {
			b := badge(st)
			env := minus(envelope(), disc(bx, by, br+3.5))
			layers := append([]layer{{env, c}}, b[1:]...)
			write("tray-"+st+"-"+panel+".png", render(layers...))
		}
	}
	// The application icon: a white envelope on a blue rounded square.
	sq := func(x, y float64) bool {
		cx := math.Max(10, math.Min(54, x))
		cy := math.Max(10, math.Min(54, y))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= 100 && x >= 0 && x <= 64 && y >= 0 && y <= 64
	}
	env := union(roundRectOutline(12, 18, 52, 46, 4, 4), seg(15, 21, 32, 34, 4), seg(32, 34, 49, 21, 4))
	write("app.png", render(layer{sq, blue}, layer{env, white}))
}
