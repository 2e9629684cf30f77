package kernels

import (
	"math/rand/v2"
	"testing"
)

// refChunkHash is the definition in hash.go written the slow, obvious way:
// assemble each word byte by byte, key it, mix it, sum, finish.
func refChunkHash(b []byte) uint64 {
	var sum uint64
	k1 := uint64(hashK1)
	for k := 0; 8*k < len(b); k++ {
		var w uint64
		for j := 0; j < 8 && 8*k+j < len(b); j++ {
			w |= uint64(b[8*k+j]) << (8 * j)
		}
		sum += Mix64(w ^ uint64(k+1)*k1)
	}
	return Mix64(sum ^ uint64(len(b))*uint64(hashK2))
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestChunkHashMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		b := randBytes(r, n)
		if got, want := ChunkHash(b), refChunkHash(b); got != want {
			t.Fatalf("len %d: ChunkHash %#x, definition %#x", n, got, want)
		}
	}
	big := randBytes(r, 1<<20+13)
	if got, want := ChunkHash(big), refChunkHash(big); got != want {
		t.Fatalf("1 MiB+13: ChunkHash %#x, definition %#x", got, want)
	}
}

// The values below pin the definition (they were cross-checked with an
// independent Python transcription of it): the hashes are compared with
// those of the base cut and computed by the GPU kernel too, so a change
// here breaks both. Update only together with kernels.cu and doc.go.
func TestChunkHashKnownAnswers(t *testing.T) {
	seq := make([]byte, 200)
	for i := range seq {
		seq[i] = byte(i)
	}
	for _, c := range []struct {
		in   []byte
		want uint64
	}{
		{nil, 0x0000000000000000},
		{[]byte{0}, 0x7831bc99e7d6ec19},
		{seq[:7], 0x2098803655023682},
		{seq[:64], 0x6ce22c6ab6746332},
		{seq, 0x0fc0849318311289},
	} {
		if got := ChunkHash(c.in); got != c.want {
			t.Errorf("ChunkHash(%d bytes) = %#016x, pinned %#016x", len(c.in), got, c.want)
		}
	}
}

func TestHashSumPiecesAddUp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := randBytes(r, 4096+5)
	whole := HashSum(b, 0)
	for range 100 {
		cut := 8 * r.IntN(len(b)/8+1)
		if got := HashSum(b[:cut], 0) + HashSum(b[cut:], cut/8); got != whole {
			t.Fatalf("split at %d: pieces sum to %#x, whole %#x", cut, got, whole)
		}
	}
}

func TestChunkHashDetectsEverySingleWordChange(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := randBytes(r, 512)
	h := ChunkHash(b)
	for pos := range b {
		for bit := range 8 {
			b[pos] ^= 1 << bit
			if ChunkHash(b) == h {
				t.Fatalf("flipping bit %d of byte %d left the hash unchanged", bit, pos)
			}
			b[pos] ^= 1 << bit
		}
	}
	// Swapping two different words changes it too (positions are keyed).
	b2 := append([]byte(nil), b...)
	copy(b2[0:8], b[8:16])
	copy(b2[8:16], b[0:8])
	if ChunkHash(b2) == h {
		t.Fatal("swapping words 0 and 1 left the hash unchanged")
	}
	// Zero padding: a chunk and the same chunk with a zero byte appended
	// differ.
	if ChunkHash(b[:13]) == ChunkHash(append(append([]byte(nil), b[:13]...), 0)) {
		t.Fatal("appending a zero byte left the hash unchanged")
	}
}

func TestHashChunksParallelMatchesSerial(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	b := randBytes(r, 3<<20+4096+3) // chunks larger than one hashing piece, and a ragged tail
	for _, chunk := range []int{64, 4096, 1 << 20, 3 << 20, 4 << 20} {
		for _, workers := range []int{1, 2, 7} {
			h, err := HashChunks(b, chunk, 8, workers)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Sums) != NumChunks(int64(len(b)), chunk) {
				t.Fatalf("chunk %d: %d sums", chunk, len(h.Sums))
			}
			for k, got := range h.Sums {
				lo, hi := ChunkBounds(int64(len(b)), chunk, k)
				if want := refChunkHash(b[lo:hi]); got != want {
					t.Fatalf("chunk size %d, workers %d, chunk %d: %#x, want %#x", chunk, workers, k, got, want)
				}
			}
		}
	}
	if _, err := HashChunks(b, 100, 8, 1); err == nil {
		t.Fatal("chunk size 100 accepted")
	}
	if _, err := HashChunks(b, 64, 3, 1); err == nil {
		t.Fatal("element size 3 accepted")
	}
}

func TestChunkHashesMatches(t *testing.T) {
	h := &ChunkHashes{Len: 1000, ChunkSize: 128, ElemSize: 8, Sums: make([]uint64, 8)}
	if !h.Matches(1000, 128, 8) {
		t.Fatal("identical geometry does not match")
	}
	for _, c := range []struct {
		n           int64
		chunk, elem int
	}{{1001, 128, 8}, {1000, 64, 8}, {1000, 128, 4}} {
		if h.Matches(c.n, c.chunk, c.elem) {
			t.Errorf("matches %+v", c)
		}
	}
	var nilH *ChunkHashes
	if nilH.Matches(1000, 128, 8) {
		t.Error("nil matches")
	}
	c := h.Clone()
	c.Sums[0] = 1
	if h.Sums[0] != 0 {
		t.Error("Clone shares Sums")
	}
}
