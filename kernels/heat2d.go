package kernels

import (
	"errors"
	"fmt"
	"math"
)

// Heat2DKernels are the built-in workload's kernels, which a device may
// offer besides Device (the CPU and CUDA devices both do). They are apart
// from Device so that the runtime's interface holds only what every job
// needs (allocation, copies, capture, restore, hashing); internal/heat2d
// asks for them.
type Heat2DKernels interface {
	// Heat2DStep computes one Jacobi step of the heat2d tile t:
	// dst's interior from src (see Tile and StencilPoint). dst's ghost
	// border is not written. dst and src must be different buffers.
	Heat2DStep(dst, src Buffer, t Tile, alpha float64) error
	// ReadEdges copies the tile's four interior edges of src into the
	// non-nil slices of e; it returns when they are filled.
	ReadEdges(src Buffer, t Tile, e Edges) error
	// WriteGhosts copies the non-nil slices of e into the tile's four ghost
	// edges of dst; a nil slice leaves that ghost edge as it is (a
	// physical boundary). The slices may be reused when it returns.
	WriteGhosts(dst Buffer, t Tile, e Edges) error
}

var _ Heat2DKernels = (*CPU)(nil)

// Tile is one rank's part of the heat2d global grid: NX×NY interior cells
// with a one-cell ghost border, stored row-major as (NY+2) rows of (NX+2)
// float64s. Cell (i, j) — column i, row j, both from 0 — is element
// j*(NX+2)+i; the interior is 1 <= i <= NX, 1 <= j <= NY. Interior cell
// (i, j) is global cell (X0+i-1, Y0+j-1) of a GX×GY global interior, so the
// ghost cells are global cells -1..GX and -1..GY; global cells -1 and GX (GY)
// form the fixed boundary ring (Dirichlet condition).
//
// Directions: north is row 1 (smaller global y), south row NY, west column
// 1, east column NX. A tile's north interior edge is its northern
// neighbour's south ghost edge, and so on.
type Tile struct {
	NX, NY int // interior cells of this tile
	X0, Y0 int // global coordinates of interior cell (1, 1)
	GX, GY int // global interior size
}

// Elems is the number of float64s of the tile's buffer, ghosts included.
func (t Tile) Elems() int { return (t.NX + 2) * (t.NY + 2) }

// Bytes is the tile buffer's length in bytes.
func (t Tile) Bytes() int64 { return int64(t.Elems()) * 8 }

// Index is the element index of cell (i, j).
func (t Tile) Index(i, j int) int { return j*(t.NX+2) + i }

// maxTileCells bounds a tile so that indexes fit an int32 on every device.
const maxTileCells = 1 << 31

// Validate checks the local shape (what the stencil needs).
func (t Tile) Validate() error {
	if t.NX < 1 || t.NY < 1 {
		return fmt.Errorf("kernels: tile %dx%d: both sides must be >= 1", t.NX, t.NY)
	}
	if int64(t.NX+2)*int64(t.NY+2) >= maxTileCells {
		return fmt.Errorf("kernels: tile %dx%d: more than 2^31 cells", t.NX, t.NY)
	}
	return nil
}

// ValidateGlobal checks the local shape and the tile's place in the grid.
func (t Tile) ValidateGlobal() error {
	if err := t.Validate(); err != nil {
		return err
	}
	if t.GX < 1 || t.GY < 1 {
		return fmt.Errorf("kernels: global grid %dx%d: both sides must be >= 1", t.GX, t.GY)
	}
	if t.X0 < 0 || t.Y0 < 0 || t.X0+t.NX > t.GX || t.Y0+t.NY > t.GY {
		return fmt.Errorf("kernels: tile %dx%d at (%d, %d) does not fit the %dx%d grid", t.NX, t.NY, t.X0, t.Y0, t.GX, t.GY)
	}
	return nil
}

// Edges carries a tile's four edges between the device and the host: the
// interior edges for ReadEdges, the ghost edges for WriteGhosts. North and
// South hold NX values (west to east), West and East NY values (north to
// south). A nil slice is skipped.
type Edges struct {
	North, South, West, East []float64
}

// Validate checks the lengths of the non-nil slices against tile t.
func (e Edges) Validate(t Tile) error {
	check := func(name string, s []float64, n int) error {
		if s != nil && len(s) != n {
			return fmt.Errorf("kernels: %s edge has %d values, tile %dx%d needs %d", name, len(s), t.NX, t.NY, n)
		}
		return nil
	}
	return errors.Join(check("north", e.North, t.NX), check("south", e.South, t.NX),
		check("west", e.West, t.NY), check("east", e.East, t.NY))
}

// StencilPoint is the heat2d update of one cell from its value c and its
// north, south, east and west neighbours:
//
//	c + alpha*(((n + s) + (e + w)) - 4*c)
//
// evaluated in exactly this order, each operation rounded to float64 (round
// to nearest even), no fused multiply-add. The conversions make the Go
// compiler keep every product rounded (the spec lets it fuse otherwise); the
// CUDA kernel spells the same sequence with __dadd_rn/__dmul_rn, so both
// devices give the same bits. 4*c is exact. The scheme is stable for
// 0 < alpha <= 0.25.
func StencilPoint(c, n, s, e, w, alpha float64) float64 {
	lap := float64((n+s)+(e+w)) - float64(4*c)
	return c + float64(alpha*lap)
}

// Heat2DValue is the initial temperature of global cell (gx, gy) of a gx×gy
// grid, for -1 <= gx <= GX and -1 <= gy <= GY (the boundary ring included):
// a function of global coordinates only, so every decomposition of the grid
// starts from the same global field. The boundary ring is 300, except the
// north wall (gy == -1), which is 400; the interior is 300 plus a smooth
// 20-degree sinusoid plus two 200-degree hot squares.
func Heat2DValue(gx, gy, GX, GY int) float64 {
	return heat2dValue(gx, gy, GX, GY, heat2dSin(gx, GX), heat2dSin(gy, GY))
}

// heat2dSin is the sinusoid's factor along one axis, sin(2π(g+0.5)/G), for
// an interior coordinate (0 otherwise: the ring does not use it).
func heat2dSin(g, G int) float64 {
	if g < 0 || g >= G {
		return 0
	}
	x := (float64(g) + 0.5) / float64(G)
	return math.Sin(2 * math.Pi * x)
}

// heat2dValue is Heat2DValue with the two sine factors given, so that
// Heat2DInit computes each once per column and row instead of twice per
// cell (two sines per cell made a 512 MiB tile take seconds to set up,
// which a replacement rank pays during recovery). The expression is the
// one Heat2DValue always had, so the field is the same to the bit.
func heat2dValue(gx, gy, GX, GY int, sx, sy float64) float64 {
	if gy == -1 {
		return 400
	}
	if gx == -1 || gx == GX || gy == GY {
		return 300
	}
	v := 300 + 20*sx*sy
	if inSquare(gx, GX, 1, 4) && inSquare(gy, GY, 1, 4) || inSquare(gx, GX, 5, 8) && inSquare(gy, GY, 9, 16) {
		v += 200
	}
	return v
}

// inSquare: g lies in [G*num/den, G*num/den + G/8) (integer arithmetic).
func inSquare(g, G, num, den int) bool {
	lo := G * num / den
	return g >= lo && g < lo+max(G/8, 1)
}

// Heat2DInit fills dst (t.Elems() values, the whole tile with its ghost
// border) with Heat2DValue of every cell's global coordinates. Both buffers
// of a Jacobi pair must be initialized, since a step writes only the
// interior and the boundary ring must be present in both. Rows are filled on
// all cores. Compute it on the
// host and copy it to the device (CopyFromHost).
func Heat2DInit(dst []float64, t Tile) error {
	if err := t.ValidateGlobal(); err != nil {
		return err
	}
	if len(dst) != t.Elems() {
		return fmt.Errorf("kernels: heat2d init: %d values for a tile of %d", len(dst), t.Elems())
	}
	sx := make([]float64, t.NX+2)
	for i := range sx {
		sx[i] = heat2dSin(t.X0+i-1, t.GX)
	}
	sy := make([]float64, t.NY+2)
	for j := range sy {
		sy[j] = heat2dSin(t.Y0+j-1, t.GY)
	}
	grain := max(1, (1<<16)/(t.NX+2))
	parallelFor(t.NY+2, 0, grain, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			gy := t.Y0 + j - 1
			for i := 0; i < t.NX+2; i++ {
				dst[t.Index(i, j)] = heat2dValue(t.X0+i-1, gy, t.GX, t.GY, sx[i], sy[j])
			}
		}
	})
	return nil
}

// heat2dRows computes rows [j0, j1) of the interior of dst from src.
func heat2dRows(dst, src []float64, nx, j0, j1 int, alpha float64) {
	w := nx + 2
	for j := j0; j < j1; j++ {
		up := src[(j-1)*w : j*w]
		row := src[j*w : (j+1)*w]
		down := src[(j+1)*w : (j+2)*w]
		out := dst[j*w : (j+1)*w]
		for i := 1; i <= nx; i++ {
			out[i] = StencilPoint(row[i], up[i], down[i], row[i+1], row[i-1], alpha)
		}
	}
}

// Heat2DStepSlices is the CPU stencil on host slices: dst's interior from
// src, rows spread over up to workers goroutines (<= 0: GOMAXPROCS). Every
// cell depends only on src, so the result is the same for any worker count.
func Heat2DStepSlices(dst, src []float64, t Tile, alpha float64, workers int) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if len(dst) != t.Elems() || len(src) != t.Elems() {
		return fmt.Errorf("kernels: heat2d step: buffers of %d and %d values for a tile of %d", len(dst), len(src), t.Elems())
	}
	if &dst[0] == &src[0] {
		return errors.New("kernels: heat2d step: dst and src are the same buffer")
	}
	// About 64 Ki cells per task: large enough to amortize the hand-out,
	// small enough to balance.
	grain := max(1, (1<<16)/(t.NX+2))
	parallelFor(t.NY, workers, grain, func(lo, hi int) {
		heat2dRows(dst, src, t.NX, lo+1, hi+1, alpha)
	})
	return nil
}

// ReadEdgesSlice copies the interior edges of a host tile into e.
func ReadEdgesSlice(src []float64, t Tile, e Edges) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if len(src) != t.Elems() {
		return fmt.Errorf("kernels: read edges: buffer of %d values for a tile of %d", len(src), t.Elems())
	}
	if err := e.Validate(t); err != nil {
		return err
	}
	w := t.NX + 2
	if e.North != nil {
		copy(e.North, src[w+1:w+1+t.NX])
	}
	if e.South != nil {
		copy(e.South, src[t.NY*w+1:t.NY*w+1+t.NX])
	}
	for j := 1; j <= t.NY; j++ {
		if e.West != nil {
			e.West[j-1] = src[j*w+1]
		}
		if e.East != nil {
			e.East[j-1] = src[j*w+t.NX]
		}
	}
	return nil
}

// WriteGhostsSlice copies e into the ghost edges of a host tile.
func WriteGhostsSlice(dst []float64, t Tile, e Edges) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if len(dst) != t.Elems() {
		return fmt.Errorf("kernels: write ghosts: buffer of %d values for a tile of %d", len(dst), t.Elems())
	}
	if err := e.Validate(t); err != nil {
		return err
	}
	w := t.NX + 2
	if e.North != nil {
		copy(dst[1:1+t.NX], e.North)
	}
	if e.South != nil {
		copy(dst[(t.NY+1)*w+1:(t.NY+1)*w+1+t.NX], e.South)
	}
	for j := 1; j <= t.NY; j++ {
		if e.West != nil {
			dst[j*w] = e.West[j-1]
		}
		if e.East != nil {
			dst[j*w+t.NX+1] = e.East[j-1]
		}
	}
	return nil
}
