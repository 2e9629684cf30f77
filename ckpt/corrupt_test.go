package ckpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/fault"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

func readFile(t testing.TB, b backend.Backend, name string) []byte {
	t.Helper()
	data, err := b.ReadFile(bg, name, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func putFile(t testing.TB, b backend.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Replace(bg, name, data); err != nil {
		t.Fatal(err)
	}
}

// expectDamage checks that Verify of the cut reports damage located as want
// (fields left zero/-1 in want are not checked) and that the previous cut
// still verifies and restores bit-exactly.
func expectDamage(t *testing.T, s *Store, job string, epoch uint64, want CorruptError, prevEpoch uint64, prev []rankData) {
	t.Helper()
	rep, err := s.Verify(bg, job, epoch, nil)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify = %v, want damage", err)
	}
	if len(rep.DamagedCuts) != 1 || rep.DamagedCuts[0] != epoch {
		t.Fatalf("damaged cuts %v", rep.DamagedCuts)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("no *CorruptError in %v", err)
	}
	if ce.Job != job || ce.Epoch != epoch || (want.Rank >= 0 && ce.Rank != want.Rank) ||
		(want.File != "" && ce.File != want.File) || (want.Buffer != "" && ce.Buffer != want.Buffer) {
		t.Fatalf("damage reported as %q (%+v), want %+v", ce.Error(), ce, want)
	}
	if prev != nil {
		if _, err := s.Verify(bg, job, prevEpoch, nil); err != nil {
			t.Fatalf("previous cut %d no longer verifies: %v", prevEpoch, err)
		}
		checkRestore(t, s, job, prevEpoch, prev)
	}
}

// TestFlippedBytes flips bytes all over a pack and a manifest: every flip is
// caught by Verify, named with the cut, rank and file, and the previous cut
// is untouched.
func TestFlippedBytes(t *testing.T) {
	for _, c := range []struct{ codec, hash string }{{"s2", "xxh3"}, {"zstd-1", "xxh3"}, {"none", "xxh3"}, {"s2", "blake3"}} {
		codec := c.codec
		t.Run(codec+"/"+c.hash, func(t *testing.T) {
			opts := testOptions()
			opts.Codec, opts.Hash = codec, c.hash
			s, b := newMemStore(t, opts)
			const job = "flip"
			_, prev := writeCut(t, s, job, 1, 2, 20000, 0)
			writeCut(t, s, job, 2, 2, 20000, 1)
			cut, _ := s.LoadCut(bg, job, 2)
			pack := cut.Shards[1].Pack()
			orig := readFile(t, b, pack)
			rng := rand.New(rand.NewPCG(1, uint64(len(codec)+len(c.hash))))
			positions := []int{}
			sparse, dense := 40, 1
			if raceEnabled || testing.Short() {
				sparse, dense = 1000, 16
			}
			for i := 0; i < len(orig); i++ {
				// Every byte of the header, the indexes and the trailer, a
				// sample of the chunks.
				inChunks := i >= packHeaderLen && int64(i) < cut.Shards[1].IndexOffset-1000
				if (i < packHeaderLen || int64(i) >= len64(orig)-packTrailerLen) || (!inChunks && rng.IntN(dense) == 0) || rng.IntN(sparse) == 0 {
					positions = append(positions, i)
				}
			}
			for _, i := range positions {
				c := append([]byte(nil), orig...)
				c[i] ^= byte(1 << rng.IntN(8))
				putFile(t, b, pack, c)
				rep, err := s.Verify(bg, job, 2, nil)
				if !errors.Is(err, ErrCorrupt) || len(rep.DamagedCuts) != 1 {
					t.Fatalf("flip at byte %d of %d not detected: %v", i, len(orig), err)
				}
				var ce *CorruptError
				errors.As(err, &ce)
				if ce.Rank != 1 || ce.File != pack || ce.Epoch != 2 {
					t.Fatalf("flip at byte %d reported as %v", i, ce)
				}
				// Restore of the damaged rank fails loudly, never returns wrong bytes.
				if r, err := s.OpenShard(bg, job, 2, 1); err == nil {
					d := makeRank(2, 1, 20000)
					for k, n := range d.names {
						got := make([]byte, len(d.data[k]))
						if err := r.ReadBuffer(bg, n, got); err == nil && !bytes.Equal(got, d.data[k]) {
							t.Fatalf("flip at %d: ReadBuffer returned wrong bytes without error", i)
						}
					}
					r.Close()
				}
			}
			putFile(t, b, pack, orig)
			if _, err := s.Verify(bg, job, 0, nil); err != nil {
				t.Fatalf("restored pack: %v", err)
			}
			checkRestore(t, s, job, 1, prev)
		})
	}
}

func TestFlippedChunkNamesBuffer(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "chunk"
	_, prev := writeCut(t, s, job, 1, 1, 50000, 0)
	// Cut 2 has fresh data (no reuse), so its own pack holds every chunk.
	_, _ = writeCut(t, s, job, 2, 1, 50000, 0)
	d, _ := s.Inspect(bg, job, 2)
	cut, _ := s.LoadCut(bg, job, 2)
	pack := cut.Shards[0].Pack()
	r, _ := s.OpenShard(bg, job, 2, 0)
	c := r.idx.buffers[0].chunks[3] // buffer "u", chunk 3
	r.Close()
	data := readFile(t, b, pack)
	data[c.offset+int64(c.stored)/2] ^= 0x40
	putFile(t, b, pack, data)
	expectDamage(t, s, job, 2, CorruptError{Rank: 0, Buffer: "u", File: pack}, 1, prev)
	_, err := s.Verify(bg, job, 2, nil)
	var ce *CorruptError
	errors.As(err, &ce)
	if ce.Chunk != 3 || ce.Offset != c.offset {
		t.Fatalf("reported %v, want chunk 3 at offset %d", ce, c.offset)
	}
	msg := ce.Error()
	for _, part := range []string{"job chunk", "cut 2", "rank 0", `buffer "u"`, "chunk 3", pack} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}
	// The restore path reports the same place.
	sr, _ := s.OpenShard(bg, job, 2, 0)
	err = sr.ReadBuffer(bg, "u", make([]byte, d.Ranks[0].Buffers[0].Len))
	if !errors.As(err, &ce) || ce.Chunk != 3 || ce.Buffer != "u" {
		t.Fatalf("ReadBuffer = %v", err)
	}
}

func TestTruncatedPack(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "trunc"
	_, prev := writeCut(t, s, job, 1, 2, 20000, 0)
	writeCut(t, s, job, 2, 2, 20000, 0)
	cut, _ := s.LoadCut(bg, job, 2)
	pack := cut.Shards[0].Pack()
	orig := readFile(t, b, pack)
	for _, n := range []int{0, 1, packHeaderLen, len(orig) / 2, len(orig) - packTrailerLen, len(orig) - 1} {
		putFile(t, b, pack, orig[:n])
		expectDamage(t, s, job, 2, CorruptError{Rank: 0, File: pack}, 1, prev)
	}
	// Appended garbage is damage too.
	putFile(t, b, pack, append(append([]byte(nil), orig...), 0))
	expectDamage(t, s, job, 2, CorruptError{Rank: 0, File: pack}, 1, prev)
	// A missing pack.
	if err := b.Remove(bg, pack); err != nil {
		t.Fatal(err)
	}
	expectDamage(t, s, job, 2, CorruptError{Rank: 0, File: pack}, 1, prev)
}

func TestDamagedManifests(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "man"
	_, prev := writeCut(t, s, job, 1, 2, 5000, 0)
	writeCut(t, s, job, 2, 2, 5000, 0)
	name := manifestName(job, 2)
	orig := readFile(t, b, name)
	pack := readFile(t, b, mustCut(t, s, job, 1).Shards[0].Pack())
	garbage := map[string][]byte{
		"empty":       {},
		"one byte":    {0},
		"text":        []byte("{\"epoch\": 2}\n"),
		"a pack file": pack,
		"random":      randomBytes(5000, 3),
		"truncated":   orig[:len(orig)-1],
		"half":        orig[:len(orig)/2],
	}
	step := 1
	if raceEnabled || testing.Short() {
		step = 7
	}
	for i := 0; i < len(orig); i += step {
		c := append([]byte(nil), orig...)
		c[i] ^= 0x01
		garbage[fmt.Sprintf("flip %d", i)] = c
	}
	for what, data := range garbage {
		putFile(t, b, name, data)
		_, err := s.LoadCut(bg, job, 2)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.File != name || ce.Epoch != 2 {
			t.Fatalf("%s: LoadCut = %v", what, err)
		}
		cuts, err := s.List(bg, job)
		if !errors.Is(err, ErrCorrupt) || len(cuts) != 1 || cuts[0].Epoch != 1 {
			t.Fatalf("%s: List = %v, %v", what, cuts, err)
		}
		expectDamage(t, s, job, 2, CorruptError{Rank: -1, File: name}, 1, prev)
	}
	// A manifest of cut 1 stored under cut 2's name.
	putFile(t, b, name, readFile(t, b, manifestName(job, 1)))
	if _, err := s.LoadCut(bg, job, 2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("manifest under the wrong name: %v", err)
	}
}

func len64(b []byte) int64 { return int64(len(b)) }

func mustCut(t testing.TB, s *Store, job string, e uint64) *Cut {
	t.Helper()
	c, err := s.LoadCut(bg, job, e)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// craftShard writes a pack whose chunks are given as stored bytes and whose
// index is x; x's chunk refs carry, in offset, the number of the stored
// chunk they point at (the offsets are filled in here). The result is
// internally consistent (hashes, trailer), as an attacker who knows the
// format would make it.
func craftShard(t testing.TB, b backend.Backend, x *shardIndex, stored [][]byte) ShardRef {
	t.Helper()
	var nonce [8]byte
	nonce[0] = byte(x.rank + 1)
	if len(x.packs) == 0 {
		x.packs = []string{packRel(x.epoch, x.rank, x.incarnation, nonce)}
	}
	data := packHeader()
	offs := make([]int64, len(stored))
	var entries []packEntry
	for i, c := range stored {
		offs[i] = int64(len(data))
		data = append(data, c...)
		entries = append(entries, packEntry{offset: offs[i], stored: uint32(len(c)), raw: uint32(len(c)), sum: x.alg.sum(c), hash: x.alg.content(c)})
	}
	fix := func(st *stream) {
		for i := range st.chunks {
			if st.chunks[i].pack == 0 {
				st.chunks[i].sum = x.alg.sum(stored[st.chunks[i].offset])
				st.chunks[i].offset = offs[st.chunks[i].offset]
			}
		}
	}
	for i := range x.buffers {
		fix(&x.buffers[i].stream)
	}
	for i := range x.channels {
		fix(&x.channels[i].stream)
	}
	pi := encodePackIndex(x.alg, entries)
	si := encodeShardIndex(x)
	tr := packTrailer{packIndexOff: int64(len(data)), packIndexLen: uint32(len(pi)), packIndexHash: blake3.Sum256(pi),
		shardIndexOff: int64(len(data) + len(pi)), shardIndexLen: uint32(len(si)), shardIndexHash: blake3.Sum256(si)}
	data = append(append(append(data, pi...), si...), encodeTrailer(tr)...)
	ref := ShardRef{Job: x.job, Epoch: x.epoch, Rank: x.rank, Incarnation: x.incarnation, Step: x.step, BaseEpoch: x.baseEpoch,
		Nonce: nonce, IndexOffset: tr.shardIndexOff, IndexLen: int64(len(si)), IndexHash: tr.shardIndexHash}
	putFile(t, b, ref.Pack(), data)
	return ref
}

// commitCrafted writes a manifest for crafted shards directly, bypassing
// Commit's checks, as a hostile store would hold.
func commitCrafted(t testing.TB, b backend.Backend, refs ...ShardRef) {
	t.Helper()
	m := &manifest{job: refs[0].Job, epoch: refs[0].Epoch, step: refs[0].Step, world: len(refs), incarnation: refs[0].Incarnation, shards: refs}
	putFile(t, b, manifestName(m.job, m.epoch), encodeManifest(m))
}

// TestPathsOutsideStore: an index naming a pack outside the job's packs
// directory is refused before anything is opened.
func TestPathsOutsideStore(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	for i, p := range []string{"../../../etc/passwd", "packs/00000000000000000001/../../x.pack", "/abs.pack",
		"packs/00000000000000000001/r000000-g1-0000000000000000.pack/../../../x", "packs/1/r0-g1-00.pack",
		"packs/00000000000000000001/r000000-g01-0000000000000000.pack"} {
		x := &shardIndex{job: "evil", epoch: uint64(10 + i), rank: 0, incarnation: 1, baseEpoch: 0,
			buffers: []bufferEntry{{name: "u", stream: stream{length: 5, elemSize: 1, chunkSize: testChunk,
				chunks: []chunkRef{{pack: 1, offset: 16, stored: 5, hash: blake3.Sum256([]byte("hello"))}}}}}}
		var nonce [8]byte
		nonce[0] = 1
		x.packs = []string{packRel(x.epoch, 0, 1, nonce), p}
		ref := craftShard(t, b, x, nil)
		commitCrafted(t, b, ref)
		_, err := s.OpenShard(bg, "evil", x.epoch, 0)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "pack name") {
			t.Fatalf("index naming %q: OpenShard = %v", p, err)
		}
		if _, err := s.Verify(bg, "evil", x.epoch, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Verify = %v", err)
		}
	}
	// Job names in manifests and refs are checked the same way.
	if err := ValidJobName("../x"); err == nil {
		t.Fatal("job name ../x accepted")
	}
}

// TestAbsurdSizes: indexes claiming enormous buffers, counts or chunk sizes
// are refused by the decoder without allocating for them.
func TestAbsurdSizes(t *testing.T) {
	base := func() *shardIndex {
		var nonce [8]byte
		return &shardIndex{job: "big", epoch: 1, rank: 0, incarnation: 1, packs: []string{packRel(1, 0, 1, nonce)},
			buffers: []bufferEntry{{name: "u", stream: stream{length: 10, elemSize: 1, chunkSize: testChunk,
				chunks: []chunkRef{{offset: 16, stored: 10}}}}}}
	}
	if _, err := decodeShardIndex(encodeShardIndex(base())); err != nil {
		t.Fatalf("the base index does not decode: %v", err)
	}
	cases := map[string]func(x *shardIndex){
		"buffer of 2^62 bytes": func(x *shardIndex) { x.buffers[0].length = 1 << 62 },
		"chunk size 1":         func(x *shardIndex) { x.buffers[0].chunkSize = 1 },
		"chunk size 2^31":      func(x *shardIndex) { x.buffers[0].chunkSize = 1 << 31 },
		"element size 3":       func(x *shardIndex) { x.buffers[0].elemSize = 3 },
		"stored > raw":         func(x *shardIndex) { x.buffers[0].chunks[0].stored = 11 },
		"pack out of table":    func(x *shardIndex) { x.buffers[0].chunks[0].pack = 7 },
		"offset in header":     func(x *shardIndex) { x.buffers[0].chunks[0].offset = 3 },
		"unknown codec":        func(x *shardIndex) { x.buffers[0].chunks[0].codec = 9 },
		"unknown filter":       func(x *shardIndex) { x.buffers[0].elemSize = 8; x.buffers[0].chunks[0].filter = 2 },
		"delta on bytes":       func(x *shardIndex) { x.buffers[0].chunks[0].filter = filterDelta },
		"raw stored shorter":   func(x *shardIndex) { x.buffers[0].chunks[0].stored = 9 },
		"meta too large":       func(x *shardIndex) { x.meta = make([]byte, MaxMeta+1) },
		"rank too large":       func(x *shardIndex) { x.rank = MaxWorld },
		"channel lengths mismatch": func(x *shardIndex) {
			x.channels = []channelEntry{{from: 1, lengths: []uint32{3}, stream: stream{length: 4, elemSize: 1, chunkSize: testChunk, chunks: []chunkRef{{offset: 16, stored: 4}}}}}
		},
	}
	for name, mutate := range cases {
		x := base()
		mutate(x)
		if _, err := decodeShardIndex(encodeShardIndex(x)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// A count field promising 2^32-1 chunks in a few bytes.
	b := encodeShardIndex(base())
	i := bytes.Index(b, []byte{1, 0, 0, 0, 0, 0, 0, 0, 16, 0}) // chunk count 1, then pack 0, offset 16
	if i < 0 {
		t.Fatal("layout changed: chunk count not found")
	}
	copy(b[i:], []byte{0xff, 0xff, 0xff, 0xff})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decodeShardIndex(b)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("4 billion chunks decoded")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("decoding a forged count allocated %d bytes", grew)
	}
	// A manifest claiming a million ranks in a few bytes.
	m := encodeManifest(&manifest{job: "big", epoch: 1, world: MaxWorld, incarnation: 1})
	if _, err := decodeManifest(m); err == nil {
		t.Fatal("manifest of 2^20 ranks without shards decoded")
	}
}

// TestDecompressionBombs: a chunk whose compressed bytes expand far beyond
// its recorded raw length fails without allocating the expansion.
func TestDecompressionBombs(t *testing.T) {
	huge := make([]byte, 64<<20)
	s2bomb := s2.Encode(nil, huge)
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	zbomb := enc.EncodeAll(huge, nil)
	// A streamed frame has no content size in its header.
	var streamed bytes.Buffer
	zw, _ := zstd.NewWriter(&streamed, zstd.WithEncoderLevel(zstd.SpeedFastest))
	zw.Write(huge)
	zw.Close()
	huge = nil
	// A split chunk of two 32 KiB parts: an s2 bomb, then a raw part.
	split := []byte{2}
	split = binary.LittleEndian.AppendUint32(split, uint32(len(s2bomb)))
	split = binary.LittleEndian.AppendUint32(split, 32<<10|1<<31)
	split = append(append(split, s2bomb...), make([]byte, 32<<10)...)
	for _, bomb := range []struct {
		name  string
		data  []byte
		codec codecID
	}{{"s2", s2bomb, codecS2}, {"zstd", zbomb, codecZstd}, {"zstd streamed", streamed.Bytes(), codecZstd}, {"s2 split", split, codecSplit}} {
		t.Run(bomb.name, func(t *testing.T) {
			const chunk = 64 << 10
			if len(bomb.data) >= chunk {
				t.Fatalf("bomb of %d bytes does not fit a %d-byte chunk", len(bomb.data), chunk)
			}
			opts := testOptions()
			opts.ChunkSize = chunk
			s, b := newMemStore(t, opts)
			x := &shardIndex{job: "bomb", epoch: 1, rank: 0, incarnation: 1,
				buffers: []bufferEntry{{name: "u", stream: stream{length: chunk, elemSize: 1, chunkSize: chunk,
					chunks: []chunkRef{{pack: 0, offset: 0, stored: uint32(len(bomb.data)), codec: bomb.codec, hash: blake3.Sum256(make([]byte, chunk))}}}}}}
			ref := craftShard(t, b, x, [][]byte{bomb.data})
			commitCrafted(t, b, ref)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := s.Verify(bg, "bomb", 1, nil)
			r, oerr := s.OpenShard(bg, "bomb", 1, 0)
			if oerr != nil {
				t.Fatal(oerr)
			}
			rerr := r.ReadBuffer(bg, "u", make([]byte, chunk))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(rerr, ErrCorrupt) || !strings.Contains(rerr.Error(), "decompress") {
				t.Fatalf("Verify = %v, ReadBuffer = %v", err, rerr)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Fatalf("the bomb made the reader allocate %d MiB", grew>>20)
			}
		})
	}
}

// TestDiskFull: the disk fills up at many points of a cut; every time the
// shard or the commit fails with ENOSPC, nothing half-written is visible,
// and the previous cut restores.
func TestDiskFull(t *testing.T) {
	m := mem.New()
	f := fault.New(m)
	s := newStoreOn(t, f, testOptions())
	const job = "full"
	_, prev := writeCut(t, s, job, 1, 2, 20000, 0)
	before := f.Written()
	writeCut(t, s, job, 2, 2, 20000, 0) // measure what a cut writes
	need := f.Written() - before
	var done []ShardRef // shards that completed before the disk filled
	for budget := int64(0); budget < need; budget += need/37 + 1 {
		f.FailAfterBytes(budget)
		var refs []ShardRef
		var failed error
		for r := 0; r < 2 && failed == nil; r++ {
			w, err := s.NewShard(bg, ShardSpec{Job: job, Epoch: 3, Rank: r, Incarnation: 1, Step: 30})
			if err != nil {
				failed = err
				break
			}
			d := makeRank(3, r, 20000)
			for i, n := range d.names {
				if err := w.AddBuffer(bg, n, BytesSource(d.data[i], d.elems[i])); err != nil {
					break
				}
			}
			ref, err := w.Close(bg)
			if err != nil {
				failed = err
				break
			}
			refs = append(refs, ref)
			done = append(done, ref)
		}
		if failed == nil {
			_, failed = s.Commit(bg, CutSpec{Job: job, Epoch: 3, Step: 30, World: 2, Incarnation: 1, Shards: refs})
		}
		f.FailAfterBytes(-1)
		if failed == nil {
			t.Fatalf("budget %d of %d: the cut went through", budget, need)
		}
		if !errors.Is(failed, syscall.ENOSPC) {
			t.Fatalf("budget %d: error %v does not say the disk is full", budget, failed)
		}
		cuts, err := s.List(bg, job)
		if err != nil || len(cuts) != 2 || cuts[1].Epoch != 2 {
			t.Fatalf("budget %d: List = %+v, %v", budget, cuts, err)
		}
		for _, name := range m.Files() {
			if strings.Contains(name, "/00000000000000000003") && strings.HasSuffix(name, ".pack") {
				// A shard that completed before the disk filled is a
				// complete pack; anything else must not exist.
				if _, err := s.OpenShardRef(bg, refOf(t, done, name)); err != nil {
					t.Fatalf("budget %d: partial pack %s visible: %v", budget, name, err)
				}
			}
		}
		if _, err := s.Verify(bg, job, 0, nil); err != nil {
			t.Fatalf("budget %d: Verify = %v", budget, err)
		}
	}
	checkRestore(t, s, job, 1, prev)
	// GC removes the orphans of the failed attempts once a later cut exists.
	writeCut(t, s, job, 4, 2, 20000, 0)
	if _, err := s.GC(bg, job, GCOptions{Keep: 3}); err != nil {
		t.Fatal(err)
	}
	for _, name := range m.Files() {
		if strings.Contains(name, "/00000000000000000003/") {
			t.Errorf("orphan %s survived GC", name)
		}
	}
}

func refOf(t testing.TB, refs []ShardRef, name string) ShardRef {
	for _, r := range refs {
		if r.Pack() == name {
			return r
		}
	}
	t.Fatalf("pack %s belongs to no completed shard", name)
	return ShardRef{}
}

func TestFailedManifestCommit(t *testing.T) {
	m := mem.New()
	f := fault.New(m)
	s := newStoreOn(t, f, testOptions())
	const job = "mc"
	_, prev := writeCut(t, s, job, 1, 1, 5000, 0)
	ref := writeShard(t, s, ShardSpec{Job: job, Epoch: 2, Incarnation: 1, Step: 20}, makeRank(2, 0, 5000))
	for _, op := range []fault.Op{fault.OpCreate, fault.OpWrite, fault.OpCommit, fault.OpOpen, fault.OpReadAt, fault.OpList} {
		f.FailOn(func(o fault.Op, name string) error {
			if o == op {
				return fault.ErrInjected
			}
			return nil
		})
		_, err := s.Commit(bg, CutSpec{Job: job, Epoch: 2, Step: 20, World: 1, Incarnation: 1, Shards: []ShardRef{ref}})
		f.FailOn(nil)
		if !errors.Is(err, fault.ErrInjected) {
			t.Fatalf("%s failing: Commit = %v", op, err)
		}
		if cuts, err := s.List(bg, job); err != nil || len(cuts) != 1 {
			t.Fatalf("%s failing: List = %v, %v", op, cuts, err)
		}
	}
	checkRestore(t, s, job, 1, prev)
	if _, err := s.Commit(bg, CutSpec{Job: job, Epoch: 2, Step: 20, World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
		t.Fatalf("Commit after the faults cleared: %v", err)
	}
}
