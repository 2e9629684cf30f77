//go:build cuda

package cuda

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/cutpoint/cutpoint/kernels"
)

// Capture snapshots b without making the host wait.
//
// Staged path (the normal one): on the compute stream, after the work
// already enqueued there, one kernel copies b into a device staging buffer
// of the same size — byte-shuffled per chunk when opt.Shuffle, and summing
// the chunk hashes in the same pass when opt.Incremental. That costs the job
// one read and one write of b at device-memory speed on its stream, and
// from then on the job may overwrite b. An event hands over to the drain
// stream, which copies the hash sums and then, on demand and ahead of
// demand, chunk by chunk into a ring of opt.Slots pinned host buffers;
// Chunk waits only for its own chunk's copy. So the PCIe copy of chunk k+1
// overlaps the compression of chunk k, and both overlap the job's kernels.
// With a matching opt.Base, chunks whose hash is unchanged never cross
// PCIe.
//
// Direct path (when the device cannot allocate the staging buffer, or
// Options.DirectCapture): the hash pass (if any) and device-to-host copies
// of every chunk into one pinned host buffer of b's size are enqueued on
// the compute stream itself. The host still does not wait, but the job's
// later kernels wait for the PCIe copy, every chunk crosses PCIe, and the
// shuffle is left to the writer (Shuffled is false).
//
// Capture returns after enqueueing (and, the first time for a given size,
// allocating staging memory; it is pooled after Release).
func (d *Device) Capture(b kernels.Buffer, opt kernels.CaptureOptions) (kernels.Snapshot, error) {
	cb, err := d.buffer(b)
	if err != nil {
		return nil, err
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	n := cb.n
	s := &snapshot{
		d:           d,
		n:           n,
		elem:        cb.elem,
		chunk:       opt.ChunkSize,
		nchunks:     kernels.NumChunks(n, opt.ChunkSize),
		incremental: opt.Incremental,
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		fail:        make(chan struct{}),
		exited:      make(chan struct{}),
		hashesDone:  make(chan struct{}),
	}
	if opt.Incremental && opt.Base.Matches(n, opt.ChunkSize, cb.elem) {
		s.base = append([]uint64(nil), opt.Base.Sums...)
	}
	s.chunks = make([]chunkInfo, s.nchunks)
	for k := range s.chunks {
		s.chunks[k].ready = make(chan struct{})
		s.chunks[k].slot = -1
	}
	unbind, err := d.bind()
	if err != nil {
		return nil, err
	}
	defer unbind()
	if err := s.enqueue(cb, opt); err != nil {
		s.free()
		return nil, err
	}
	d.live.Add(1)
	go s.run()
	return s, nil
}

// Reserve allocates the device staging buffer, the pinned chunk slots and
// the pinned hash sums a capture of b with opt takes, into the pools, so
// that the first capture allocates nothing (allocating and pinning memory
// takes milliseconds, far more than the capture itself).
func (d *Device) Reserve(b kernels.Buffer, opt kernels.CaptureOptions) error {
	cb, err := d.buffer(b)
	if err != nil {
		return err
	}
	if err := opt.Validate(); err != nil {
		return err
	}
	nchunks := kernels.NumChunks(cb.n, opt.ChunkSize)
	if nchunks == 0 {
		return nil
	}
	unbind, err := d.bind()
	if err != nil {
		return err
	}
	defer unbind()
	if d.opt.DirectCapture {
		p, err := d.getPinned(int(cb.n))
		if err != nil {
			return allocError(d.name, "pinned capture staging", cb.n, err)
		}
		d.putPinned(p)
	} else {
		st, err := d.getStage(cb.n)
		if err != nil {
			return err
		}
		d.putStage(st)
		slots := make([]pinnedB, slotCount(opt, nchunks))
		for i := range slots {
			if slots[i], err = d.getPinned(opt.ChunkSize); err != nil {
				for _, p := range slots[:i] {
					d.putPinned(p)
				}
				return allocError(d.name, "pinned chunk slot", int64(opt.ChunkSize), err)
			}
		}
		for _, p := range slots {
			d.putPinned(p)
		}
	}
	if opt.Incremental {
		p, err := d.getPinned(nchunks * 8)
		if err != nil {
			return allocError(d.name, "pinned hash sums", int64(nchunks)*8, err)
		}
		d.putPinned(p)
	}
	return nil
}

// slotCount is the number of pinned chunk slots of a staged capture.
func slotCount(opt kernels.CaptureOptions, nchunks int) int {
	slots := opt.Slots
	if slots == 0 {
		slots = max(4, runtime.GOMAXPROCS(0)+2)
	}
	return min(slots, nchunks)
}

type chunkState uint8

const (
	csPending   chunkState = iota // not in host memory
	csLoading                     // a copy into a slot is in flight
	csReady                       // in host memory
	csUnchanged                   // equal to the base chunk; never copied
)

type chunkInfo struct {
	st     chunkState
	slot   int           // staged path: the slot while loading or ready
	demand int           // Chunk calls waiting for it
	holds  int           // Chunk returns not yet Done
	used   bool          // handed out and Done: prefetch skips it
	ready  chan struct{} // closed when st becomes ready or unchanged
}

type slot struct {
	buf   pinnedB
	ev    cu.Event
	chunk int // -1: free
}

// snapshot is a capture on the GPU; see Capture.
type snapshot struct {
	d                         *Device
	n                         int64
	elem, chunk, nchunks      int
	incremental, direct, shuf bool
	base                      []uint64

	st      stage        // staged: device copy of the buffer
	host    pinnedB      // direct: pinned copy of the whole buffer
	sumsD   cu.DevicePtr // per-chunk hash sums on the device
	sumsH   pinnedB      // and their pinned host copy
	evSnap  cu.Event     // compute stream: the device-side copy is done
	evStart cu.Event     // compute stream: before the capture's work (timing)
	evEnd   cu.Event     // direct: compute stream, after its last copy (timing)
	evSums  cu.Event     // the sums are in sumsH
	evGroup []cu.Event   // direct: chunks [g*group, (g+1)*group) are in host
	group   int

	mu       sync.Mutex
	chunks   []chunkInfo
	slots    []slot
	demandQ  []int // chunks that became demanded while pending, in order
	cursor   int   // next chunk to prefetch
	hashes   []uint64
	released bool
	err      error
	// held counts the chunks handed out by Chunk and not yet given back
	// by Done. Release may come first (the shard writer hands out every
	// chunk before the last ones are compressed): the pinned memory of
	// held chunks then stays in kept (host, when direct) until their
	// Done, and the snapshot stays live on the device until held is 0.
	held     int
	kept     map[int]pinnedB
	keptHost pinnedB

	wake       chan struct{} // nudges the drain goroutine
	stop       chan struct{} // closed by Release
	fail       chan struct{} // closed when err is set
	exited     chan struct{} // the drain goroutine ended
	hashesDone chan struct{} // hashes (and unchanged chunks) are known, or err is set
	hashesOnce sync.Once
}

// maxInFlight bounds the chunk copies queued on the drain stream at once:
// two keep the DMA engine busy between one completion and the next issue.
const maxInFlight = 3

// enqueue allocates and enqueues the device-side work; the context is
// current. On error the caller frees s.
func (s *snapshot) enqueue(cb *Buffer, opt kernels.CaptureOptions) error {
	d := s.d
	var err error
	flags := cu.DisableTiming | cu.BlockingSyncEvent
	// evSnap and evStart time the capture's work on the job's stream
	// (StreamTime); timing costs an event a few microseconds at most.
	if s.evSnap, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	if s.evSums, err = cu.MakeEvent(flags); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	if s.incremental && s.nchunks > 0 {
		if s.sumsD, err = cu.MemAlloc(int64(s.nchunks) * 8); err != nil {
			return allocError(d.name, "hash sums", int64(s.nchunks)*8, err)
		}
		if s.sumsH, err = d.getPinned(s.nchunks * 8); err != nil {
			return allocError(d.name, "pinned hash sums", int64(s.nchunks)*8, err)
		}
	}
	if s.nchunks == 0 {
		return nil
	}
	if s.evStart, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	if err := s.evStart.Record(d.compute); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	s.direct = d.opt.DirectCapture
	if !s.direct {
		s.st, err = d.getStage(s.n)
		if errors.Is(err, kernels.ErrOutOfMemory) {
			s.direct = true
		} else if err != nil {
			return err
		}
	}
	if s.direct {
		return s.enqueueDirect(cb)
	}
	s.shuf = opt.Shuffle
	s.slots = make([]slot, slotCount(opt, s.nchunks))
	for i := range s.slots {
		s.slots[i].chunk = -1
		if s.slots[i].buf, err = d.getPinned(s.chunk); err != nil {
			return allocError(d.name, "pinned chunk slot", int64(s.chunk), err)
		}
		if s.slots[i].ev, err = cu.MakeEvent(flags); err != nil {
			return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
		}
	}

	// Compute stream: the device-side snapshot (and hash sums).
	switch {
	case s.shuf || s.incremental:
		elem := 1
		if s.shuf {
			elem = s.elem
		}
		if err := d.chunkPass(cb.ptr, s.st.ptr, s.sumsD, s.n, s.chunk, elem); err != nil {
			return err
		}
	default:
		if err := cu.MemcpyDtoDAsync(s.st.ptr, cb.ptr, s.n, d.compute); err != nil {
			return fmt.Errorf("cuda: %s: capture copy: %w", d.name, err)
		}
	}
	if err := s.evSnap.Record(d.compute); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	// Drain stream: everything after the snapshot.
	if err := d.drain.Wait(s.evSnap, 0); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	if s.incremental {
		if err := cu.MemcpyDtoHAsync(s.sumsH.p, s.sumsD, int64(s.nchunks)*8, d.drain); err != nil {
			return fmt.Errorf("cuda: %s: capture: copying hash sums: %w", d.name, err)
		}
		if err := s.evSums.Record(d.drain); err != nil {
			return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
		}
	}
	return nil
}

// maxGroups bounds the events of a direct capture.
const maxGroups = 64

// enqueueDirect enqueues the direct path on the compute stream.
func (s *snapshot) enqueueDirect(cb *Buffer) error {
	d := s.d
	var err error
	if s.host, err = d.getPinned(int(s.n)); err != nil {
		return allocError(d.name, "pinned capture staging", s.n, err)
	}
	if s.incremental {
		if err := d.chunkPass(cb.ptr, 0, s.sumsD, s.n, s.chunk, 1); err != nil {
			return err
		}
		if err := cu.MemcpyDtoHAsync(s.sumsH.p, s.sumsD, int64(s.nchunks)*8, d.compute); err != nil {
			return fmt.Errorf("cuda: %s: capture: copying hash sums: %w", d.name, err)
		}
		if err := s.evSums.Record(d.compute); err != nil {
			return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
		}
	}
	s.group = (s.nchunks + maxGroups - 1) / maxGroups
	groups := (s.nchunks + s.group - 1) / s.group
	s.evGroup = make([]cu.Event, groups)
	for g := range s.evGroup {
		if s.evGroup[g], err = cu.MakeEvent(cu.DisableTiming | cu.BlockingSyncEvent); err != nil {
			return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
		}
		lo, _ := kernels.ChunkBounds(s.n, s.chunk, g*s.group)
		_, hi := kernels.ChunkBounds(s.n, s.chunk, min((g+1)*s.group, s.nchunks)-1)
		if err := cu.MemcpyDtoHAsync(unsafe.Add(s.host.p, lo), cb.ptr+cu.DevicePtr(lo), hi-lo, d.compute); err != nil {
			return fmt.Errorf("cuda: %s: capture copy: %w", d.name, err)
		}
		if err := s.evGroup[g].Record(d.compute); err != nil {
			return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
		}
	}
	if s.evEnd, err = cu.MakeEvent(cu.BlockingSyncEvent); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	if err := s.evEnd.Record(d.compute); err != nil {
		return fmt.Errorf("cuda: %s: capture: %w", d.name, err)
	}
	return nil
}

// free returns the snapshot's memory and destroys its events; the context
// is current and no copy is in flight. Slots still held by a caller (Done
// not called before Release) are not reused: they are left allocated rather
// than handed to a later capture under the caller's feet.
func (s *snapshot) free() {
	d := s.d
	if s.st.ptr != 0 {
		d.putStage(s.st)
		s.st = stage{}
	}
	if s.sumsD != 0 {
		_ = cu.MemFree(s.sumsD)
		s.sumsD = 0
	}
	d.putPinned(s.sumsH)
	s.sumsH = pinnedB{}
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.chunk >= 0 && s.chunks[sl.chunk].holds > 0 {
			if s.kept == nil {
				s.kept = map[int]pinnedB{}
			}
			s.kept[sl.chunk] = sl.buf
		} else {
			d.putPinned(sl.buf)
		}
		if sl.ev != (cu.Event{}) {
			_ = cu.DestroyEvent(&sl.ev)
		}
	}
	s.slots = nil
	if s.held > 0 {
		s.keptHost = s.host
	} else {
		d.putPinned(s.host)
	}
	s.host = pinnedB{}
	for g := range s.evGroup {
		_ = cu.DestroyEvent(&s.evGroup[g])
	}
	s.evGroup = nil
	if s.evSnap != (cu.Event{}) {
		_ = cu.DestroyEvent(&s.evSnap)
	}
	if s.evStart != (cu.Event{}) {
		_ = cu.DestroyEvent(&s.evStart)
	}
	if s.evEnd != (cu.Event{}) {
		_ = cu.DestroyEvent(&s.evEnd)
	}
	if s.evSums != (cu.Event{}) {
		_ = cu.DestroyEvent(&s.evSums)
	}
}

func (s *snapshot) Len() int64     { return s.n }
func (s *snapshot) ElemSize() int  { return s.elem }
func (s *snapshot) Shuffled() bool { return s.shuf }
func (s *snapshot) NumChunks() int { return s.nchunks }

// setErrLocked records the first device error and wakes every waiter.
func (s *snapshot) setErrLocked(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("cuda: %s: capture: %w", s.d.name, err)
		close(s.fail)
	}
}

func (s *snapshot) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the drain goroutine: it learns the hashes, then moves chunks into
// host memory until Release.
func (s *snapshot) run() {
	defer close(s.exited)
	defer s.hashesKnown() // also on the error paths, so nobody waits forever
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cu.SetCurrentContext(s.d.ctx); err != nil {
		s.mu.Lock()
		s.setErrLocked(err)
		s.mu.Unlock()
		return
	}
	if !s.learnHashes() {
		return
	}
	if s.direct {
		s.runDirect()
		return
	}
	var inflight []int // slots, in issue order
	for {
		s.mu.Lock()
		for len(inflight) < maxInFlight {
			k, sl, ok := s.pickLocked()
			if !ok {
				break
			}
			if err := s.issueLocked(k, sl); err != nil {
				s.setErrLocked(err)
				s.mu.Unlock()
				s.syncAll(inflight)
				return
			}
			inflight = append(inflight, sl)
		}
		if len(inflight) == 0 {
			released := s.released
			s.mu.Unlock()
			if released {
				return
			}
			select {
			case <-s.wake:
			case <-s.stop:
			}
			continue
		}
		s.mu.Unlock()
		sl := inflight[0]
		inflight = inflight[1:]
		err := s.slots[sl].ev.Synchronize()
		s.mu.Lock()
		if err != nil {
			s.setErrLocked(err)
			s.mu.Unlock()
			s.syncAll(inflight)
			return
		}
		k := s.slots[sl].chunk
		s.chunks[k].st = csReady
		close(s.chunks[k].ready)
		s.mu.Unlock()
	}
}

// syncAll waits for the copies still in flight, so their memory can be
// freed; errors are already recorded.
func (s *snapshot) syncAll(inflight []int) {
	for _, sl := range inflight {
		_ = s.slots[sl].ev.Synchronize()
	}
}

// learnHashes waits for the hash sums, finishes them, and marks the chunks
// equal to the base unchanged. It reports false on error.
func (s *snapshot) learnHashes() bool {
	defer s.hashesKnown()
	if !s.incremental || s.nchunks == 0 {
		return true
	}
	err := s.evSums.Synchronize()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.setErrLocked(err)
		return false
	}
	sums := append([]uint64(nil), unsafe.Slice((*uint64)(s.sumsH.p), s.nchunks)...)
	finishHashes(sums, s.n, s.chunk)
	s.hashes = sums
	for k := range s.base {
		if s.base[k] == sums[k] {
			s.chunks[k].st = csUnchanged
			close(s.chunks[k].ready)
		}
	}
	return true
}

func (s *snapshot) hashesKnown() { s.hashesOnce.Do(func() { close(s.hashesDone) }) }

// runDirect marks chunks ready as their group's copy completes.
func (s *snapshot) runDirect() {
	for g, ev := range s.evGroup {
		err := ev.Synchronize()
		s.mu.Lock()
		if err != nil {
			s.setErrLocked(err)
			s.mu.Unlock()
			// Later groups are queued behind the failed one; wait them
			// out so the memory is idle when freed.
			for _, e := range s.evGroup[g+1:] {
				_ = e.Synchronize()
			}
			return
		}
		for k := g * s.group; k < min((g+1)*s.group, s.nchunks); k++ {
			if s.chunks[k].st == csPending {
				s.chunks[k].st = csReady
				close(s.chunks[k].ready)
			}
		}
		s.mu.Unlock()
	}
}

// pickLocked chooses the next chunk to copy and the slot to copy it into:
// the oldest demanded chunk first (evicting a prefetched chunk nobody waits
// for if no slot is free), otherwise the next chunk in order into a free
// slot.
func (s *snapshot) pickLocked() (k, sl int, ok bool) {
	if s.released || s.err != nil {
		return 0, 0, false
	}
	for len(s.demandQ) > 0 {
		k = s.demandQ[0]
		c := &s.chunks[k]
		if c.st != csPending || c.demand == 0 {
			s.demandQ = s.demandQ[1:]
			continue
		}
		if sl = s.freeSlotLocked(); sl < 0 {
			sl = s.evictLocked()
		}
		if sl < 0 {
			return 0, 0, false // every slot is held or loading; Done will nudge
		}
		s.demandQ = s.demandQ[1:]
		return k, sl, true
	}
	for s.cursor < s.nchunks && (s.chunks[s.cursor].st != csPending || s.chunks[s.cursor].used) {
		s.cursor++
	}
	if s.cursor == s.nchunks {
		return 0, 0, false
	}
	if sl = s.freeSlotLocked(); sl < 0 {
		return 0, 0, false
	}
	return s.cursor, sl, true
}

func (s *snapshot) freeSlotLocked() int {
	for i := range s.slots {
		if s.slots[i].chunk < 0 {
			return i
		}
	}
	return -1
}

// evictLocked frees the slot of the highest prefetched chunk that nobody
// waits for or holds; -1 if there is none. The chunk goes back to pending
// (the device staging buffer still has it).
func (s *snapshot) evictLocked() int {
	best := -1
	for i := range s.slots {
		k := s.slots[i].chunk
		if k < 0 {
			continue
		}
		c := &s.chunks[k]
		if c.st == csReady && c.demand == 0 && c.holds == 0 && (best < 0 || k > s.slots[best].chunk) {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	k := s.slots[best].chunk
	s.chunks[k].st = csPending
	s.chunks[k].slot = -1
	s.chunks[k].ready = make(chan struct{})
	s.cursor = min(s.cursor, k)
	s.slots[best].chunk = -1
	return best
}

// issueLocked enqueues the copy of chunk k into slot sl on the drain stream.
func (s *snapshot) issueLocked(k, sl int) error {
	lo, hi := kernels.ChunkBounds(s.n, s.chunk, k)
	if err := cu.MemcpyDtoHAsync(s.slots[sl].buf.p, s.st.ptr+cu.DevicePtr(lo), hi-lo, s.d.drain); err != nil {
		return err
	}
	if err := s.slots[sl].ev.Record(s.d.drain); err != nil {
		return err
	}
	s.slots[sl].chunk = k
	s.chunks[k].st = csLoading
	s.chunks[k].slot = sl
	return nil
}

// dataLocked is chunk k's bytes in host memory.
func (s *snapshot) dataLocked(k int) []byte {
	lo, hi := kernels.ChunkBounds(s.n, s.chunk, k)
	if s.direct {
		return unsafe.Slice((*byte)(unsafe.Add(s.host.p, lo)), hi-lo)
	}
	return unsafe.Slice((*byte)(s.slots[s.chunks[k].slot].buf.p), hi-lo)
}

// Chunk returns chunk i once it is in pinned host memory; see
// kernels.Snapshot.
func (s *snapshot) Chunk(ctx context.Context, i int) ([]byte, bool, error) {
	if i < 0 || i >= s.nchunks {
		return nil, false, fmt.Errorf("cuda: %s: snapshot: chunk %d of %d", s.d.name, i, s.nchunks)
	}
	if s.incremental {
		// Whether the chunk is unchanged is known with the hashes.
		select {
		case <-s.hashesDone:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return nil, false, err
	}
	c := &s.chunks[i]
	switch c.st {
	case csUnchanged:
		s.mu.Unlock()
		return nil, true, nil
	case csReady:
		c.holds++
		s.held++
		data := s.dataLocked(i)
		s.mu.Unlock()
		return data, false, nil
	case csPending:
		s.demandQ = append(s.demandQ, i)
	}
	c.demand++
	ready := c.ready
	s.mu.Unlock()
	s.nudge()

	var waitErr error
	select {
	case <-ready:
	case <-ctx.Done():
		waitErr = ctx.Err()
	case <-s.fail:
	case <-s.stop:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.demand--
	if waitErr != nil {
		return nil, false, waitErr
	}
	if err := s.usableLocked(); err != nil {
		return nil, false, err
	}
	// A demanded chunk is never evicted, so it is still ready.
	c.holds++
	s.held++
	return s.dataLocked(i), false, nil
}

func (s *snapshot) usableLocked() error {
	if s.released {
		return kernels.ErrReleased
	}
	return s.err
}

// Done gives chunk i's slot back for the next copies. Done on a chunk not
// held is ignored. After Release it frees the chunk's memory instead, and
// the last Done ends the snapshot's claim on the device.
func (s *snapshot) Done(i int) {
	if i < 0 || i >= s.nchunks {
		return
	}
	s.mu.Lock()
	c := &s.chunks[i]
	if c.holds == 0 {
		s.mu.Unlock()
		return
	}
	c.holds--
	s.held--
	if s.released {
		var put []pinnedB
		if b, ok := s.kept[i]; ok && c.holds == 0 {
			delete(s.kept, i)
			put = append(put, b)
		}
		last := s.held == 0
		if last {
			put = append(put, s.keptHost)
			s.keptHost = pinnedB{}
		}
		s.mu.Unlock()
		s.putAfterRelease(put, last)
		return
	}
	if c.holds == 0 && c.demand == 0 && !s.direct {
		c.used = true
		s.slots[c.slot].chunk = -1
		c.slot = -1
		c.st = csPending
		c.ready = make(chan struct{})
	}
	s.mu.Unlock()
	s.nudge()
}

// putAfterRelease returns pinned memory that chunks held across Release
// kept; last: no chunk is held any more, so the snapshot no longer keeps
// the device open.
func (s *snapshot) putAfterRelease(put []pinnedB, last bool) {
	if last {
		defer s.d.live.Add(-1)
	}
	if len(put) == 0 {
		return
	}
	unbind, err := s.d.bind()
	if err != nil {
		return // device closed: its memory went with its context
	}
	defer unbind()
	for _, b := range put {
		s.d.putPinned(b)
	}
}

// Hashes returns the chunk hashes, computed on the GPU during the capture.
func (s *snapshot) Hashes(ctx context.Context) (*kernels.ChunkHashes, error) {
	if !s.incremental {
		return nil, kernels.ErrNoHashes
	}
	select {
	case <-s.hashesDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hashes == nil && s.nchunks > 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, kernels.ErrReleased
	}
	return &kernels.ChunkHashes{Len: s.n, ChunkSize: s.chunk, ElemSize: s.elem, Sums: append([]uint64{}, s.hashes...)}, nil
}

// Release stops the drain goroutine, waits for copies in flight, and
// returns the staging memory to the device's pools. Chunks still held keep
// their memory until their Done.
func (s *snapshot) Release() {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	close(s.stop)
	s.mu.Unlock()
	<-s.exited
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == 0 {
		defer s.d.live.Add(-1)
	}
	unbind, err := s.d.bind()
	if err != nil {
		return // device closed: its context and memory are gone with it
	}
	defer unbind()
	// The device-side copy may still be running if nothing waited for it.
	_ = s.evSnap.Synchronize()
	s.free()
}

// StreamTime is how long the capture's work held the compute stream (the
// job's): the device-side copy on the staged path, the hash pass and every
// copy to the host on the direct path, timed by events on the device. It
// waits for that work; call it before Release (which frees the events).
func (s *snapshot) StreamTime() (time.Duration, error) {
	s.mu.Lock()
	released := s.released
	s.mu.Unlock()
	if released {
		return 0, kernels.ErrReleased
	}
	if s.evStart == (cu.Event{}) {
		return 0, nil // an empty buffer: nothing was enqueued
	}
	end := s.evSnap
	if s.direct {
		end = s.evEnd
	}
	unbind, err := s.d.bind()
	if err != nil {
		return 0, err
	}
	defer unbind()
	if err := end.Synchronize(); err != nil {
		return 0, fmt.Errorf("cuda: %s: capture: %w", s.d.name, err)
	}
	ms, err := s.evStart.Elapsed(end)
	if err != nil {
		return 0, fmt.Errorf("cuda: %s: capture timing: %w", s.d.name, err)
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}
