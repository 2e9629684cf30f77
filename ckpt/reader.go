package ckpt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// readShardIndex reads and checks the shard index a ShardRef points at: the
// bytes must hash to ref.IndexHash, decode, and describe the shard ref
// names. Problems are *CorruptError values naming the pack.
func (s *Store) readShardIndex(ctx context.Context, ref ShardRef) (*shardIndex, error) {
	name := ref.Pack()
	bad := func(err error) error {
		e := corrupt(ref.Job, ref.Epoch, name, err)
		e.Rank = ref.Rank
		return e
	}
	r, err := s.b.Open(ctx, name)
	if errors.Is(err, backend.ErrNotExist) {
		return nil, bad(fmt.Errorf("pack missing: %w", err))
	}
	if errors.Is(err, backend.ErrNotRegular) {
		// A link or a FIFO where the pack should be: the pack is gone.
		return nil, bad(err)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s cut %d rank %d: %w", ref.Job, ref.Epoch, ref.Rank, err)
	}
	defer r.Close()
	if ref.IndexOffset+ref.IndexLen+packTrailerLen != r.Size() {
		return nil, bad(fmt.Errorf("pack is %d bytes, the shard index at %d+%d needs %d (truncated or replaced)",
			r.Size(), ref.IndexOffset, ref.IndexLen, ref.IndexOffset+ref.IndexLen+packTrailerLen))
	}
	buf := make([]byte, ref.IndexLen)
	if _, err := r.ReadAt(buf, ref.IndexOffset); err != nil {
		if err == io.EOF {
			return nil, bad(fmt.Errorf("shard index: %w", io.ErrUnexpectedEOF))
		}
		return nil, fmt.Errorf("job %s cut %d rank %d: %w", ref.Job, ref.Epoch, ref.Rank, err)
	}
	if h := blake3.Sum256(buf); h != ref.IndexHash {
		return nil, bad(fmt.Errorf("shard index at offset %d: BLAKE3 mismatch", ref.IndexOffset))
	}
	idx, err := decodeShardIndex(buf)
	if err != nil {
		return nil, bad(err)
	}
	if idx.job != ref.Job || idx.epoch != ref.Epoch || idx.rank != ref.Rank || idx.incarnation != ref.Incarnation ||
		idx.step != ref.Step || idx.baseEpoch != ref.BaseEpoch || idx.packs[0] != packRel(ref.Epoch, ref.Rank, ref.Incarnation, ref.Nonce) {
		return nil, bad(errors.New("shard index does not describe the shard the cut names"))
	}
	// Every chunk of this pack must lie before the indexes.
	for _, st := range idx.streams() {
		for i, c := range st.s.chunks {
			if c.pack == 0 {
				if err := checkExtent(c.offset, int64(c.stored), ref.IndexOffset); err != nil {
					e := bad(err)
					e.(*CorruptError).Buffer, e.(*CorruptError).Chunk = st.label, i
					return nil, e
				}
			}
		}
	}
	return idx, nil
}

type labeledStream struct {
	label string
	s     *stream
}

// streams lists the buffers and channels of an index with their labels.
func (x *shardIndex) streams() []labeledStream {
	out := make([]labeledStream, 0, len(x.buffers)+len(x.channels))
	for i := range x.buffers {
		out = append(out, labeledStream{x.buffers[i].name, &x.buffers[i].stream})
	}
	for i := range x.channels {
		out = append(out, labeledStream{fmt.Sprintf("channel from %d", x.channels[i].from), &x.channels[i].stream})
	}
	return out
}

// BufferInfo describes one buffer of a shard.
type BufferInfo struct {
	Name     string
	Len      int64
	ElemSize int
	Chunks   int
}

// ShardReader restores one rank's shard of a committed cut. Its methods are
// safe for concurrent use; Close releases the open packs.
type ShardReader struct {
	s   *Store
	ref ShardRef
	idx *shardIndex

	mu    sync.Mutex
	packs map[uint32]backend.Reader
}

// OpenShard opens rank's shard of the committed cut epoch of job. A missing
// cut or rank matches ErrNotFound; a damaged manifest or shard index is a
// *CorruptError.
func (s *Store) OpenShard(ctx context.Context, job string, epoch uint64, rank int) (*ShardReader, error) {
	cut, err := s.LoadCut(ctx, job, epoch)
	if err != nil {
		return nil, err
	}
	if rank < 0 || rank >= cut.World {
		return nil, fmt.Errorf("job %s cut %d has %d ranks, no rank %d: %w", job, epoch, cut.World, rank, ErrNotFound)
	}
	return s.OpenShardRef(ctx, cut.Shards[rank])
}

// OpenShardRef opens the shard a ShardRef names (for example one just
// written and not yet committed).
func (s *Store) OpenShardRef(ctx context.Context, ref ShardRef) (*ShardReader, error) {
	if err := ref.check(); err != nil {
		return nil, fmt.Errorf("open shard: %w", err)
	}
	idx, err := s.readShardIndex(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &ShardReader{s: s, ref: ref, idx: idx, packs: map[uint32]backend.Reader{}}, nil
}

// Ref is the shard's reference.
func (r *ShardReader) Ref() ShardRef { return r.ref }

// CheckPack checks the shard's own pack before a restore uses it: header,
// trailer (CRC), and the pack index (hash, structure, chunk hash) against
// the shard reference, as Verify does. Damage is a *CorruptError; the
// chunks themselves are checked as they are read.
func (r *ShardReader) CheckPack(ctx context.Context) error {
	return r.s.checkPackTail(ctx, r.ref, r.idx.alg)
}

// Step is the step the cut was taken after.
func (r *ShardReader) Step() int64 { return r.idx.step }

// Meta is the participant state stored with SetMeta (nil if none).
func (r *ShardReader) Meta() []byte { return append([]byte(nil), r.idx.meta...) }

// Buffers lists the shard's buffers in the order they were added.
func (r *ShardReader) Buffers() []BufferInfo {
	out := make([]BufferInfo, len(r.idx.buffers))
	for i, b := range r.idx.buffers {
		out[i] = BufferInfo{Name: b.name, Len: b.length, ElemSize: b.elemSize, Chunks: len(b.chunks)}
	}
	return out
}

// Close closes the packs the reader opened.
func (r *ShardReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, p := range r.packs {
		errs = append(errs, p.Close())
		delete(r.packs, k)
	}
	return errors.Join(errs...)
}

func (r *ShardReader) pack(ctx context.Context, i uint32) (backend.Reader, string, error) {
	name := jobDir(r.ref.Job) + "/" + r.idx.packs[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.packs[i]; ok {
		return p, name, nil
	}
	p, err := r.s.b.Open(ctx, name)
	if err != nil {
		return nil, name, err
	}
	r.packs[i] = p
	return p, name, nil
}

// ReadBuffer restores buffer name into dst, whose length must be the
// buffer's. Chunks are read, decompressed, checked against their BLAKE3
// hash and unfiltered (each by the filter its reference records) on all
// workers. A damaged chunk is a *CorruptError
// naming job, cut, rank, buffer, chunk, file and offset; dst is then partly
// written.
func (r *ShardReader) ReadBuffer(ctx context.Context, name string, dst []byte) error {
	for i := range r.idx.buffers {
		b := &r.idx.buffers[i]
		if b.name != name {
			continue
		}
		if int64(len(dst)) != b.length {
			return fmt.Errorf("read buffer %q: destination has %d bytes, buffer has %d", name, len(dst), b.length)
		}
		return r.readStream(ctx, name, &b.stream, dst)
	}
	return fmt.Errorf("job %s cut %d rank %d: buffer %q: %w", r.ref.Job, r.ref.Epoch, r.ref.Rank, name, ErrNotFound)
}

// ReadBufferTo restores buffer name into w, chunk by chunk as the workers
// verify and unfilter them (WriteAt from many goroutines at once, each
// chunk's raw bytes at its offset, in no particular order), for a
// destination that is not host memory: a device's RestoreWriter copies
// each chunk on while the next ones are decoded. Every chunk is checked
// before it is written; a damaged one is a *CorruptError as in
// ReadBuffer, and the chunks written before it stay written.
func (r *ShardReader) ReadBufferTo(ctx context.Context, name string, w io.WriterAt) error {
	for i := range r.idx.buffers {
		b := &r.idx.buffers[i]
		if b.name != name {
			continue
		}
		st := &b.stream
		return r.s.forChunks(ctx, len(st.chunks), func(ctx context.Context, i int) error {
			out := r.s.buf(st.rawLen(i))
			defer r.s.putBuf(out)
			if err := r.readChunk(ctx, name, st, i, out); err != nil {
				return err
			}
			_, err := w.WriteAt(out, int64(i)*int64(st.chunkSize))
			return err
		})
	}
	return fmt.Errorf("job %s cut %d rank %d: buffer %q: %w", r.ref.Job, r.ref.Epoch, r.ref.Rank, name, ErrNotFound)
}

// Channels reads and checks the recorded channel states.
func (r *ShardReader) Channels(ctx context.Context) ([]ChannelState, error) {
	out := make([]ChannelState, 0, len(r.idx.channels))
	for i := range r.idx.channels {
		c := &r.idx.channels[i]
		data := make([]byte, c.length)
		if err := r.readStream(ctx, fmt.Sprintf("channel from %d", c.from), &c.stream, data); err != nil {
			return nil, err
		}
		cs := ChannelState{From: c.from, FirstSeq: c.firstSeq, Messages: make([][]byte, len(c.lengths))}
		off := 0
		for j, l := range c.lengths {
			cs.Messages[j] = data[off : off+int(l) : off+int(l)]
			off += int(l)
		}
		out = append(out, cs)
	}
	return out, nil
}

// readStream decodes every chunk of st into dst (len(dst) == st.length) on
// the store's workers; the first error stops the rest.
func (r *ShardReader) readStream(ctx context.Context, label string, st *stream, dst []byte) error {
	return r.s.forChunks(ctx, len(st.chunks), func(ctx context.Context, i int) error {
		start := int64(i) * int64(st.chunkSize)
		out := dst[start : start+int64(st.rawLen(i))]
		return r.readChunk(ctx, label, st, i, out)
	})
}

// readChunk reads chunk i of st into out (its raw length), verified.
func (r *ShardReader) readChunk(ctx context.Context, label string, st *stream, i int, out []byte) error {
	c := st.chunks[i]
	p, file, err := r.pack(ctx, c.pack)
	bad := func(err error) error {
		return &CorruptError{Job: r.ref.Job, Epoch: r.ref.Epoch, Rank: r.ref.Rank, Buffer: label, Chunk: i, File: file, Offset: c.offset, Err: err}
	}
	if errors.Is(err, backend.ErrNotExist) {
		return bad(fmt.Errorf("pack missing: %w", err))
	}
	if errors.Is(err, backend.ErrNotRegular) {
		return bad(err)
	}
	if err != nil {
		return err
	}
	return r.s.readVerified(p, c, st.elemSize, out, bad)
}

// readVerified reads a stored chunk from pack p, decompresses it, checks its
// hash and inverts its filter into out; bad wraps damage into a
// CorruptError. With elemSize 1 out receives the filtered bytes, which is
// what Verify asks for: the hash covers them, and every filter's inverse
// accepts any bytes.
func (s *Store) readVerified(p backend.Reader, c chunkRef, elemSize int, out []byte, bad func(error) error) error {
	if c.offset+int64(c.stored) > p.Size() {
		return bad(fmt.Errorf("chunk of %d bytes at %d beyond the end of the %d-byte pack (truncated)", c.stored, c.offset, p.Size()))
	}
	stored := s.buf(int(c.stored))
	defer s.putBuf(stored)
	if _, err := p.ReadAt(stored, c.offset); err != nil {
		if err == io.EOF {
			return bad(io.ErrUnexpectedEOF)
		}
		return err
	}
	if c.alg.sum(stored) != c.sum {
		return bad(fmt.Errorf("%s mismatch: the stored bytes are damaged", c.alg.sumName()))
	}
	// The filtered bytes go straight into out when there is nothing to
	// invert.
	filtered := out
	if elemSize > 1 {
		filtered = s.buf(len(out))
		defer s.putBuf(filtered)
	}
	if err := s.codecs.decompress(filtered, stored, c.codec); err != nil {
		if errors.Is(err, errDecode) {
			return bad(err)
		}
		return err
	}
	if h := c.alg.content(filtered); h != c.hash {
		return bad(fmt.Errorf("%s mismatch: the chunk's bytes are not what was written", c.alg.contentName()))
	}
	if elemSize > 1 {
		invertFilter(out, filtered, elemSize, c.filter)
	}
	return nil
}

// forChunks runs fn(i) for i in [0, n) on the store's workers and returns
// the first error (later chunks are then skipped).
func (s *Store) forChunks(ctx context.Context, n int, fn func(context.Context, int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(s.workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}
