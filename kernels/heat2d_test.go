package kernels

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// refStep is the stencil written plainly on a 2-D view, serially, with the
// arithmetic spelled out in the documented order.
func refStep(dst, src []float64, nx, ny int, alpha float64) {
	at := func(i, j int) int { return j*(nx+2) + i }
	for j := 1; j <= ny; j++ {
		for i := 1; i <= nx; i++ {
			c := src[at(i, j)]
			n, s := src[at(i, j-1)], src[at(i, j+1)]
			e, w := src[at(i+1, j)], src[at(i-1, j)]
			sum := float64(float64(n+s) + float64(e+w))
			lap := float64(sum - float64(4*c))
			dst[at(i, j)] = float64(c + float64(alpha*lap))
		}
	}
}

func sameBits(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("%s: element %d is %v (%#x), want %v (%#x)", what, i, got[i], math.Float64bits(got[i]), want[i], math.Float64bits(want[i]))
		}
	}
}

var tileShapes = [][2]int{{1, 1}, {1, 7}, {7, 1}, {13, 17}, {64, 3}, {300, 211}}

func TestHeat2DStepMatchesReference(t *testing.T) {
	for _, procs := range []int{1, 2, 7} {
		for _, sh := range tileShapes {
			t.Run(fmt.Sprintf("procs%d/%dx%d", procs, sh[0], sh[1]), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				tile := Tile{NX: sh[0], NY: sh[1], GX: sh[0], GY: sh[1]}
				dev := NewCPU(0)
				a, _ := dev.Alloc(tile.Bytes(), 8)
				b, _ := dev.Alloc(tile.Bytes(), 8)
				if err := Heat2DInit(a.(*HostBuffer).Float64s(), tile); err != nil {
					t.Fatal(err)
				}
				copy(b.(*HostBuffer).Float64s(), a.(*HostBuffer).Float64s())
				ra := append([]float64(nil), a.(*HostBuffer).Float64s()...)
				rb := append([]float64(nil), ra...)
				for step := range 25 {
					if err := dev.Heat2DStep(b, a, tile, 0.2); err != nil {
						t.Fatal(err)
					}
					refStep(rb, ra, tile.NX, tile.NY, 0.2)
					sameBits(t, fmt.Sprintf("step %d", step), b.(*HostBuffer).Float64s(), rb)
					a, b = b, a
					ra, rb = rb, ra
				}
			})
		}
	}
}

// A global field stepped as one tile equals the same field stepped as 2x3
// tiles exchanging halos through ReadEdges/WriteGhosts: the initial
// condition depends on global coordinates only and the edge directions fit.
func TestHeat2DDecompositionInvariant(t *testing.T) {
	const gx, gy, px, py, steps = 37, 29, 2, 3, 20
	dev := NewCPU(3)
	whole := Tile{NX: gx, NY: gy, GX: gx, GY: gy}
	wa := make([]float64, whole.Elems())
	if err := Heat2DInit(wa, whole); err != nil {
		t.Fatal(err)
	}
	wb := append([]float64(nil), wa...)
	for range steps {
		if err := Heat2DStepSlices(wb, wa, whole, 0.24, 0); err != nil {
			t.Fatal(err)
		}
		wa, wb = wb, wa
	}

	type part struct {
		t    Tile
		a, b *HostBuffer
	}
	split := func(g, p, k int) (int, int) { return g * k / p, g*(k+1)/p - g*k/p }
	parts := make([][]part, py)
	for y := range py {
		parts[y] = make([]part, px)
		for x := range px {
			x0, nx := split(gx, px, x)
			y0, ny := split(gy, py, y)
			tl := Tile{NX: nx, NY: ny, X0: x0, Y0: y0, GX: gx, GY: gy}
			a := HostFloat64(make([]float64, tl.Elems()))
			if err := Heat2DInit(a.Float64s(), tl); err != nil {
				t.Fatal(err)
			}
			b := HostFloat64(append([]float64(nil), a.Float64s()...))
			parts[y][x] = part{tl, a, b}
		}
	}
	for range steps {
		// Halo exchange: every tile's interior edges into its neighbours'
		// ghosts; physical boundaries keep their ghosts.
		edges := make([][]Edges, py)
		for y := range py {
			edges[y] = make([]Edges, px)
			for x := range px {
				p := parts[y][x]
				e := Edges{North: make([]float64, p.t.NX), South: make([]float64, p.t.NX), West: make([]float64, p.t.NY), East: make([]float64, p.t.NY)}
				if err := dev.ReadEdges(p.a, p.t, e); err != nil {
					t.Fatal(err)
				}
				edges[y][x] = e
			}
		}
		for y := range py {
			for x := range px {
				var g Edges
				if y > 0 {
					g.North = edges[y-1][x].South
				}
				if y < py-1 {
					g.South = edges[y+1][x].North
				}
				if x > 0 {
					g.West = edges[y][x-1].East
				}
				if x < px-1 {
					g.East = edges[y][x+1].West
				}
				p := &parts[y][x]
				if err := dev.WriteGhosts(p.a, p.t, g); err != nil {
					t.Fatal(err)
				}
				if err := dev.Heat2DStep(p.b, p.a, p.t, 0.24); err != nil {
					t.Fatal(err)
				}
				p.a, p.b = p.b, p.a
			}
		}
	}
	for y := range py {
		for x := range px {
			p := parts[y][x]
			got := p.a.Float64s()
			for j := 1; j <= p.t.NY; j++ {
				for i := 1; i <= p.t.NX; i++ {
					w := wa[whole.Index(p.t.X0+i, p.t.Y0+j)]
					if g := got[p.t.Index(i, j)]; math.Float64bits(g) != math.Float64bits(w) {
						t.Fatalf("tile (%d,%d) cell (%d,%d): %v, whole grid %v", x, y, i, j, g, w)
					}
				}
			}
		}
	}
}

func TestHeat2DEdgesAndGhosts(t *testing.T) {
	tl := Tile{NX: 4, NY: 3}
	src := make([]float64, tl.Elems())
	for i := range src {
		src[i] = float64(i)
	}
	e := Edges{North: make([]float64, 4), South: make([]float64, 4), West: make([]float64, 3), East: make([]float64, 3)}
	if err := ReadEdgesSlice(src, tl, e); err != nil {
		t.Fatal(err)
	}
	// Rows of 6: row 1 starts at 6, row 3 at 18.
	sameBits(t, "north", e.North, []float64{7, 8, 9, 10})
	sameBits(t, "south", e.South, []float64{19, 20, 21, 22})
	sameBits(t, "west", e.West, []float64{7, 13, 19})
	sameBits(t, "east", e.East, []float64{10, 16, 22})

	dst := make([]float64, tl.Elems())
	g := Edges{North: []float64{1, 2, 3, 4}, East: []float64{5, 6, 7}}
	if err := WriteGhostsSlice(dst, tl, g); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, tl.Elems())
	copy(want[1:5], []float64{1, 2, 3, 4})
	want[1*6+5], want[2*6+5], want[3*6+5] = 5, 6, 7
	sameBits(t, "ghosts", dst, want)

	if err := ReadEdgesSlice(src, tl, Edges{North: make([]float64, 3)}); err == nil {
		t.Fatal("short north edge accepted")
	}
	if err := WriteGhostsSlice(dst, tl, Edges{West: make([]float64, 4)}); err == nil {
		t.Fatal("long west edge accepted")
	}
}

func TestHeat2DValidation(t *testing.T) {
	dev := NewCPU(1)
	tl := Tile{NX: 4, NY: 4, GX: 4, GY: 4}
	a, _ := dev.Alloc(tl.Bytes(), 8)
	f32, _ := dev.Alloc(tl.Bytes(), 4)
	small, _ := dev.Alloc(tl.Bytes()-8, 8)
	for name, err := range map[string]error{
		"same buffer":      dev.Heat2DStep(a, a, tl, 0.2),
		"element size 4":   dev.Heat2DStep(f32, a, tl, 0.2),
		"short buffer":     dev.Heat2DStep(a, small, tl, 0.2),
		"zero tile":        dev.Heat2DStep(a, small, Tile{}, 0.2),
		"tile off grid":    Heat2DInit(make([]float64, tl.Elems()), Tile{NX: 4, NY: 4, X0: 1, GX: 4, GY: 4}),
		"init wrong size":  Heat2DInit(make([]float64, 3), tl),
		"edges wrong size": dev.ReadEdges(a, tl, Edges{South: make([]float64, 5)}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHeat2DValue(t *testing.T) {
	if v := Heat2DValue(3, -1, 10, 10); v != 400 {
		t.Errorf("north wall %v", v)
	}
	for _, c := range [][2]int{{-1, 3}, {10, 3}, {3, 10}} {
		if v := Heat2DValue(c[0], c[1], 10, 10); v != 300 {
			t.Errorf("wall %v: %v", c, v)
		}
	}
	// Hot square one: [GX/4, GX/4+GX/8) x [GY/4, GY/4+GY/8).
	if v := Heat2DValue(64, 64, 256, 256); v < 480 {
		t.Errorf("inside the hot square: %v", v)
	}
	if v := Heat2DValue(10, 200, 256, 256); v < 280 || v > 320 {
		t.Errorf("background: %v", v)
	}
}

// TestHeat2DInitMatchesValue: the parallel, table-driven Heat2DInit gives
// Heat2DValue of every cell to the bit, for tiles anywhere in the grid (the
// digests of every earlier run depend on it).
func TestHeat2DInitMatchesValue(t *testing.T) {
	for _, tl := range []Tile{
		{NX: 37, NY: 53, X0: 0, Y0: 0, GX: 37, GY: 53},
		{NX: 40, NY: 24, X0: 40, Y0: 24, GX: 120, GY: 48},
		{NX: 300, NY: 700, X0: 300, Y0: 0, GX: 600, GY: 1400},
		{NX: 1, NY: 1, X0: 2, Y0: 3, GX: 4, GY: 5},
	} {
		got := make([]float64, tl.Elems())
		if err := Heat2DInit(got, tl); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < tl.NY+2; j++ {
			for i := 0; i < tl.NX+2; i++ {
				want := Heat2DValue(tl.X0+i-1, tl.Y0+j-1, tl.GX, tl.GY)
				if g := got[tl.Index(i, j)]; math.Float64bits(g) != math.Float64bits(want) {
					t.Fatalf("tile %+v cell (%d, %d): %v, Heat2DValue gives %v", tl, i, j, g, want)
				}
			}
		}
	}
}
