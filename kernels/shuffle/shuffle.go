package shuffle

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Shuffle writes the byte planes of src into dst: for m = len(src)/elemSize
// whole elements, dst[p*m+i] = src[i*elemSize+p]; the len(src)%elemSize
// trailing bytes are copied unchanged to the end of dst. elemSize must be 1,
// 2, 4 or 8, len(dst) must equal len(src) and the two must not overlap; a
// violation is a programming error and panics.
func Shuffle(dst, src []byte, elemSize int) {
	check(dst, src, elemSize)
	m := len(src) / elemSize
	if elemSize == 1 {
		copy(dst, src)
		return
	}
	shuffleRange(dst, src, elemSize, m, m)
	tail := m * elemSize
	copy(dst[tail:], src[tail:])
}

// Unshuffle inverts Shuffle: dst[i*elemSize+p] = src[p*m+i], trailing bytes
// copied unchanged. The same preconditions as Shuffle apply.
func Unshuffle(dst, src []byte, elemSize int) {
	check(dst, src, elemSize)
	m := len(src) / elemSize
	if elemSize == 1 {
		copy(dst, src)
		return
	}
	unshuffleRange(dst, src, elemSize, m, m)
	tail := m * elemSize
	copy(dst[tail:], src[tail:])
}

// shuffleRange shuffles the n elements of src into planes m bytes apart
// (m >= n): dst[p*m+i] = src[i*s+p] for i < n. Shuffle passes the whole
// chunk (n = m); DeltaShuffle one block at a time.
func shuffleRange(dst, src []byte, s, m, n int) {
	i := shuffleFast(dst, src, s, m, n)
	switch s {
	case 2:
		shuffle2(dst, src, m, n, i)
	case 4:
		shuffle4(dst, src, m, n, i)
	case 8:
		shuffle8(dst, src, m, n, i)
	}
}

// unshuffleRange is the inverse of shuffleRange: dst[i*s+p] = src[p*m+i]
// for i < n.
func unshuffleRange(dst, src []byte, s, m, n int) {
	i := unshuffleFast(dst, src, s, m, n)
	switch s {
	case 2:
		unshuffle2(dst, src, m, n, i)
	case 4:
		unshuffle4(dst, src, m, n, i)
	case 8:
		unshuffle8(dst, src, m, n, i)
	}
}

// ValidElemSize reports whether s is an element size the filter supports.
func ValidElemSize(s int) bool { return s == 1 || s == 2 || s == 4 || s == 8 }

func check(dst, src []byte, elemSize int) {
	if !ValidElemSize(elemSize) {
		panic(fmt.Sprintf("shuffle: element size %d, want 1, 2, 4 or 8", elemSize))
	}
	if len(dst) != len(src) {
		panic(fmt.Sprintf("shuffle: len(dst) = %d != len(src) = %d", len(dst), len(src)))
	}
	if overlap(dst, src) {
		panic("shuffle: dst and src overlap")
	}
}

// overlap reports whether two non-empty slices share memory.
func overlap(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}

// transpose8 transposes the 8x8 byte matrix whose row r is wr (byte c of
// row r is bits 8c..8c+7): in the result, byte r of word c is the old byte c
// of row r. Three rounds swap 4x4, 2x2 and 1x1 blocks across the diagonal;
// the words stay in registers (a [8]uint64 would be spilled to the stack).
func transpose8(w0, w1, w2, w3, w4, w5, w6, w7 uint64) (uint64, uint64, uint64, uint64, uint64, uint64, uint64, uint64) {
	const m4, m2, m1 = 0x00000000FFFFFFFF, 0x0000FFFF0000FFFF, 0x00FF00FF00FF00FF
	var t uint64
	t = ((w0 >> 32) ^ w4) & m4
	w0 ^= t << 32
	w4 ^= t
	t = ((w1 >> 32) ^ w5) & m4
	w1 ^= t << 32
	w5 ^= t
	t = ((w2 >> 32) ^ w6) & m4
	w2 ^= t << 32
	w6 ^= t
	t = ((w3 >> 32) ^ w7) & m4
	w3 ^= t << 32
	w7 ^= t

	t = ((w0 >> 16) ^ w2) & m2
	w0 ^= t << 16
	w2 ^= t
	t = ((w1 >> 16) ^ w3) & m2
	w1 ^= t << 16
	w3 ^= t
	t = ((w4 >> 16) ^ w6) & m2
	w4 ^= t << 16
	w6 ^= t
	t = ((w5 >> 16) ^ w7) & m2
	w5 ^= t << 16
	w7 ^= t

	t = ((w0 >> 8) ^ w1) & m1
	w0 ^= t << 8
	w1 ^= t
	t = ((w2 >> 8) ^ w3) & m1
	w2 ^= t << 8
	w3 ^= t
	t = ((w4 >> 8) ^ w5) & m1
	w4 ^= t << 8
	w5 ^= t
	t = ((w6 >> 8) ^ w7) & m1
	w6 ^= t << 8
	w7 ^= t
	return w0, w1, w2, w3, w4, w5, w6, w7
}

var le = binary.LittleEndian

// The portable kernels below handle elements i..n-1 of src, whose planes
// lie m bytes apart in dst (m >= n).

// shuffle8 handles 8 elements (one 64-byte tile) per round: the tile's rows
// are the elements, its columns the planes.
func shuffle8(dst, src []byte, m, n, i int) {
	for ; i+8 <= n; i += 8 {
		t := src[i*8 : i*8+64 : i*8+64]
		w0, w1, w2, w3, w4, w5, w6, w7 := transpose8(
			le.Uint64(t[0:]), le.Uint64(t[8:]), le.Uint64(t[16:]), le.Uint64(t[24:]),
			le.Uint64(t[32:]), le.Uint64(t[40:]), le.Uint64(t[48:]), le.Uint64(t[56:]))
		d := dst[i : 7*m+i+8]
		le.PutUint64(d[0:], w0)
		le.PutUint64(d[m:], w1)
		le.PutUint64(d[2*m:], w2)
		le.PutUint64(d[3*m:], w3)
		le.PutUint64(d[4*m:], w4)
		le.PutUint64(d[5*m:], w5)
		le.PutUint64(d[6*m:], w6)
		le.PutUint64(d[7*m:], w7)
	}
	for ; i < n; i++ {
		for p := range 8 {
			dst[p*m+i] = src[i*8+p]
		}
	}
}

func unshuffle8(dst, src []byte, m, n, i int) {
	for ; i+8 <= n; i += 8 {
		s := src[i : 7*m+i+8]
		w0, w1, w2, w3, w4, w5, w6, w7 := transpose8(
			le.Uint64(s[0:]), le.Uint64(s[m:]), le.Uint64(s[2*m:]), le.Uint64(s[3*m:]),
			le.Uint64(s[4*m:]), le.Uint64(s[5*m:]), le.Uint64(s[6*m:]), le.Uint64(s[7*m:]))
		t := dst[i*8 : i*8+64 : i*8+64]
		le.PutUint64(t[0:], w0)
		le.PutUint64(t[8:], w1)
		le.PutUint64(t[16:], w2)
		le.PutUint64(t[24:], w3)
		le.PutUint64(t[32:], w4)
		le.PutUint64(t[40:], w5)
		le.PutUint64(t[48:], w6)
		le.PutUint64(t[56:], w7)
	}
	for ; i < n; i++ {
		for p := range 8 {
			dst[i*8+p] = src[p*m+i]
		}
	}
}

// pair32 loads element r (low half) and element r+8 (high half) of a
// 16-element tile of 4-byte elements.
func pair32(t []byte, r int) uint64 {
	return uint64(le.Uint32(t[r*4:])) | uint64(le.Uint32(t[32+r*4:]))<<32
}

// shuffle4 handles 16 elements per round: row r of the tile holds element
// i+r in its low half and element i+8+r in its high half, so after the
// transpose word p is plane p of elements i..i+7 and word 4+p plane p of
// elements i+8..i+15.
func shuffle4(dst, src []byte, m, n, i int) {
	for ; i+16 <= n; i += 16 {
		t := src[i*4 : i*4+64 : i*4+64]
		w0, w1, w2, w3, w4, w5, w6, w7 := transpose8(
			pair32(t, 0), pair32(t, 1), pair32(t, 2), pair32(t, 3),
			pair32(t, 4), pair32(t, 5), pair32(t, 6), pair32(t, 7))
		d := dst[i : 3*m+i+16]
		le.PutUint64(d[0:], w0)
		le.PutUint64(d[8:], w4)
		le.PutUint64(d[m:], w1)
		le.PutUint64(d[m+8:], w5)
		le.PutUint64(d[2*m:], w2)
		le.PutUint64(d[2*m+8:], w6)
		le.PutUint64(d[3*m:], w3)
		le.PutUint64(d[3*m+8:], w7)
	}
	for ; i < n; i++ {
		for p := range 4 {
			dst[p*m+i] = src[i*4+p]
		}
	}
}

func unshuffle4(dst, src []byte, m, n, i int) {
	for ; i+16 <= n; i += 16 {
		s := src[i : 3*m+i+16]
		w0, w1, w2, w3, w4, w5, w6, w7 := transpose8(
			le.Uint64(s[0:]), le.Uint64(s[m:]), le.Uint64(s[2*m:]), le.Uint64(s[3*m:]),
			le.Uint64(s[8:]), le.Uint64(s[m+8:]), le.Uint64(s[2*m+8:]), le.Uint64(s[3*m+8:]))
		t := dst[i*4 : i*4+64 : i*4+64]
		le.PutUint32(t[0:], uint32(w0))
		le.PutUint32(t[4:], uint32(w1))
		le.PutUint32(t[8:], uint32(w2))
		le.PutUint32(t[12:], uint32(w3))
		le.PutUint32(t[16:], uint32(w4))
		le.PutUint32(t[20:], uint32(w5))
		le.PutUint32(t[24:], uint32(w6))
		le.PutUint32(t[28:], uint32(w7))
		le.PutUint32(t[32:], uint32(w0>>32))
		le.PutUint32(t[36:], uint32(w1>>32))
		le.PutUint32(t[40:], uint32(w2>>32))
		le.PutUint32(t[44:], uint32(w3>>32))
		le.PutUint32(t[48:], uint32(w4>>32))
		le.PutUint32(t[52:], uint32(w5>>32))
		le.PutUint32(t[56:], uint32(w6>>32))
		le.PutUint32(t[60:], uint32(w7>>32))
	}
	for ; i < n; i++ {
		for p := range 4 {
			dst[i*4+p] = src[p*m+i]
		}
	}
}

// shuffle2 unzips 8 elements (two words) per round: the even bytes of the
// 16 are plane 0, the odd bytes plane 1.
func shuffle2(dst, src []byte, m, n, i int) {
	for ; i+8 <= n; i += 8 {
		t := src[i*2 : i*2+16 : i*2+16]
		a, b := le.Uint64(t), le.Uint64(t[8:])
		le.PutUint64(dst[i:], compact(a)|compact(b)<<32)
		le.PutUint64(dst[m+i:], compact(a>>8)|compact(b>>8)<<32)
	}
	for ; i < n; i++ {
		dst[i] = src[i*2]
		dst[m+i] = src[i*2+1]
	}
}

func unshuffle2(dst, src []byte, m, n, i int) {
	for ; i+8 <= n; i += 8 {
		lo, hi := le.Uint64(src[i:]), le.Uint64(src[m+i:])
		t := dst[i*2 : i*2+16 : i*2+16]
		le.PutUint64(t, spread(lo)|spread(hi)<<8)
		le.PutUint64(t[8:], spread(lo>>32)|spread(hi>>32)<<8)
	}
	for ; i < n; i++ {
		dst[i*2] = src[i]
		dst[i*2+1] = src[m+i]
	}
}

// compact gathers the even bytes of x (bytes 0, 2, 4, 6) into its low 32
// bits.
func compact(x uint64) uint64 {
	x &= 0x00FF00FF00FF00FF
	x = (x | x>>8) & 0x0000FFFF0000FFFF
	return (x | x>>16) & 0x00000000FFFFFFFF
}

// spread is the inverse of compact: the low 4 bytes of x go to bytes 0, 2,
// 4 and 6.
func spread(x uint64) uint64 {
	x &= 0x00000000FFFFFFFF
	x = (x | x<<16) & 0x0000FFFF0000FFFF
	return (x | x<<8) & 0x00FF00FF00FF00FF
}
