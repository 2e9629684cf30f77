package ckpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/internal/datagen"
)

// planeData is k planes of m bytes plus tail bytes: per plane noise,
// constant, or a byte drawn from 16 values (s2 shrinks it about twice: below
// splitMinRatio).
func planeData(k, m, tail int, kinds string) []byte {
	b := make([]byte, k*m+tail)
	x := uint32(7)
	next := func() byte { x = x*1664525 + 1013904223; return byte(x >> 24) }
	for p := range k {
		for i := range m {
			switch kinds[p%len(kinds)] {
			case 'n':
				b[p*m+i] = next()
			case 'c':
				b[p*m+i] = 0x3f
			case 'h':
				b[p*m+i] = next() & 0x0f
			}
		}
	}
	for i := k * m; i < len(b); i++ {
		b[i] = next()
	}
	return b
}

// TestSplitCodec: chunks of 2, 4 and 8 planes, with and without trailing
// bytes, round-trip through the s2 codec's split form; noise and
// half-compressible planes are stored raw, constant ones as s2 blocks.
func TestSplitCodec(t *testing.T) {
	c := &codecs{codec: Codec{id: codecS2}, workers: 1}
	for _, k := range []int{2, 4, 8} {
		for _, m := range []int{minSplitPart, 3*splitSample + 1, 1 << 19} {
			for _, tail := range []int{0, k - 1} {
				for _, kinds := range []string{"nc", "cn", "hcnc", "nnnh"} {
					name := fmt.Sprintf("k%d/m%d/tail%d/%s", k, m, tail, kinds)
					src := planeData(k, m, tail, kinds)
					out, id, err := c.compress(make([]byte, maxCompressed(len(src))), src, k)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(kinds[:min(k, len(kinds))], "c") {
						if id != codecNone {
							t.Errorf("%s: nothing compressible, stored with %s", name, id)
						}
						continue
					}
					if id != codecSplit {
						t.Fatalf("%s: codec %s", name, id)
					}
					for p := range k {
						l := binary.LittleEndian.Uint32(out[1+4*p:])
						if raw := l&(1<<31) != 0; raw != (kinds[p%len(kinds)] != 'c') {
							t.Errorf("%s: plane %d (%c) raw = %v", name, p, kinds[p%len(kinds)], raw)
						}
					}
					got := make([]byte, len(src))
					if err := c.decompress(got, out, id); err != nil || !bytes.Equal(got, src) {
						t.Fatalf("%s: round trip: %v", name, err)
					}
				}
			}
		}
	}
	// Below minSplitPart bytes per plane, and with one plane, one s2 block.
	for _, tc := range []struct{ n, k int }{{8*minSplitPart - 1, 8}, {1 << 16, 1}} {
		src := make([]byte, tc.n)
		if _, id, _ := c.compress(make([]byte, maxCompressed(tc.n)), src, tc.k); id != codecS2 {
			t.Errorf("%d bytes of %d planes: codec %s, want s2", tc.n, tc.k, id)
		}
	}
	// s2-better never splits.
	better := &codecs{codec: Codec{id: codecS2, level: 2}, workers: 1}
	if _, id, _ := better.compress(make([]byte, maxCompressed(8<<10)), planeData(8, 1024, 0, "nc"), 8); id != codecS2 {
		t.Errorf("s2-better: codec %s", id)
	}
}

// TestSplitHeat: on the heat field the split keeps the ratio above the
// storage goal (1.5) and stores the noisy planes raw.
func TestSplitHeat(t *testing.T) {
	c := &codecs{codec: Codec{id: codecS2}, workers: 1}
	data := datagen.New(datagen.Heat, 4<<20, 1)
	filtered := make([]byte, len(data))
	applyFilter(filtered, data, 8, filterDelta)
	out, id, _ := c.compress(make([]byte, maxCompressed(len(data))), filtered, 8)
	if id != codecSplit || float64(len(data))/float64(len(out)) < 1.5 {
		t.Fatalf("codec %s, ratio %.3f", id, float64(len(data))/float64(len(out)))
	}
	raw := 0
	for p := range 8 {
		if binary.LittleEndian.Uint32(out[1+4*p:])&(1<<31) != 0 {
			raw++
		}
	}
	if raw == 0 || raw == 8 {
		t.Fatalf("%d of 8 planes raw", raw)
	}
	got := make([]byte, len(data))
	if err := c.decompress(got, out, id); err != nil || !bytes.Equal(got, filtered) {
		t.Fatalf("round trip: %v", err)
	}
}

// TestSplitDecodeDamaged: every inconsistency of a split chunk is an error
// that names it, never a panic or a write outside the destination.
func TestSplitDecodeDamaged(t *testing.T) {
	c := &codecs{codec: Codec{id: codecS2}, workers: 1}
	src := planeData(4, 2048, 3, "ncnc")
	good, id, _ := c.compress(make([]byte, maxCompressed(len(src))), src, 4)
	if id != codecSplit {
		t.Fatalf("codec %s", id)
	}
	le := binary.LittleEndian
	cases := map[string]func([]byte) []byte{
		"empty":             func(b []byte) []byte { return nil },
		"one part":          func(b []byte) []byte { b[0] = 1; return b },
		"nine parts":        func(b []byte) []byte { b[0] = 9; return b },
		"short header":      func(b []byte) []byte { return b[:5] },
		"part too long":     func(b []byte) []byte { le.PutUint32(b[1:], le.Uint32(b[1:])+1); return b },
		"raw part length":   func(b []byte) []byte { le.PutUint32(b[1:], le.Uint32(b[1:])-1); return b },
		"trailing bytes":    func(b []byte) []byte { return append(b, 0) },
		"truncated":         func(b []byte) []byte { return b[:len(b)-1] },
		"s2 part as raw":    func(b []byte) []byte { le.PutUint32(b[5:], le.Uint32(b[5:])|1<<31); return b },
		"raw part as s2":    func(b []byte) []byte { le.PutUint32(b[1:], le.Uint32(b[1:])&^(1<<31)); return b },
		"more parts than n": func(b []byte) []byte { b[0] = 8; return b },
	}
	for name, mut := range cases {
		bad := mut(append([]byte(nil), good...))
		dst := make([]byte, len(src)+8)
		for i := range dst {
			dst[i] = 0xa5
		}
		n := len(src)
		if name == "more parts than n" {
			n = 7
		}
		err := c.decompress(dst[:n:n], bad, codecSplit)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		for i := n; i < len(dst); i++ {
			if dst[i] != 0xa5 {
				t.Fatalf("%s: wrote beyond the destination", name)
			}
		}
	}
}

// TestSplitCodecVersions: codec 3 is refused in shard indexes before
// version 3 and pack indexes before version 2, which no writer gave it.
func TestSplitCodecVersions(t *testing.T) {
	var nonce [8]byte
	x := &shardIndex{job: "v", epoch: 1, rank: 0, incarnation: 1, packs: []string{packRel(1, 0, 1, nonce)},
		buffers: []bufferEntry{{name: "u", stream: stream{length: 4096, elemSize: 8, chunkSize: testChunk,
			chunks: []chunkRef{{offset: 16, stored: 100, codec: codecSplit}}}}}}
	b := encodeShardIndex(x)
	if _, err := decodeShardIndex(b); err != nil {
		t.Fatalf("version 3: %v", err)
	}
	const algAt = len(magicShardIndex) + 2
	v2 := append(append([]byte(nil), b[:algAt]...), b[algAt+1:]...)
	binary.LittleEndian.PutUint16(v2[8:], 2)
	if _, err := decodeShardIndex(v2); err == nil || !strings.Contains(err.Error(), "codec s2-split in a version-2 index") {
		t.Fatalf("version 2 with codec 3: %v", err)
	}
	pi := encodePackIndex(hashBLAKE3, []packEntry{{offset: 16, stored: 100, raw: 4096, codec: codecSplit}})
	if _, _, err := decodePackIndex(pi, 200); err != nil {
		t.Fatalf("pack index version 2: %v", err)
	}
	v1 := append(append([]byte(nil), pi[:algAt]...), pi[algAt+1:]...)
	binary.LittleEndian.PutUint16(v1[8:], 1)
	if _, _, err := decodePackIndex(v1, 200); err == nil || !strings.Contains(err.Error(), "codec s2-split in a version-1 index") {
		t.Fatalf("pack index version 1 with codec 3: %v", err)
	}
}
