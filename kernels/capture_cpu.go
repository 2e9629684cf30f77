package kernels

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Capture copies b into staging memory on all workers and returns the
// snapshot; the application may write b as soon as it returns. The copy is
// the only cost the application sees: chunk hashes (Incremental) are
// computed later, on the goroutines that call Chunk or Hashes, and the
// shuffle is left to the writer (Shuffled is false).
func (c *CPU) Capture(b Buffer, opt CaptureOptions) (Snapshot, error) {
	h, err := host(b)
	if err != nil {
		return nil, err
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	n := h.Len()
	s := &cpuSnapshot{
		dev:     c,
		n:       n,
		elem:    h.elem,
		opt:     opt,
		nchunks: NumChunks(n, opt.ChunkSize),
	}
	s.held.per = make([]atomic.Int32, s.nchunks)
	s.staging = c.staging.get(n)
	parallelCopy(s.staging, h.b, c.Workers())
	if opt.Incremental {
		s.sums = make([]uint64, s.nchunks)
		s.once = make([]sync.Once, s.nchunks)
		if opt.Base.Matches(n, opt.ChunkSize, h.elem) {
			s.base = opt.Base.Sums
		}
	}
	return s, nil
}

// Reserve puts a staging buffer for b into the pool with its pages faulted
// in (by all workers), so that the first Capture copies at memcpy speed
// instead of paying a page fault per 4 KiB.
func (c *CPU) Reserve(b Buffer, opt CaptureOptions) error {
	h, err := host(b)
	if err != nil {
		return err
	}
	if err := opt.Validate(); err != nil {
		return err
	}
	st := c.staging.get(h.Len())
	const page = 4096
	parallelFor(len(st), c.Workers(), 1<<20, func(lo, hi int) {
		for i := lo; i < hi; i += page {
			st[i] = 0
		}
	})
	c.staging.put(st)
	return nil
}

// cpuSnapshot is a capture of a host buffer: a full copy in staging memory
// taken from the device's pool and returned to it by Release.
type cpuSnapshot struct {
	dev     *CPU
	n       int64
	elem    int
	opt     CaptureOptions
	nchunks int

	mu       sync.RWMutex // guards staging against Release
	staging  []byte
	released bool
	held     holds
	// orphan is the staging memory of a snapshot released while chunks
	// were held (the shard writer returns from AddBuffer with its last
	// chunks still being compressed); the last Done returns it to the
	// pool. Leaving it to the garbage collector instead made the next
	// capture fault in fresh pages: about 150 ms more per 512 MiB.
	orphan []byte

	sums   []uint64    // chunk hashes, computed once each (Incremental)
	once   []sync.Once // guards sums[k]
	hashed atomic.Int64
	base   []uint64 // base hashes when they match this capture
}

func (s *cpuSnapshot) Len() int64     { return s.n }
func (s *cpuSnapshot) ElemSize() int  { return s.elem }
func (s *cpuSnapshot) Shuffled() bool { return false }
func (s *cpuSnapshot) NumChunks() int { return s.nchunks }

// hash computes chunk k's hash once; the caller holds s.mu for reading.
func (s *cpuSnapshot) hash(k int) uint64 {
	s.once[k].Do(func() {
		lo, hi := ChunkBounds(s.n, s.opt.ChunkSize, k)
		s.sums[k] = ChunkHash(s.staging[lo:hi])
		s.hashed.Add(1)
	})
	return s.sums[k]
}

// Chunk returns chunk i of the staging copy; it never waits for a device.
// With a matching base, a chunk whose hash equals the base's is reported
// unchanged; hashing it happens here, on the caller's goroutine.
func (s *cpuSnapshot) Chunk(ctx context.Context, i int) ([]byte, bool, error) {
	if i < 0 || i >= s.nchunks {
		return nil, false, fmt.Errorf("kernels: cpu snapshot: chunk %d of %d", i, s.nchunks)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.released {
		return nil, false, ErrReleased
	}
	if s.sums != nil {
		sum := s.hash(i)
		if s.base != nil && s.base[i] == sum {
			return nil, true, nil
		}
	}
	lo, hi := ChunkBounds(s.n, s.opt.ChunkSize, i)
	s.held.take(i)
	return s.staging[lo:hi:hi], false, nil
}

// Done marks chunk i as no longer used by the caller; after Release the
// last one returns the staging memory to the pool.
func (s *cpuSnapshot) Done(i int) {
	if !s.held.done(i) || s.held.total.Load() != 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orphan != nil && s.held.total.Load() == 0 {
		s.dev.staging.put(s.orphan)
		s.orphan = nil
	}
}

// Hashes computes the chunk hashes not yet computed (on all workers) and
// returns a copy.
func (s *cpuSnapshot) Hashes(ctx context.Context) (*ChunkHashes, error) {
	if s.sums == nil {
		return nil, ErrNoHashes
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.released {
		if s.hashed.Load() != int64(s.nchunks) {
			return nil, fmt.Errorf("kernels: cpu snapshot: hashes incomplete: %w", ErrReleased)
		}
	} else {
		parallelFor(s.nchunks, s.dev.Workers(), 1, func(lo, hi int) {
			for k := lo; k < hi && ctx.Err() == nil; k++ {
				s.hash(k)
			}
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return &ChunkHashes{Len: s.n, ChunkSize: s.opt.ChunkSize, ElemSize: s.elem, Sums: append([]uint64(nil), s.sums...)}, nil
}

// Release returns the staging memory to the pool, or, while a chunk is
// still held (Done not called), leaves that to the last Done: a writer that
// outlives its snapshot never reads a later capture.
func (s *cpuSnapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	if s.held.total.Load() == 0 {
		s.dev.staging.put(s.staging)
	} else {
		s.orphan = s.staging
	}
	s.staging = nil
}

// holds counts, per chunk, the times Chunk returned its data and Done has
// not yet been called. Done on a chunk not held (an unchanged chunk, a
// second Done) is ignored, so a writer may call Done for every index.
type holds struct {
	per   []atomic.Int32
	total atomic.Int64
}

func (h *holds) take(i int) {
	h.per[i].Add(1)
	h.total.Add(1)
}

// done releases one hold of chunk i and reports whether there was one.
func (h *holds) done(i int) bool {
	if i < 0 || i >= len(h.per) {
		return false
	}
	for {
		v := h.per[i].Load()
		if v <= 0 {
			return false
		}
		if h.per[i].CompareAndSwap(v, v-1) {
			h.total.Add(-1)
			return true
		}
	}
}
