package kernels

import (
	"encoding/binary"
	"fmt"
)

// The chunk hash finds chunks that changed since the base cut, on the CPU and
// on the GPU, with identical results. It is not the content address (ckpt
// uses BLAKE3-256 of the filtered chunk for that); it only decides whether a
// chunk is sent again.
//
// Definition, for a chunk of n bytes b[0..n):
//
//	w_k  = little-endian uint64 of b[8k .. 8k+8), the last partial word
//	       padded with zero bytes; k = 0 .. ceil(n/8)-1
//	S    = sum over k of mix(w_k XOR (k+1)*K1)        (mod 2^64)
//	hash = mix(S XOR n*K2)
//
// with mix the MurmurHash3 64-bit finalizer (fmix64), K1 = 0x9E3779B97F4A7C15
// and K2 = 0xC2B2AE3D27D4EB4F, all products mod 2^64.
//
// Why this shape: every word is mixed independently and the results are
// summed, and integer addition is associative and commutative, so any
// partition of the words over threads, warps or cores, reduced in any order
// (GPU atomics included), gives the same bits. That is the "tree" that
// parallelizes. mix is a bijection and the key differs per position, so a
// chunk that differs from the base in one word always hashes differently;
// otherwise a change escapes detection with probability about 2^-64 for
// data that is not built against the hash. Mixing n in last separates
// chunks whose zero padding would otherwise make them equal.
const (
	hashK1 = 0x9E3779B97F4A7C15
	hashK2 = 0xC2B2AE3D27D4EB4F
)

// ChunkHashes are the chunk hashes of one buffer's contents, cut into chunks
// of ChunkSize bytes. They serve as CaptureOptions.Base of a later capture
// of the same buffer.
type ChunkHashes struct {
	Len       int64    // buffer length in bytes
	ChunkSize int      // bytes per chunk
	ElemSize  int      // the buffer's element size (selects the store's shuffle)
	Sums      []uint64 // ChunkHash of chunk k, NumChunks(Len, ChunkSize) of them
}

// Matches reports whether h can serve as the base of a capture of a buffer of
// n bytes and elemSize with chunkSize: chunk k must name the same bytes and
// be filtered the same way.
func (h *ChunkHashes) Matches(n int64, chunkSize, elemSize int) bool {
	return h != nil && h.Len == n && h.ChunkSize == chunkSize && h.ElemSize == elemSize &&
		len(h.Sums) == NumChunks(n, chunkSize)
}

// Clone returns a deep copy.
func (h *ChunkHashes) Clone() *ChunkHashes {
	if h == nil {
		return nil
	}
	c := *h
	c.Sums = append([]uint64(nil), h.Sums...)
	return &c
}

// Mix64 is the MurmurHash3 fmix64 finalizer, a bijection on uint64.
func Mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// ChunkHash returns the chunk hash of b (see the definition above).
func ChunkHash(b []byte) uint64 {
	return HashFinish(HashSum(b, 0), len(b))
}

// HashSum returns the partial sum S over the words of b, where b starts at
// word firstWord of its chunk (b's length must be a multiple of 8 unless b
// ends the chunk). Partial sums of the pieces of a chunk add up (mod 2^64)
// to the chunk's S; HashFinish turns S into the hash.
func HashSum(b []byte, firstWord int) uint64 {
	k1 := uint64(hashK1) // wrapping products need a typed variable
	key := uint64(firstWord+1) * k1
	var s0, s1, s2, s3 uint64
	// Four independent sums give the core four mixes to overlap; the
	// result is the same as one sum.
	for len(b) >= 32 {
		s0 += Mix64(binary.LittleEndian.Uint64(b[0:8]) ^ key)
		s1 += Mix64(binary.LittleEndian.Uint64(b[8:16]) ^ (key + k1))
		s2 += Mix64(binary.LittleEndian.Uint64(b[16:24]) ^ (key + 2*k1))
		s3 += Mix64(binary.LittleEndian.Uint64(b[24:32]) ^ (key + 3*k1))
		key += 4 * k1
		b = b[32:]
	}
	for len(b) >= 8 {
		s0 += Mix64(binary.LittleEndian.Uint64(b) ^ key)
		key += k1
		b = b[8:]
	}
	if len(b) > 0 {
		var tail [8]byte
		copy(tail[:], b)
		s0 += Mix64(binary.LittleEndian.Uint64(tail[:]) ^ key)
	}
	return s0 + s1 + s2 + s3
}

// HashFinish turns a chunk's sum S and its length n into its hash.
func HashFinish(sum uint64, n int) uint64 {
	return Mix64(sum ^ uint64(n)*hashK2)
}

// HashChunks returns the chunk hashes of b cut into chunks of chunkSize
// bytes, computed on up to workers goroutines (<= 0: GOMAXPROCS).
func HashChunks(b []byte, chunkSize, elemSize, workers int) (*ChunkHashes, error) {
	if chunkSize <= 0 || chunkSize%64 != 0 {
		return nil, fmt.Errorf("kernels: chunk size %d is not a positive multiple of 64", chunkSize)
	}
	if !ValidElemSize(elemSize) {
		return nil, fmt.Errorf("kernels: element size %d is not 1, 2, 4 or 8", elemSize)
	}
	n := int64(len(b))
	h := &ChunkHashes{Len: n, ChunkSize: chunkSize, ElemSize: elemSize, Sums: make([]uint64, NumChunks(n, chunkSize))}
	hashInto(h.Sums, b, chunkSize, workers)
	return h, nil
}

// hashInto fills sums[k] with the hash of chunk k of b. Work is split into
// pieces of at most hashPiece bytes so that one large chunk also spreads
// over the cores.
func hashInto(sums []uint64, b []byte, chunkSize, workers int) {
	const hashPiece = 1 << 20 // multiple of 64, so pieces start on words
	piece := min(chunkSize, hashPiece)
	perChunk := (chunkSize + piece - 1) / piece
	partial := make([]uint64, len(sums)*perChunk)
	parallelFor(len(partial), workers, piecesPerTask(piece), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			k, p := t/perChunk, t%perChunk
			clo, chi := ChunkBounds(int64(len(b)), chunkSize, k)
			plo := clo + int64(p*piece)
			if plo >= chi {
				continue
			}
			phi := min(plo+int64(piece), chi)
			partial[t] = HashSum(b[plo:phi], p*piece/8)
		}
	})
	for k := range sums {
		var s uint64
		for _, v := range partial[k*perChunk : (k+1)*perChunk] {
			s += v
		}
		clo, chi := ChunkBounds(int64(len(b)), chunkSize, k)
		sums[k] = HashFinish(s, int(chi-clo))
	}
}

// piecesPerTask sizes tasks of about a megabyte of work.
func piecesPerTask(pieceBytes int) int {
	return max(1, (1<<20)/pieceBytes)
}
