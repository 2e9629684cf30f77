package kernels

import (
	"context"
	"fmt"
	"sync"
)

// InPlaceSnapshot is a snapshot that reads its buffer where it lives: no
// staging copy, so the application must not write the buffer until
// Consumed is closed. The rank runtime holds the job at its SafePoint for
// that long when a cut's state exceeds its staging bound (rank
// Options.MaxStaging): memory for stall.
type InPlaceSnapshot interface {
	Snapshot
	// Consumed is closed once no byte of the buffer will be read again:
	// every chunk was handed out by Chunk and given back by Done, or the
	// snapshot was released with no chunk held.
	Consumed() <-chan struct{}
}

// CaptureInPlace returns a snapshot of b that serves its chunks from b
// itself (zero-copy). Unlike Capture, the caller may not write b until the
// snapshot's Consumed channel is closed. Only plain captures are served:
// Incremental needs the hashes of an unchanging copy.
func (c *CPU) CaptureInPlace(b Buffer, opt CaptureOptions) (InPlaceSnapshot, error) {
	h, err := host(b)
	if err != nil {
		return nil, err
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.Incremental {
		return nil, fmt.Errorf("kernels: cpu: an in-place capture takes no chunk hashes (Incremental)")
	}
	n := h.Len()
	s := &inPlaceSnapshot{
		b: h.b, elem: h.elem, chunk: opt.ChunkSize, nchunks: NumChunks(n, opt.ChunkSize),
		consumed: make(chan struct{}),
	}
	s.taken = make([]bool, s.nchunks)
	s.held = make([]int, s.nchunks)
	if s.nchunks == 0 {
		close(s.consumed)
	}
	return s, nil
}

// inPlaceSnapshot serves a host buffer's chunks from the buffer itself and
// counts them out and back, so that the caller learns when the last byte
// has been read.
type inPlaceSnapshot struct {
	b       []byte
	elem    int
	chunk   int
	nchunks int

	mu       sync.Mutex
	taken    []bool // chunk handed out at least once (or reported unread)
	ntaken   int
	held     []int // Chunk calls not yet matched by Done, per chunk
	nheld    int
	released bool
	consumed chan struct{}
	closed   bool
}

func (s *inPlaceSnapshot) Len() int64     { return int64(len(s.b)) }
func (s *inPlaceSnapshot) ElemSize() int  { return s.elem }
func (s *inPlaceSnapshot) Shuffled() bool { return false }
func (s *inPlaceSnapshot) NumChunks() int { return s.nchunks }

// Chunk returns chunk i of the live buffer; the bytes are read, not
// copied, until Done(i).
func (s *inPlaceSnapshot) Chunk(ctx context.Context, i int) ([]byte, bool, error) {
	if i < 0 || i >= s.nchunks {
		return nil, false, fmt.Errorf("kernels: cpu in-place snapshot: chunk %d of %d", i, s.nchunks)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return nil, false, ErrReleased
	}
	if !s.taken[i] {
		s.taken[i] = true
		s.ntaken++
	}
	s.held[i]++
	s.nheld++
	lo, hi := ChunkBounds(int64(len(s.b)), s.chunk, i)
	return s.b[lo:hi:hi], false, nil
}

// Done gives chunk i back; a Done without a matching Chunk is ignored.
func (s *inPlaceSnapshot) Done(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= s.nchunks || s.held[i] == 0 {
		return
	}
	s.held[i]--
	s.nheld--
	s.check()
}

// check closes consumed when nothing more will be read (s.mu held).
func (s *inPlaceSnapshot) check() {
	if s.closed || s.nheld != 0 || (!s.released && s.ntaken < s.nchunks) {
		return
	}
	s.closed = true
	close(s.consumed)
}

func (s *inPlaceSnapshot) Consumed() <-chan struct{} { return s.consumed }

// Hashes: an in-place capture has none (see CaptureInPlace).
func (s *inPlaceSnapshot) Hashes(context.Context) (*ChunkHashes, error) { return nil, ErrNoHashes }

// Release ends the snapshot: Chunk fails from now on, and Consumed closes
// once the chunks still held are given back.
func (s *inPlaceSnapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	s.check()
}
