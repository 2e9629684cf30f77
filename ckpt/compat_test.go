package ckpt

import (
	"encoding/binary"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// compatData is the state of rank r at epoch e in the committed format-1
// store under testdata/v1store (written by the format-1 writer, chunk size
// 4096, codec s2, job "v1", cuts 1 and 2 of 2 ranks, cut 2 incremental on
// cut 1). It is computed with integer arithmetic and exact conversions so
// that it is the same on every platform. Buffers "i16", "f32" and "bytes"
// are equal in both cuts (cut 2 reuses their chunks); "f64" changes.
func compatData(e uint64, r int) rankData {
	i16 := make([]byte, 3*4096+5)
	for i := 0; i+2 <= len(i16); i += 2 {
		k := i / 2
		binary.LittleEndian.PutUint16(i16[i:], uint16(int16((k%512)-256)*(int16(r)+3)))
	}
	i16[len(i16)-1] = 0x5a
	f32 := make([]byte, 2*4096+7)
	for i := 0; i+4 <= len(f32); i += 4 {
		k := i / 4
		binary.LittleEndian.PutUint32(f32[i:], math.Float32bits(float32(k%777)*0.125-float32(r)))
	}
	copy(f32[len(f32)-3:], "end")
	f64 := make([]byte, 4*4096+3)
	for i := 0; i+8 <= len(f64); i += 8 {
		k := i / 8
		binary.LittleEndian.PutUint64(f64[i:], math.Float64bits(300+float64((k*int(e))%1000)*0.25+float64(r)))
	}
	copy(f64[len(f64)-3:], "f64")
	text := make([]byte, 5000)
	for i := range text {
		text[i] = "checkpoint restart "[i%19]
	}
	return rankData{
		names: []string{"i16", "f32", "f64", "bytes"},
		elems: []int{2, 4, 8, 1},
		data:  [][]byte{i16, f32, f64, text},
		chans: []ChannelState{{From: 1 - r, FirstSeq: 7 * e, Messages: [][]byte{[]byte("halo"), {}, text[:3000]}}},
		meta:  []byte("v1 rank state"),
	}
}

// v1Store is the committed format-1 store that compatData describes. It is
// only ever read: tests open copies of it.
var v1Store = filepath.Join("testdata", "v1store")

// openV1Store opens a copy of the committed format-1 store in a temporary
// directory, so that nothing a store does to its directory (on open, read,
// verify or write) can change the fixture. It returns the store and the
// copy's directory.
func openV1Store(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(v1Store)); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(bg, dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// dirContents maps the path of every file under dir to its contents.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		m[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestV1StoreRead reads the committed store written by the format-1 writer
// (shard indexes of version 1, whose chunk references have no filter byte)
// with this build: every rank of both cuts restores to compatData byte for
// byte (buffers, channel state, meta); Verify reads and checks every
// stored chunk; Inspect reports every chunk as plain shuffle. Reading
// changes no file of the store.
func TestV1StoreRead(t *testing.T) {
	s, dir := openV1Store(t)
	before := dirContents(t, dir)
	if len(before) != 7 {
		t.Fatalf("fixture: %d files, want the config, 2 manifests and 4 packs", len(before))
	}
	for _, e := range []uint64{1, 2} {
		cut := mustCut(t, s, "v1", e)
		if cut.World != 2 || len(cut.Shards) != 2 {
			t.Fatalf("fixture cut %d: world %d, %d shards", e, cut.World, len(cut.Shards))
		}
		for r, ref := range cut.Shards {
			pack := readFile(t, s.Backend(), ref.Pack())
			if v := binary.LittleEndian.Uint16(pack[ref.IndexOffset+8:]); v != 1 {
				t.Fatalf("fixture cut %d rank %d: shard index version %d, want 1", e, r, v)
			}
		}
		checkRestore(t, s, "v1", e, []rankData{compatData(e, 0), compatData(e, 1)})
	}

	// Per rank, cut 1 stores 13 distinct chunks (i16's three full chunks
	// are equal) and cut 2 four new ones (f64's full chunks): 34 in all.
	rep, err := s.Verify(bg, "v1", 0, nil)
	if err != nil || !slices.Equal(rep.Cuts, []uint64{1, 2}) || len(rep.DamagedCuts) != 0 || rep.Chunks != 34 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}

	for _, e := range []uint64{1, 2} {
		d, err := s.Inspect(bg, "v1", e)
		if err != nil {
			t.Fatal(err)
		}
		for _, rd := range d.Ranks {
			if rd.Err != nil {
				t.Fatalf("inspect cut %d rank %d: %v", e, rd.Ref.Rank, rd.Err)
			}
			for _, sd := range append(slices.Clone(rd.Buffers), rd.Channels...) {
				if sd.Chunks == 0 || sd.Filters["shuffle"] != sd.Chunks || len(sd.Filters) != 1 {
					t.Errorf("inspect cut %d rank %d %s: %d chunks, filters %v", e, rd.Ref.Rank, sd.Name, sd.Chunks, sd.Filters)
				}
			}
		}
	}

	if after := dirContents(t, dir); !maps.Equal(before, after) {
		t.Fatal("reading the store changed its files")
	}
}

// TestV1StoreIncremental builds an incremental cut with this writer on a
// copy of the format-1 store: it restores, chunks that take plain shuffle
// are reused from the old packs, and the store verifies.
func TestV1StoreIncremental(t *testing.T) {
	s, _ := openV1Store(t)
	var refs []ShardRef
	var ds []rankData
	for r := range 2 {
		d := compatData(2, r)
		ds = append(ds, d)
		refs = append(refs, writeShard(t, s, ShardSpec{Job: "v1", Epoch: 3, Rank: r, Incarnation: 1, Step: 30, Base: &BaseRef{Epoch: 2}}, d))
	}
	if _, err := s.Commit(bg, CutSpec{Job: "v1", Epoch: 3, Step: 30, World: 2, Incarnation: 1, Shards: refs}); err != nil {
		t.Fatal(err)
	}
	checkRestore(t, s, "v1", 3, ds)
	for _, ref := range refs {
		x, err := s.readShardIndex(bg, ref)
		if err != nil {
			t.Fatal(err)
		}
		// The store's config predates the hash key: blake3, as its cuts.
		if x.alg != hashBLAKE3 {
			t.Fatalf("new shard in a format-1 store hashed with %s", x.alg)
		}
		for _, ls := range x.streams() {
			for i, c := range ls.s.chunks {
				if c.filter == filterShuffle && c.pack == 0 {
					t.Errorf("rank %d %s chunk %d: same bytes, same filter, yet not reused", ref.Rank, ls.label, i)
				}
			}
		}
	}
	if rep, err := s.Verify(bg, "v1", 0, nil); err != nil || len(rep.Cuts) != 3 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
