package ckpt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// GCOptions choose what GC keeps.
type GCOptions struct {
	// Keep is how many of the latest committed cuts to keep (>= 1).
	Keep int
	// Pin lists committed cuts to keep as well: the base of every
	// incremental epoch in flight.
	Pin []uint64
	// Aborted lists epochs newer than the latest committed cut that are
	// known to be aborted: their packs are deleted.
	Aborted []uint64
	// InFlightHorizon, when > 0, deletes packs of epochs newer than the
	// latest committed cut once they are older than this. Zero keeps them:
	// they may belong to an epoch in flight, which no manifest names yet.
	InFlightHorizon time.Duration
	// TempHorizon is the age after which a temporary file is taken to be
	// left by a killed writer and deleted; default one hour. Temporary
	// packs of an epoch that is over (not newer than the latest cut, or
	// recorded as aborted) are deleted at any age, except those of a kept
	// cut whose levels lack shared (a background flush may be writing
	// them). A live writer
	// whose temporary file is deleted fails at its commit, nothing else.
	TempHorizon time.Duration
	// DryRun reports what would be deleted without deleting it.
	DryRun bool
	// Lease, when set, is the caller's lease on the job: GC checks it
	// before every removal and stops (ErrLeaseLost) once it is lost, so a
	// coordinator that was replaced never deletes what its successor
	// references.
	Lease *Lease
	// Stopped: the job has no owner but the caller (which holds its
	// lease, Lease), so nothing is in flight: every pack no kept cut
	// references, every temporary file and every empty epoch folder is
	// deleted at once.
	Stopped bool
}

// GCReport says what GC kept and deleted.
type GCReport struct {
	Kept         []uint64 // committed cuts kept
	DeletedCuts  []uint64
	DeletedPacks int
	DeletedBytes int64 // bytes of the deleted packs
	DeletedTemps int
	// KeptUnreferenced counts packs of epochs newer than the latest
	// committed cut that were kept as possibly in flight.
	KeptUnreferenced int
	// DeletedDirs counts empty epoch folders removed.
	DeletedDirs int
}

// GC deletes the job's committed cuts beyond the latest opts.Keep (and not
// pinned), then every pack no kept cut references, and temporary files of
// killed writers. Run it only under the job's lease (opts.Lease): by the
// coordinator, which knows the pins and the epoch in flight, or with
// opts.Stopped by a tool holding a stopped job's lease. It is serialized
// with Commit within the process.
//
// Crash safety: at every instant, every manifest present names only packs
// that exist. GC removes manifests first, each removal durable (directory
// fsync) before the next step, and only then removes packs that no
// remaining kept manifest references. A pack of an epoch not newer than the
// latest committed cut is either referenced by a manifest or garbage, since
// Commit refuses epochs that are not newer than the latest; packs of newer
// epochs may belong to the epoch in flight and are left alone unless
// opts.Aborted or opts.InFlightHorizon say otherwise. A GC killed at any
// point leaves a state the next GC finishes. docs/format.md spells this out.
//
// If a kept cut's manifest or shard index cannot be read, what it
// references is unknown: GC then deletes no packs and returns an error
// naming the damage (old cuts beyond Keep are still removed).
func (s *Store) GC(ctx context.Context, job string, opts GCOptions) (GCReport, error) {
	var rep GCReport
	if err := ValidJobName(job); err != nil {
		return rep, err
	}
	if opts.Keep < 1 {
		return rep, fmt.Errorf("gc job %s: keep %d: at least the latest cut must be kept", job, opts.Keep)
	}
	if opts.TempHorizon == 0 {
		opts.TempHorizon = time.Hour
	}
	if opts.Stopped && opts.Lease == nil && !opts.DryRun {
		return rep, fmt.Errorf("gc job %s: a stopped-job gc must hold the job's lease", job)
	}
	if opts.Stopped {
		opts.TempHorizon = -1 // no writer is left
	}
	mu := s.jobLock(job)
	mu.Lock()
	defer mu.Unlock()

	epochs, err := s.committedEpochs(ctx, job)
	if err != nil {
		return rep, err
	}
	var latest uint64
	if len(epochs) > 0 {
		latest = epochs[len(epochs)-1]
	}
	keep := map[uint64]bool{}
	for i, e := range epochs {
		if i >= len(epochs)-opts.Keep || slices.Contains(opts.Pin, e) {
			keep[e] = true
		}
	}
	for _, p := range opts.Pin {
		if !slices.Contains(epochs, p) {
			s.log.Warn("gc: pinned cut is not committed", "job", job, "epoch", p)
		}
	}

	// The live set: every pack a kept cut references.
	live := map[string]bool{}
	// flushing: kept cuts of a multi-level job not yet in the shared
	// store. Their ranks may be flushing them (rank/flush.go), so a
	// temporary pack of such an epoch may be a live flush and gets the
	// horizon, not the at-once removal of a past epoch's (which cut every
	// flush that outlasted a cut interval short).
	flushing := map[uint64]bool{}
	var unreadable []error
	for _, e := range epochs {
		if !keep[e] {
			continue
		}
		rep.Kept = append(rep.Kept, e)
		m, err := s.loadManifest(ctx, job, e)
		if errors.Is(err, ErrCorrupt) {
			unreadable = append(unreadable, err)
			continue
		}
		if err != nil {
			return rep, err
		}
		nodeLocal := !inShared(m.meta)
		flushing[e] = nodeLocal
		for _, ref := range m.shards {
			if nodeLocal {
				// A cut on node-local levels may still have some shards
				// here: a rank whose copy to another host failed flushed
				// its shard instead (the commit rule). Those are live.
				if _, err := s.b.Stat(ctx, ref.Pack()); err != nil {
					continue
				}
			}
			idx, err := s.readShardIndex(ctx, ref)
			if errors.Is(err, ErrCorrupt) {
				unreadable = append(unreadable, err)
				continue
			}
			if err != nil {
				return rep, err
			}
			for _, p := range idx.packs {
				live[jobDir(job)+"/"+p] = true
			}
		}
	}

	aborts, err := s.readAborts(ctx, job)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return rep, err
		}
		s.log.Warn("gc: abort record unreadable; aborted epochs kept as if in flight", "job", job, "err", err)
		aborts = abortRecord{}
	}
	for _, e := range opts.Aborted {
		if i, ok := slices.BinarySearch(aborts.Epochs, e); !ok {
			aborts.Epochs = slices.Insert(aborts.Epochs, i, e)
		}
	}
	check := func() error {
		if err := opts.Lease.Check(); err != nil {
			return fmt.Errorf("gc job %s stopped: %w", job, err)
		}
		return nil
	}

	// Manifests first: once these removals are durable no cut refers to
	// the packs that only they used.
	for _, e := range epochs {
		if keep[e] {
			continue
		}
		if err := check(); err != nil {
			return rep, err
		}
		if !opts.DryRun {
			if err := s.b.Remove(ctx, manifestName(job, e)); err != nil && !errors.Is(err, backend.ErrNotExist) {
				return rep, fmt.Errorf("gc job %s: %w", job, err)
			}
		}
		rep.DeletedCuts = append(rep.DeletedCuts, e)
		s.log.Debug("gc: cut deleted", "job", job, "epoch", e)
	}

	now := s.now()
	removeTemp := func(fi backend.FileInfo) error {
		if !fi.Temp || now.Sub(fi.ModTime) < opts.TempHorizon {
			return nil
		}
		if err := check(); err != nil {
			return err
		}
		if !opts.DryRun {
			if err := s.b.Remove(ctx, fi.Name); err != nil && !errors.Is(err, backend.ErrNotExist) {
				return err
			}
		}
		rep.DeletedTemps++
		return nil
	}
	for _, dir := range []string{jobDir(job), cutsDir(job)} {
		err := s.b.List(ctx, dir, removeTemp)
		if err != nil && !errors.Is(err, backend.ErrNotExist) {
			return rep, fmt.Errorf("gc job %s: %w", job, err)
		}
	}

	// Then packs.
	packsOK := len(unreadable) == 0
	var epochDirs []backend.FileInfo
	err = s.b.List(ctx, packsDir(job), func(fi backend.FileInfo) error {
		if fi.IsDir {
			epochDirs = append(epochDirs, fi)
		}
		return nil
	})
	if err != nil && !errors.Is(err, backend.ErrNotExist) {
		return rep, fmt.Errorf("gc job %s: %w", job, err)
	}
	dirRemover, _ := s.b.(backend.DirRemover)
	for _, d := range epochDirs {
		_, base := backend.Split(d.Name)
		dirEpoch, derr := strconv.ParseUint(base, 10, 64)
		if derr != nil || epochString(dirEpoch) != base {
			continue // not ours: leave it
		}
		var files []backend.FileInfo
		err := s.b.List(ctx, d.Name, func(fi backend.FileInfo) error {
			files = append(files, fi)
			return nil
		})
		if errors.Is(err, backend.ErrNotExist) {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("gc job %s: %w", job, err)
		}
		left := 0
		for _, fi := range files {
			left++
			if fi.Temp {
				// A temporary pack of an epoch that is over (committed
				// or past, or aborted) belongs to a killed writer or
				// to one whose shard can no longer be used: it goes
				// at once, not after the horizon. A kept cut that is
				// not in the shared store yet is not over: its flush
				// may be writing it.
				over := (dirEpoch <= latest && !flushing[dirEpoch]) || aborts.aborted(dirEpoch)
				if over && now.Sub(fi.ModTime) < opts.TempHorizon {
					fi.ModTime = now.Add(-opts.TempHorizon)
				}
				if now.Sub(fi.ModTime) >= opts.TempHorizon {
					left--
				}
				if err := removeTemp(fi); err != nil {
					return rep, fmt.Errorf("gc job %s: %w", job, err)
				}
				continue
			}
			rel := fi.Name[len(jobDir(job))+1:]
			id, err := parsePackRel(rel)
			if err != nil || fi.IsDir {
				continue // not ours: leave it
			}
			if live[fi.Name] || !packsOK {
				continue
			}
			if id.epoch > latest {
				old := opts.InFlightHorizon > 0 && now.Sub(fi.ModTime) > opts.InFlightHorizon
				if !aborts.aborted(id.epoch) && !old && !opts.Stopped {
					rep.KeptUnreferenced++
					continue
				}
			}
			if err := check(); err != nil {
				return rep, err
			}
			left--
			if !opts.DryRun {
				if err := s.b.Remove(ctx, fi.Name); err != nil && !errors.Is(err, backend.ErrNotExist) {
					return rep, fmt.Errorf("gc job %s: %w", job, err)
				}
			}
			rep.DeletedPacks++
			rep.DeletedBytes += fi.Size
		}
		// A folder left empty (by a writer that failed before its first
		// file, e.g. on a full disk) of an epoch that is over.
		if left == 0 && packsOK && dirRemover != nil && (opts.Stopped || dirEpoch <= latest || aborts.aborted(dirEpoch)) {
			if err := check(); err != nil {
				return rep, err
			}
			if !opts.DryRun {
				err := dirRemover.RemoveEmptyDir(ctx, d.Name)
				if err == nil {
					rep.DeletedDirs++
				}
			} else if len(files) == 0 {
				rep.DeletedDirs++
			}
		}
	}
	if opts.DryRun {
		// Nothing was deleted: the figures are what a GC would delete.
		s.log.Info("gc dry run: nothing deleted", "job", job, "kept", len(rep.Kept), "would_delete_cuts", len(rep.DeletedCuts),
			"would_delete_packs", rep.DeletedPacks, "would_delete_bytes", rep.DeletedBytes, "would_delete_temps", rep.DeletedTemps)
	} else {
		s.log.Info("gc", "job", job, "kept", len(rep.Kept), "deleted_cuts", len(rep.DeletedCuts),
			"deleted_packs", rep.DeletedPacks, "deleted_bytes", rep.DeletedBytes, "deleted_temps", rep.DeletedTemps)
	}
	if !packsOK {
		return rep, fmt.Errorf("gc job %s: no packs deleted, a kept cut cannot be read: %w", job, errors.Join(unreadable...))
	}
	return rep, nil
}
