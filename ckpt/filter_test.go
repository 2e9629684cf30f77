package ckpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cutpoint/cutpoint/internal/datagen"
	"github.com/cutpoint/cutpoint/kernels/shuffle"
)

var (
	heatOnce  sync.Once
	heatBytes []byte
)

// heatSlice returns n bytes of one 2 MiB heat field, from an offset the
// seed picks. The field is generated once: at 2 MiB datagen's grid has its
// full width of 4096 columns (smaller requests get a small square grid,
// whose data is different: plain shuffle compresses it better). The first
// row, a constant border, is left out.
func heatSlice(n int, seed uint64) []byte {
	heatOnce.Do(func() { heatBytes = datagen.New(datagen.Heat, 2<<20, 1) })
	const row = 4096 * 8
	off := row + int(seed*4104)%(len(heatBytes)-row-n+1)
	return append([]byte(nil), heatBytes[off:off+n]...)
}

// filterKinds are the data the filter tests write: smooth (delta wins),
// random (shuffle wins) and a smooth field with a random second half, so
// that the sample sees both.
var filterKinds = map[string]func(n int, seed uint64) []byte{
	"heat":    heatSlice,
	"uniform": func(n int, seed uint64) []byte { return datagen.New(datagen.Uniform, n, seed) },
	"mixed": func(n int, seed uint64) []byte {
		b := heatSlice(n, seed)
		copy(b[n/2:], datagen.New(datagen.Uniform, n-n/2, seed))
		return b
	},
}

// TestFilterRoundTrip writes every element size and a range of lengths
// (chunk and element boundaries, tails) under each filter policy, and
// checks the restore, the filters recorded and Verify.
func TestFilterRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 127, 129, 255, 4095, 4096, 4097, 8191, 8192, 3*4096 + 5, 70001}
	for _, codec := range []string{"s2", "zstd-1"} {
		for _, policy := range []filterPolicy{filterAuto, filterOnlyShuffle, filterOnlyDelta} {
			t.Run(fmt.Sprintf("%s/policy=%d", codec, policy), func(t *testing.T) {
				opts := testOptions()
				opts.Codec = codec
				s, _ := newMemStore(t, opts)
				s.filters = policy
				w, err := s.NewShard(bg, ShardSpec{Job: "f", Epoch: 1, Incarnation: 1})
				if err != nil {
					t.Fatal(err)
				}
				want := map[string][]byte{}
				elems := map[string]int{}
				for _, n := range sizes {
					for _, es := range []int{1, 2, 4, 8} {
						for kind, gen := range filterKinds {
							name := fmt.Sprintf("%s-%d-s%d", kind, n, es)
							want[name], elems[name] = gen(n, uint64(n*8+es)), es
							if err := w.AddBuffer(bg, name, BytesSource(want[name], es)); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				ref, err := w.Close(bg)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Commit(bg, CutSpec{Job: "f", Epoch: 1, World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
					t.Fatal(err)
				}
				checkBuffers(t, s, ref, want)
				x, err := s.readShardIndex(bg, ref)
				if err != nil {
					t.Fatal(err)
				}
				delta := 0
				for _, b := range x.buffers {
					for i, c := range b.chunks {
						switch {
						case c.filter == filterDelta:
							delta++
							if elems[b.name] == 1 || policy == filterOnlyShuffle {
								t.Fatalf("%s chunk %d: delta+shuffle", b.name, i)
							}
						case policy == filterOnlyDelta && elems[b.name] > 1:
							t.Fatalf("%s chunk %d: %s under the delta-only policy", b.name, i, c.filter)
						}
					}
				}
				if policy != filterOnlyShuffle && delta == 0 {
					t.Fatal("no chunk took delta+shuffle")
				}
				if delta != w.Stats().Delta {
					t.Fatalf("%d delta chunks in the index, stats say %d", delta, w.Stats().Delta)
				}
				rep, err := s.Verify(bg, "f", 0, nil)
				if err != nil || rep.Chunks == 0 {
					t.Fatalf("verify: %+v, %v", rep, err)
				}
			})
		}
	}
}

// checkBuffers restores every buffer of a shard and compares.
func checkBuffers(t *testing.T, s *Store, ref ShardRef, want map[string][]byte) {
	t.Helper()
	r, err := s.OpenShardRef(bg, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Buffers()) != len(want) {
		t.Fatalf("%d buffers, want %d", len(r.Buffers()), len(want))
	}
	for _, bi := range r.Buffers() {
		got := make([]byte, bi.Len)
		if err := r.ReadBuffer(bg, bi.Name, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[bi.Name]) {
			t.Fatalf("%s: restored bytes differ", bi.Name)
		}
	}
}

// TestChooseFilter: the selection on the benchmark's data kinds, with each
// codec, at the default and the smallest chunk size; and the cases that
// never sample.
func TestChooseFilter(t *testing.T) {
	for _, chunk := range []int{1 << 20, MinChunkSize, 100000} {
		for _, codec := range []string{"s2", "s2-better", "zstd-1"} {
			opts := testOptions()
			opts.Codec = codec
			opts.ChunkSize = chunk / 64 * 64
			s, _ := newMemStore(t, opts)
			for _, c := range []struct {
				kind datagen.Kind
				want filterID
			}{{datagen.Heat, filterDelta}, {datagen.Uniform, filterShuffle}, {datagen.Weights, filterShuffle}} {
				data := datagen.New(c.kind, chunk, 3)
				if c.kind == datagen.Heat {
					data = heatSlice(chunk, 3)
				}
				got := s.chooseFilter(data, c.kind.ElemSize())
				if got != c.want {
					t.Errorf("%s, %s, %d-byte chunk: %s, want %s", c.kind, codec, chunk, got, c.want)
				}
				if again := s.chooseFilter(data, c.kind.ElemSize()); again != got {
					t.Errorf("%s: %s then %s for the same bytes", c.kind, got, again)
				}
			}
			if f := s.chooseFilter(heatSlice(chunk, 3), 1); f != filterShuffle {
				t.Errorf("element size 1: %s", f)
			}
		}
	}
	s, _ := newMemStore(t, Options{Codec: "none", Create: true, Logger: quietLogger()})
	if f := s.chooseFilter(heatSlice(1<<20, 3), 8); f != filterShuffle {
		t.Errorf("codec none: %s", f)
	}
	// Tiny chunks (tails) are sampled whole.
	s, _ = newMemStore(t, testOptions())
	for n := range 70 {
		s.chooseFilter(heatSlice(n, 3), 8)
	}
}

// TestDeltaIncremental: an incremental cut of unchanged data filtered
// with delta+shuffle references every chunk of its base, with the base's
// filter; changed chunks are written.
func TestDeltaIncremental(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	data := heatSlice(20*testChunk+12, 9)
	write := func(e uint64, b []byte) (ShardRef, WriterStats) {
		spec := ShardSpec{Job: "inc", Epoch: e, Incarnation: 1}
		if e > 1 {
			spec.Base = &BaseRef{Epoch: e - 1}
		}
		w, err := s.NewShard(bg, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddBuffer(bg, "u", BytesSource(b, 8)); err != nil {
			t.Fatal(err)
		}
		ref, err := w.Close(bg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(bg, CutSpec{Job: "inc", Epoch: e, World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
			t.Fatal(err)
		}
		return ref, w.Stats()
	}
	r1, st1 := write(1, data)
	if st1.Delta < 15 {
		t.Fatalf("heat field: only %d of %d chunks took delta+shuffle", st1.Delta, r1.Chunks)
	}
	r2, st2 := write(2, data)
	if r2.NewChunks != 0 || st2.Reused != r2.Chunks || st2.Delta != st1.Delta {
		t.Fatalf("unchanged data: %d new chunks, %d reused of %d, %d delta (base %d)", r2.NewChunks, st2.Reused, r2.Chunks, st2.Delta, st1.Delta)
	}
	changed := append([]byte(nil), data...)
	for _, k := range []int{3, 11} {
		changed[k*testChunk+100] ^= 0x40
	}
	r3, _ := write(3, changed)
	if r3.NewChunks != 2 {
		t.Fatalf("two changed chunks: %d new", r3.NewChunks)
	}
	checkBuffers(t, s, r2, map[string][]byte{"u": data})
	checkBuffers(t, s, r3, map[string][]byte{"u": changed})
	if _, err := s.Verify(bg, "inc", 0, nil); err != nil {
		t.Fatal(err)
	}
	d, err := s.Inspect(bg, "inc", 3)
	if err != nil {
		t.Fatal(err)
	}
	if f := d.Ranks[0].Buffers[0].Filters; f["delta+shuffle"] != st1.Delta || f["delta+shuffle"]+f["shuffle"] != r3.Chunks {
		t.Fatalf("inspect filters %v", f)
	}
}

// prefixSums returns y whose elements are the running sums (wrapping) of
// x's, restarting at each chunk as the filter does, so that the delta of y
// is x: DeltaShuffle(y) == Shuffle(x) chunk by chunk.
func prefixSums(x []byte, chunk int) []byte {
	y := append([]byte(nil), x...)
	var sum uint64
	for i := 0; i+8 <= len(y); i += 8 {
		if i%chunk == 0 {
			sum = 0
		}
		sum += binary.LittleEndian.Uint64(y[i:])
		binary.LittleEndian.PutUint64(y[i:], sum)
	}
	return y
}

// TestFilterIsPartOfTheReference: two different buffers whose filtered
// bytes are equal under different filters share the stored chunks (same
// content address), and each restores its own data with its own filter:
// across cuts (base lookup) and within one pack (a chunk being written).
func TestFilterIsPartOfTheReference(t *testing.T) {
	x := datagen.New(datagen.Uniform, 5*testChunk+8, 4)
	y := prefixSums(x, testChunk)
	fx, fy := make([]byte, testChunk), make([]byte, testChunk)
	shuffle.Shuffle(fx, x[testChunk:2*testChunk], 8)
	shuffle.DeltaShuffle(fy, y[testChunk:2*testChunk], 8)
	if !bytes.Equal(fx, fy) || bytes.Equal(x, y) {
		t.Fatal("test data: the filtered bytes differ")
	}

	s, _ := newMemStore(t, testOptions())
	s.filters = filterOnlyShuffle
	w, _ := s.NewShard(bg, ShardSpec{Job: "id", Epoch: 1, Incarnation: 1})
	w.AddBuffer(bg, "x", BytesSource(x, 8))
	r1, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(bg, CutSpec{Job: "id", Epoch: 1, World: 1, Incarnation: 1, Shards: []ShardRef{r1}}); err != nil {
		t.Fatal(err)
	}
	s.filters = filterOnlyDelta
	w, _ = s.NewShard(bg, ShardSpec{Job: "id", Epoch: 2, Incarnation: 1, Base: &BaseRef{Epoch: 1}})
	w.AddBuffer(bg, "y", BytesSource(y, 8))
	r2, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	if r2.NewChunks != 0 {
		t.Fatalf("base lookup: %d new chunks, want every chunk shared", r2.NewChunks)
	}
	checkBuffers(t, s, r1, map[string][]byte{"x": x})
	checkBuffers(t, s, r2, map[string][]byte{"y": y})

	// In one pack: the pre-shuffled source gets plain shuffle, y delta.
	w, _ = s.NewShard(bg, ShardSpec{Job: "id", Epoch: 3, Incarnation: 1})
	w.AddBuffer(bg, "x", &shuffledSource{data: x, elem: 8})
	w.AddBuffer(bg, "y", BytesSource(y, 8))
	r3, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	if r3.NewChunks != 6 || r3.Chunks != 12 {
		t.Fatalf("one pack: %d chunks, %d new", r3.Chunks, r3.NewChunks)
	}
	checkBuffers(t, s, r3, map[string][]byte{"x": x, "y": y})
}

// TestShardIndexVersions: version 2 has no hash byte and decodes as
// BLAKE3; version 1 has no filter byte either and decodes with plain
// shuffle; each re-encodes at version 3. Versions 0 and 4, an unknown hash
// and an XXH3 hash with non-zero padding are refused with a message naming
// the problem.
func TestShardIndexVersions(t *testing.T) {
	var nonce [8]byte
	var h [hashLen]byte
	h[0], h[15] = 0xab, 0xcd
	x := &shardIndex{job: "v", epoch: 1, rank: 0, incarnation: 1, alg: hashXXH3, packs: []string{packRel(1, 0, 1, nonce)},
		buffers: []bufferEntry{{name: "u", stream: stream{length: 10, elemSize: 8, chunkSize: testChunk,
			chunks: []chunkRef{{offset: 16, stored: 10, filter: filterDelta, alg: hashXXH3, hash: h}}}}}}
	b := encodeShardIndex(x)
	if y, err := decodeShardIndex(b); err != nil || y.alg != hashXXH3 || y.buffers[0].chunks[0] != x.buffers[0].chunks[0] {
		t.Fatalf("version 3 with delta and xxh3: %+v, %v", y, err)
	}
	const algAt = len(magicShardIndex) + 2
	if b[algAt] != byte(hashXXH3) {
		t.Fatal("layout changed: hash byte not found")
	}

	// Version 2: the same index without the hash byte.
	v2 := append(append([]byte(nil), b[:algAt]...), b[algAt+1:]...)
	binary.LittleEndian.PutUint16(v2[8:], 2)
	y, err := decodeShardIndex(v2)
	if err != nil || y.alg != hashBLAKE3 || y.buffers[0].chunks[0].alg != hashBLAKE3 || y.buffers[0].chunks[0].filter != filterDelta {
		t.Fatalf("version 2: %+v, %v", y, err)
	}
	want := append([]byte(nil), b...)
	want[algAt] = byte(hashBLAKE3)
	if !bytes.Equal(encodeShardIndex(y), want) {
		t.Fatal("a version-2 index does not re-encode as version 3 with blake3")
	}

	// Version 1: no filter byte either (after the codec byte of the only
	// chunk ref, the last 41 bytes before the channel count are sum and
	// hash).
	v1 := append([]byte(nil), v2...)
	binary.LittleEndian.PutUint16(v1[8:], 1)
	filterAt := len(v1) - 4 - hashLen - 8 - 1
	if v1[filterAt] != byte(filterDelta) {
		t.Fatal("layout changed: filter byte not found")
	}
	v1 = append(v1[:filterAt], v1[filterAt+1:]...)
	y, err = decodeShardIndex(v1)
	if err != nil || y.buffers[0].chunks[0].filter != filterShuffle || y.alg != hashBLAKE3 {
		t.Fatalf("version 1: %+v, %v", y, err)
	}
	want[filterAt+1] = byte(filterShuffle)
	if !bytes.Equal(encodeShardIndex(y), want) {
		t.Fatal("a version-1 index does not re-encode as version 3 with plain shuffle")
	}

	for _, v := range []uint16{0, 4} {
		bad := append([]byte(nil), b...)
		binary.LittleEndian.PutUint16(bad[8:], v)
		if _, err := decodeShardIndex(bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("format version %d", v)) {
			t.Errorf("version %d: %v", v, err)
		}
	}
	bad := append([]byte(nil), b...)
	bad[algAt] = 2
	if _, err := decodeShardIndex(bad); err == nil || !strings.Contains(err.Error(), "unknown hash 2") {
		t.Errorf("hash 2: %v", err)
	}
	bad = append([]byte(nil), b...)
	bad[len(bad)-4-1]++ // the last byte of the only chunk's hash field
	if _, err := decodeShardIndex(bad); err == nil || !strings.Contains(err.Error(), "non-zero padding") {
		t.Errorf("xxh3 padding: %v", err)
	}
}

// TestDamagedDeltaChunk: a flipped byte in a delta+shuffle chunk is
// reported by restore and by Verify, naming the buffer and chunk.
func TestDamagedDeltaChunk(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	s.filters = filterOnlyDelta
	data := datagen.New(datagen.Heat, 6*testChunk, 2)
	w, _ := s.NewShard(bg, ShardSpec{Job: "dmg", Epoch: 1, Incarnation: 1})
	w.AddBuffer(bg, "u", BytesSource(data, 8))
	ref, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(bg, CutSpec{Job: "dmg", Epoch: 1, World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
		t.Fatal(err)
	}
	x, _ := s.readShardIndex(bg, ref)
	c := x.buffers[0].chunks[4]
	pack := readFile(t, b, ref.Pack())
	pack[c.offset+int64(c.stored)/2] ^= 0x10
	putFile(t, b, ref.Pack(), pack)
	r, err := s.OpenShardRef(bg, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ce *CorruptError
	if err := r.ReadBuffer(bg, "u", make([]byte, len(data))); !errors.As(err, &ce) || ce.Buffer != "u" || ce.Chunk != 4 {
		t.Fatalf("restore of a damaged delta chunk: %v", err)
	}
	ce = nil
	if err := r.ReadBufferTo(bg, "u", sliceWriterAt(make([]byte, len(data)))); !errors.As(err, &ce) || ce.Buffer != "u" || ce.Chunk != 4 {
		t.Fatalf("restore through a writer of a damaged delta chunk: %v", err)
	}
	if _, err := s.Verify(bg, "dmg", 1, nil); !errors.As(err, &ce) || ce.Chunk != 4 {
		t.Fatalf("verify: %v", err)
	}
}
