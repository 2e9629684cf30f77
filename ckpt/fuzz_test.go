package ckpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/zeebo/blake3"
)

// Every decoder of bytes from disk or the network is fuzzed here. The seed
// corpus under testdata/fuzz/<Fuzz...>/ holds real encodings (regenerate
// with CUTPOINT_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus); go
// test runs the seeds as ordinary tests, `make fuzz-ckpt` fuzzes each
// target for a while.

func FuzzUnmarshalShardRef(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalShardRef(b)
		if err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded ref does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

func FuzzDecodeShardIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeShardIndex(b)
		if err != nil {
			return
		}
		// What decodes is valid: its encoding decodes to the same index.
		y, err := decodeShardIndex(encodeShardIndex(x))
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		if !bytes.Equal(encodeShardIndex(x), encodeShardIndex(y)) {
			t.Fatal("re-encoding is not stable")
		}
		for _, ls := range x.streams() {
			if int64(len(ls.s.chunks)) != ceilDiv(ls.s.length, ls.s.chunkSize) {
				t.Fatalf("%s: chunk count not checked", ls.label)
			}
			for i, c := range ls.s.chunks {
				if int(c.stored) > ls.s.rawLen(i) || int(c.pack) >= len(x.packs) || !c.filter.validFor(ls.s.elemSize) ||
					c.alg != x.alg || !c.alg.checkPadding(&c.hash) {
					t.Fatalf("%s chunk %d not checked: %+v", ls.label, i, c)
				}
			}
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			// Without a valid hash nothing gets past the first check; fix
			// the hash so the structure itself is fuzzed too.
			if len(b) >= hashLen {
				h := blake3.Sum256(b[:len(b)-hashLen])
				fixed := append(append([]byte(nil), b[:len(b)-hashLen]...), h[:]...)
				if m, err = decodeManifest(fixed); err != nil {
					return
				}
				b = fixed
			} else {
				return
			}
		}
		if len(m.shards) != m.world {
			t.Fatalf("%d shards for world %d", len(m.shards), m.world)
		}
		if !bytes.Equal(encodeManifest(m), b) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

func FuzzDecodePackIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, end uint32) {
		entries, alg, err := decodePackIndex(b, int64(end))
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.offset < packHeaderLen || e.offset+int64(e.stored) > int64(end) {
				t.Fatalf("entry outside [%d, %d): %+v", packHeaderLen, end, e)
			}
			if !alg.checkPadding(&e.hash) {
				t.Fatalf("%s hash padding not checked: %+v", alg, e)
			}
		}
		// A version-1 index re-encodes at the current version, the same
		// entries with the hash it implied.
		again := encodePackIndex(alg, entries)
		if binary.LittleEndian.Uint16(b[len(magicPackIndex):]) == packIndexVersion && !bytes.Equal(again, b) {
			t.Fatal("decode/encode is not the identity")
		}
		e2, alg2, err := decodePackIndex(again, int64(end))
		if err != nil || alg2 != alg || !slices.Equal(e2, entries) {
			t.Fatalf("re-encoded index decodes to %v, %v, %v", alg2, err, e2)
		}
	})
}

func FuzzDecodeTrailer(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		tr, err := decodeTrailer(b, size)
		if err != nil {
			return
		}
		if tr.shardIndexOff+int64(tr.shardIndexLen)+packTrailerLen != size || tr.packIndexOff < packHeaderLen {
			t.Fatalf("extents not checked: %+v in %d bytes", tr, size)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := parseConfig(b)
		if err != nil {
			return
		}
		if checkChunkSize(cfg.ChunkSize) != nil {
			t.Fatalf("chunk size %d accepted", cfg.ChunkSize)
		}
		if cfg.Hash != "" && CheckHash(cfg.Hash) != nil {
			t.Fatalf("hash %q accepted", cfg.Hash)
		}
	})
}

// FuzzDecompress feeds arbitrary bytes to each codec with a bounded output:
// no panic, nothing written or allocated beyond the destination.
// splitSeed is 8 planes of 1 KiB: four of noise (stored raw), four
// constant (s2).
var splitSeed = func() []byte {
	b := make([]byte, 8<<10)
	x := uint32(1)
	for i := range 4 << 10 {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}()

func FuzzDecompress(f *testing.F) {
	c := &codecs{codec: Codec{id: codecZstd, level: 1}, workers: 1}
	f.Cleanup(c.close)
	f.Fuzz(func(t *testing.T, src []byte, id uint8, n uint16) {
		dst := make([]byte, int(n)+8)
		for i := range dst {
			dst[i] = 0xa5
		}
		err := c.decompress(dst[:n:n], src, codecID(id%5))
		for i := int(n); i < len(dst); i++ {
			if dst[i] != 0xa5 {
				t.Fatalf("decompress wrote beyond the destination (byte %d)", i)
			}
		}
		if err == nil && codecID(id%5) == codecNone && !bytes.Equal(dst[:n], src) {
			t.Fatal("raw chunk not copied")
		}
	})
}

// FuzzReadPack replaces a real shard's pack with fuzzed bytes: opening and
// reading it must fail cleanly or give back exactly the original data. The
// shard's buffers of 4- and 8-byte elements are filtered with
// delta+shuffle, its bytes and channel with plain shuffle, so both
// inverses see the damaged chunks.
func FuzzReadPack(f *testing.F) {
	s, b := newMemStore(f, testOptions())
	s.filters = filterOnlyDelta
	d := makeRank(1, 0, 9000)
	ref := writeShard(f, s, ShardSpec{Job: "fz", Epoch: 1, Incarnation: 1}, d)
	orig := readFile(f, b, ref.Pack())
	f.Add(orig, uint32(0), uint8(0))
	f.Fuzz(func(t *testing.T, pack []byte, pos uint32, xor uint8) {
		if len(pack) > 0 {
			pack = append([]byte(nil), pack...)
			pack[int(pos)%len(pack)] ^= xor
		}
		putFile(t, b, ref.Pack(), pack)
		r, err := s.OpenShardRef(bg, ref)
		if err != nil {
			return
		}
		defer r.Close()
		for i, n := range d.names {
			got := make([]byte, len(d.data[i]))
			if err := r.ReadBuffer(bg, n, got); err == nil && !bytes.Equal(got, d.data[i]) {
				t.Fatalf("buffer %s: wrong bytes without an error", n)
			}
		}
		if chans, err := r.Channels(bg); err == nil && len(chans) != len(d.chans) {
			t.Fatal("channels changed without an error")
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus from real
// encodings (seed-N). The v1-seed-N and v2-seed-N files hold shard
// indexes, pack indexes and packs written by earlier writers (shard index
// version 1, and version 2 with pack index version 1); they are kept, not
// regenerated.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("CUTPOINT_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set CUTPOINT_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	s, b := newMemStore(t, testOptions())
	writeCut(t, s, "seed", 1, 2, 6000, 0)
	// Cut 2's shard indexes have both filters: delta+shuffle for the
	// buffers of 4- and 8-byte elements.
	s.filters = filterOnlyDelta
	writeCut(t, s, "seed", 2, 2, 6000, 1)
	cut, _ := s.LoadCut(bg, "seed", 2)
	refBytes, _ := cut.Shards[1].MarshalBinary()
	pack := readFile(t, b, cut.Shards[1].Pack())
	tb := pack[len(pack)-packTrailerLen:]
	tr, err := decodeTrailer(tb, int64(len(pack)))
	if err != nil {
		t.Fatal(err)
	}
	pi := pack[tr.packIndexOff : tr.packIndexOff+int64(tr.packIndexLen)]
	si := pack[tr.shardIndexOff : tr.shardIndexOff+int64(tr.shardIndexLen)]
	man := readFile(t, b, manifestName("seed", 2))
	cfg := readFile(t, b, configName)
	c := &codecs{codec: Codec{id: codecS2}, workers: 1}
	sc, _, _ := c.compress(make([]byte, maxCompressed(4096)), bytes.Repeat([]byte("abcd"), 1024), 1)
	split, splitID, _ := c.compress(make([]byte, maxCompressed(len(splitSeed))), splitSeed, 8)
	if splitID != codecSplit {
		t.Fatalf("split seed stored with codec %s", splitID)
	}
	c = &codecs{codec: Codec{id: codecZstd, level: 1}, workers: 1}
	zc, _, _ := c.compress(make([]byte, maxCompressed(4096)), bytes.Repeat([]byte("abcd"), 1024), 1)
	c.close()

	seeds := map[string][][]any{
		"FuzzUnmarshalShardRef": {{refBytes}, {[]byte{}}},
		"FuzzDecodeShardIndex":  {{si}, {[]byte(magicShardIndex)}},
		"FuzzDecodeManifest":    {{man}, {man[:len(man)/2]}},
		"FuzzDecodePackIndex":   {{pi, uint32(tr.packIndexOff)}},
		"FuzzDecodeTrailer":     {{tb, int64(len(pack))}},
		"FuzzParseConfig":       {{cfg}, {[]byte(`{"format":1,"chunk_size":4096,"codec":"zstd-3","created":""}`)}},
		"FuzzDecompress":        {{sc, uint8(codecS2), uint16(4096)}, {zc, uint8(codecZstd), uint16(4096)}, {[]byte("raw"), uint8(0), uint16(3)}, {split, uint8(codecSplit), uint16(len(splitSeed))}},
		"FuzzReadPack":          {{pack, uint32(100), uint8(1)}, {pack[:len(pack)-1], uint32(0), uint8(0)}},
	}
	for target, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range list {
			var buf bytes.Buffer
			buf.WriteString("go test fuzz v1\n")
			for _, a := range args {
				switch v := a.(type) {
				case []byte:
					fmt.Fprintf(&buf, "[]byte(%s)\n", strconv.Quote(string(v)))
				case uint32:
					fmt.Fprintf(&buf, "uint32(%d)\n", v)
				case uint16:
					fmt.Fprintf(&buf, "uint16(%d)\n", v)
				case uint8:
					fmt.Fprintf(&buf, "byte(%d)\n", v)
				case int64:
					fmt.Fprintf(&buf, "int64(%d)\n", v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
