package ckpt

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// ShardSpec names the shard a rank writes for one cut.
type ShardSpec struct {
	Job         string
	Epoch       uint64 // >= 1
	Rank        int
	Incarnation uint64 // >= 1
	Step        int64  // the cut holds the state after Step steps
	// Base, when set, is this rank's shard in a committed older cut: chunks
	// equal to one of its chunks are referenced instead of written, and
	// sources may report chunks unchanged against it. The base cut must be
	// pinned against GC until this shard's cut commits or aborts.
	Base *BaseRef
}

// BaseRef names the committed cut an incremental shard builds on.
type BaseRef struct {
	Epoch uint64
	// Ref, when set, is the base shard's reference, used instead of the
	// base cut's manifest: a node-local store holds packs and no
	// manifests. It must name Epoch and this shard's rank.
	Ref *ShardRef
}

// ChannelState is the recorded state of one incoming channel: its messages
// in channel order, the first with sequence number FirstSeq.
type ChannelState struct {
	From     int
	FirstSeq uint64
	Messages [][]byte
}

// WriterStats describes a finished or running ShardWriter.
type WriterStats struct {
	PeakInFlight int64 // most pipeline bytes reserved at once (<= MaxInFlight)
	Chunks       int   // chunks handed to the pipeline
	Reused       int   // of which referenced from the base shard
	Delta        int   // of which referenced with the delta+shuffle filter
}

// ShardWriter writes one rank's shard of one cut into a new pack file. The
// buffers' chunks go through a pipeline on Store.Workers goroutines:
// filter (shuffle by element size, or delta+shuffle where a sample says it
// compresses better), hash (BLAKE3-256 of the filtered bytes), compress,
// append to the pack. Chunks whose filtered bytes equal a base chunk's or
// one already in this pack are referenced, not written again.
//
// AddBuffer, AddChannel, SetMeta and Close are called from one goroutine;
// Abort may be called from any goroutine at any time. The first error is
// sticky: every later call returns it and Close discards the pack.
type ShardWriter struct {
	s    *Store
	spec ShardSpec
	rel  string // pack name relative to the job directory
	name string // pack name in the store

	ctx    context.Context // canceled by Abort, by the first error, after Close
	cancel context.CancelCauseFunc

	feed  sync.Mutex // held by the feeding calls, Close and Abort
	state int        // open, closed or aborted; under feed

	slots     chan struct{} // one per 2 x ChunkSize bytes of MaxInFlight
	slotBytes int64
	jobs      chan *chunkJob
	workers   sync.WaitGroup
	inUse     atomic.Int64
	peak      atomic.Int64
	nChunks   atomic.Int64
	nReused   atomic.Int64
	nDelta    atomic.Int64

	wmu     sync.Mutex // the pack file
	w       backend.Writer
	off     int64
	entries []packEntry

	mu       sync.Mutex // everything below
	err      error
	written  map[[hashLen]byte]*pendingChunk // chunks of this pack by hash
	packs    []string
	packIdx  map[string]uint32
	buffers  []*bufferEntry
	channels []*channelEntry
	names    map[string]bool
	froms    map[int]bool
	meta     []byte

	base       *shardIndex
	baseByHash map[[hashLen]byte]chunkRef // pack numbers index base.packs
	baseBuf    map[string]*bufferEntry
}

const (
	stateOpen = iota
	stateClosed
	stateAborted
)

// pendingChunk is a chunk of this pack being compressed and appended; a
// worker with an identical chunk waits for it instead of storing it twice.
type pendingChunk struct {
	done chan struct{}
	ref  chunkRef
	ok   bool
}

type chunkJob struct {
	st       *stream
	label    string
	i        int
	data     []byte
	shuffled bool
	src      Source
}

func (spec ShardSpec) check() error {
	if err := ValidJobName(spec.Job); err != nil {
		return err
	}
	switch {
	case spec.Epoch == 0:
		return errors.New("epoch 0 (epochs start at 1)")
	case spec.Rank < 0 || spec.Rank >= MaxWorld:
		return fmt.Errorf("rank %d out of range", spec.Rank)
	case spec.Incarnation == 0:
		return errors.New("incarnation 0 (incarnations start at 1)")
	case spec.Step < 0:
		return fmt.Errorf("negative step %d", spec.Step)
	case spec.Base != nil && (spec.Base.Epoch == 0 || spec.Base.Epoch >= spec.Epoch):
		return fmt.Errorf("base epoch %d must be in [1, %d)", spec.Base.Epoch, spec.Epoch)
	}
	return nil
}

// NewShard starts the shard of spec.Rank for cut spec.Epoch. Its pack is
// named after (epoch, rank, incarnation, a random nonce), so a fenced
// process of an older incarnation, or a retry, never writes over another
// writer's file. Nothing is visible until Close commits the pack; the
// caller must call Close or Abort.
func (s *Store) NewShard(ctx context.Context, spec ShardSpec) (*ShardWriter, error) {
	if err := spec.check(); err != nil {
		return nil, fmt.Errorf("new shard: %w", err)
	}
	w := &ShardWriter{
		s: s, spec: spec,
		written: map[[hashLen]byte]*pendingChunk{},
		packIdx: map[string]uint32{},
		names:   map[string]bool{},
		froms:   map[int]bool{},
	}
	if spec.Base != nil {
		if err := w.loadBase(ctx); err != nil {
			return nil, err
		}
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	w.rel = packRel(spec.Epoch, spec.Rank, spec.Incarnation, nonce)
	w.name = jobDir(spec.Job) + "/" + w.rel
	w.packs = []string{w.rel}
	w.packIdx[w.rel] = 0
	bw, err := s.b.Create(ctx, w.name)
	if err != nil {
		return nil, fmt.Errorf("new shard: %w", err)
	}
	if _, err := bw.Write(packHeader()); err != nil {
		bw.Abort()
		return nil, fmt.Errorf("new shard: %w", err)
	}
	w.w, w.off = bw, packHeaderLen

	w.slotBytes = 2 * int64(s.chunkSize)
	nslots := max(1, int(s.inflight/w.slotBytes))
	w.slots = make(chan struct{}, nslots)
	w.jobs = make(chan *chunkJob)
	w.ctx, w.cancel = context.WithCancelCause(context.Background())
	for range s.workers {
		w.workers.Add(1)
		go w.work()
	}
	return w, nil
}

// loadBase reads the base shard's index and indexes its chunks by hash and
// by buffer.
func (w *ShardWriter) loadBase(ctx context.Context) error {
	spec := w.spec
	var baseRef ShardRef
	if r := spec.Base.Ref; r != nil {
		if r.Job != spec.Job || r.Epoch != spec.Base.Epoch || r.Rank != spec.Rank {
			return fmt.Errorf("new shard: base ref of job %s cut %d rank %d for base cut %d rank %d", r.Job, r.Epoch, r.Rank, spec.Base.Epoch, spec.Rank)
		}
		baseRef = *r
	} else {
		m, err := w.s.loadManifest(ctx, spec.Job, spec.Base.Epoch)
		if err != nil {
			return fmt.Errorf("new shard: base: %w", err)
		}
		if spec.Rank >= m.world {
			return fmt.Errorf("new shard: base cut %d has %d ranks, no rank %d", spec.Base.Epoch, m.world, spec.Rank)
		}
		baseRef = m.shards[spec.Rank]
	}
	idx, err := w.s.readShardIndex(ctx, baseRef)
	if err != nil {
		return fmt.Errorf("new shard: base: %w", err)
	}
	// A store has one hash, so only a damaged or hand-edited store gets
	// here; its references would carry checksums this shard does not
	// record.
	if idx.alg != w.s.hash {
		return fmt.Errorf("new shard: base cut %d rank %d was hashed with %s, this store writes %s", spec.Base.Epoch, spec.Rank, idx.alg, w.s.hash)
	}
	w.base = idx
	w.baseByHash = map[[hashLen]byte]chunkRef{}
	w.baseBuf = map[string]*bufferEntry{}
	for i := range idx.buffers {
		b := &idx.buffers[i]
		w.baseBuf[b.name] = b
		for _, c := range b.chunks {
			w.baseByHash[c.hash] = c
		}
	}
	for i := range idx.channels {
		for _, c := range idx.channels[i].chunks {
			w.baseByHash[c.hash] = c
		}
	}
	return nil
}

// Stats reports the writer's counters.
func (w *ShardWriter) Stats() WriterStats {
	return WriterStats{PeakInFlight: w.peak.Load(), Chunks: int(w.nChunks.Load()), Reused: int(w.nReused.Load()), Delta: int(w.nDelta.Load())}
}

// fail records the first error and stops the pipeline.
func (w *ShardWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
		w.cancel(err)
	}
	w.mu.Unlock()
}

func (w *ShardWriter) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if cause := context.Cause(w.ctx); cause != nil {
		return cause
	}
	return nil
}

// AddBuffer adds a named buffer (printable ASCII, at most MaxBufferName
// bytes, unique in the shard). It returns once every chunk has been handed
// to the pipeline (blocking while MaxInFlight is used up); errors of chunks
// still in flight surface at a later call or at Close.
func (w *ShardWriter) AddBuffer(ctx context.Context, name string, src Source) error {
	w.feed.Lock()
	defer w.feed.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := validBufferName(name); err != nil {
		return w.failf(err)
	}
	n := src.Len()
	if n < 0 || n > MaxBufferLen {
		return w.failf(fmt.Errorf("buffer %q: length %d out of range", name, n))
	}
	if !validElemSize(src.ElemSize()) {
		return w.failf(fmt.Errorf("buffer %q: element size %d, want 1, 2, 4 or 8", name, src.ElemSize()))
	}
	w.mu.Lock()
	dup := w.names[name]
	w.names[name] = true
	w.mu.Unlock()
	if dup {
		return w.failf(fmt.Errorf("buffer %q added twice", name))
	}
	if cs, ok := src.(chunkSizer); ok {
		cs.setChunkSize(w.s.chunkSize)
	}
	e := &bufferEntry{name: name, stream: stream{length: n, elemSize: src.ElemSize(), chunkSize: w.s.chunkSize}}
	e.chunks = make([]chunkRef, ceilDiv(n, w.s.chunkSize))
	w.mu.Lock()
	w.buffers = append(w.buffers, e)
	w.mu.Unlock()
	return w.feedStream(ctx, &e.stream, fmt.Sprintf("%q", name), name, src)
}

// AddChannel adds the recorded state of the channel from rank cs.From (one
// per sender). The messages are copied; the caller may reuse them once
// AddChannel returns.
func (w *ShardWriter) AddChannel(ctx context.Context, cs ChannelState) error {
	w.feed.Lock()
	defer w.feed.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if cs.From < 0 || cs.From >= MaxWorld {
		return w.failf(fmt.Errorf("channel from rank %d: out of range", cs.From))
	}
	if len(cs.Messages) > MaxMessages {
		return w.failf(fmt.Errorf("channel from rank %d: %d messages, limit %d", cs.From, len(cs.Messages), MaxMessages))
	}
	var total int64
	lengths := make([]uint32, len(cs.Messages))
	for i, m := range cs.Messages {
		if len(m) > MaxMessageLen {
			return w.failf(fmt.Errorf("channel from rank %d: message %d has %d bytes, limit %d", cs.From, i, len(m), MaxMessageLen))
		}
		lengths[i] = uint32(len(m))
		total += int64(len(m))
	}
	if total > MaxBufferLen {
		return w.failf(fmt.Errorf("channel from rank %d: %d bytes", cs.From, total))
	}
	w.mu.Lock()
	dup := w.froms[cs.From]
	w.froms[cs.From] = true
	w.mu.Unlock()
	if dup {
		return w.failf(fmt.Errorf("channel from rank %d added twice", cs.From))
	}
	data := make([]byte, 0, total)
	for _, m := range cs.Messages {
		data = append(data, m...)
	}
	src := &bytesSource{b: data, elemSize: 1, chunkSize: w.s.chunkSize}
	e := &channelEntry{from: cs.From, firstSeq: cs.FirstSeq, lengths: lengths,
		stream: stream{length: total, elemSize: 1, chunkSize: w.s.chunkSize}}
	e.chunks = make([]chunkRef, ceilDiv(total, w.s.chunkSize))
	w.mu.Lock()
	w.channels = append(w.channels, e)
	w.mu.Unlock()
	label := fmt.Sprintf("channel from %d", cs.From)
	return w.feedStream(ctx, &e.stream, label, "", src)
}

// SetMeta stores opaque participant state (counters, sequence numbers) with
// the shard, at most MaxMeta bytes; a later call replaces it.
func (w *ShardWriter) SetMeta(b []byte) error {
	w.feed.Lock()
	defer w.feed.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if len(b) > MaxMeta {
		return w.failf(fmt.Errorf("meta: %d bytes, limit %d", len(b), MaxMeta))
	}
	w.mu.Lock()
	w.meta = append([]byte(nil), b...)
	w.mu.Unlock()
	return nil
}

func (w *ShardWriter) usable() error {
	if w.state != stateOpen {
		return ErrClosed
	}
	return w.firstErr()
}

func (w *ShardWriter) failf(err error) error {
	err = fmt.Errorf("shard %s: %w", w.name, err)
	w.fail(err)
	return err
}

// feedStream hands the chunks of src to the workers, holding one in-flight
// slot per chunk. baseName is the buffer name to match unchanged chunks
// against ("" for channels, which are never reported unchanged).
func (w *ShardWriter) feedStream(ctx context.Context, st *stream, label, baseName string, src Source) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.ctx, cancel)
	defer stop()
	for i := range st.chunks {
		select {
		case w.slots <- struct{}{}:
		case <-cctx.Done():
			return w.stopped(ctx)
		}
		w.reserve()
		data, unchanged, err := src.Chunk(cctx, i)
		if err != nil {
			w.release()
			if cctx.Err() != nil {
				return w.stopped(ctx)
			}
			return w.failf(fmt.Errorf("buffer %s chunk %d: source: %w", label, i, err))
		}
		w.nChunks.Add(1)
		if unchanged {
			err := w.referenceBase(st, baseName, i)
			src.Done(i)
			w.release()
			if err != nil {
				return w.failf(fmt.Errorf("buffer %s chunk %d: %w", label, i, err))
			}
			continue
		}
		if len(data) != st.rawLen(i) {
			src.Done(i)
			w.release()
			return w.failf(fmt.Errorf("buffer %s chunk %d: source returned %d bytes, want %d", label, i, len(data), st.rawLen(i)))
		}
		j := &chunkJob{st: st, label: label, i: i, data: data, shuffled: src.Shuffled(), src: src}
		select {
		case w.jobs <- j:
		case <-cctx.Done():
			src.Done(i)
			w.release()
			return w.stopped(ctx)
		}
	}
	return w.firstErr()
}

// stopped turns a cancellation into the error to return: the caller's
// context error (made sticky) or the writer's own first error.
func (w *ShardWriter) stopped(ctx context.Context) error {
	if err := w.firstErr(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

func (w *ShardWriter) reserve() {
	n := w.inUse.Add(w.slotBytes)
	for {
		p := w.peak.Load()
		if n <= p || w.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (w *ShardWriter) release() {
	w.inUse.Add(-w.slotBytes)
	<-w.slots
}

// referenceBase points chunk i of st at chunk i of the base buffer of the
// same name, as a source's "unchanged" asks.
func (w *ShardWriter) referenceBase(st *stream, name string, i int) error {
	if w.base == nil {
		return errors.New("source reports the chunk unchanged but the shard has no base")
	}
	b := w.baseBuf[name]
	if b == nil || b.chunkSize != st.chunkSize || i >= len(b.chunks) || b.rawLen(i) != st.rawLen(i) {
		return fmt.Errorf("source reports the chunk unchanged but base cut %d has no matching chunk %d", w.base.epoch, i)
	}
	// The base reference keeps its filter: the data is the base's.
	st.chunks[i] = w.remapBase(b.chunks[i])
	w.nReused.Add(1)
	if st.chunks[i].filter == filterDelta {
		w.nDelta.Add(1)
	}
	return nil
}

// remapBase turns a base chunk reference into one of this shard, adding
// the pack to this shard's pack table on first use.
func (w *ShardWriter) remapBase(c chunkRef) chunkRef {
	name := w.base.packs[c.pack]
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, ok := w.packIdx[name]
	if !ok {
		idx = uint32(len(w.packs))
		w.packs = append(w.packs, name)
		w.packIdx[name] = idx
	}
	c.pack = idx
	return c
}

func (w *ShardWriter) work() {
	defer w.workers.Done()
	for j := range w.jobs {
		w.process(j)
		w.release()
	}
}

func (w *ShardWriter) process(j *chunkJob) {
	released := false
	done := func() {
		if !released {
			released = true
			j.src.Done(j.i)
		}
	}
	defer done()
	defer func() {
		// A panic in a codec or a source must not take the process down
		// with a half-written shard: turn it into the shard's error.
		if r := recover(); r != nil {
			w.fail(fmt.Errorf("shard %s: buffer %s chunk %d: panic: %v", w.name, j.label, j.i, r))
		}
	}()
	if w.ctx.Err() != nil {
		return
	}
	filtered := j.data
	elem := j.st.elemSize
	// A source that shuffles on the device gets plain shuffle: its bytes
	// arrive filtered.
	filter := filterShuffle
	if !j.shuffled && elem > 1 {
		filter = w.s.chooseFilter(j.data, elem)
		scratch := w.s.buf(len(j.data))
		defer w.s.putBuf(scratch)
		applyFilter(scratch, j.data, elem, filter)
		done()
		filtered = scratch
	}
	if filter == filterDelta {
		w.nDelta.Add(1)
	}
	// Equal hashes mean equal filtered bytes, which is all a stored chunk
	// holds; the reference records this chunk's own filter, so that the
	// stored bytes of a chunk filtered otherwise still restore this data.
	h := w.s.hash.content(filtered)
	if c, ok := w.baseByHash[h]; ok {
		c = w.remapBase(c)
		c.filter = filter
		j.st.chunks[j.i] = c
		w.nReused.Add(1)
		return
	}
	w.mu.Lock()
	p, ok := w.written[h]
	if !ok {
		p = &pendingChunk{done: make(chan struct{})}
		w.written[h] = p
	}
	w.mu.Unlock()
	if ok {
		select {
		case <-p.done:
			if p.ok {
				c := p.ref
				c.filter = filter
				j.st.chunks[j.i] = c
			}
		case <-w.ctx.Done():
		}
		return // if the first copy failed, so did the writer
	}
	defer close(p.done)
	out := w.s.buf(maxCompressed(len(filtered)))
	defer w.s.putBuf(out)
	stored, codec, err := w.s.codecs.compress(out, filtered, elem)
	if err != nil {
		w.fail(fmt.Errorf("shard %s: buffer %s chunk %d: %w", w.name, j.label, j.i, err))
		return
	}
	c, err := w.appendChunk(stored, codec, len(filtered), w.s.hash.sum(stored), h)
	if err != nil {
		w.fail(fmt.Errorf("shard %s: buffer %s chunk %d: %w", w.name, j.label, j.i, err))
		return
	}
	c.filter = filter
	j.st.chunks[j.i] = c
	p.ref, p.ok = c, true
}

func (w *ShardWriter) appendChunk(stored []byte, codec codecID, raw int, sum uint64, h [hashLen]byte) (chunkRef, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.ctx.Err(); err != nil {
		return chunkRef{}, context.Cause(w.ctx)
	}
	off := w.off
	n, err := w.w.Write(stored)
	w.off += int64(n)
	if err != nil {
		return chunkRef{}, err
	}
	w.entries = append(w.entries, packEntry{offset: off, stored: uint32(len(stored)), raw: uint32(raw), codec: codec, sum: sum, hash: h})
	return chunkRef{pack: 0, offset: off, stored: uint32(len(stored)), codec: codec, alg: w.s.hash, sum: sum, hash: h}, nil
}

// Close waits for the pipeline, appends the pack index, the shard index
// and the trailer, and commits the pack (fsync, rename, fsync of the
// directory). When it returns nil the shard is durable and the ShardRef is
// what the coordinator needs to commit the cut. On any error the pack is
// discarded.
func (w *ShardWriter) Close(ctx context.Context) (ShardRef, error) {
	w.feed.Lock()
	defer w.feed.Unlock()
	if w.state != stateOpen {
		return ShardRef{}, ErrClosed
	}
	w.state = stateClosed
	close(w.jobs)
	done := make(chan struct{})
	go func() { w.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.fail(ctx.Err())
		<-done
	}
	defer w.cancel(ErrClosed)
	if err := w.firstErr(); err != nil {
		w.w.Abort()
		return ShardRef{}, err
	}
	ref, err := w.finish(ctx)
	if err != nil {
		w.w.Abort()
		err = fmt.Errorf("shard %s: %w", w.name, err)
		w.fail(err)
		return ShardRef{}, err
	}
	w.s.log.Debug("shard durable", "job", ref.Job, "epoch", ref.Epoch, "rank", ref.Rank,
		"raw", ref.RawBytes, "stored", ref.StoredBytes, "new", ref.NewBytes, "chunks", ref.Chunks, "new_chunks", ref.NewChunks)
	return ref, nil
}

func (w *ShardWriter) finish(ctx context.Context) (ShardRef, error) {
	spec := w.spec
	idx := &shardIndex{
		job: spec.Job, epoch: spec.Epoch, rank: spec.Rank, incarnation: spec.Incarnation, step: spec.Step,
		created: w.s.now().UnixNano(), alg: w.s.hash, meta: w.meta, packs: w.packs,
	}
	if spec.Base != nil {
		idx.baseEpoch = spec.Base.Epoch
	}
	ref := ShardRef{Job: spec.Job, Epoch: spec.Epoch, Rank: spec.Rank, Incarnation: spec.Incarnation, Step: spec.Step, BaseEpoch: idx.baseEpoch}
	count := func(st *stream) {
		ref.RawBytes += st.length
		for _, c := range st.chunks {
			ref.StoredBytes += int64(c.stored)
			ref.Chunks++
		}
	}
	for _, b := range w.buffers {
		idx.buffers = append(idx.buffers, *b)
		count(&b.stream)
	}
	for _, c := range w.channels {
		idx.channels = append(idx.channels, *c)
		count(&c.stream)
	}
	for _, e := range w.entries {
		ref.NewBytes += int64(e.stored)
		ref.NewChunks++
	}
	pi := encodePackIndex(w.s.hash, w.entries)
	si := encodeShardIndex(idx)
	if len(pi) > MaxIndexLen || len(si) > MaxIndexLen {
		return ShardRef{}, fmt.Errorf("index of %d + %d bytes over the limit %d", len(pi), len(si), MaxIndexLen)
	}
	t := packTrailer{
		packIndexOff: w.off, packIndexLen: uint32(len(pi)), packIndexHash: blake3.Sum256(pi),
		shardIndexOff: w.off + int64(len(pi)), shardIndexLen: uint32(len(si)), shardIndexHash: blake3.Sum256(si),
	}
	tail := make([]byte, 0, len(pi)+len(si)+packTrailerLen)
	tail = append(append(append(tail, pi...), si...), encodeTrailer(t)...)
	if err := ctx.Err(); err != nil {
		return ShardRef{}, err
	}
	if _, err := w.w.Write(tail); err != nil {
		return ShardRef{}, err
	}
	if err := w.w.Commit(); err != nil {
		return ShardRef{}, err
	}
	id, _ := parsePackRel(w.rel)
	ref.Nonce = id.nonce
	ref.IndexOffset = t.shardIndexOff
	ref.IndexLen = int64(t.shardIndexLen)
	ref.IndexHash = t.shardIndexHash
	return ref, nil
}

// Abort stops the pipeline and discards the pack. It may be called from
// any goroutine, also while AddBuffer or Close run (they then fail with
// ErrAborted), and after Close (then it does nothing).
func (w *ShardWriter) Abort() {
	w.cancel(ErrAborted)
	w.feed.Lock()
	defer w.feed.Unlock()
	if w.state != stateOpen {
		return
	}
	w.state = stateAborted
	close(w.jobs)
	w.workers.Wait()
	w.w.Abort()
}
