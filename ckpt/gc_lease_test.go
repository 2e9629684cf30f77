package ckpt

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend/local"
)

// packDirs lists the epoch folders under the job's packs and how many
// files each holds.
func packDirs(t *testing.T, s *Store, job string) map[string]int {
	t.Helper()
	root := filepath.Join(s.Backend().(*local.Backend).Root(), packsDir(job))
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		files, _ := os.ReadDir(filepath.Join(root, e.Name()))
		out[e.Name()] = len(files)
	}
	return out
}

// unreferencedShard writes a pack of epoch e that no cut names (an attempt
// aborted, or one in flight).
func unreferencedShard(t *testing.T, s *Store, job string, e uint64) {
	t.Helper()
	writeShard(t, s, ShardSpec{Job: job, Epoch: e, Rank: 0, Incarnation: 1, Step: int64(e)}, makeRank(e, 0, 5000))
}

func emptyEpochDir(t *testing.T, s *Store, job string, e uint64) {
	t.Helper()
	p := filepath.Join(s.Backend().(*local.Backend).Root(), packsDir(job), epochString(e))
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestGCAbortRecords: packs of an epoch the owner recorded as aborted are
// deleted at once, those of an epoch in flight are kept; a restore's
// "below" record covers every older attempt.
func TestGCAbortRecords(t *testing.T) {
	s := dirStore(t)
	const job = "ab"
	writeCut(t, s, job, 1, 2, 5000, 0)
	unreferencedShard(t, s, job, 2) // aborted
	unreferencedShard(t, s, job, 3) // in flight
	emptyEpochDir(t, s, job, 4)     // aborted before a file was written
	emptyEpochDir(t, s, job, 5)     // in flight, nothing written yet
	for _, e := range []uint64{2, 4} {
		if err := s.RecordAbort(bg, job, e, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Fresh temporary packs of killed writers: in the aborted epoch (goes
	// at once) and in the one in flight (stays until the horizon).
	root := s.Backend().(*local.Backend).Root()
	for _, e := range []uint64{2, 3} {
		tmp := filepath.Join(root, packsDir(job), epochString(e), ".r000001-g1-0000000000000000.pack.tmp-x")
		if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.GC(bg, job, GCOptions{Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks != 1 || rep.KeptUnreferenced != 1 || rep.DeletedTemps != 1 {
		t.Fatalf("report %+v: want the aborted pack and temporary file deleted, the in-flight ones kept", rep)
	}
	dirs := packDirs(t, s, job)
	if _, ok := dirs[epochString(2)]; ok {
		t.Fatalf("aborted epoch 2's folder left: %v", dirs)
	}
	if _, ok := dirs[epochString(4)]; ok {
		t.Fatalf("aborted empty epoch 4's folder left: %v", dirs)
	}
	if dirs[epochString(3)] != 2 {
		t.Fatalf("in-flight epoch 3's pack deleted: %v", dirs)
	}
	if _, ok := dirs[epochString(5)]; !ok {
		t.Fatalf("in-flight empty epoch 5's folder deleted: %v", dirs)
	}
	// A restore records everything below its first epoch as aborted.
	if err := s.RecordAbort(bg, job, 0, 6, nil); err != nil {
		t.Fatal(err)
	}
	if rep, err = s.GC(bg, job, GCOptions{Keep: 2}); err != nil || rep.DeletedPacks != 1 || rep.KeptUnreferenced != 0 || rep.DeletedTemps != 1 {
		t.Fatalf("after a below record: %+v %v", rep, err)
	}
	if dirs := packDirs(t, s, job); len(dirs) != 1 {
		t.Fatalf("folders left %v, want only cut 1's", dirs)
	}
	r, err := s.readAborts(bg, job)
	if err != nil || r.Below != 6 || len(r.Epochs) != 0 {
		t.Fatalf("abort record %+v %v: entries below Below are pruned", r, err)
	}
	// The committed cut is intact.
	if _, err := s.Verify(bg, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	// A damaged abort record: GC keeps the unknown packs, says nothing
	// worse.
	if err := s.PutJobFile(bg, job, AbortsFile, []byte("{garbage")); err != nil {
		t.Fatal(err)
	}
	unreferencedShard(t, s, job, 7)
	if rep, err = s.GC(bg, job, GCOptions{Keep: 2}); err != nil || rep.KeptUnreferenced != 1 {
		t.Fatalf("with a damaged abort record: %+v %v", rep, err)
	}
}

// TestGCStoppedJob: with the job's lease held by the GC and no owner,
// every unreferenced pack, temporary file and empty epoch folder goes at
// once; the kept cuts stay readable.
func TestGCStoppedJob(t *testing.T) {
	s := dirStore(t)
	const job = "st"
	_, d1 := writeCut(t, s, job, 1, 2, 5000, 0)
	_, d2 := writeCut(t, s, job, 2, 2, 5000, 1)
	unreferencedShard(t, s, job, 3)
	for e := uint64(4); e < 24; e++ {
		emptyEpochDir(t, s, job, e)
	}
	// A temporary file of a killed writer, fresh.
	tmp := filepath.Join(s.Backend().(*local.Backend).Root(), packsDir(job), epochString(3), ".x.pack.tmp-abc")
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(bg, job, GCOptions{Keep: 2, Stopped: true}); err == nil {
		t.Fatal("stopped-job GC without the lease accepted")
	}
	l, err := s.AcquireLease(bg, job, leaseOpts("h", 1, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.GC(bg, job, GCOptions{Keep: 2, Stopped: true, Lease: l})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks != 1 || rep.DeletedTemps != 1 || rep.KeptUnreferenced != 0 || rep.DeletedDirs != 20 {
		t.Fatalf("report %+v", rep)
	}
	if dirs := packDirs(t, s, job); len(dirs) != 2 {
		t.Fatalf("folders left %v, want those of cuts 1 and 2", dirs)
	}
	checkRestore(t, s, job, 1, d1)
	checkRestore(t, s, job, 2, d2)
	// A lost lease stops GC before it deletes anything.
	l.Release(bg)
	writeCut(t, s, job, 3, 2, 5000, 0)
	if rep, err = s.GC(bg, job, GCOptions{Keep: 1, Lease: l}); !errors.Is(err, ErrLeaseLost) || len(rep.DeletedCuts) != 0 {
		t.Fatalf("gc with a lost lease: %+v %v", rep, err)
	}
	if cuts, _ := s.List(bg, job); len(cuts) != 3 {
		t.Fatalf("cuts after a fenced gc: %v", cuts)
	}
}

func TestRemoveJob(t *testing.T) {
	s := dirStore(t)
	writeCut(t, s, "a", 1, 2, 5000, 0)
	writeCut(t, s, "a", 2, 2, 5000, 1)
	unreferencedShard(t, s, "a", 3)
	emptyEpochDir(t, s, "a", 9)
	if err := s.PutJobFile(bg, "a", "job.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_, keep := writeCut(t, s, "b", 1, 1, 5000, 0)
	if _, err := s.RemoveJob(bg, "a", nil); err == nil {
		t.Fatal("RemoveJob without the lease accepted")
	}
	owner, err := s.AcquireLease(bg, "a", leaseOpts("h", 1, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(bg, "a", leaseOpts("h", 2, time.Second)); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("rm while owned: %v", err)
	}
	n, err := s.RemoveJob(bg, "a", owner)
	if err != nil || n < 7 {
		t.Fatalf("RemoveJob: %d files, %v", n, err)
	}
	jobs, _ := s.Jobs(bg)
	if !slices.Equal(jobs, []string{"b"}) {
		t.Fatalf("jobs after rm: %v", jobs)
	}
	if _, err := os.Stat(filepath.Join(s.Backend().(*local.Backend).Root(), jobDir("a"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("job folder left: %v", err)
	}
	if owner.Check() == nil {
		t.Fatal("lease still valid after the job was removed")
	}
	checkRestore(t, s, "b", 1, keep)
	// The name is free again.
	if _, err := s.AcquireLease(bg, "a", leaseOpts("h", 3, time.Second)); err != nil {
		t.Fatal(err)
	}
}
