package ckpt

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/fault"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

// TestErasureRebuild: a two-cut incremental shard coded 2+1 over three
// stores is rebuilt from any two fragments of each pack, a damaged
// fragment is not used, and with two fragments lost the rebuild fails
// clearly. GC of a node-local store removes fragments with their packs.
func TestErasureRebuild(t *testing.T) {
	opts := testOptions()
	src, _ := newMemStore(t, opts)
	var frag []*Store
	var fb []*mem.Backend
	for range 3 {
		s, b := newMemStore(t, opts)
		frag, fb = append(frag, s), append(fb, b)
	}
	const job = "rs"
	d1 := makeRank(1, 0, 50000)
	r1 := writeShard(t, src, ShardSpec{Job: job, Epoch: 1, Rank: 0, Incarnation: 1, Step: 1}, d1)
	if _, err := src.EncodeShard(bg, r1, frag, 2, 1); err != nil {
		t.Fatal(err)
	}
	d2 := makeRank(1, 0, 50000)
	d2.data[2] = append([]byte("changed"), d2.data[2][7:]...)
	r2 := writeShard(t, src, ShardSpec{Job: job, Epoch: 2, Rank: 0, Incarnation: 1, Step: 2, Base: &BaseRef{Epoch: 1, Ref: &r1}}, d2)
	n, err := src.EncodeShard(bg, r2, frag, 2, 1)
	if err != nil || n == 0 {
		t.Fatalf("encode: %d %v", n, err)
	}
	for lost := range 3 {
		dst, _ := newMemStore(t, opts)
		var srcs []*Store
		for i, s := range frag {
			if i != lost {
				srcs = append(srcs, s)
			}
		}
		if _, err := dst.RebuildShard(bg, r2, srcs); err != nil {
			t.Fatalf("fragment %d lost: %v", lost, err)
		}
		if _, err := dst.VerifyShard(bg, r2); err != nil {
			t.Fatalf("fragment %d lost: rebuilt shard: %v", lost, err)
		}
		sr, err := dst.OpenShardRef(bg, r2)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(d2.data[2]))
		if err := sr.ReadBuffer(bg, "misc", got); err != nil || string(got) != string(d2.data[2]) {
			t.Fatalf("fragment %d lost: restored bytes differ (%v)", lost, err)
		}
		sr.Close()
	}
	// Damage fragment 0 of the own pack, lose fragment 1: one intact left.
	name := FragmentName(r2.Pack(), 0, 2, 1)
	data := readFile(t, fb[0], name)
	data[len(data)-5] ^= 1
	putFile(t, fb[0], name, data)
	dst, _ := newMemStore(t, opts)
	if _, err := dst.RebuildShard(bg, r2, []*Store{frag[0], frag[2]}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "1 intact") {
		t.Fatalf("a damaged and a lost fragment: %v", err)
	}
	// GC keeps the fragments of the packs a kept shard needs (the pack
	// list tells, the store holds no pack), and only those.
	rep, err := frag[2].NodeLocalGC(bg, job, []ShardRef{r2}, 2, false)
	if err != nil || rep.DeletedPacks != 0 {
		t.Fatalf("gc with epoch 2 kept: %+v %v", rep, err)
	}
	if _, err := dst.RebuildShard(bg, r2, []*Store{frag[1], frag[2]}); err != nil {
		t.Fatalf("rebuild after gc: %v", err)
	}
	rep, err = frag[2].NodeLocalGC(bg, job, nil, 2, false)
	if err != nil || rep.DeletedPacks == 0 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	for _, n := range []string{FragmentName(r2.Pack(), 2, 2, 1), FragmentName(r1.Pack(), 2, 2, 1), r2.Pack() + packListSuffix} {
		if _, err := frag[2].b.Stat(bg, n); err == nil {
			t.Fatalf("%s of an unreferenced pack kept", n)
		}
	}
}

// TestErasureReplace: a store that fails a fragment's write is named by
// the error (*FragmentError, its index); encoding again with another
// store in its place writes only what that store lacks (fragment 0 of
// both packs and the pack list), not the fragments the others hold; the
// shard is rebuilt with the replaced fragment, after the loss of another
// fragment's store.
func TestErasureReplace(t *testing.T) {
	opts := testOptions()
	src, _ := newMemStore(t, opts)
	var frag []*Store
	for range 3 {
		s, _ := newMemStore(t, opts)
		frag = append(frag, s)
	}
	const job = "rs"
	r1 := writeShard(t, src, ShardSpec{Job: job, Epoch: 1, Rank: 0, Incarnation: 1, Step: 1}, makeRank(1, 0, 50000))
	if _, err := src.EncodeShard(bg, r1, frag, 2, 1); err != nil {
		t.Fatal(err)
	}
	d2 := makeRank(1, 0, 50000)
	d2.data[2] = append([]byte("changed"), d2.data[2][7:]...)
	r2 := writeShard(t, src, ShardSpec{Job: job, Epoch: 2, Rank: 0, Incarnation: 1, Step: 2, Base: &BaseRef{Epoch: 1, Ref: &r1}}, d2)

	// Store 0 is gone (every write fails), as a host whose ranks left.
	gone := fault.New(mem.New())
	goneStore := newStoreOn(t, gone, opts)
	gone.FailOn(func(op fault.Op, name string) error {
		if op == fault.OpCreate || op == fault.OpReplace {
			return fault.ErrInjected
		}
		return nil
	})
	dsts := []*Store{goneStore, frag[1], frag[2]}
	_, err := src.EncodeShard(bg, r2, dsts, 2, 1)
	var fe *FragmentError
	if !errors.As(err, &fe) || fe.Index != 0 || !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("encode with store 0 failing: %v, want a FragmentError of index 0", err)
	}
	// Another store takes fragment 0: only it is written.
	repl, rb := newMemStore(t, opts)
	dsts[0] = repl
	before := [2]int{fileCount(t, frag[1]), fileCount(t, frag[2])}
	n, err := src.EncodeShard(bg, r2, dsts, 2, 1)
	if err != nil || n == 0 {
		t.Fatalf("encode with store 0 replaced: %d %v", n, err)
	}
	for _, name := range []string{FragmentName(r2.Pack(), 0, 2, 1), FragmentName(r1.Pack(), 0, 2, 1), r2.Pack() + packListSuffix} {
		if _, err := rb.Stat(bg, name); err != nil {
			t.Fatalf("the replacing store lacks %s: %v", name, err)
		}
	}
	// Written: fragment 0 of the older pack, and all three of the own
	// pack (the failed try wrote none); not the older pack's fragments 1
	// and 2, which the other stores held.
	var want int64
	for i, st := range dsts {
		for _, p := range []string{r2.Pack(), r1.Pack()} {
			if p == r1.Pack() && i != 0 {
				continue
			}
			fi, err := st.b.Stat(bg, FragmentName(p, i, 2, 1))
			if err != nil {
				t.Fatal(err)
			}
			want += fi.Size - fragmentHdrLen
		}
	}
	if n != want {
		t.Fatalf("encode after the replacement wrote %d bytes, want %d (fragment 0 of the older pack, the own pack's three)", n, want)
	}
	if after := [2]int{fileCount(t, frag[1]), fileCount(t, frag[2])}; after != [2]int{before[0] + 2, before[1] + 2} {
		t.Fatalf("the other stores held %v files, %v after: want 2 more each (the own pack's fragment and list)", before, after)
	}
	// Where the fragments are (for inspect): by index, per store; a file
	// named as a fragment whose header does not match is not one.
	for i, st := range []*Store{repl, frag[1], frag[2], goneStore} {
		want := []int{i}
		if i == 3 {
			want = nil
		}
		if got, err := st.FragmentsHeld(bg, r2); err != nil || !slices.Equal(got, want) {
			t.Fatalf("store %d holds fragments %v (%v), want %v", i, got, err, want)
		}
	}
	putFile(t, rb, FragmentName(r2.Pack(), 2, 2, 1), []byte("CPTRSF\r\n short"))
	putFile(t, rb, FragmentName(r2.Pack(), 1, 2, 1), readFile(t, rb, FragmentName(r2.Pack(), 0, 2, 1)))
	if got, err := repl.FragmentsHeld(bg, r2); err != nil || !slices.Equal(got, []int{0}) {
		t.Fatalf("with a short fragment and fragment 0 under fragment 1's name: %v (%v), want [0]", got, err)
	}
	// Store 1 is lost as well: fragments 0 (the replaced one) and 2
	// rebuild the shard.
	dst, _ := newMemStore(t, opts)
	if _, err := dst.RebuildShard(bg, r2, []*Store{goneStore, repl, frag[2]}); err != nil {
		t.Fatalf("rebuild from the replaced fragment and fragment 2: %v", err)
	}
	if _, err := dst.VerifyShard(bg, r2); err != nil {
		t.Fatalf("rebuilt shard: %v", err)
	}
}

// fileCount counts the files in s.
func fileCount(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	var walk func(dir string)
	walk = func(dir string) {
		_ = s.b.List(bg, dir, func(fi backend.FileInfo) error {
			if fi.IsDir {
				walk(fi.Name)
			} else {
				n++
			}
			return nil
		})
	}
	walk("")
	return n
}

func TestFragmentName(t *testing.T) {
	r := ShardRef{Job: "j", Epoch: 3, Rank: 1, Incarnation: 2}
	n := FragmentName(r.Pack(), 4, 3, 2)
	if p, ok := fragmentOf(n); !ok || p != r.Pack() {
		t.Fatalf("fragmentOf(%s) = %s %v", n, p, ok)
	}
	for _, bad := range []string{r.Pack(), r.Pack() + ".rs1-2", r.Pack() + ".rsx-1-1", "x.rs1-1-1"} {
		if _, ok := fragmentOf(bad); ok {
			t.Errorf("fragmentOf(%s) accepted", bad)
		}
	}
}

func FuzzDecodeFragmentHeader(f *testing.F) {
	h := fragmentHeader{k: 2, m: 1, index: 1, block: 4096, packSize: 10000}
	f.Add(h.encode(), int64(fragmentHdrLen+2*4096))
	f.Add([]byte(fragmentMagic), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		h, err := decodeFragmentHeader(b, size)
		if err != nil {
			return
		}
		if h.k < 1 || h.m < 1 || h.index >= h.k+h.m || h.block < 64 || h.packSize < 0 || size != int64(fragmentHdrLen)+h.stripes()*int64(h.block) {
			t.Fatalf("accepted %+v for a file of %d bytes", h, size)
		}
	})
}

func FuzzParsePackList(f *testing.F) {
	own := packRel(3, 1, 2, [8]byte{1})
	f.Add([]byte(own + "\n" + packRel(1, 1, 1, [8]byte{2}) + "\n"))
	f.Add([]byte(own))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := parsePackList(b, own)
		if err != nil {
			return
		}
		if lines[0] != own || strings.Join(lines, "\n")+"\n" != string(b) {
			t.Fatalf("accepted %q as %q", b, lines)
		}
	})
}
