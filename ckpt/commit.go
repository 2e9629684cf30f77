package ckpt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// CutSpec is what the coordinator commits: one durable shard per rank.
type CutSpec struct {
	Job         string
	Epoch       uint64
	Step        int64
	World       int
	Incarnation uint64
	Shards      []ShardRef // index = rank
	// Meta is recorded with the cut, for example GOARCH and the GPU model
	// a bit-identical restore needs (at most MaxCutMeta entries).
	Meta map[string]string
	// Time of the cut; zero means now.
	Time time.Time
}

// Commit commits a cut: it checks that every rank's shard index exists,
// hashes to what its ShardRef says and describes that rank of this cut, and
// that every older pack it reuses chunks from exists; then it writes the
// manifest (temporary file, fsync, rename, fsync of the directory). The
// rename is the commit: a crash before it leaves no cut, after it a
// complete one.
//
// Commit refuses an epoch that is not newer than the job's latest committed
// cut (ErrStaleEpoch) or is already committed (ErrExist). It does not
// re-read the chunks: each rank made its pack durable before reporting it;
// Verify re-reads everything.
func (s *Store) Commit(ctx context.Context, spec CutSpec) (CutInfo, error) {
	if err := s.checkCutSpec(spec); err != nil {
		return CutInfo{}, fmt.Errorf("commit job %s cut %d: %w", spec.Job, spec.Epoch, err)
	}
	// A cut on node-local levels only (MetaLevels without shared) has no
	// shard here to check: its ranks reported each shard durable at a
	// level that survives the loss of a host.
	if inShared(spec.Meta) {
		if err := s.checkShards(ctx, spec); err != nil {
			return CutInfo{}, fmt.Errorf("commit job %s cut %d: %w", spec.Job, spec.Epoch, err)
		}
	}
	t := spec.Time
	if t.IsZero() {
		t = s.now()
	}
	m := &manifest{
		job: spec.Job, epoch: spec.Epoch, step: spec.Step, world: spec.World, incarnation: spec.Incarnation,
		time: t.UnixNano(), meta: spec.Meta, shards: spec.Shards,
	}
	if m.meta == nil {
		m.meta = map[string]string{}
	}
	data := encodeManifest(m)

	mu := s.jobLock(spec.Job)
	mu.Lock()
	defer mu.Unlock()
	latest, err := s.latestEpoch(ctx, spec.Job)
	if err != nil {
		return CutInfo{}, err
	}
	if latest == spec.Epoch {
		return CutInfo{}, fmt.Errorf("commit job %s cut %d: %w", spec.Job, spec.Epoch, ErrExist)
	}
	if latest > spec.Epoch {
		return CutInfo{}, fmt.Errorf("commit job %s cut %d: latest committed cut is %d: %w", spec.Job, spec.Epoch, latest, ErrStaleEpoch)
	}
	w, err := s.b.Create(ctx, manifestName(spec.Job, spec.Epoch))
	if err != nil {
		return CutInfo{}, fmt.Errorf("commit job %s cut %d: %w", spec.Job, spec.Epoch, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return CutInfo{}, fmt.Errorf("commit job %s cut %d: %w", spec.Job, spec.Epoch, err)
	}
	if err := w.Commit(); err != nil {
		return CutInfo{}, fmt.Errorf("commit job %s cut %d: %w", spec.Job, spec.Epoch, err)
	}
	info := infoOf(m)
	s.log.Info("cut committed", "job", spec.Job, "epoch", spec.Epoch, "step", spec.Step, "ranks", spec.World,
		"raw", info.RawBytes, "stored", info.StoredBytes, "new", info.NewBytes)
	return info, nil
}

func (s *Store) checkCutSpec(spec CutSpec) error {
	if err := ValidJobName(spec.Job); err != nil {
		return err
	}
	switch {
	case spec.Epoch == 0:
		return errors.New("epoch 0 (epochs start at 1)")
	case spec.World <= 0 || spec.World > MaxWorld:
		return fmt.Errorf("world size %d out of range", spec.World)
	case len(spec.Shards) != spec.World:
		return fmt.Errorf("%d shards for %d ranks", len(spec.Shards), spec.World)
	case spec.Incarnation == 0:
		return errors.New("incarnation 0")
	case spec.Step < 0:
		return fmt.Errorf("negative step %d", spec.Step)
	}
	if err := checkCutMeta(spec.Meta); err != nil {
		return err
	}
	for i, r := range spec.Shards {
		if err := r.check(); err != nil {
			return fmt.Errorf("rank %d: %w", i, err)
		}
		if r.Job != spec.Job || r.Epoch != spec.Epoch || r.Rank != i || r.Step != spec.Step || r.Incarnation != spec.Incarnation {
			return fmt.Errorf("rank %d: shard of job %s cut %d rank %d step %d incarnation %d does not belong here",
				i, r.Job, r.Epoch, r.Rank, r.Step, r.Incarnation)
		}
	}
	return nil
}

// checkShards reads every shard index (in parallel) and stats the older
// packs they reference.
func (s *Store) checkShards(ctx context.Context, spec CutSpec) error {
	var mu sync.Mutex
	refPacks := map[string]bool{}
	err := s.forChunks(ctx, len(spec.Shards), func(ctx context.Context, i int) error {
		idx, err := s.readShardIndex(ctx, spec.Shards[i])
		if err != nil {
			return err
		}
		mu.Lock()
		for _, p := range idx.packs[1:] {
			refPacks[p] = true
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	for p := range refPacks {
		name := jobDir(spec.Job) + "/" + p
		if _, err := s.b.Stat(ctx, name); err != nil {
			if errors.Is(err, backend.ErrNotExist) {
				return corrupt(spec.Job, spec.Epoch, name, errors.New("a shard reuses chunks from this pack, which is gone (was its cut pinned against GC?)"))
			}
			return err
		}
	}
	return nil
}
