package shuffle

import "fmt"

// DeltaShuffle writes the delta+shuffle filter of src into dst. Each of the
// m = len(src)/elemSize whole elements, read as a little-endian unsigned
// integer of elemSize bytes, is replaced by its difference from the
// previous element (the first by itself: the difference from 0), modulo
// 2^(8*elemSize); the differences are then shuffled exactly as Shuffle
// does, and the len(src)%elemSize trailing bytes are copied unchanged to
// the end. On smooth data the high bytes of consecutive elements are
// nearly equal, so their differences put long runs of 0x00 and 0xff into
// the high planes, which compress better than the planes themselves.
//
// elemSize must be 2, 4 or 8, len(dst) == len(src), and the two must not
// overlap; a violation is a programming error and panics.
//
// The chunk is processed in blocks that stay in the L1 cache: a block's
// differences go to a stack buffer that the shuffle kernel then reads, so
// the delta costs no extra pass over memory.
func DeltaShuffle(dst, src []byte, elemSize int) {
	checkDelta(dst, src, elemSize)
	s := elemSize
	m := len(src) / s
	var tmp [deltaBlock]byte
	var prev uint64
	per := deltaBlock / s
	for i := 0; i < m; i += per {
		n := min(per, m-i)
		t := tmp[:n*s]
		prev = delta(t, src[i*s:(i+n)*s], s, prev)
		shuffleRange(dst[i:], t, s, m, n)
	}
	tail := m * s
	copy(dst[tail:], src[tail:])
}

// DeltaUnshuffle inverts DeltaShuffle: it unshuffles src into dst and
// replaces each element by the running sum of the elements up to it. The
// preconditions of DeltaShuffle apply.
func DeltaUnshuffle(dst, src []byte, elemSize int) {
	checkDelta(dst, src, elemSize)
	s := elemSize
	m := len(src) / s
	var prev uint64
	per := deltaBlock / s
	for i := 0; i < m; i += per {
		n := min(per, m-i)
		out := dst[i*s : (i+n)*s]
		unshuffleRange(out, src[i:], s, m, n)
		prev = undelta(out, s, prev)
	}
	tail := m * s
	copy(dst[tail:], src[tail:])
}

// deltaBlock is the number of bytes DeltaShuffle differences before it
// shuffles them: a multiple of 256 (the AVX2 kernels' round), small enough
// to stay in L1 next to the source block.
const deltaBlock = 8 << 10

func checkDelta(dst, src []byte, elemSize int) {
	if elemSize != 2 && elemSize != 4 && elemSize != 8 {
		panic(fmt.Sprintf("shuffle: delta with element size %d, want 2, 4 or 8", elemSize))
	}
	check(dst, src, elemSize)
}

// delta writes the differences of the elements of src (len(src) a multiple
// of s) into dst, starting from prev, and returns the last element.
func delta(dst, src []byte, s int, prev uint64) uint64 {
	if i := deltaFast(dst, src, s, prev); i > 0 {
		prev = elem(src[i-s:], s)
		dst, src = dst[i:], src[i:]
	}
	switch s {
	case 2:
		return delta16(dst, src, prev)
	case 4:
		return delta32(dst, src, prev)
	}
	return delta64(dst, src, prev)
}

// undelta replaces the elements of b (len(b) a multiple of s) by their
// running sums, starting from prev, and returns the last sum.
func undelta(b []byte, s int, prev uint64) uint64 {
	i, prev := undeltaFast(b, s, prev)
	b = b[i:]
	switch s {
	case 2:
		return undelta16(b, prev)
	case 4:
		return undelta32(b, prev)
	}
	return undelta64(b, prev)
}

// elem reads the element of size s at the start of b.
func elem(b []byte, s int) uint64 {
	switch s {
	case 2:
		return uint64(le.Uint16(b))
	case 4:
		return uint64(le.Uint32(b))
	}
	return le.Uint64(b)
}

// putElem writes the low s bytes of v at the start of b.
func putElem(b []byte, s int, v uint64) {
	switch s {
	case 2:
		le.PutUint16(b, uint16(v))
	case 4:
		le.PutUint32(b, uint32(v))
	default:
		le.PutUint64(b, v)
	}
}

// The portable 16- and 32-bit kernels work on four or two elements held in
// one 64-bit word (SWAR): lane-wise subtraction and addition without
// carries or borrows crossing lanes, by computing the lanes' top bits
// apart. They finish what the AVX2 kernels leave and serve other machines.
const (
	hi16 = 0x8000800080008000
	hi32 = 0x8000000080000000
)

// sub16 is the lane-wise difference a - b of four 16-bit lanes.
func sub16(a, b uint64) uint64 { return ((a | hi16) - (b &^ hi16)) ^ ((a ^ ^b) & hi16) }

// add16 is the lane-wise sum a + b of four 16-bit lanes.
func add16(a, b uint64) uint64 { return ((a &^ hi16) + (b &^ hi16)) ^ ((a ^ b) & hi16) }

func sub32(a, b uint64) uint64 { return ((a | hi32) - (b &^ hi32)) ^ ((a ^ ^b) & hi32) }

func delta16(dst, src []byte, prev uint64) uint64 {
	p := prev & 0xffff
	dst = dst[:len(src)]
	for len(src) >= 16 {
		a, b := le.Uint64(src), le.Uint64(src[8:16])
		// Each lane minus the lane below it; lane 0 minus the carried
		// last element.
		le.PutUint64(dst, sub16(a, a<<16|p))
		le.PutUint64(dst[8:16], sub16(b, b<<16|a>>48))
		p = b >> 48
		src, dst = src[16:], dst[16:]
	}
	for len(src) >= 2 {
		v := uint64(le.Uint16(src))
		le.PutUint16(dst, uint16(v-p))
		p = v
		src, dst = src[2:], dst[2:]
	}
	return p
}

func undelta16(b []byte, prev uint64) uint64 {
	// Broadcast of the running sum into every lane.
	const ones = 0x0001000100010001
	p := (prev & 0xffff) * ones
	for len(b) >= 8 {
		x := le.Uint64(b)
		// Prefix sum inside the word: lane k becomes the sum of lanes
		// 0..k, then the carried sum is added to every lane.
		x = add16(x, x<<16)
		x = add16(x, x<<32)
		x = add16(x, p)
		le.PutUint64(b, x)
		p = (x >> 48) * ones
		b = b[8:]
	}
	q := p & 0xffff
	for len(b) >= 2 {
		q = (q + uint64(le.Uint16(b))) & 0xffff
		le.PutUint16(b, uint16(q))
		b = b[2:]
	}
	return q
}

func delta32(dst, src []byte, prev uint64) uint64 {
	p := prev & 0xffffffff
	dst = dst[:len(src)]
	for len(src) >= 16 {
		a, b := le.Uint64(src), le.Uint64(src[8:16])
		le.PutUint64(dst, sub32(a, a<<32|p))
		le.PutUint64(dst[8:16], sub32(b, b<<32|a>>32))
		p = b >> 32
		src, dst = src[16:], dst[16:]
	}
	for len(src) >= 4 {
		v := uint64(le.Uint32(src))
		le.PutUint32(dst, uint32(v-p))
		p = v
		src, dst = src[4:], dst[4:]
	}
	return p
}

func undelta32(b []byte, prev uint64) uint64 {
	p := uint32(prev)
	for len(b) >= 16 {
		x0 := le.Uint32(b) + p
		x1 := le.Uint32(b[4:]) + x0
		x2 := le.Uint32(b[8:]) + x1
		x3 := le.Uint32(b[12:16]) + x2
		le.PutUint32(b, x0)
		le.PutUint32(b[4:], x1)
		le.PutUint32(b[8:], x2)
		le.PutUint32(b[12:16], x3)
		p = x3
		b = b[16:]
	}
	for len(b) >= 4 {
		p += le.Uint32(b)
		le.PutUint32(b, p)
		b = b[4:]
	}
	return uint64(p)
}

func delta64(dst, src []byte, prev uint64) uint64 {
	dst = dst[:len(src)]
	for len(src) >= 32 {
		a, b, c, d := le.Uint64(src), le.Uint64(src[8:]), le.Uint64(src[16:]), le.Uint64(src[24:32])
		le.PutUint64(dst, a-prev)
		le.PutUint64(dst[8:], b-a)
		le.PutUint64(dst[16:], c-b)
		le.PutUint64(dst[24:32], d-c)
		prev = d
		src, dst = src[32:], dst[32:]
	}
	for len(src) >= 8 {
		v := le.Uint64(src)
		le.PutUint64(dst, v-prev)
		prev = v
		src, dst = src[8:], dst[8:]
	}
	return prev
}

func undelta64(b []byte, prev uint64) uint64 {
	for len(b) >= 32 {
		x0 := le.Uint64(b) + prev
		x1 := le.Uint64(b[8:]) + x0
		x2 := le.Uint64(b[16:]) + x1
		x3 := le.Uint64(b[24:32]) + x2
		le.PutUint64(b, x0)
		le.PutUint64(b[8:], x1)
		le.PutUint64(b[16:], x2)
		le.PutUint64(b[24:32], x3)
		prev = x3
		b = b[32:]
	}
	for len(b) >= 8 {
		prev += le.Uint64(b)
		le.PutUint64(b, prev)
		b = b[8:]
	}
	return prev
}
