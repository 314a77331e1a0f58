//go:build ignore

// gen draws the tray and application icons: go run gen.go (from assets/).
//
// The mark is Inbox Relay's own: a double chevron (mail passed on), not an
// envelope like every mail client's. Each tray icon is the mark with a
// badge at the bottom right whose silhouette names the state, so that the
// states differ in shape as well as colour (a colour-blind user, a panel
// that tints icons): a disc with a tick (up to date), two arrows turning
// (relaying), a square with bars (paused), a triangle with "!" (action
// needed) and a capsule with dots over a faded mark (offline, waiting).
// The mark's ink is dark for light panels and light for dark panels; the
// badges keep their colours on both. Strokes are thick enough to survive
// the panel's scaling to 16 px.
//
// It also writes preview/tray.png: every icon at 16, 22 and 64 px on a
// light and a dark panel, to look at when changing them.
package main

import (
	"image"
	"image/color"
	"image/draw"
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

// arc is part of a ring between two angles (radians, clockwise from +x,
// y pointing down).
func arc(cx, cy, r, w, from, to float64) shape {
	return func(x, y float64) bool {
		d := math.Hypot(x-cx, y-cy)
		if d > r+w/2 || d < r-w/2 {
			return false
		}
		a := math.Atan2(y-cy, x-cx)
		for a < from {
			a += 2 * math.Pi
		}
		return a <= to
	}
}

// poly is a filled convex polygon.
func poly(pts ...[2]float64) shape {
	return func(x, y float64) bool {
		sign := 0.0
		for i := range pts {
			a, b := pts[i], pts[(i+1)%len(pts)]
			c := (b[0]-a[0])*(y-a[1]) - (b[1]-a[1])*(x-a[0])
			if c == 0 {
				continue
			}
			if sign == 0 {
				sign = c
			} else if (c > 0) != (sign > 0) {
				return false
			}
		}
		return true
	}
}

func roundRect(x0, y0, x1, y1, r float64) shape {
	return func(x, y float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx := math.Max(x0+r, math.Min(x1-r, x))
		cy := math.Max(y0+r, math.Min(y1-r, y))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
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
	green  = color.NRGBA{0x1a, 0x7f, 0x37, 0xff}
	blue   = color.NRGBA{0x1f, 0x6f, 0xeb, 0xff}
	violet = color.NRGBA{0x6e, 0x56, 0xcf, 0xff}
	amber  = color.NRGBA{0xd9, 0x5f, 0x00, 0xff}
	slate  = color.NRGBA{0x6e, 0x77, 0x81, 0xff}
	white  = color.NRGBA{0xff, 0xff, 0xff, 0xff}
)

// mark is the relay mark: two bold chevrons, pointing on, in the top
// left, clear of the badge.
func mark() shape {
	const w = 8.5
	return union(
		seg(5, 6, 19, 21, w), seg(19, 21, 5, 36, w),
		seg(22, 6, 36, 21, w), seg(36, 21, 22, 36, w),
	)
}

const bx, by = 45.0, 45.0 // the badge's centre

// badge returns the badge's layers for a state and the space it clears
// around itself in the mark.
func badge(state string) (moat shape, layers []layer) {
	switch state {
	case "uptodate":
		return disc(bx, by, 21), []layer{
			{disc(bx, by, 17), green},
			{union(seg(36.5, 45.5, 42.5, 51.5, 5), seg(42.5, 51.5, 53.5, 39, 5)), white},
		}
	case "syncing":
		// Two arrows chasing each other round: a ring with two heads.
		r := 11.5
		arrows := union(
			arc(bx, by, r, 6, -math.Pi*0.95, -math.Pi*0.15),
			arc(bx, by, r, 6, math.Pi*0.05, math.Pi*0.85),
			poly([2]float64{bx + r - 7, by - 3}, [2]float64{bx + r + 7, by - 3}, [2]float64{bx + r, by + 5}),
			poly([2]float64{bx - r + 7, by + 3}, [2]float64{bx - r - 7, by + 3}, [2]float64{bx - r, by - 5}),
		)
		return disc(bx, by, 21), []layer{{arrows, blue}}
	case "paused":
		return roundRect(bx-19, by-19, bx+19, by+19, 7), []layer{
			{roundRect(bx-15, by-15, bx+15, by+15, 5), violet},
			{union(seg(bx-5.5, by-7.5, bx-5.5, by+7.5, 5.5), seg(bx+5.5, by-7.5, bx+5.5, by+7.5, 5.5)), white},
		}
	case "attention":
		tri := func(g float64) shape {
			return poly([2]float64{bx, by - 18 - g}, [2]float64{bx + 19 + g, by + 15 + g*0.6}, [2]float64{bx - 19 - g, by + 15 + g*0.6})
		}
		return tri(4.5), []layer{
			{tri(0), amber},
			{union(seg(bx, by-7, bx, by+3, 5.5), disc(bx, by+9.5, 3.2)), white},
		}
	case "offline":
		// A capsule of three dots: waiting, not failed.
		return roundRect(bx-21, by-12, bx+19, by+12, 12), []layer{
			{roundRect(bx-17, by-8, bx+15, by+8, 8), slate},
			{union(disc(bx-9, by, 3.4), disc(bx-1, by, 3.4), disc(bx+7, by, 3.4)), white},
		}
	}
	log.Fatalf("no badge for %q", state)
	return nil, nil
}

var states = []string{"uptodate", "syncing", "paused", "attention", "offline"}

func trayIcon(state string, ink color.NRGBA) *image.NRGBA {
	moat, b := badge(state)
	if state == "offline" {
		ink.A = 0x70 // faded: nothing flows
	}
	return render(append([]layer{{minus(mark(), moat), ink}}, b...)...)
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

// scale shrinks img to n×n by averaging (premultiplied), as a panel does.
func scale(img *image.NRGBA, n int) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, n, n))
	f := float64(size) / float64(n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			var r, g, b, a, cnt float64
			for sy := int(float64(y) * f); sy < int(float64(y+1)*f); sy++ {
				for sx := int(float64(x) * f); sx < int(float64(x+1)*f); sx++ {
					c := img.NRGBAAt(sx, sy)
					al := float64(c.A) / 255
					r += float64(c.R) * al
					g += float64(c.G) * al
					b += float64(c.B) * al
					a += al
					cnt++
				}
			}
			if a > 0 {
				out.SetNRGBA(x, y, color.NRGBA{uint8(r / a), uint8(g / a), uint8(b / a), uint8(a / cnt * 255)})
			}
		}
	}
	return out
}

func main() {
	ink := map[string]color.NRGBA{
		"light": {0x24, 0x29, 0x2f, 0xff}, // for light panels
		"dark":  {0xf0, 0xf3, 0xf6, 0xff}, // for dark panels
	}
	icons := map[string]*image.NRGBA{}
	for _, st := range states {
		for panel, c := range ink {
			img := trayIcon(st, c)
			icons[st+"-"+panel] = img
			write("tray-"+st+"-"+panel+".png", img)
		}
	}
	// The application icon: the mark in white on a blue rounded square.
	chev := func(x, y float64) bool { return mark()(x*50/64+3, y*50/64+5) }
	write("app.png", render(layer{roundRect(0, 0, 64, 64, 12), blue}, layer{func(x, y float64) bool { return chev(x-12, y-9) }, white}))

	// The preview: per row a panel shade; per column a state at 16, 22
	// and 64 px.
	const cell, high = 80, 96
	sheet := image.NewNRGBA(image.Rect(0, 0, cell*len(states), 2*high))
	for row, panel := range []string{"light", "dark"} {
		bg := color.NRGBA{0xf6, 0xf6, 0xf6, 0xff}
		if panel == "dark" {
			bg = color.NRGBA{0x1e, 0x1e, 0x1e, 0xff}
		}
		draw.Draw(sheet, image.Rect(0, row*high, cell*len(states), (row+1)*high), image.NewUniform(bg), image.Point{}, draw.Src)
		for col, st := range states {
			img := icons[st+"-"+panel]
			x0, y0 := col*cell+4, row*high+4
			for _, s := range []struct{ n, x, y int }{{16, 6, 3}, {22, 30, 0}, {64, 4, 26}} {
				small := image.Image(img)
				if s.n != size {
					small = scale(img, s.n)
				}
				r := image.Rect(x0+s.x, y0+s.y, x0+s.x+s.n, y0+s.y+s.n)
				draw.Draw(sheet, r, small, image.Point{}, draw.Over)
			}
		}
	}
	if err := os.MkdirAll("preview", 0o755); err != nil {
		log.Fatal(err)
	}
	write("preview/tray.png", sheet)
}
