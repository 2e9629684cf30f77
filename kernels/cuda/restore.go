//go:build cuda

package cuda

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/cutpoint/cutpoint/kernels"
)

// restoreSlot is the size of one pinned slot of a streamed restore: a
// piece larger than it crosses in several copies.
const restoreSlot = 4 << 20

// restoreSlots is the number of pinned slots of one streamed restore:
// enough that every decoding worker has one to fill while copies drain.
func restoreSlots() int { return max(4, runtime.GOMAXPROCS(0)+2) }

// RestoreStream returns a writer that restores b from pieces, for a
// restore that decodes a shard on all cores (ckpt.ShardReader.ReadBufferTo):
// each piece is copied into a pinned slot and from there to the device by
// an asynchronous host-to-device copy on the compute stream, so the DMA
// engine moves one piece while the workers decode and fill the next ones,
// and no host copy of the whole buffer exists (Restore, from pageable
// memory, needs one and copies only after it is complete). The copies are
// ordered after earlier work on the compute stream and Close waits for
// them, so that later work sees the restored bytes.
func (d *Device) RestoreStream(b kernels.Buffer) (kernels.RestoreWriter, error) {
	cb, err := d.buffer(b)
	if err != nil {
		return nil, err
	}
	unbind, err := d.bind()
	if err != nil {
		return nil, err
	}
	defer unbind()
	w := &restoreWriter{d: d, cb: cb, free: make(chan int, restoreSlots())}
	n := min(int64(restoreSlot), cb.n)
	for i := 0; i < cap(w.free) && n > 0; i++ {
		buf, err := d.getPinned(int(n))
		if err != nil {
			w.release()
			return nil, fmt.Errorf("cuda: %s: restore staging: %w", d.name, err)
		}
		ev, err := cu.MakeEvent(cu.DisableTiming | cu.BlockingSyncEvent)
		if err != nil {
			d.putPinned(buf)
			w.release()
			return nil, fmt.Errorf("cuda: %s: restore event: %w", d.name, err)
		}
		w.slots = append(w.slots, restoreSlotState{buf: buf, ev: ev})
		w.free <- i
	}
	d.live.Add(1)
	return w, nil
}

// restoreWriter is a streamed restore into one buffer.
type restoreWriter struct {
	d     *Device
	cb    *Buffer
	slots []restoreSlotState
	free  chan int // indexes of slots no writer fills

	// use is held (read) by every WriteAt for its whole run and by Close
	// (write), so that Close never frees a slot a write still fills.
	use    sync.RWMutex
	mu     sync.Mutex
	err    error // the first error of a copy
	closed bool  // under use and mu
}

// restoreSlotState is a pinned slot and the event recorded after the copy
// out of it, which must complete before the slot is filled again.
type restoreSlotState struct {
	buf  pinnedB
	ev   cu.Event
	used bool // ev was recorded
}

// WriteAt copies p into the buffer at off through the pinned slots; p may
// be reused once it returns. Safe for concurrent use (distinct ranges).
func (w *restoreWriter) WriteAt(p []byte, off int64) (int, error) {
	w.use.RLock()
	defer w.use.RUnlock()
	w.mu.Lock()
	closed, err := w.closed, w.err
	w.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("cuda: %s: restore write after Close: %w", w.d.name, kernels.ErrClosed)
	}
	if err != nil {
		return 0, err
	}
	if err := span("restore write", w.cb.n, off, len(p)); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	unbind, err := w.d.bind()
	if err != nil {
		return 0, err
	}
	defer unbind()
	done := 0
	for done < len(p) {
		i := <-w.free
		sl := &w.slots[i]
		err := w.copyVia(sl, p[done:min(len(p), done+sl.buf.n)], off+int64(done))
		w.free <- i
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
			return done, err
		}
		done += min(len(p)-done, sl.buf.n)
	}
	return done, nil
}

// copyVia waits until slot sl's last copy is done, fills it with p and
// enqueues its copy to off (the context is current).
func (w *restoreWriter) copyVia(sl *restoreSlotState, p []byte, off int64) error {
	if sl.used {
		if err := sl.ev.Synchronize(); err != nil {
			return fmt.Errorf("cuda: %s: restore copy: %w", w.d.name, err)
		}
	}
	copy(unsafe.Slice((*byte)(sl.buf.p), sl.buf.n), p)
	if err := cu.MemcpyHtoDAsync(w.cb.ptr+cu.DevicePtr(off), sl.buf.p, int64(len(p)), w.d.compute); err != nil {
		return fmt.Errorf("cuda: %s: restore copy: %w", w.d.name, err)
	}
	if err := sl.ev.Record(w.d.compute); err != nil {
		return fmt.Errorf("cuda: %s: restore copy: %w", w.d.name, err)
	}
	sl.used = true
	return nil
}

// Close waits for every copy and frees the slots; it returns the first
// error of any write or of the copies themselves.
func (w *restoreWriter) Close() error {
	w.use.Lock()
	defer w.use.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("cuda: %s: restore closed twice: %w", w.d.name, kernels.ErrClosed)
	}
	w.closed = true
	err := w.err
	w.mu.Unlock()
	unbind, berr := w.d.bind()
	if berr != nil {
		return berr
	}
	defer unbind()
	if serr := w.d.compute.Synchronize(); serr != nil && err == nil {
		err = fmt.Errorf("cuda: %s: restore: %w", w.d.name, serr)
	}
	w.release()
	w.d.live.Add(-1)
	return err
}

// release returns the slots to the device's pool (context current; every
// copy out of them done).
func (w *restoreWriter) release() {
	for i := range w.slots {
		w.d.putPinned(w.slots[i].buf)
		_ = cu.DestroyEvent(&w.slots[i].ev)
	}
	w.slots = nil
}

var (
	_ kernels.StreamRestorer = (*Device)(nil)
	_ kernels.StreamTimed    = (*snapshot)(nil)
)
