package ckpt

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

func TestParseLevels(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Levels
		survive bool
	}{
		{"local", Levels{Local: true}, false},
		{"local,partner", Levels{Local: true, Partner: true}, true},
		{"local,shared", Levels{Local: true, Shared: true}, true},
		{"shared", Levels{Shared: true}, true},
		{"local,partner,shared", Levels{Local: true, Partner: true, Shared: true}, true},
		{"local,rs", Levels{Local: true, Erasure: true}, true},
	} {
		got, err := ParseLevels(c.in)
		if err != nil || got != c.want || got.String() != c.in || got.SurvivesHostLoss() != c.survive {
			t.Errorf("ParseLevels(%q) = %+v (%q, survives %v), %v", c.in, got, got.String(), got.SurvivesHostLoss(), err)
		}
	}
	for _, bad := range []string{"", "local,,shared", "local,local", "ram", "shared,"} {
		if _, err := ParseLevels(bad); err == nil {
			t.Errorf("ParseLevels(%q) accepted", bad)
		}
	}
	if l, err := CutLevels(map[string]string{"goarch": "amd64"}); err != nil || l != (Levels{Shared: true}) {
		t.Errorf("a cut without the entry: %+v %v", l, err)
	}
	if _, err := CutLevels(map[string]string{MetaLevels: "disk"}); err == nil {
		t.Error("a damaged entry accepted")
	}
}

// TestNodeLocalLevels walks a two-rank job over two node-local stores
// (each rank's own, with the partner copy on the other) and a shared one:
// a node-local cut commits without shards in the shared store, an
// incremental shard builds on a node-local base by its ref, a flush
// copies the referenced older packs, a damaged copy is detected and the
// other level restores, and GC collects every level.
func TestNodeLocalLevels(t *testing.T) {
	opts := testOptions()
	shared, sb := newMemStore(t, opts)
	local := []*Store{}
	lb := []*mem.Backend{}
	for range 2 {
		s, b := newMemStore(t, opts)
		local = append(local, s)
		lb = append(lb, b)
	}
	const job = "lv"
	nodeLocal := map[string]string{MetaLevels: "local,partner"}
	allLevels := map[string]string{MetaLevels: "local,partner,shared"}
	write := func(epoch uint64, base []ShardRef, flush bool, meta map[string]string) ([]ShardRef, []rankData) {
		var refs []ShardRef
		var ds []rankData
		for r := range 2 {
			d := makeRank(epoch, r, 30000)
			spec := ShardSpec{Job: job, Epoch: epoch, Rank: r, Incarnation: 1, Step: int64(epoch)}
			if base != nil {
				spec.Base = &BaseRef{Epoch: base[r].Epoch, Ref: &base[r]}
			}
			ref := writeShard(t, local[r], spec, d)
			if _, err := local[r].CopyShard(bg, local[1-r], ref); err != nil {
				t.Fatalf("partner copy: %v", err)
			}
			if flush {
				if _, err := local[r].CopyShard(bg, shared, ref); err != nil {
					t.Fatalf("flush: %v", err)
				}
			}
			refs, ds = append(refs, ref), append(ds, d)
		}
		if _, err := shared.Commit(bg, CutSpec{Job: job, Epoch: epoch, Step: int64(epoch), World: 2, Incarnation: 1, Shards: refs, Meta: meta}); err != nil {
			t.Fatalf("commit %d: %v", epoch, err)
		}
		return refs, ds
	}
	r1, _ := write(1, nil, false, nodeLocal)
	if shared.ShardsPresent(bg, r1) {
		t.Fatal("node-local shards found in the shared store")
	}
	// A cut recorded as shared is checked as before.
	if _, err := shared.Commit(bg, CutSpec{Job: job, Epoch: 2, Step: 2, World: 2, Incarnation: 1, Shards: retag(r1, 2), Meta: allLevels}); err == nil {
		t.Fatal("a shared cut without its shards in the shared store committed")
	}
	r2, d2 := write(2, r1, true, allLevels)
	if !shared.ShardsPresent(bg, r2) {
		t.Fatal("flushed shards missing from the shared store")
	}
	// The flush carried epoch 1's packs, which epoch 2 reuses chunks from.
	checkRestore(t, shared, job, 2, d2)
	cuts, err := shared.List(bg, job)
	if err != nil || len(cuts) != 2 || cuts[0].Levels().String() != "local,partner" || cuts[1].Levels().String() != "local,partner,shared" {
		t.Fatalf("List: %+v %v", cuts, err)
	}
	rep, err := shared.Verify(bg, job, 0, nil)
	if err != nil || !slices.Equal(rep.NodeLocal, []uint64{1}) || rep.Chunks == 0 {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
	if _, err := local[1].VerifyShard(bg, r2[0]); err != nil {
		t.Fatalf("partner copy of rank 0: %v", err)
	}

	// Damage rank 0's own copy of epoch 2: detected, the partner copy reads.
	pack := r2[0].Pack()
	data := readFile(t, lb[0], pack)
	data[packHeaderLen+10] ^= 0x40
	putFile(t, lb[0], pack, data)
	if _, err := local[0].VerifyShard(bg, r2[0]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged local copy: %v", err)
	}
	sr, err := local[1].OpenShardRef(bg, r2[0])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(d2[0].data[0]))
	if err := sr.ReadBuffer(bg, "u", got); err != nil || !bytes.Equal(got, d2[0].data[0]) {
		t.Fatalf("partner copy: %v", err)
	}
	sr.Close()

	// Epoch 3 on node-local levels; the shared store keeps one cut.
	r3, _ := write(3, r2, false, nodeLocal)
	if _, err := shared.GC(bg, job, GCOptions{Keep: 2}); err != nil {
		t.Fatalf("shared GC with a node-local cut kept: %v", err)
	}
	if _, err := shared.LoadCut(bg, job, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cut 1 after GC: %v", err)
	}
	checkRestore(t, shared, job, 2, d2) // epoch 2's packs in the shared store kept
	kept := append(slices.Clone(r2), r3...)
	for i, s := range local {
		rep, err := s.NodeLocalGC(bg, job, kept, 3, false)
		if err != nil {
			t.Fatalf("node-local GC %d: %v", i, err)
		}
		// Epoch 1's packs were referenced by epoch 2 (incremental), so they
		// stay unless epoch 2 wrote every chunk anew.
		if !s.ShardsPresent(bg, r3) {
			t.Fatalf("store %d lost a kept shard (%+v)", i, rep)
		}
	}
	// Keep only epoch 3 (after its full rewrite nothing older would be
	// needed): everything epoch 3 does not reference goes.
	full, _ := write(4, nil, false, nodeLocal)
	for i, s := range local {
		rep, err := s.NodeLocalGC(bg, job, full, 4, false)
		if err != nil || rep.DeletedPacks == 0 {
			t.Fatalf("node-local GC %d: %+v %v", i, rep, err)
		}
		if !s.ShardsPresent(bg, full) || s.HasShard(bg, r3[0]) == nil {
			t.Fatalf("store %d after GC: kept %v, dropped %v", i, s.ShardsPresent(bg, full), s.HasShard(bg, r3[0]))
		}
	}
	_ = sb
}

// retag makes refs claim another epoch (to test that Commit checks them).
func retag(refs []ShardRef, epoch uint64) []ShardRef {
	out := slices.Clone(refs)
	for i := range out {
		out[i].Epoch = epoch
	}
	return out
}

// TestGCFlushInFlight: the shared store's GC, which the coordinator runs
// after every commit, leaves the temporary pack of a kept cut not yet in
// the shared store alone (a background flush writing it: removing it cut
// every flush that outlasted a cut interval short), removes it at once
// once the cut is recorded shared (then it is a killed flush's leftover),
// and a stopped-job GC removes it whatever the cut.
func TestGCFlushInFlight(t *testing.T) {
	opts := testOptions()
	shared, sb := newMemStore(t, opts)
	local, _ := newMemStore(t, opts)
	const job = "fl"
	var refs []ShardRef
	for e := uint64(1); e <= 2; e++ {
		ref := writeShard(t, local, ShardSpec{Job: job, Epoch: e, Incarnation: 1, Step: int64(e)}, makeRank(e, 0, 30000))
		if _, err := shared.Commit(bg, CutSpec{Job: job, Epoch: e, Step: int64(e), World: 1, Incarnation: 1, Shards: []ShardRef{ref},
			Meta: map[string]string{MetaLevels: "local,partner"}}); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	// A flush of epoch 1 under way: its pack half written.
	w, err := sb.Create(bg, refs[0].Pack())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half a pack")); err != nil {
		t.Fatal(err)
	}
	rep, err := shared.GC(bg, job, GCOptions{Keep: 2})
	if err != nil || rep.DeletedTemps != 0 {
		t.Fatalf("GC during a flush: %+v, %v: want the flush's temporary file kept", rep, err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	// The flush done (epoch 1 recorded shared), a killed one's leftover.
	if _, err := local.CopyShard(bg, shared, refs[0]); err != nil {
		t.Fatal(err)
	}
	if ok, err := shared.MarkShared(bg, job, 1); !ok || err != nil {
		t.Fatalf("MarkShared: %v %v", ok, err)
	}
	left := func(e uint64) backend.Writer {
		w, err := sb.Create(bg, refs[e-1].Pack())
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("killed"))
		return w
	}
	left(1)
	rep, err = shared.GC(bg, job, GCOptions{Keep: 2})
	if err != nil || rep.DeletedTemps != 1 {
		t.Fatalf("GC after the flush was recorded: %+v, %v: want the leftover removed", rep, err)
	}
	// Epoch 2 never flushed: a stopped-job GC removes its leftover.
	left(2)
	l, err := shared.AcquireLease(bg, job, leaseOpts("h", 1, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = shared.GC(bg, job, GCOptions{Keep: 2, Stopped: true, Lease: l})
	if err != nil || rep.DeletedTemps != 1 {
		t.Fatalf("stopped-job GC: %+v, %v: want the leftover removed", rep, err)
	}
	for e := uint64(1); e <= 2; e++ {
		err := sb.List(bg, packsDir(job)+"/"+epochString(e), func(fi backend.FileInfo) error {
			if fi.Temp {
				t.Errorf("left: %s", fi.Name)
			}
			return nil
		})
		if err != nil && !errors.Is(err, backend.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if _, err := shared.Verify(bg, job, 0, nil); err != nil {
		t.Fatal(err)
	}
}
