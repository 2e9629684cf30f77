package ckpt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// VerifyProgress is reported while Verify reads chunks. Bytes are raw
// (decompressed) bytes of distinct chunks.
type VerifyProgress struct {
	BytesDone, BytesTotal   int64
	ChunksDone, ChunksTotal int
}

// VerifyReport summarizes a Verify.
type VerifyReport struct {
	Cuts        []uint64 // the cuts examined
	DamagedCuts []uint64 // of which damaged (ascending)
	Chunks      int      // distinct chunks read and checked
	Bytes       int64    // their raw bytes
	// NodeLocal lists the cuts examined whose shards are on node-local
	// levels only (MetaLevels): their manifests were checked, their
	// shards are not in this store (VerifyShard checks a node-local copy).
	NodeLocal []uint64
}

// chunkUse is one reference to a chunk: where it is used, for messages.
type chunkUse struct {
	epoch  uint64
	rank   int
	label  string
	chunk  int
	stream *stream
}

// Verify re-reads the cut epoch of job (every committed cut when epoch is
// 0): manifests, pack trailers, pack and shard indexes, and every chunk,
// decompressed and checked against its BLAKE3 hash. A chunk shared by
// several cuts is read once. progress, if not nil, is called with running
// totals (calls are serialized, from any goroutine).
//
// Damage does not stop Verify: it returns the report and an error joining
// one *CorruptError per problem found (errors.Is(err, ErrCorrupt)), and
// lists the affected cuts in DamagedCuts. Any other error (the store cannot
// be read, ctx canceled) is returned as is.
func (s *Store) Verify(ctx context.Context, job string, epoch uint64, progress func(VerifyProgress)) (VerifyReport, error) {
	var rep VerifyReport
	if err := ValidJobName(job); err != nil {
		return rep, err
	}
	epochs := []uint64{epoch}
	if epoch == 0 {
		var err error
		if epochs, err = s.committedEpochs(ctx, job); err != nil {
			return rep, err
		}
	}
	damaged := map[uint64]bool{}
	var problems []error
	report := func(e uint64, err error) {
		damaged[e] = true
		problems = append(problems, err)
	}

	// Phase 1: manifests and indexes; collect the distinct chunks.
	type chunkKey struct {
		pack string
		off  int64
	}
	uses := map[chunkKey][]chunkUse{}
	refs := map[chunkKey]chunkRef{}
	var keys []chunkKey
	for _, e := range epochs {
		rep.Cuts = append(rep.Cuts, e)
		m, err := s.loadManifest(ctx, job, e)
		if errors.Is(err, ErrCorrupt) || (errors.Is(err, ErrNotFound) && epoch != 0) {
			report(e, err)
			continue
		}
		if errors.Is(err, ErrNotFound) {
			rep.Cuts = rep.Cuts[:len(rep.Cuts)-1] // removed by a GC meanwhile
			continue
		}
		if err != nil {
			return rep, err
		}
		if !inShared(m.meta) {
			rep.NodeLocal = append(rep.NodeLocal, e)
			continue
		}
		for _, ref := range m.shards {
			idx, err := s.readShardIndex(ctx, ref)
			if errors.Is(err, ErrCorrupt) {
				report(e, err)
				continue
			}
			if err != nil {
				return rep, err
			}
			if err := s.checkPackTail(ctx, ref, idx.alg); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					return rep, err
				}
				report(e, err)
			}
			for _, ls := range idx.streams() {
				if ls.s.chunkSize != s.chunkSize {
					// The store's settings were edited (or the cut was
					// copied from another store): new cuts would cut
					// buffers differently from what their bases hold.
					report(e, &CorruptError{Job: job, Epoch: e, Rank: ref.Rank, Buffer: ls.label, Chunk: -1, Offset: -1, File: configName,
						Err: fmt.Errorf("chunk_size %d, but the cut's shard index records %d", s.chunkSize, ls.s.chunkSize)})
					break
				}
				for i, c := range ls.s.chunks {
					k := chunkKey{jobDir(job) + "/" + idx.packs[c.pack], c.offset}
					if _, ok := refs[k]; !ok {
						refs[k] = c
						keys = append(keys, k)
					} else if refs[k].alg != c.alg || refs[k].hash != c.hash || refs[k].stored != c.stored || refs[k].codec != c.codec || refs[k].sum != c.sum {
						report(e, &CorruptError{Job: job, Epoch: e, Rank: ref.Rank, Buffer: ls.label, Chunk: i, File: k.pack, Offset: k.off,
							Err: errors.New("two indexes describe the chunk at this offset differently")})
						continue
					}
					uses[k] = append(uses[k], chunkUse{epoch: e, rank: ref.Rank, label: ls.label, chunk: i, stream: ls.s})
				}
			}
		}
	}

	// Phase 2: read every distinct chunk, grouped by pack so that each unit
	// of work opens one file.
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].pack != keys[j].pack {
			return keys[i].pack < keys[j].pack
		}
		return keys[i].off < keys[j].off
	})
	var prog VerifyProgress
	for _, k := range keys {
		u := uses[k][0]
		prog.BytesTotal += int64(u.stream.rawLen(u.chunk))
	}
	prog.ChunksTotal = len(keys)
	if progress != nil {
		progress(prog)
	}
	const unit = 8
	type work struct{ lo, hi int }
	var units []work
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && hi-lo < unit && keys[hi].pack == keys[lo].pack {
			hi++
		}
		units = append(units, work{lo, hi})
		lo = hi
	}
	var mu sync.Mutex
	err := s.forChunks(ctx, len(units), func(ctx context.Context, ui int) error {
		w := units[ui]
		pack := keys[w.lo].pack
		p, err := s.b.Open(ctx, pack)
		missing := errors.New("pack missing")
		switch {
		case err == nil:
			defer p.Close()
		case errors.Is(err, backend.ErrNotExist):
			p = nil // every chunk in it is reported missing below
		case errors.Is(err, backend.ErrNotRegular):
			// A link or a FIFO planted where the pack was: as missing.
			p, missing = nil, err
		default:
			return err
		}
		for _, k := range keys[w.lo:w.hi] {
			if err := ctx.Err(); err != nil {
				return err
			}
			u := uses[k][0]
			c := refs[k]
			raw := u.stream.rawLen(u.chunk)
			var cerr error
			bad := func(err error) error {
				return &CorruptError{Job: job, Epoch: u.epoch, Rank: u.rank, Buffer: u.label, Chunk: u.chunk, File: k.pack, Offset: k.off, Err: err}
			}
			if p == nil {
				cerr = bad(missing)
			} else {
				out := s.buf(raw)
				cerr = s.readVerified(p, c, 1, out, bad)
				s.putBuf(out)
				if cerr != nil && !errors.Is(cerr, ErrCorrupt) {
					return cerr
				}
			}
			mu.Lock()
			if cerr != nil {
				for _, use := range uses[k] {
					damaged[use.epoch] = true
				}
				if n := len(uses[k]); n > 1 {
					cerr = fmt.Errorf("%w (the chunk is referenced %d times, also by later cuts)", cerr, n)
				}
				problems = append(problems, cerr)
			}
			prog.ChunksDone++
			prog.BytesDone += int64(raw)
			rep.Chunks++
			rep.Bytes += int64(raw)
			if progress != nil {
				progress(prog)
			}
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for e := range damaged {
		rep.DamagedCuts = append(rep.DamagedCuts, e)
	}
	sort.Slice(rep.DamagedCuts, func(i, j int) bool { return rep.DamagedCuts[i] < rep.DamagedCuts[j] })
	return rep, errors.Join(problems...)
}

// checkPackTail reads a shard's own pack trailer and pack index and checks
// them against each other, against the ShardRef and against alg, the chunk
// hash its shard index names.
func (s *Store) checkPackTail(ctx context.Context, ref ShardRef, alg hashID) error {
	name := ref.Pack()
	bad := func(err error) error {
		e := corrupt(ref.Job, ref.Epoch, name, err)
		e.Rank = ref.Rank
		return e
	}
	r, err := s.b.Open(ctx, name)
	if errors.Is(err, backend.ErrNotExist) {
		return bad(errors.New("pack missing"))
	}
	if errors.Is(err, backend.ErrNotRegular) {
		return bad(err)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	size := r.Size()
	if size < packHeaderLen+packTrailerLen {
		return bad(fmt.Errorf("pack of %d bytes is shorter than header and trailer", size))
	}
	head := make([]byte, packHeaderLen)
	if _, err := r.ReadAt(head, 0); err != nil {
		return bad(fmt.Errorf("header: %w", err))
	}
	if err := checkPackHeader(head); err != nil {
		return bad(fmt.Errorf("header: %w", err))
	}
	tb := make([]byte, packTrailerLen)
	if _, err := r.ReadAt(tb, size-packTrailerLen); err != nil && err != io.EOF {
		return bad(fmt.Errorf("trailer: %w", err))
	}
	t, err := decodeTrailer(tb, size)
	if err != nil {
		return bad(err)
	}
	if t.shardIndexOff != ref.IndexOffset || int64(t.shardIndexLen) != ref.IndexLen || t.shardIndexHash != ref.IndexHash {
		return bad(errors.New("pack trailer does not locate the shard index the cut names"))
	}
	pi := make([]byte, t.packIndexLen)
	if _, err := r.ReadAt(pi, t.packIndexOff); err != nil {
		return bad(fmt.Errorf("pack index: %w", err))
	}
	if blake3.Sum256(pi) != t.packIndexHash {
		return bad(fmt.Errorf("pack index at offset %d: BLAKE3 mismatch", t.packIndexOff))
	}
	if _, palg, err := decodePackIndex(pi, t.packIndexOff); err != nil {
		return bad(err)
	} else if palg != alg {
		return bad(fmt.Errorf("pack index names chunk hash %s, its shard index %s", palg, alg))
	}
	return nil
}
