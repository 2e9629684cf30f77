//go:build cuda

package cuda

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/cutpoint/cutpoint/kernels"
)

//go:generate ./genptx.sh

//go:embed kernels.ptx
var ptx string

var errPinnedOOM = errors.New("out of pinned host memory")

func init() {
	kernels.Register("cuda", func(arg string) (kernels.Device, error) {
		ordinal := 0
		if arg != "" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("cuda: device %q: the argument is a GPU ordinal (cuda:0, cuda:1, ...)", "cuda:"+arg)
			}
			ordinal = n
		}
		return Open(ordinal, Options{})
	})
}

// Options tune a Device. The zero value is the default.
type Options struct {
	// DirectCapture makes every capture use the fallback path that needs
	// no device memory (see Device.Capture). For tests and for GPUs whose
	// memory the application fills.
	DirectCapture bool
	// MaxFreePinned bounds the released pinned host memory kept for reuse
	// (0: 16 GiB). Pinning is slow (milliseconds per hundred MiB); a
	// direct capture pins a copy of the whole buffer.
	MaxFreePinned int64
	// MaxFreeStaging bounds the released device staging buffers kept for
	// reuse (0: 8). Each is as large as the buffer it copied; Trim frees
	// them.
	MaxFreeStaging int
}

// Device is one GPU, driven through its primary context.
//
// Threading: every method may be called from any goroutine. The CUDA driver
// binds a context to an OS thread, so each method locks its goroutine to the
// OS thread for the duration of the call and makes the primary context
// current there (cheap); callers need no runtime.LockOSThread of their own.
// Work is enqueued on one compute stream (Stream) in call order: Heat2DStep
// and Capture return once enqueued, the copies to host and ReadEdges return
// when done. A job that launches its own kernels on the buffers must launch
// them on Stream, so that captures see their results and do not race with
// them.
type Device struct {
	ordinal int
	name    string
	opt     Options
	dev     cu.Device
	ctx     cu.CUContext
	mod     cu.Module

	fnPass, fnStep, fnEdges, fnGhosts cu.Function

	compute cu.Stream // the job's work and the device side of captures
	drain   cu.Stream // snapshot copies to the host, overlapping compute

	live   atomic.Int64 // buffers and snapshots not yet closed/released
	closed atomic.Bool

	edgeMu   sync.Mutex // the edge scratch buffers
	edgeDev  cu.DevicePtr
	edgeCap  int // float64s in edgeDev, edgeRead and edgeWrite
	edgeRead unsafe.Pointer
	edgeWr   unsafe.Pointer
	edgeEv   cu.Event // recorded after the last upload from edgeWr
	edgeUsed bool     // edgeEv was recorded

	poolMu  sync.Mutex
	stages  []stage   // released device staging buffers
	pinned  []pinnedB // released pinned host blocks
	pinnedN int64     // bytes in pinned
}

// stage is a device staging buffer of a capture.
type stage struct {
	ptr cu.DevicePtr
	n   int64
}

// pinnedB is a block of pinned host memory.
type pinnedB struct {
	p unsafe.Pointer
	n int
}

// Open opens GPU ordinal through its primary context, loads the embedded
// kernels and creates the compute and drain streams.
func Open(ordinal int, opt Options) (*Device, error) {
	if opt.MaxFreeStaging <= 0 {
		opt.MaxFreeStaging = 8
	}
	if opt.MaxFreePinned <= 0 {
		opt.MaxFreePinned = 16 << 30
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	count, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if ordinal < 0 || ordinal >= count {
		return nil, fmt.Errorf("cuda: GPU %d does not exist (%d found): %w", ordinal, count, kernels.ErrUnknownDevice)
	}
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda: GPU %d: %w", ordinal, err)
	}
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return nil, fmt.Errorf("cuda: GPU %d: retaining the primary context: %w", ordinal, err)
	}
	d := &Device{ordinal: ordinal, name: "cuda:" + strconv.Itoa(ordinal), opt: opt, dev: dev, ctx: ctx}
	if err := d.setup(); err != nil {
		d.teardown()
		return nil, err
	}
	return d, nil
}

// setup runs on Open's locked thread.
func (d *Device) setup() error {
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		return fmt.Errorf("cuda: %s: making the context current: %w", d.name, err)
	}
	mod, err := cu.LoadData(ptx)
	if err != nil {
		return fmt.Errorf("cuda: %s: loading the embedded PTX: %w", d.name, err)
	}
	d.mod = mod
	for _, f := range []struct {
		fn   *cu.Function
		name string
	}{{&d.fnPass, "chunk_pass"}, {&d.fnStep, "heat2d_step"}, {&d.fnEdges, "heat2d_edges"}, {&d.fnGhosts, "heat2d_ghosts"}} {
		if *f.fn, err = mod.Function(f.name); err != nil {
			return fmt.Errorf("cuda: %s: kernel %s: %w", d.name, f.name, err)
		}
	}
	if d.compute, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("cuda: %s: compute stream: %w", d.name, err)
	}
	if d.drain, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("cuda: %s: drain stream: %w", d.name, err)
	}
	if d.edgeEv, err = cu.MakeEvent(cu.DisableTiming); err != nil {
		return fmt.Errorf("cuda: %s: event: %w", d.name, err)
	}
	return nil
}

// teardown frees what setup made; the context is current.
func (d *Device) teardown() {
	if d.compute != (cu.Stream{}) {
		_ = d.compute.Synchronize()
		_ = d.compute.Destroy()
	}
	if d.drain != (cu.Stream{}) {
		_ = d.drain.Synchronize()
		_ = d.drain.Destroy()
	}
	if d.edgeEv != (cu.Event{}) {
		_ = cu.DestroyEvent(&d.edgeEv)
	}
	if d.mod != (cu.Module{}) {
		_ = d.mod.Unload()
	}
	_ = d.dev.ReleasePrimaryCtx()
}

// bind locks the calling goroutine to its OS thread and makes the device's
// context current there; call the returned function when done.
func (d *Device) bind() (func(), error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("cuda: %s: %w", d.name, kernels.ErrClosed)
	}
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("cuda: %s: making the context current: %w", d.name, err)
	}
	return runtime.UnlockOSThread, nil
}

// Name is "cuda:N".
func (d *Device) Name() string { return d.name }

// GPU names the GPU model, as recorded for a job's manifest (replacements
// must run on the same model for bit-identical results).
func (d *Device) GPU() string {
	n, err := d.dev.Name()
	if err != nil {
		return "unknown"
	}
	return n
}

// Stream is the compute stream; see the type's documentation.
func (d *Device) Stream() cu.Stream { return d.compute }

// Synchronize waits for all work on the compute stream.
func (d *Device) Synchronize() error {
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: synchronize: %w", d.name, err)
	}
	return nil
}

// Close frees the device's resources and releases the primary context. It
// fails while buffers or snapshots of the device are alive.
func (d *Device) Close() error {
	if n := d.live.Load(); n > 0 {
		return fmt.Errorf("cuda: %s: close with %d buffers or snapshots still open", d.name, n)
	}
	unbind, err := d.bind()
	if err != nil {
		if errors.Is(err, kernels.ErrClosed) {
			return nil
		}
		return err
	}
	defer unbind()
	if !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	_ = d.compute.Synchronize()
	_ = d.drain.Synchronize()
	d.trimLocked(true)
	d.edgeMu.Lock()
	if d.edgeUsed {
		_ = d.edgeEv.Synchronize()
	}
	_ = cu.MemFree(d.edgeDev)
	_ = hostFree(d.edgeRead)
	_ = hostFree(d.edgeWr)
	d.edgeDev, d.edgeRead, d.edgeWr, d.edgeCap = 0, nil, nil, 0
	d.edgeMu.Unlock()
	d.teardown()
	return nil
}

// Trim frees the staging memory kept for reuse by released snapshots.
func (d *Device) Trim() error {
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	d.trimLocked(true)
	return nil
}

// trimLocked frees pooled memory (all of it, or what exceeds the bounds);
// the context is current.
func (d *Device) trimLocked(all bool) {
	d.poolMu.Lock()
	defer d.poolMu.Unlock()
	keep := d.opt.MaxFreeStaging
	if all {
		keep = 0
	}
	for len(d.stages) > keep {
		_ = cu.MemFree(d.stages[0].ptr)
		d.stages = d.stages[1:]
	}
	limit := d.opt.MaxFreePinned
	if all {
		limit = 0
	}
	for d.pinnedN > limit && len(d.pinned) > 0 {
		_ = hostFree(d.pinned[0].p)
		d.pinnedN -= int64(d.pinned[0].n)
		d.pinned = d.pinned[1:]
	}
}

// getStage returns a device staging buffer of n bytes; the context is
// current.
func (d *Device) getStage(n int64) (stage, error) {
	d.poolMu.Lock()
	for i, s := range d.stages {
		if s.n == n {
			d.stages = append(d.stages[:i], d.stages[i+1:]...)
			d.poolMu.Unlock()
			return s, nil
		}
	}
	d.poolMu.Unlock()
	p, err := cu.MemAlloc(n)
	if err != nil {
		if errors.Is(err, cu.OutOfMemory) {
			// Pooled buffers of other sizes may be what is in the way.
			d.trimLocked(true)
			p, err = cu.MemAlloc(n)
		}
		if err != nil {
			return stage{}, allocError(d.name, "staging", n, err)
		}
	}
	return stage{ptr: p, n: n}, nil
}

func (d *Device) putStage(s stage) {
	if s.ptr == 0 {
		return
	}
	d.poolMu.Lock()
	d.stages = append(d.stages, s)
	d.poolMu.Unlock()
	d.trimLocked(false)
}

// getPinned returns n bytes of pinned host memory; the context is current.
func (d *Device) getPinned(n int) (pinnedB, error) {
	d.poolMu.Lock()
	for i, b := range d.pinned {
		if b.n == n {
			d.pinned = append(d.pinned[:i], d.pinned[i+1:]...)
			d.pinnedN -= int64(n)
			d.poolMu.Unlock()
			return b, nil
		}
	}
	d.poolMu.Unlock()
	p, err := hostAlloc(n)
	if err != nil {
		return pinnedB{}, err
	}
	return pinnedB{p: p, n: n}, nil
}

func (d *Device) putPinned(b pinnedB) {
	if b.p == nil {
		return
	}
	d.poolMu.Lock()
	d.pinned = append(d.pinned, b)
	d.pinnedN += int64(b.n)
	d.poolMu.Unlock()
	d.trimLocked(false)
}

func allocError(dev, what string, n int64, err error) error {
	if errors.Is(err, cu.OutOfMemory) || errors.Is(err, errPinnedOOM) {
		return fmt.Errorf("cuda: %s: allocating %d bytes of %s: %w: %w", dev, n, what, kernels.ErrOutOfMemory, err)
	}
	return fmt.Errorf("cuda: %s: allocating %d bytes of %s: %w", dev, n, what, err)
}

// Buffer is device memory allocated by Alloc.
type Buffer struct {
	d      *Device
	ptr    cu.DevicePtr
	n      int64
	elem   int
	closed atomic.Bool
	// borrowed: memory of the job's (Wrap); Close does not free it.
	borrowed bool
}

// Device returns the device that allocated the buffer.
func (b *Buffer) Device() kernels.Device { return b.d }

// Len is the length in bytes.
func (b *Buffer) Len() int64 { return b.n }

// ElemSize is the element size in bytes.
func (b *Buffer) ElemSize() int { return b.elem }

// Ptr is the device address, for kernels of the job's own (launched on
// Device.Stream).
func (b *Buffer) Ptr() cu.DevicePtr { return b.ptr }

// Close frees the device memory after the work enqueued so far.
func (b *Buffer) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	defer b.d.live.Add(-1)
	if b.ptr == 0 || b.borrowed {
		return nil
	}
	unbind, err := b.d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	// cuMemFree does not wait for the streams; work still reading the
	// buffer must finish first.
	if err := b.d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: freeing a buffer: %w", b.d.name, err)
	}
	if err := cu.MemFree(b.ptr); err != nil {
		return fmt.Errorf("cuda: %s: freeing a buffer: %w", b.d.name, err)
	}
	return nil
}

// Alloc returns a zeroed device buffer (the zeroing is enqueued on the
// compute stream).
func (d *Device) Alloc(n int64, elemSize int) (kernels.Buffer, error) {
	if !kernels.ValidElemSize(elemSize) {
		return nil, fmt.Errorf("cuda: %s: element size %d is not 1, 2, 4 or 8", d.name, elemSize)
	}
	if n < 0 || n > math.MaxInt64/2 {
		return nil, fmt.Errorf("cuda: %s: cannot allocate %d bytes", d.name, n)
	}
	unbind, err := d.bind()
	if err != nil {
		return nil, err
	}
	defer unbind()
	b := &Buffer{d: d, n: n, elem: elemSize}
	if n > 0 {
		if b.ptr, err = cu.MemAlloc(n); err != nil {
			return nil, allocError(d.name, "buffer", n, err)
		}
		if err := cu.MemsetD8Async(b.ptr, 0, n, d.compute); err != nil {
			_ = cu.MemFree(b.ptr)
			return nil, fmt.Errorf("cuda: %s: zeroing a new buffer: %w", d.name, err)
		}
	}
	d.live.Add(1)
	return b, nil
}

// Wrap makes n bytes of device memory at ptr, allocated by the job in this
// device's primary context (the CUDA runtime's context), a Buffer of
// elemSize-byte elements without copying: captures read it and restores
// write it in place, on the device's streams. Close does not free the
// memory, which must outlive every use of the buffer. For jobs that own
// their device memory (libcutpoint's cutpoint_protect_cuda).
func (d *Device) Wrap(ptr cu.DevicePtr, n int64, elemSize int) (*Buffer, error) {
	if !kernels.ValidElemSize(elemSize) {
		return nil, fmt.Errorf("cuda: %s: element size %d is not 1, 2, 4 or 8", d.name, elemSize)
	}
	if n < 0 || n%int64(elemSize) != 0 {
		return nil, fmt.Errorf("cuda: %s: wrap: %d bytes are not whole %d-byte elements", d.name, n, elemSize)
	}
	if ptr == 0 && n > 0 {
		return nil, fmt.Errorf("cuda: %s: wrap: NULL device pointer of %d bytes", d.name, n)
	}
	d.live.Add(1)
	return &Buffer{d: d, ptr: ptr, n: n, elem: elemSize, borrowed: true}, nil
}

// buffer returns b as a live buffer of this device.
func (d *Device) buffer(b kernels.Buffer) (*Buffer, error) {
	cb, ok := b.(*Buffer)
	if !ok || cb.d != d {
		if b == nil {
			return nil, fmt.Errorf("cuda: %s: nil buffer", d.name)
		}
		return nil, fmt.Errorf("cuda: %s: a buffer of %s: %w", d.name, kernels.DeviceName(b), kernels.ErrWrongDevice)
	}
	if cb.closed.Load() {
		return nil, fmt.Errorf("cuda: %s: buffer: %w", d.name, kernels.ErrClosed)
	}
	return cb, nil
}

func span(op string, l, off int64, n int) error {
	if off < 0 || off > l || int64(n) > l-off {
		return fmt.Errorf("cuda: %s: %d bytes at offset %d outside a buffer of %d bytes", op, n, off, l)
	}
	return nil
}

// CopyFromHost copies src into b at off, ordered after earlier work. It
// returns once src may be reused (the driver stages pageable memory).
func (d *Device) CopyFromHost(b kernels.Buffer, off int64, src []byte) error {
	cb, err := d.buffer(b)
	if err != nil {
		return err
	}
	if err := span("copy from host", cb.n, off, len(src)); err != nil {
		return err
	}
	if len(src) == 0 {
		return nil
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	if err := cu.MemcpyHtoDAsync(cb.ptr+cu.DevicePtr(off), unsafe.Pointer(unsafe.SliceData(src)), int64(len(src)), d.compute); err != nil {
		return fmt.Errorf("cuda: %s: copy from host: %w", d.name, err)
	}
	// Returning with a pageable source still in flight is allowed by the
	// driver, but waiting keeps the Go memory rule simple: the driver
	// holds no Go pointer once we return.
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: copy from host: %w", d.name, err)
	}
	return nil
}

// CopyToHost fills dst from b at off after all earlier work.
func (d *Device) CopyToHost(dst []byte, b kernels.Buffer, off int64) error {
	cb, err := d.buffer(b)
	if err != nil {
		return err
	}
	if err := span("copy to host", cb.n, off, len(dst)); err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(unsafe.SliceData(dst)), cb.ptr+cu.DevicePtr(off), int64(len(dst)), d.compute); err != nil {
		return fmt.Errorf("cuda: %s: copy to host: %w", d.name, err)
	}
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: copy to host: %w", d.name, err)
	}
	return nil
}

// Restore overwrites b with src (raw bytes) and waits until done.
func (d *Device) Restore(b kernels.Buffer, src []byte) error {
	cb, err := d.buffer(b)
	if err != nil {
		return err
	}
	if int64(len(src)) != cb.n {
		return fmt.Errorf("cuda: %s: restore of %d bytes into a buffer of %d", d.name, len(src), cb.n)
	}
	return d.CopyFromHost(b, 0, src)
}

// launch enqueues fn on the compute stream. Every argument is passed as an
// 8-byte value (cu's Launch reads 8 bytes behind each parameter pointer),
// matching the kernels' pointer, unsigned long long and double parameters.
func (d *Device) launch(fn cu.Function, gx, gy, block int, args ...uint64) error {
	hold := make([]uint64, len(args))
	ptrs := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		hold[i] = a
		ptrs[i] = unsafe.Pointer(&hold[i])
	}
	return fn.Launch(gx, gy, 1, block, 1, 1, 0, d.compute, ptrs)
}

// Kernel geometry of chunk_pass; must match kernels.cu.
const (
	chunkThreads   = 256
	wordsPerThread = 16
	tileWords      = chunkThreads * wordsPerThread
	maxGridX       = 1<<31 - 1
)

// chunkPass enqueues chunk_pass over the n bytes at src: hash sums into sums
// (if non-zero, zeroed here first) and a copy, shuffled when elem > 1, into
// dst (if non-zero).
func (d *Device) chunkPass(src, dst, sums cu.DevicePtr, n int64, chunk, elem int) error {
	nchunks := kernels.NumChunks(n, chunk)
	if nchunks == 0 {
		return nil
	}
	tiles := (chunk/8 + tileWords - 1) / tileWords
	grid := int64(nchunks) * int64(tiles)
	if grid > maxGridX {
		return fmt.Errorf("cuda: %s: %d chunks of %d bytes: too many for one launch; use larger chunks", d.name, nchunks, chunk)
	}
	if sums != 0 {
		if err := cu.MemsetD8Async(sums, 0, int64(nchunks)*8, d.compute); err != nil {
			return fmt.Errorf("cuda: %s: zeroing hash sums: %w", d.name, err)
		}
	}
	if err := d.launch(d.fnPass, int(grid), 1, chunkThreads,
		uint64(src), uint64(dst), uint64(n), uint64(chunk), uint64(elem), uint64(sums), uint64(tiles)); err != nil {
		return fmt.Errorf("cuda: %s: chunk_pass: %w", d.name, err)
	}
	return nil
}

// finishHashes turns the per-chunk sums into chunk hashes.
func finishHashes(sums []uint64, n int64, chunk int) {
	for k := range sums {
		lo, hi := kernels.ChunkBounds(n, chunk, k)
		sums[k] = kernels.HashFinish(sums[k], int(hi-lo))
	}
}

// Hash computes the chunk hashes of b's current contents on the GPU.
func (d *Device) Hash(b kernels.Buffer, chunkSize int) (*kernels.ChunkHashes, error) {
	cb, err := d.buffer(b)
	if err != nil {
		return nil, err
	}
	if chunkSize <= 0 || chunkSize%64 != 0 {
		return nil, fmt.Errorf("cuda: %s: chunk size %d is not a positive multiple of 64", d.name, chunkSize)
	}
	nchunks := kernels.NumChunks(cb.n, chunkSize)
	h := &kernels.ChunkHashes{Len: cb.n, ChunkSize: chunkSize, ElemSize: cb.elem, Sums: make([]uint64, nchunks)}
	if nchunks == 0 {
		return h, nil
	}
	unbind, err := d.bind()
	if err != nil {
		return nil, err
	}
	defer unbind()
	sums, err := cu.MemAlloc(int64(nchunks) * 8)
	if err != nil {
		return nil, allocError(d.name, "hash sums", int64(nchunks)*8, err)
	}
	defer cu.MemFree(sums)
	if err := d.chunkPass(cb.ptr, 0, sums, cb.n, chunkSize, cb.elem); err != nil {
		return nil, err
	}
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(unsafe.SliceData(h.Sums)), sums, int64(nchunks)*8, d.compute); err != nil {
		return nil, fmt.Errorf("cuda: %s: reading hash sums: %w", d.name, err)
	}
	if err := d.compute.Synchronize(); err != nil {
		return nil, fmt.Errorf("cuda: %s: hashing: %w", d.name, err)
	}
	finishHashes(h.Sums, cb.n, chunkSize)
	return h, nil
}

// Shuffle writes the per-chunk byte shuffle of src into dst (same length and
// device) and waits: the GPU side of the store's filter, exposed so tests
// and benchmarks can compare it with kernels/shuffle.
func (d *Device) Shuffle(dst, src kernels.Buffer, chunkSize int) error {
	cd, err := d.buffer(dst)
	if err != nil {
		return err
	}
	cs, err := d.buffer(src)
	if err != nil {
		return err
	}
	if cd.n != cs.n || cd == cs {
		return fmt.Errorf("cuda: %s: shuffle needs two distinct buffers of one length (%d, %d bytes)", d.name, cd.n, cs.n)
	}
	if chunkSize <= 0 || chunkSize%64 != 0 {
		return fmt.Errorf("cuda: %s: chunk size %d is not a positive multiple of 64", d.name, chunkSize)
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	if err := d.chunkPass(cs.ptr, cd.ptr, 0, cs.n, chunkSize, cs.elem); err != nil {
		return err
	}
	if err := d.compute.Synchronize(); err != nil {
		return fmt.Errorf("cuda: %s: shuffle: %w", d.name, err)
	}
	return nil
}

var (
	_ kernels.Device        = (*Device)(nil)
	_ kernels.Heat2DKernels = (*Device)(nil)
)
