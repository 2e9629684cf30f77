package ckpt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// AbortsFile is the job file in which the job's owner records the epochs it
// aborted, so that GC can tell an aborted epoch's packs (garbage) from
// those of an epoch in flight (kept).
const AbortsFile = "aborts.json"

const (
	abortsFormat = 1
	// maxAborts bounds the list; the oldest entries are dropped first
	// (their packs are then left to a GC of the stopped job).
	maxAborts = 4096
)

// abortRecord is the content of AbortsFile.
type abortRecord struct {
	Format int `json:"format"`
	// Below: every epoch below it that is not committed is aborted (a
	// restore starts issuing epochs at the record's limit and never
	// completes an older one).
	Below uint64 `json:"below"`
	// Epochs aborted one by one, ascending.
	Epochs []uint64 `json:"epochs"`
}

func decodeAborts(b []byte) (abortRecord, error) {
	var r abortRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, err
	}
	if dec.More() {
		return r, errors.New("trailing data")
	}
	if r.Format != abortsFormat {
		return r, fmt.Errorf("format %d, this build reads %d", r.Format, abortsFormat)
	}
	if len(r.Epochs) > maxAborts {
		return r, fmt.Errorf("%d epochs, limit %d", len(r.Epochs), maxAborts)
	}
	for i, e := range r.Epochs {
		if e == 0 || (i > 0 && e <= r.Epochs[i-1]) {
			return r, fmt.Errorf("epochs not ascending and nonzero at %d", i)
		}
	}
	return r, nil
}

// readAborts returns the job's abort record; none gives an empty one.
func (s *Store) readAborts(ctx context.Context, job string) (abortRecord, error) {
	data, err := s.b.ReadFile(ctx, jobDir(job)+"/"+AbortsFile, MaxJobFileLen)
	if errors.Is(err, backend.ErrNotExist) {
		return abortRecord{Format: abortsFormat}, nil
	}
	if err != nil {
		return abortRecord{}, fmt.Errorf("job %s: %w", job, err)
	}
	r, err := decodeAborts(data)
	if err != nil {
		return abortRecord{}, &CorruptError{Job: job, Rank: -1, Chunk: -1, Offset: -1, File: jobDir(job) + "/" + AbortsFile, Err: err}
	}
	return r, nil
}

func (r abortRecord) aborted(e uint64) bool {
	if e < r.Below {
		return true
	}
	_, ok := slices.BinarySearch(r.Epochs, e)
	return ok
}

// RecordAbort durably records that the job's owner aborted epoch (its
// packs are garbage once no manifest names them, which Commit guarantees
// for an aborted epoch). below > 0 additionally records every epoch below
// it as aborted (what a restore knows of the epochs its predecessors may
// have used). Only the job's lease holder may call it; lease, if not nil,
// is checked first. Entries at or below the latest committed cut are
// pruned (GC deletes those packs anyway).
func (s *Store) RecordAbort(ctx context.Context, job string, epoch, below uint64, lease *Lease) error {
	if err := ValidJobName(job); err != nil {
		return err
	}
	mu := s.jobLock(job)
	mu.Lock()
	defer mu.Unlock()
	r, err := s.readAborts(ctx, job)
	if errors.Is(err, ErrCorrupt) {
		s.log.Warn("damaged abort record replaced", "job", job, "err", err)
		r, err = abortRecord{Format: abortsFormat}, nil
	}
	if err != nil {
		return err
	}
	latest, err := s.latestEpoch(ctx, job)
	if err != nil {
		return err
	}
	r.Below = max(r.Below, below)
	if epoch != 0 {
		if i, ok := slices.BinarySearch(r.Epochs, epoch); !ok {
			r.Epochs = slices.Insert(r.Epochs, i, epoch)
		}
	}
	r.Epochs = slices.DeleteFunc(r.Epochs, func(e uint64) bool { return e <= latest || e < r.Below })
	if len(r.Epochs) > maxAborts {
		r.Epochs = r.Epochs[len(r.Epochs)-maxAborts:]
	}
	if r.Epochs == nil {
		r.Epochs = []uint64{}
	}
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := lease.Check(); err != nil {
		return err
	}
	if err := s.b.Replace(ctx, jobDir(job)+"/"+AbortsFile, append(data, '\n')); err != nil {
		return fmt.Errorf("job %s: record abort: %w", job, err)
	}
	return nil
}

// RemoveJob deletes everything of the job: committed cuts first (each
// removal durable before the next step, so a crash leaves no manifest that
// names a missing pack), then packs, then the job's small files, and its
// lease files last. The caller must hold the job's lease (lease), so no
// coordinator can start on the job meanwhile; RemoveJob checks it before
// each phase. Removing the lease files ends it.
func (s *Store) RemoveJob(ctx context.Context, job string, lease *Lease) (removed int, err error) {
	if err := ValidJobName(job); err != nil {
		return 0, err
	}
	if lease == nil || lease.Job() != job {
		return 0, fmt.Errorf("remove job %s: the job's lease must be held", job)
	}
	mu := s.jobLock(job)
	mu.Lock()
	defer mu.Unlock()
	var files []string
	var dirs []string
	var walk func(dir string) error
	walk = func(dir string) error {
		var sub []string
		err := s.b.List(ctx, dir, func(fi backend.FileInfo) error {
			if fi.IsDir {
				sub = append(sub, fi.Name)
			} else {
				files = append(files, fi.Name)
			}
			return nil
		})
		if errors.Is(err, backend.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, d := range sub {
			if err := walk(d); err != nil {
				return err
			}
		}
		dirs = append(dirs, dir)
		return nil
	}
	if err := walk(jobDir(job)); err != nil {
		return removed, fmt.Errorf("remove job %s: %w", job, err)
	}
	// Manifests first, then packs, then the small files; leases last.
	phase := func(f string) int {
		switch {
		case strings.HasPrefix(f, cutsDir(job)+"/"):
			return 0
		case strings.HasPrefix(f, packsDir(job)+"/"):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(files, func(a, b string) int { return phase(a) - phase(b) })
	var leases []string
	for _, f := range files {
		_, base := backend.Split(f)
		if _, ok := parseLeaseName(base); ok && f == jobDir(job)+"/"+base {
			leases = append(leases, f)
			continue
		}
		if err := lease.Check(); err != nil {
			return removed, fmt.Errorf("remove job %s: %w", job, err)
		}
		if err := s.b.Remove(ctx, f); err != nil && !errors.Is(err, backend.ErrNotExist) {
			return removed, fmt.Errorf("remove job %s: %w", job, err)
		}
		removed++
	}
	if err := lease.Check(); err != nil {
		return removed, fmt.Errorf("remove job %s: %w", job, err)
	}
	if dr, ok := s.b.(backend.DirRemover); ok {
		for _, d := range dirs {
			if d != jobDir(job) {
				_ = dr.RemoveEmptyDir(ctx, d) // best effort; may be pruned already
			}
		}
	}
	// The lease last, the instance in force at the very end: until then
	// a coordinator that looks finds the job owned.
	slices.Sort(leases)
	for i := range leases {
		f := leases[i]
		if f == jobDir(job)+"/"+leaseName(lease.Instance()) {
			continue
		}
		if err := s.b.Remove(ctx, f); err != nil && !errors.Is(err, backend.ErrNotExist) {
			return removed, fmt.Errorf("remove job %s: %w", job, err)
		}
		removed++
	}
	lease.io.Lock()
	lease.mu.Lock()
	lease.lost = fmt.Errorf("job %s removed: %w", job, ErrLeaseLost)
	lease.mu.Unlock()
	err = s.b.Remove(ctx, jobDir(job)+"/"+leaseName(lease.Instance()))
	lease.io.Unlock()
	if err != nil && !errors.Is(err, backend.ErrNotExist) {
		return removed, fmt.Errorf("remove job %s: %w", job, err)
	}
	removed++
	if dr, ok := s.b.(backend.DirRemover); ok {
		_ = dr.RemoveEmptyDir(ctx, jobDir(job))
	}
	return removed, nil
}
