package kernels

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// RestoreWriter receives a buffer's restored bytes piece by piece, as a
// restore decodes them, so that moving the bytes to the device overlaps
// decoding the rest instead of waiting for the whole buffer on the host.
//
// WriteAt copies p (which the caller may reuse once it returns) to byte
// offset off of the buffer; it may be called from many goroutines at
// once with ranges that do not overlap (the io.WriterAt contract), and it
// may block while earlier copies drain. Close waits until every byte
// written is in the buffer, ordered before any later work on it, frees
// what the restore held and returns the first error of any write. A
// buffer restored this way holds what was written only after a Close
// that returned nil; the caller must write every byte of it.
type RestoreWriter interface {
	io.WriterAt
	Close() error
}

// StreamRestorer is a device that restores a buffer from a stream of
// pieces (the CUDA device: pinned slots, host-to-device copies in flight
// while the next pieces are decoded). A device without it is restored
// with Device.Restore from one host copy of the whole buffer.
type StreamRestorer interface {
	RestoreStream(b Buffer) (RestoreWriter, error)
}

// RestoreStream returns a writer into host buffer b. The rank runtime
// decodes straight into host buffers (no writer needed); the CPU device
// has it so that the contract is tested on every machine
// (kernelstest.RestoreStreams) and for callers that hold only a Device.
func (c *CPU) RestoreStream(b Buffer) (RestoreWriter, error) {
	h, err := host(b)
	if err != nil {
		return nil, err
	}
	return &hostRestore{b: h.b}, nil
}

// hostRestore writes into host memory directly.
type hostRestore struct {
	b      []byte
	mu     sync.Mutex
	closed bool
}

func (w *hostRestore) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("kernels: cpu: restore write after Close: %w", ErrClosed)
	}
	if err := span("restore write", int64(len(w.b)), off, len(p)); err != nil {
		return 0, err
	}
	return copy(w.b[off:], p), nil
}

func (w *hostRestore) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("kernels: cpu: restore closed twice: %w", ErrClosed)
	}
	w.closed = true
	return nil
}

// StreamTimed is a snapshot whose device-side work ran on the job's own
// stream and held it (CUDA: the copy into device staging, shuffled and
// hashed, or on the direct path the copies to the host): StreamTime is how
// long, timed by events on the device. It waits until that work is done;
// call it before Release.
type StreamTimed interface {
	StreamTime() (time.Duration, error)
}
