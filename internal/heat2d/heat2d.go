// Package heat2d is cutpoint's built-in workload: 2-D heat diffusion (Jacobi,
// 5-point stencil) on a global grid split over a 2-D process grid of ranks,
// with a halo exchange every step over rank channels. It is deterministic:
// the final global grid, and so its digest, depends only on the global size,
// the number of steps and alpha, not on the number of ranks, cores or the
// device (kernels fixes the arithmetic).
package heat2d

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/cutpoint/cutpoint/kernels"
)

// Comm is what the workload needs from the rank runtime (*rank.Rank);
// this package does not import rank, so rank's own tests can run it.
type Comm interface {
	ID() int
	World() int
	Send(ctx context.Context, to int, msg []byte) error
	Recv(ctx context.Context, from int) ([]byte, error)
	// ProtectFunc registers state the runtime captures and restores; the
	// function names the buffer holding the state after a given step.
	ProtectFunc(name string, elemSize int, buf func(step int64) kernels.Buffer) error
	// Start restores state if the job resumes and returns the step the
	// state is at (0 for a fresh start).
	Start(ctx context.Context) (int64, error)
	// SafePoint is called after each step; it returns the step to go on
	// from, which differs from step after a rollback.
	SafePoint(ctx context.Context, step int64) (int64, error)
	// Finish hands the job's result to the coordinator and waits for the
	// other ranks; a rolled-back error (see rolledBack) means the job
	// goes on from SafePoint.
	Finish(ctx context.Context, result []byte) error
}

// rolledBack reports whether err (wrapped or not) says that a rollback
// interrupted a Comm call; the loop then calls SafePoint. The error's
// RolledBack() bool method says so (rank.ErrRolledBack has it): matching by
// method rather than by rank's sentinel keeps this package below rank.
func rolledBack(err error) bool {
	var rb interface{ RolledBack() bool }
	return errors.As(err, &rb) && rb.RolledBack()
}

// Device is what the workload needs of a device: allocation and copies
// (kernels.Device's) and the stencil kernels (kernels.Heat2DKernels). The
// CPU and CUDA devices have both; the rank runtime needs only the first.
type Device interface {
	Name() string
	Alloc(n int64, elemSize int) (kernels.Buffer, error)
	CopyFromHost(b kernels.Buffer, off int64, src []byte) error
	CopyToHost(dst []byte, b kernels.Buffer, off int64) error
	Synchronize() error
	kernels.Heat2DKernels
}

// Config describes one heat2d job.
type Config struct {
	Size  int     // interior edge of each rank's tile
	Steps int64   // steps to run
	Alpha float64 // diffusion number; stable for alpha <= 0.25
	// Frozen, when > 0, adds a second protected buffer "w" as large as
	// the tile, like the parameters of a model with frozen layers: its
	// first Frozen fraction is written once, the rest rewritten every
	// step. It gives the job state of which only a known part changes
	// between cuts (heat2d alone rewrites every cell), to measure what
	// incremental cuts reuse.
	Frozen float64
	// ParamsBytes is the size of that buffer in bytes, rounded down to
	// whole float64s (0: as large as the tile); only with Frozen. A
	// buffer far larger than the tile gives a rank whose memory is about
	// its state (the field keeps two tiles, the parameters one copy).
	ParamsBytes int64
}

// DefaultAlpha is stable for the explicit 5-point scheme (<= 0.25).
const DefaultAlpha = 0.2

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Size < 1 || c.Size > 1<<15 {
		return fmt.Errorf("heat2d: --size %d: want 1..32768 cells per tile edge", c.Size)
	}
	if c.Steps < 0 {
		return fmt.Errorf("heat2d: --steps %d: must be >= 0", c.Steps)
	}
	if !(c.Alpha > 0 && c.Alpha <= 0.25) {
		return fmt.Errorf("heat2d: alpha %g: want 0 < alpha <= 0.25", c.Alpha)
	}
	if !(c.Frozen >= 0 && c.Frozen < 1) {
		return fmt.Errorf("heat2d: --frozen %g: want 0 <= fraction < 1", c.Frozen)
	}
	if c.ParamsBytes < 0 || c.ParamsBytes > 1<<44 {
		return fmt.Errorf("heat2d: --params-size %d: want 0..16 TiB", c.ParamsBytes)
	}
	if c.ParamsBytes > 0 && c.Frozen == 0 {
		return fmt.Errorf("heat2d: --params-size needs --frozen (the parameter buffer exists only with a frozen fraction)")
	}
	return nil
}

// ProcGrid splits n ranks into a px × py grid, as square as n allows
// (py is the largest divisor of n not above sqrt(n)).
func ProcGrid(n int) (px, py int) {
	py = int(math.Sqrt(float64(n)))
	for py > 1 && n%py != 0 {
		py--
	}
	if py < 1 {
		py = 1
	}
	return n / py, py
}

// Layout is one rank's place in the job.
type Layout struct {
	Rank, World int
	PX, PY      int // process grid
	CX, CY      int // this rank's column and row in it
	Tile        kernels.Tile
}

// NewLayout places rank in a world of n ranks with tiles of size×size.
func NewLayout(rank, n, size int) Layout {
	px, py := ProcGrid(n)
	cx, cy := rank%px, rank/px
	return Layout{
		Rank: rank, World: n, PX: px, PY: py, CX: cx, CY: cy,
		Tile: kernels.Tile{NX: size, NY: size, X0: cx * size, Y0: cy * size, GX: px * size, GY: py * size},
	}
}

// rankAt returns the rank at process-grid position (cx, cy), or -1 outside.
func (l Layout) rankAt(cx, cy int) int {
	if cx < 0 || cy < 0 || cx >= l.PX || cy >= l.PY {
		return -1
	}
	return cy*l.PX + cx
}

// Neighbours returns the ranks north, south, west and east of this one (-1
// at the physical boundary).
func (l Layout) Neighbours() (n, s, w, e int) {
	return l.rankAt(l.CX, l.CY-1), l.rankAt(l.CX, l.CY+1), l.rankAt(l.CX-1, l.CY), l.rankAt(l.CX+1, l.CY)
}

// Peers is the set of ranks this rank exchanges messages with: its grid
// neighbours, and rank 0 (everyone) for the final gather.
func (l Layout) Peers() []int {
	seen := map[int]bool{l.Rank: true}
	var out []int
	add := func(r int) {
		if r >= 0 && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	n, s, w, e := l.Neighbours()
	add(n)
	add(s)
	add(w)
	add(e)
	if l.Rank == 0 {
		for r := 1; r < l.World; r++ {
			add(r)
		}
	} else {
		add(0)
	}
	return out
}

// Run runs the workload on dev and returns the digest of the final global
// grid on rank 0 (nil on the other ranks).
func Run(ctx context.Context, c Comm, dev Device, cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := NewLayout(c.ID(), c.World(), cfg.Size)
	t := l.Tile
	if err := t.ValidateGlobal(); err != nil {
		return nil, err
	}
	init := make([]float64, t.Elems())
	if err := kernels.Heat2DInit(init, t); err != nil {
		return nil, err
	}
	var bufs [2]kernels.Buffer
	for i := range bufs {
		b, err := dev.Alloc(t.Bytes(), 8)
		if err != nil {
			return nil, fmt.Errorf("heat2d: allocate %d bytes on %s: %w", t.Bytes(), dev.Name(), err)
		}
		defer b.Close()
		// Both halves of the Jacobi pair hold the fixed boundary ring.
		if err := dev.CopyFromHost(b, 0, kernels.Float64Bytes(init)); err != nil {
			return nil, err
		}
		bufs[i] = b
	}
	init = nil
	// Only the field after the last step is state: the other buffer is
	// rewritten (interior by the stencil, inner ghosts by the exchange)
	// before it is read.
	if err := c.ProtectFunc("u", 8, func(step int64) kernels.Buffer { return bufs[step%2] }); err != nil {
		return nil, err
	}
	pbytes := t.Bytes()
	if cfg.ParamsBytes > 0 {
		pbytes = cfg.ParamsBytes / 8 * 8
	}
	params, err := newParams(dev, pbytes, cfg.Frozen)
	if err != nil {
		return nil, err
	}
	if params != nil {
		defer params.buf.Close()
		if err := c.ProtectFunc("w", 8, func(int64) kernels.Buffer { return params.buf }); err != nil {
			return nil, err
		}
	}
	step, err := c.Start(ctx)
	if err != nil {
		return nil, err
	}
	ex := newExchanger(l)
	for {
		for step < cfg.Steps {
			cur, next := bufs[step%2], bufs[(step+1)%2]
			if err := ex.exchange(ctx, c, dev, cur); err != nil {
				if rolledBack(err) {
					if step, err = c.SafePoint(ctx, step); err != nil {
						return nil, err
					}
					continue
				}
				return nil, fmt.Errorf("heat2d: rank %d step %d: halo exchange: %w", l.Rank, step+1, err)
			}
			if err := dev.Heat2DStep(next, cur, t, cfg.Alpha); err != nil {
				return nil, fmt.Errorf("heat2d: rank %d step %d: %w", l.Rank, step+1, err)
			}
			if err := params.update(dev, step+1); err != nil {
				return nil, fmt.Errorf("heat2d: rank %d step %d: parameters: %w", l.Rank, step+1, err)
			}
			if step, err = c.SafePoint(ctx, step+1); err != nil {
				return nil, err
			}
		}
		if err := dev.Synchronize(); err != nil {
			return nil, err
		}
		digest, err := gather(ctx, c, dev, l, bufs[step%2])
		if err == nil {
			err = c.Finish(ctx, digest)
		}
		if rolledBack(err) {
			// A rank failed after this one's last step: go on from the
			// cut the job rolled back to.
			if step, err = c.SafePoint(ctx, step); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return digest, nil
	}
}

// params is the --frozen buffer: a frozen head written once, and a
// trainable tail that every step rewrites as a function of the step alone,
// so that a rank restored at step s holds what it held at s. Both are
// written through one block of host memory, so that the buffer is the only
// memory the parameters take however large they are.
type params struct {
	buf    kernels.Buffer
	frozen int64 // bytes
	block  []float64
}

// paramsBlock is the host block the parameters are written through
// (float64s).
const paramsBlock = 128 << 10

// newParams allocates the buffer (nil when frozen is 0) and writes its
// frozen head.
func newParams(dev Device, n int64, frozen float64) (*params, error) {
	if frozen <= 0 {
		return nil, nil
	}
	b, err := dev.Alloc(n, 8)
	if err != nil {
		return nil, fmt.Errorf("heat2d: allocate the %d-byte parameter buffer on %s: %w", n, dev.Name(), err)
	}
	p := &params{buf: b, frozen: int64(float64(n/8)*frozen) * 8, block: make([]float64, paramsBlock)}
	x := uint64(0x9e3779b97f4a7c15)
	for off := int64(0); off < p.frozen; off += 8 * paramsBlock {
		head := p.block[:min(paramsBlock, (p.frozen-off)/8)]
		for i := range head {
			// A fixed pseudo-random head (xorshift): incompressible
			// enough to be like trained weights, the same in every run.
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			head[i] = float64(x>>11) / (1 << 53)
		}
		if err := dev.CopyFromHost(b, off, kernels.Float64Bytes(head)); err != nil {
			b.Close()
			return nil, err
		}
	}
	if err := p.update(dev, 0); err != nil {
		b.Close()
		return nil, err
	}
	return p, nil
}

// update rewrites the trainable tail for step: element i of the tail is
// step*1e-3 + i*1e-9.
func (p *params) update(dev Device, step int64) error {
	if p == nil {
		return nil
	}
	s := float64(step)
	n := (p.buf.Len() - p.frozen) / 8
	for i0 := int64(0); i0 < n; i0 += paramsBlock {
		blk := p.block[:min(paramsBlock, n-i0)]
		for i := range blk {
			blk[i] = s*1e-3 + float64(i0+int64(i))*1e-9
		}
		if err := dev.CopyFromHost(p.buf, p.frozen+8*i0, kernels.Float64Bytes(blk)); err != nil {
			return err
		}
	}
	return nil
}

// exchanger holds the edge buffers reused every step.
type exchanger struct {
	l          Layout
	n, s, w, e int
	out, in    kernels.Edges
}

func newExchanger(l Layout) *exchanger {
	x := &exchanger{l: l}
	x.n, x.s, x.w, x.e = l.Neighbours()
	alloc := func(r, n int) []float64 {
		if r < 0 {
			return nil
		}
		return make([]float64, n)
	}
	t := l.Tile
	x.out = kernels.Edges{North: alloc(x.n, t.NX), South: alloc(x.s, t.NX), West: alloc(x.w, t.NY), East: alloc(x.e, t.NY)}
	x.in = kernels.Edges{North: alloc(x.n, t.NX), South: alloc(x.s, t.NX), West: alloc(x.w, t.NY), East: alloc(x.e, t.NY)}
	return x
}

// exchange sends cur's interior edges to the neighbours and writes theirs
// into cur's ghost border. Sends go first (the transport buffers them), then
// receives in a fixed order, so the exchange is deadlock-free and
// deterministic.
func (x *exchanger) exchange(ctx context.Context, c Comm, dev Device, cur kernels.Buffer) error {
	if err := dev.ReadEdges(cur, x.l.Tile, x.out); err != nil {
		return err
	}
	sends := []struct {
		to  int
		val []float64
	}{{x.n, x.out.North}, {x.s, x.out.South}, {x.w, x.out.West}, {x.e, x.out.East}}
	for _, s := range sends {
		if s.to >= 0 {
			if err := c.Send(ctx, s.to, kernels.Float64Bytes(s.val)); err != nil {
				return err
			}
		}
	}
	recvs := []struct {
		from int
		dst  []float64
	}{{x.n, x.in.North}, {x.s, x.in.South}, {x.w, x.in.West}, {x.e, x.in.East}}
	for _, r := range recvs {
		if r.from < 0 {
			continue
		}
		msg, err := c.Recv(ctx, r.from)
		if err != nil {
			return err
		}
		if len(msg) != 8*len(r.dst) {
			return fmt.Errorf("halo from rank %d: %d bytes, want %d", r.from, len(msg), 8*len(r.dst))
		}
		for i := range r.dst {
			r.dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(msg[8*i:]))
		}
	}
	return dev.WriteGhosts(cur, x.l.Tile, x.in)
}

// gatherBlockBytes bounds one gather message.
const gatherBlockBytes = 1 << 20

// gather computes the digest of the global interior grid, row-major,
// float64 little-endian: SHA-256, hex. Every rank sends its interior rows to
// rank 0 in blocks; rank 0 hashes global rows in order, holding one block per
// process-grid column at a time.
func gather(ctx context.Context, c Comm, dev Device, l Layout, cur kernels.Buffer) ([]byte, error) {
	t := l.Tile
	tile := make([]byte, t.Bytes())
	if err := dev.CopyToHost(tile, cur, 0); err != nil {
		return nil, err
	}
	rowBytes := 8 * t.NX
	rowsPerBlock := max(1, gatherBlockBytes/rowBytes)
	interiorRows := func(b []byte, j0, j1 int) []byte {
		out := make([]byte, 0, (j1-j0)*rowBytes)
		for j := j0; j < j1; j++ {
			off := 8 * t.Index(1, j+1)
			out = append(out, b[off:off+rowBytes]...)
		}
		return out
	}
	if l.Rank != 0 {
		for j := 0; j < t.NY; j += rowsPerBlock {
			if err := c.Send(ctx, 0, interiorRows(tile, j, min(j+rowsPerBlock, t.NY))); err != nil {
				return nil, fmt.Errorf("heat2d: gather: send to rank 0: %w", err)
			}
		}
		return nil, nil
	}
	h := sha256.New()
	blocks := make([][]byte, l.PX)
	for cy := 0; cy < l.PY; cy++ {
		for j := 0; j < t.NY; j += rowsPerBlock {
			n := min(rowsPerBlock, t.NY-j)
			for cx := 0; cx < l.PX; cx++ {
				r := l.rankAt(cx, cy)
				if r == 0 {
					blocks[cx] = interiorRows(tile, j, j+n)
					continue
				}
				msg, err := c.Recv(ctx, r)
				if err != nil {
					return nil, fmt.Errorf("heat2d: gather: receive from rank %d: %w", r, err)
				}
				if len(msg) != n*rowBytes {
					return nil, fmt.Errorf("heat2d: gather: block from rank %d has %d bytes, want %d", r, len(msg), n*rowBytes)
				}
				blocks[cx] = msg
			}
			for k := 0; k < n; k++ {
				for cx := 0; cx < l.PX; cx++ {
					h.Write(blocks[cx][k*rowBytes : (k+1)*rowBytes])
				}
			}
		}
	}
	return h.Sum(nil), nil
}

// Hex renders a digest as the launcher prints it.
func Hex(d []byte) string { return hex.EncodeToString(d) }
