//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/cutpoint/cutpoint/kernels"
)

// tile checks that b is a float64 buffer of tile t on this device.
func (d *Device) tile(op string, b kernels.Buffer, t kernels.Tile) (*Buffer, error) {
	cb, err := d.buffer(b)
	if err != nil {
		return nil, err
	}
	if cb.elem != 8 || cb.n != t.Bytes() {
		return nil, fmt.Errorf("cuda: %s: %s: buffer of %d bytes, element size %d, is not a %dx%d tile of float64 (%d bytes)", d.name, op, cb.n, cb.elem, t.NX, t.NY, t.Bytes())
	}
	return cb, nil
}

// Heat2DStep enqueues one Jacobi step (kernels.StencilPoint on every
// interior cell) on the compute stream and returns.
func (d *Device) Heat2DStep(dst, src kernels.Buffer, t kernels.Tile, alpha float64) error {
	if err := t.Validate(); err != nil {
		return err
	}
	cd, err := d.tile("heat2d step", dst, t)
	if err != nil {
		return err
	}
	cs, err := d.tile("heat2d step", src, t)
	if err != nil {
		return err
	}
	if cd == cs {
		return fmt.Errorf("cuda: %s: heat2d step: dst and src are the same buffer", d.name)
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	const block = 256
	gx := (t.NX + block - 1) / block
	gy := min(t.NY, 65535)
	if err := d.launch(d.fnStep, gx, gy, block, uint64(cd.ptr), uint64(cs.ptr), uint64(t.NX), uint64(t.NY), math.Float64bits(alpha)); err != nil {
		return fmt.Errorf("cuda: %s: heat2d_step: %w", d.name, err)
	}
	return nil
}

// edgeScratch makes the edge scratch buffers hold n float64s; edgeMu is
// held and the context current.
func (d *Device) edgeScratch(n int) error {
	if n <= d.edgeCap {
		return nil
	}
	if d.edgeUsed {
		if err := d.edgeEv.Synchronize(); err != nil {
			return fmt.Errorf("cuda: %s: edge scratch: %w", d.name, err)
		}
	}
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: edge scratch: %w", d.name, err)
	}
	_ = cu.MemFree(d.edgeDev)
	_ = hostFree(d.edgeRead)
	_ = hostFree(d.edgeWr)
	d.edgeDev, d.edgeRead, d.edgeWr, d.edgeCap, d.edgeUsed = 0, nil, nil, 0, false
	var err error
	if d.edgeDev, err = cu.MemAlloc(int64(n) * 8); err != nil {
		return allocError(d.name, "edge scratch", int64(n)*8, err)
	}
	if d.edgeRead, err = hostAlloc(n * 8); err != nil {
		return allocError(d.name, "pinned edge scratch", int64(n)*8, err)
	}
	if d.edgeWr, err = hostAlloc(n * 8); err != nil {
		return allocError(d.name, "pinned edge scratch", int64(n)*8, err)
	}
	d.edgeCap = n
	return nil
}

func edgeGrid(t kernels.Tile) int {
	return (2*t.NX + 2*t.NY + 255) / 256
}

// ReadEdges packs src's interior edges on the GPU, copies them to pinned
// memory and from there into e; it returns when e is filled.
func (d *Device) ReadEdges(src kernels.Buffer, t kernels.Tile, e kernels.Edges) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := e.Validate(t); err != nil {
		return err
	}
	cs, err := d.tile("read edges", src, t)
	if err != nil {
		return err
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	d.edgeMu.Lock()
	defer d.edgeMu.Unlock()
	n := 2*t.NX + 2*t.NY
	if err := d.edgeScratch(n); err != nil {
		return err
	}
	if err := d.launch(d.fnEdges, edgeGrid(t), 1, 256, uint64(cs.ptr), uint64(d.edgeDev), uint64(t.NX), uint64(t.NY)); err != nil {
		return fmt.Errorf("cuda: %s: heat2d_edges: %w", d.name, err)
	}
	if err := cu.MemcpyDtoHAsync(d.edgeRead, d.edgeDev, int64(n)*8, d.compute); err != nil {
		return fmt.Errorf("cuda: %s: read edges: %w", d.name, err)
	}
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: read edges: %w", d.name, err)
	}
	all := unsafe.Slice((*float64)(d.edgeRead), n)
	copy(e.North, all[:t.NX])
	copy(e.South, all[t.NX:2*t.NX])
	copy(e.West, all[2*t.NX:2*t.NX+t.NY])
	copy(e.East, all[2*t.NX+t.NY:])
	return nil
}

// WriteGhosts copies e into pinned memory, enqueues its upload and the
// unpacking kernel on the compute stream, and returns without waiting; the
// next edge operation waits for the upload before reusing the memory.
func (d *Device) WriteGhosts(dst kernels.Buffer, t kernels.Tile, e kernels.Edges) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := e.Validate(t); err != nil {
		return err
	}
	cd, err := d.tile("write ghosts", dst, t)
	if err != nil {
		return err
	}
	var mask uint64
	for bit, s := range [][]float64{e.North, e.South, e.West, e.East} {
		if s != nil {
			mask |= 1 << bit
		}
	}
	if mask == 0 {
		return nil
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	d.edgeMu.Lock()
	defer d.edgeMu.Unlock()
	n := 2*t.NX + 2*t.NY
	if err := d.edgeScratch(n); err != nil {
		return err
	}
	if d.edgeUsed {
		if err := d.edgeEv.Synchronize(); err != nil {
			return fmt.Errorf("cuda: %s: write ghosts: %w", d.name, err)
		}
	}
	all := unsafe.Slice((*float64)(d.edgeWr), n)
	copy(all[:t.NX], e.North)
	copy(all[t.NX:2*t.NX], e.South)
	copy(all[2*t.NX:2*t.NX+t.NY], e.West)
	copy(all[2*t.NX+t.NY:], e.East)
	if err := cu.MemcpyHtoDAsync(d.edgeDev, d.edgeWr, int64(n)*8, d.compute); err != nil {
		return fmt.Errorf("cuda: %s: write ghosts: %w", d.name, err)
	}
	if err := d.edgeEv.Record(d.compute); err != nil {
		return fmt.Errorf("cuda: %s: write ghosts: %w", d.name, err)
	}
	d.edgeUsed = true
	if err := d.launch(d.fnGhosts, edgeGrid(t), 1, 256, uint64(cd.ptr), uint64(d.edgeDev), uint64(t.NX), uint64(t.NY), mask); err != nil {
		return fmt.Errorf("cuda: %s: heat2d_ghosts: %w", d.name, err)
	}
	return nil
}
