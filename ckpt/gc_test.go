package ckpt

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/fault"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

func packsOfEpoch(b *mem.Backend, job string, e uint64) []string {
	var out []string
	for _, f := range b.Files() {
		if strings.HasPrefix(f, packsDir(job)+"/"+epochString(e)+"/") {
			out = append(out, f)
		}
	}
	return out
}

func TestGCKeepsLastK(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "gc"
	data := map[uint64][]rankData{}
	for e := uint64(1); e <= 5; e++ {
		_, data[e] = writeCut(t, s, job, e, 2, 8000, 0)
	}
	rep, err := s.GC(bg, job, GCOptions{Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Kept, []uint64{4, 5}) || !slices.Equal(rep.DeletedCuts, []uint64{1, 2, 3}) || rep.DeletedPacks != 6 {
		t.Fatalf("report %+v", rep)
	}
	cuts, _ := s.List(bg, job)
	if len(cuts) != 2 || cuts[0].Epoch != 4 {
		t.Fatalf("List after GC = %+v", cuts)
	}
	for e := uint64(1); e <= 3; e++ {
		if p := packsOfEpoch(b, job, e); len(p) != 0 {
			t.Fatalf("packs of deleted cut %d left: %v", e, p)
		}
	}
	checkRestore(t, s, job, 4, data[4])
	checkRestore(t, s, job, 5, data[5])
	if _, err := s.Verify(bg, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	rep, err = s.GC(bg, job, GCOptions{Keep: 2})
	if err != nil || len(rep.DeletedCuts) != 0 || rep.DeletedPacks != 0 {
		t.Fatalf("second GC: %+v, %v", rep, err)
	}
	if _, err := s.GC(bg, job, GCOptions{Keep: 0}); err == nil {
		t.Fatal("Keep 0 accepted")
	}
}

// TestGCIncremental: packs of deleted cuts that kept cuts reuse chunks from
// stay; pins keep a base alive.
func TestGCIncremental(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "inc"
	u := make([]byte, 30*testChunk)
	for i := range u {
		u[i] = byte(i * 31)
	}
	write := func(e, base uint64) {
		spec := ShardSpec{Job: job, Epoch: e, Incarnation: 1, Step: int64(e)}
		if base != 0 {
			spec.Base = &BaseRef{Epoch: base}
		}
		w, err := s.NewShard(bg, spec)
		if err != nil {
			t.Fatal(err)
		}
		w.AddBuffer(bg, "u", BytesSource(u, 8))
		ref, err := w.Close(bg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(bg, CutSpec{Job: job, Epoch: e, Step: int64(e), World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 0)
	u[0] ^= 1
	write(2, 1) // reuses 29 chunks of cut 1's pack
	u[testChunk] ^= 1
	write(3, 2) // reuses from the packs of 1 and 2
	if _, err := s.GC(bg, job, GCOptions{Keep: 1}); err != nil {
		t.Fatal(err)
	}
	if cuts, _ := s.List(bg, job); len(cuts) != 1 || cuts[0].Epoch != 3 {
		t.Fatalf("cuts %+v", cuts)
	}
	if len(packsOfEpoch(b, job, 1)) != 1 || len(packsOfEpoch(b, job, 2)) != 1 {
		t.Fatal("GC deleted a pack that the kept cut reuses")
	}
	r, err := s.OpenShard(bg, job, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(u))
	if err := r.ReadBuffer(bg, "u", got); err != nil || string(got) != string(u) {
		t.Fatalf("restore after GC: %v", err)
	}
	// An incremental epoch in flight on base 3 while cut 4 commits: with 3
	// pinned, a Keep 1 GC keeps it.
	write(4, 0)
	spec := ShardSpec{Job: job, Epoch: 5, Incarnation: 1, Step: 5, Base: &BaseRef{Epoch: 3}}
	w, err := s.NewShard(bg, spec)
	if err != nil {
		t.Fatal(err)
	}
	w.AddBuffer(bg, "u", BytesSource(u, 8))
	ref, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.GC(bg, job, GCOptions{Keep: 1, Pin: []uint64{3}})
	if err != nil || !slices.Equal(rep.Kept, []uint64{3, 4}) || rep.KeptUnreferenced != 1 {
		t.Fatalf("GC with a pin: %+v, %v", rep, err)
	}
	if _, err := s.Commit(bg, CutSpec{Job: job, Epoch: 5, Step: 5, World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
		t.Fatalf("commit of the in-flight incremental epoch after GC: %v", err)
	}
	if _, err := s.Verify(bg, job, 0, nil); err != nil {
		t.Fatal(err)
	}
}

// TestGCInFlight: packs of an epoch newer than the latest cut stay (no
// manifest names them yet) unless the epoch is known aborted or older than
// the horizon; temporary files of dead writers go after TempHorizon.
func TestGCInFlight(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	opts := testOptions()
	opts.Now = clock
	b := mem.New()
	b.SetClock(clock)
	s := newStoreOn(t, b, opts)
	const job = "fly"
	writeCut(t, s, job, 1, 1, 5000, 0)
	// Epoch 2: a durable shard, no manifest (in flight, or its coordinator
	// died); epoch 3: a writer killed mid-pack (a temporary file).
	writeShard(t, s, ShardSpec{Job: job, Epoch: 2, Incarnation: 1, Step: 2}, makeRank(2, 0, 5000))
	w, _ := s.NewShard(bg, ShardSpec{Job: job, Epoch: 3, Incarnation: 1, Step: 3})
	w.AddBuffer(bg, "u", BytesSource(make([]byte, 20000), 8))
	_ = w // never closed: as if killed
	// A second, never reported shard for the committed epoch (a retry, or
	// a process fenced off after it wrote).
	writeShard(t, s, ShardSpec{Job: job, Epoch: 1, Rank: 0, Incarnation: 1, Step: 10}, makeRank(1, 0, 100))

	rep, err := s.GC(bg, job, GCOptions{Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks != 1 || rep.KeptUnreferenced != 1 || rep.DeletedTemps != 0 {
		t.Fatalf("report %+v: want the stale epoch-1 pack deleted, epoch 2 kept, the fresh temporary file kept", rep)
	}
	if len(packsOfEpoch(b, job, 2)) != 1 {
		t.Fatal("in-flight epoch's pack deleted")
	}
	now = now.Add(2 * time.Hour)
	rep, err = s.GC(bg, job, GCOptions{Keep: 1, Aborted: []uint64{2}})
	if err != nil || rep.DeletedPacks != 1 || rep.DeletedTemps != 1 {
		t.Fatalf("report %+v, %v: want the aborted epoch's pack and the old temporary file deleted", rep, err)
	}
	w.Abort() // its temporary file is gone already: Abort copes
	writeShard(t, s, ShardSpec{Job: job, Epoch: 7, Incarnation: 1, Step: 7}, makeRank(7, 0, 100))
	now = now.Add(time.Minute)
	if rep, _ := s.GC(bg, job, GCOptions{Keep: 1, InFlightHorizon: time.Hour}); rep.DeletedPacks != 0 {
		t.Fatal("a fresh in-flight pack was deleted by the horizon")
	}
	now = now.Add(2 * time.Hour)
	if rep, _ := s.GC(bg, job, GCOptions{Keep: 1, InFlightHorizon: time.Hour}); rep.DeletedPacks != 1 {
		t.Fatalf("an in-flight pack older than the horizon was kept: %+v", rep)
	}
	if _, err := s.Verify(bg, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files() {
		if strings.Contains(f, "/packs/") && !strings.Contains(f, "/"+epochString(1)+"/") {
			t.Errorf("left: %s", f)
		}
	}
}

func TestGCDryRun(t *testing.T) {
	opts := testOptions()
	var logb strings.Builder
	opts.Logger = slog.New(slog.NewTextHandler(&logb, nil))
	s, b := newMemStore(t, opts)
	for e := uint64(1); e <= 3; e++ {
		writeCut(t, s, "dry", e, 1, 3000, 0)
	}
	before := b.Files()
	rep, err := s.GC(bg, "dry", GCOptions{Keep: 1, DryRun: true})
	if err != nil || len(rep.DeletedCuts) != 2 || rep.DeletedPacks != 2 {
		t.Fatalf("dry run %+v, %v", rep, err)
	}
	if !slices.Equal(before, b.Files()) {
		t.Fatal("dry run deleted files")
	}
	// The log must not claim deletions that did not happen.
	if l := logb.String(); strings.Contains(l, "deleted_") || !strings.Contains(l, "would_delete_cuts=2") {
		t.Fatalf("dry run log: %s", l)
	}
}

// TestGCDamagedKeptCut: when a kept cut cannot be read, GC deletes no pack
// (what the cut needs is unknown) and says why.
func TestGCDamagedKeptCut(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "dmg"
	for e := uint64(1); e <= 3; e++ {
		writeCut(t, s, job, e, 1, 3000, 0)
	}
	name := manifestName(job, 3)
	data := readFile(t, b, name)
	data[20] ^= 1
	putFile(t, b, name, data)
	files := len(b.Files())
	rep, err := s.GC(bg, job, GCOptions{Keep: 2})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
		t.Fatalf("GC = %v", err)
	}
	if rep.DeletedPacks != 0 || !slices.Equal(rep.DeletedCuts, []uint64{1}) || len(b.Files()) != files-1 {
		t.Fatalf("report %+v", rep)
	}
}

// TestGCFailures: a GC that fails at any removal leaves every remaining
// cut restorable, and the next GC finishes the job.
func TestGCFailures(t *testing.T) {
	for n := 1; n <= 8; n++ {
		m := mem.New()
		f := fault.New(m)
		s := newStoreOn(t, f, testOptions())
		const job = "gcf"
		data := map[uint64][]rankData{}
		for e := uint64(1); e <= 4; e++ {
			_, data[e] = writeCut(t, s, job, e, 2, 3000, 0)
		}
		calls := 0
		f.FailOn(func(op fault.Op, name string) error {
			if op == fault.OpRemove {
				calls++
				if calls == n {
					return fault.ErrInjected
				}
			}
			return nil
		})
		_, err := s.GC(bg, job, GCOptions{Keep: 1})
		f.FailOn(nil)
		if !errors.Is(err, fault.ErrInjected) && calls >= n {
			t.Fatalf("failure at removal %d: GC = %v", n, err)
		}
		cuts, err := s.List(bg, job)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cuts {
			if _, err := s.Verify(bg, job, c.Epoch, nil); err != nil {
				t.Fatalf("failure at removal %d: remaining cut %d is damaged: %v", n, c.Epoch, err)
			}
			checkRestore(t, s, job, c.Epoch, data[c.Epoch])
		}
		if _, err := s.GC(bg, job, GCOptions{Keep: 1}); err != nil {
			t.Fatal(err)
		}
		var packs int
		m.List(bg, packsDir(job), func(fi backend.FileInfo) error { packs++; return nil })
		if cuts, _ := s.List(bg, job); len(cuts) != 1 || packs != 1 {
			t.Fatalf("after the second GC: %d cuts, %d epoch directories", len(cuts), packs)
		}
	}
}
