package kernels

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// CPU is the host device: buffers are host memory (HostBuffer) and every
// kernel runs on up to Workers goroutines. It is safe for concurrent use.
type CPU struct {
	workers int
	staging stagingPool
}

var defaultCPU = &CPU{}

// CPUDevice is the process's shared CPU device (Open("cpu")); it uses
// GOMAXPROCS goroutines, read at each call.
func CPUDevice() *CPU { return defaultCPU }

// NewCPU returns a CPU device using up to workers goroutines per kernel
// (<= 0: GOMAXPROCS at each call). It has its own staging pool.
func NewCPU(workers int) *CPU { return &CPU{workers: workers} }

// Workers is the number of goroutines a kernel uses now.
func (c *CPU) Workers() int {
	if c.workers > 0 {
		return c.workers
	}
	return runtime.GOMAXPROCS(0)
}

// Name is "cpu".
func (c *CPU) Name() string { return "cpu" }

// Close does nothing: the CPU device holds nothing a caller must free.
func (c *CPU) Close() error { return nil }

// Synchronize returns at once: CPU kernels finish before they return.
func (c *CPU) Synchronize() error { return nil }

// Alloc returns a zeroed, 8-byte aligned HostBuffer.
func (c *CPU) Alloc(n int64, elemSize int) (Buffer, error) {
	if !ValidElemSize(elemSize) {
		return nil, fmt.Errorf("kernels: cpu: element size %d is not 1, 2, 4 or 8", elemSize)
	}
	if n < 0 || n > math.MaxInt-7 {
		return nil, fmt.Errorf("kernels: cpu: cannot allocate %d bytes", n)
	}
	return &HostBuffer{dev: c, b: alignedBytes(n), elem: elemSize}, nil
}

// host returns b as a live HostBuffer.
func host(b Buffer) (*HostBuffer, error) {
	h, ok := b.(*HostBuffer)
	if !ok {
		if b == nil {
			return nil, errors.New("kernels: cpu: nil buffer")
		}
		return nil, fmt.Errorf("kernels: cpu: a buffer of %s: %w", DeviceName(b), ErrWrongDevice)
	}
	if h.closed.Load() {
		return nil, fmt.Errorf("kernels: cpu: buffer: %w", ErrClosed)
	}
	return h, nil
}

// DeviceName names the device of b, also for buffers of foreign types that
// return no device.
func DeviceName(b Buffer) string {
	if d := b.Device(); d != nil {
		return d.Name()
	}
	return fmt.Sprintf("an unknown device (%T)", b)
}

// span checks that [off, off+n) lies within a buffer of length l.
func span(op string, l, off int64, n int) error {
	if off < 0 || off > l || int64(n) > l-off {
		return fmt.Errorf("kernels: %s: %d bytes at offset %d outside a buffer of %d bytes", op, n, off, l)
	}
	return nil
}

// CopyFromHost copies src into b at off, on all workers for large copies.
func (c *CPU) CopyFromHost(b Buffer, off int64, src []byte) error {
	h, err := host(b)
	if err != nil {
		return err
	}
	if err := span("copy from host", h.Len(), off, len(src)); err != nil {
		return err
	}
	parallelCopy(h.b[off:off+int64(len(src))], src, c.Workers())
	return nil
}

// CopyToHost fills dst from b at off.
func (c *CPU) CopyToHost(dst []byte, b Buffer, off int64) error {
	h, err := host(b)
	if err != nil {
		return err
	}
	if err := span("copy to host", h.Len(), off, len(dst)); err != nil {
		return err
	}
	parallelCopy(dst, h.b[off:off+int64(len(dst))], c.Workers())
	return nil
}

// Restore overwrites b with src.
func (c *CPU) Restore(b Buffer, src []byte) error {
	h, err := host(b)
	if err != nil {
		return err
	}
	if int64(len(src)) != h.Len() {
		return fmt.Errorf("kernels: cpu: restore of %d bytes into a buffer of %d", len(src), h.Len())
	}
	parallelCopy(h.b, src, c.Workers())
	return nil
}

// Hash returns the chunk hashes of b, computed on all workers.
func (c *CPU) Hash(b Buffer, chunkSize int) (*ChunkHashes, error) {
	h, err := host(b)
	if err != nil {
		return nil, err
	}
	return HashChunks(h.b, chunkSize, h.elem, c.Workers())
}

// tile returns b's memory as a heat2d tile.
func tileOf(op string, b Buffer, t Tile) ([]float64, error) {
	h, err := host(b)
	if err != nil {
		return nil, err
	}
	if h.elem != 8 || h.Len() != t.Bytes() {
		return nil, fmt.Errorf("kernels: %s: buffer of %d bytes, element size %d, is not a %dx%d tile of float64 (%d bytes)", op, h.Len(), h.elem, t.NX, t.NY, t.Bytes())
	}
	s := h.Float64s()
	if s == nil {
		return nil, fmt.Errorf("kernels: %s: buffer memory is not 8-byte aligned", op)
	}
	return s, nil
}

// Heat2DStep runs the stencil on all workers (Heat2DStepSlices).
func (c *CPU) Heat2DStep(dst, src Buffer, t Tile, alpha float64) error {
	if err := t.Validate(); err != nil {
		return err
	}
	d, err := tileOf("heat2d step", dst, t)
	if err != nil {
		return err
	}
	s, err := tileOf("heat2d step", src, t)
	if err != nil {
		return err
	}
	return Heat2DStepSlices(d, s, t, alpha, c.Workers())
}

// ReadEdges copies src's interior edges into e.
func (c *CPU) ReadEdges(src Buffer, t Tile, e Edges) error {
	if err := t.Validate(); err != nil {
		return err
	}
	s, err := tileOf("read edges", src, t)
	if err != nil {
		return err
	}
	return ReadEdgesSlice(s, t, e)
}

// WriteGhosts copies e into dst's ghost edges.
func (c *CPU) WriteGhosts(dst Buffer, t Tile, e Edges) error {
	if err := t.Validate(); err != nil {
		return err
	}
	d, err := tileOf("write ghosts", dst, t)
	if err != nil {
		return err
	}
	return WriteGhostsSlice(d, t, e)
}

// stagingPool keeps capture staging memory for reuse, so a steady stream
// of captures of the same buffers does not fault in fresh pages each time
// (a first touch costs about as much as the copy itself).
type stagingPool struct {
	mu   sync.Mutex
	free [][]byte
}

// maxStagingFree bounds the buffers the pool keeps.
const maxStagingFree = 8

// get returns n bytes of staging memory, reusing a free buffer that is at
// least n and at most twice n long.
func (p *stagingPool) get(n int64) []byte {
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		c := int64(cap(b))
		if c >= n && c <= 2*n && (best < 0 || c < int64(cap(p.free[best]))) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		p.free = append(p.free[:best], p.free[best+1:]...)
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	return alignedBytes(n)
}

func (p *stagingPool) put(b []byte) {
	if cap(b) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) >= maxStagingFree {
		// Drop the oldest: recent sizes are the likely next ones.
		copy(p.free, p.free[1:])
		p.free = p.free[:len(p.free)-1]
	}
	p.free = append(p.free, b[:cap(b)])
}
