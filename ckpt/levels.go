package ckpt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Multi-level cuts. A job may keep its shards on node-local stores (one
// ckpt store per host, level "local"), with a copy of each shard on the
// node-local store of another host ("partner"), and only every few cuts in
// the shared store ("shared"). The manifest is always committed in the
// shared store; its meta entry MetaLevels says which levels hold the cut.
// A node-local store holds packs only: the same file names and bytes as
// the shared store would, so a shard moves between levels by copying its
// pack files (CopyShard), and every read checks the same chunk hashes.

// Level names, as MetaLevels records them.
const (
	LevelLocal   = "local"
	LevelPartner = "partner"
	LevelShared  = "shared"
)

// MetaLevels is the cut meta key recording the levels that hold a cut:
// level names joined by ",", in the order local, partner, rs, shared. A cut
// without it (every cut of a single-level job) is in the shared store.
const MetaLevels = "levels"

// Levels is a set of levels.
type Levels struct{ Local, Partner, Erasure, Shared bool }

// String joins the levels in order: "local,partner,shared".
func (l Levels) String() string {
	var parts []string
	if l.Local {
		parts = append(parts, LevelLocal)
	}
	if l.Partner {
		parts = append(parts, LevelPartner)
	}
	if l.Erasure {
		parts = append(parts, LevelErasure)
	}
	if l.Shared {
		parts = append(parts, LevelShared)
	}
	return strings.Join(parts, ",")
}

// ParseLevels parses String's output; an unknown or repeated name, or an
// empty set, is an error.
func ParseLevels(s string) (Levels, error) {
	var l Levels
	if s == "" {
		return l, errors.New("levels: empty")
	}
	for _, p := range strings.Split(s, ",") {
		var f *bool
		switch p {
		case LevelLocal:
			f = &l.Local
		case LevelPartner:
			f = &l.Partner
		case LevelErasure:
			f = &l.Erasure
		case LevelShared:
			f = &l.Shared
		default:
			return Levels{}, fmt.Errorf("levels %q: unknown level %q (want local, partner, rs, shared)", truncName(s), truncName(p))
		}
		if *f {
			return Levels{}, fmt.Errorf("levels %q: %s twice", truncName(s), p)
		}
		*f = true
	}
	return l, nil
}

// SurvivesHostLoss is the commit rule of a multi-level job: a cut may
// commit once the loss of any one host leaves a copy of every shard, which
// the shared store or a partner copy next to the local one gives, and a
// local copy alone does not.
func (l Levels) SurvivesHostLoss() bool { return l.Shared || (l.Local && (l.Partner || l.Erasure)) }

// CutLevels returns the levels a committed cut's meta records; a cut
// without the entry is in the shared store only. A damaged entry is an
// error (the cut is then treated as shared by no one: callers fall back).
func CutLevels(meta map[string]string) (Levels, error) {
	v, ok := meta[MetaLevels]
	if !ok {
		return Levels{Shared: true}, nil
	}
	return ParseLevels(v)
}

// Levels is the levels the cut's meta records (shared for a cut without
// the entry, nothing for a damaged entry).
func (c CutInfo) Levels() Levels {
	l, _ := CutLevels(c.Meta)
	return l
}

// inShared says whether a cut spec's meta says its shards are in this
// (the shared) store.
func inShared(meta map[string]string) bool {
	l, err := CutLevels(meta)
	return err != nil || l.Shared // a damaged entry: check everything
}

// HasShard checks that the shard ref names is in this store, intact as far
// as its index and pack sizes tell: the index hashes to the ref's, and
// every older pack it references exists. Chunks are checked when read.
// A missing pack matches ErrNotFound, damage is a *CorruptError.
func (s *Store) HasShard(ctx context.Context, ref ShardRef) error {
	if err := ref.check(); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	if _, err := s.b.Stat(ctx, ref.Pack()); errors.Is(err, backend.ErrNotExist) {
		return fmt.Errorf("job %s cut %d rank %d: no pack in %s: %w", ref.Job, ref.Epoch, ref.Rank, s.where, ErrNotFound)
	}
	idx, err := s.readShardIndex(ctx, ref)
	if err != nil {
		return err
	}
	for _, p := range idx.packs[1:] {
		if _, err := s.b.Stat(ctx, jobDir(ref.Job)+"/"+p); err != nil {
			if errors.Is(err, backend.ErrNotExist) {
				return fmt.Errorf("job %s cut %d rank %d: pack %s it reuses chunks from is not in %s: %w", ref.Job, ref.Epoch, ref.Rank, p, s.where, ErrNotFound)
			}
			return err
		}
	}
	return nil
}

// ShardsPresent says whether every shard of refs is in this store
// (HasShard for each).
func (s *Store) ShardsPresent(ctx context.Context, refs []ShardRef) bool {
	for _, r := range refs {
		if s.HasShard(ctx, r) != nil {
			return false
		}
	}
	return true
}

// CopyShard copies the shard ref names from s to dst: its pack and every
// older pack its index references that dst lacks (byte for byte, each
// through dst's temporary file, fsync and rename), older packs first so
// that the shard's own pack, once visible, never references a missing one.
// It returns the bytes copied. Both stores must have the same chunk size
// and hash. The shard index is checked in s before and in dst after;
// chunks are checked when read, as everywhere.
func (s *Store) CopyShard(ctx context.Context, dst *Store, ref ShardRef) (int64, error) {
	if s.hash != dst.hash || s.chunkSize != dst.chunkSize {
		return 0, fmt.Errorf("copy shard: %s has hash %s and chunk size %d, %s has %s and %d", s.where, s.hash, s.chunkSize, dst.where, dst.hash, dst.chunkSize)
	}
	idx, err := s.readShardIndex(ctx, ref)
	if err != nil {
		return 0, fmt.Errorf("copy shard from %s: %w", s.where, err)
	}
	var n int64
	order := append(slices.Clone(idx.packs[1:]), idx.packs[0])
	for i, p := range order {
		name := jobDir(ref.Job) + "/" + p
		own := i == len(order)-1
		if !own {
			if fi, err := dst.b.Stat(ctx, name); err == nil {
				if sfi, err := s.b.Stat(ctx, name); err == nil && sfi.Size == fi.Size {
					continue // already there (an older cut's copy)
				}
			}
		}
		c, err := copyFile(ctx, s.b, dst.b, name)
		n += c
		if err != nil {
			return n, fmt.Errorf("copy shard job %s cut %d rank %d from %s to %s: %w", ref.Job, ref.Epoch, ref.Rank, s.where, dst.where, err)
		}
	}
	if err := dst.HasShard(ctx, ref); err != nil {
		return n, fmt.Errorf("copy shard: after the copy to %s: %w", dst.where, err)
	}
	return n, nil
}

// copyBlock is the unit CopyShard reads and writes in.
const copyBlock = 4 << 20

func copyFile(ctx context.Context, src, dst backend.Backend, name string) (int64, error) {
	r, err := src.Open(ctx, name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	w, err := dst.Create(ctx, name)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, min(int64(copyBlock), max(r.Size(), 1)))
	var off int64
	for off < r.Size() {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return off, err
		}
		k := min(int64(len(buf)), r.Size()-off)
		if _, err := r.ReadAt(buf[:k], off); err != nil && !(err == io.EOF && k > 0) {
			w.Abort()
			return off, err
		}
		if _, err := w.Write(buf[:k]); err != nil {
			w.Abort()
			return off, err
		}
		off += k
	}
	if err := w.Commit(); err != nil {
		return off, err
	}
	return off, nil
}

// NodeLocalGCReport says what NodeLocalGC deleted.
type NodeLocalGCReport struct {
	DeletedPacks int
	DeletedBytes int64
	Kept         int
}

// NodeLocalGC collects a node-local store, which holds packs and no
// manifests: kept lists the shards of the job's cuts still kept (those
// whose manifests the shared store holds), latest the latest committed
// epoch. Every pack of an epoch not newer than latest that no kept shard
// present here references is deleted; packs of newer epochs may be in
// flight and are left alone. A kept shard whose index here is damaged
// makes what it references unknown: then nothing is deleted and the
// damage is returned.
func (s *Store) NodeLocalGC(ctx context.Context, job string, kept []ShardRef, latest uint64, dryRun bool) (NodeLocalGCReport, error) {
	var rep NodeLocalGCReport
	if err := ValidJobName(job); err != nil {
		return rep, err
	}
	live := map[string]bool{}
	for _, ref := range kept {
		if ref.Job != job {
			continue
		}
		if _, err := s.b.Stat(ctx, ref.Pack()); errors.Is(err, backend.ErrNotExist) {
			// No pack here; erasure fragments of it, maybe, and the list
			// of the packs the shard needs.
			packs, err := s.readPackList(ctx, ref)
			if errors.Is(err, backend.ErrNotExist) {
				continue // not on this host
			}
			if err != nil {
				return rep, fmt.Errorf("node-local gc %s job %s: no pack deleted: %w", s.where, job, err)
			}
			for _, p := range packs {
				live[jobDir(job)+"/"+p] = true
			}
			continue
		}
		idx, err := s.readShardIndex(ctx, ref)
		if err != nil {
			return rep, fmt.Errorf("node-local gc %s job %s: no pack deleted: %w", s.where, job, err)
		}
		for _, p := range idx.packs {
			live[jobDir(job)+"/"+p] = true
		}
	}
	rep.Kept = len(live)
	var dirs []string
	err := s.b.List(ctx, packsDir(job), func(fi backend.FileInfo) error {
		if fi.IsDir {
			dirs = append(dirs, fi.Name)
		}
		return nil
	})
	if errors.Is(err, backend.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("node-local gc %s job %s: %w", s.where, job, err)
	}
	for _, d := range dirs {
		var files []backend.FileInfo
		err := s.b.List(ctx, d, func(fi backend.FileInfo) error {
			files = append(files, fi)
			return nil
		})
		if errors.Is(err, backend.ErrNotExist) {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("node-local gc %s job %s: %w", s.where, job, err)
		}
		for _, fi := range files {
			name := fi.Name
			if p, ok := fragmentOf(name); ok {
				name = p // an erasure fragment lives and dies with its pack
			}
			if fi.IsDir || fi.Temp || live[name] {
				continue
			}
			id, err := parsePackRel(name[len(jobDir(job))+1:])
			if err != nil || id.epoch > latest {
				continue
			}
			if !dryRun {
				if err := s.b.Remove(ctx, fi.Name); err != nil && !errors.Is(err, backend.ErrNotExist) {
					return rep, fmt.Errorf("node-local gc %s job %s: %w", s.where, job, err)
				}
			}
			rep.DeletedPacks++
			rep.DeletedBytes += fi.Size
		}
	}
	return rep, nil
}

// VerifyShard reads every chunk of one shard in this store and checks it
// (stored checksum, decompression, content hash), as Verify does for a
// whole cut. It is how a node-local copy is verified: the cut's manifest
// lives in the shared store.
func (s *Store) VerifyShard(ctx context.Context, ref ShardRef) (int64, error) {
	sr, err := s.OpenShardRef(ctx, ref)
	if err != nil {
		return 0, err
	}
	defer sr.Close()
	var n int64
	for _, b := range sr.Buffers() {
		buf := make([]byte, b.Len)
		if err := sr.ReadBuffer(ctx, b.Name, buf); err != nil {
			return n, err
		}
		n += b.Len
	}
	if _, err := sr.Channels(ctx); err != nil {
		return n, err
	}
	return n, nil
}

// MarkShared records that committed cut epoch of a multi-level job is now
// in this (the shared) store too, once its ranks flushed their shards in
// the background: when every shard index of the cut is here and intact
// and every pack they reuse chunks from is here, the manifest is replaced
// (atomically: readers see the old or the new one, also across a crash)
// by the same manifest whose MetaLevels adds shared. It returns whether
// the cut is in the shared store now. A shard still missing is no error:
// false, nil (the flush is not done). The caller must not run it together
// with a GC of the job (which could remove the manifest meanwhile).
func (s *Store) MarkShared(ctx context.Context, job string, epoch uint64) (bool, error) {
	mu := s.jobLock(job)
	mu.Lock()
	defer mu.Unlock()
	m, err := s.loadManifest(ctx, job, epoch)
	if err != nil {
		return false, err
	}
	lv, err := CutLevels(m.meta)
	if err != nil {
		return false, fmt.Errorf("job %s cut %d: %w", job, epoch, err)
	}
	if lv.Shared {
		return true, nil
	}
	for _, ref := range m.shards {
		if err := s.HasShard(ctx, ref); err != nil {
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			return false, err
		}
	}
	if err := s.checkShards(ctx, CutSpec{Job: job, Epoch: epoch, Shards: m.shards}); err != nil {
		return false, err
	}
	lv.Shared = true
	m.meta[MetaLevels] = lv.String()
	if err := s.b.Replace(ctx, manifestName(job, epoch), encodeManifest(m)); err != nil {
		return false, fmt.Errorf("job %s cut %d: record the flush: %w", job, epoch, err)
	}
	s.log.Info("cut flushed to the shared store", "job", job, "epoch", epoch, "levels", lv.String())
	return true, nil
}
