//go:build amd64 && !purego

package shuffle

import "golang.org/x/sys/cpu"

//go:generate go run asm_gen.go

// hasAVX2 selects the assembly kernels; a variable so tests can run the
// pure-Go path on machines that have AVX2.
var hasAVX2 = cpu.X86.HasAVX2

// The kernels handle n elements (a multiple of 256/s) of a chunk whose
// planes are m bytes apart.
//
//go:noescape
func shuffle2AVX2(dst, src []byte, m, n int)

//go:noescape
func shuffle4AVX2(dst, src []byte, m, n int)

//go:noescape
func shuffle8AVX2(dst, src []byte, m, n int)

//go:noescape
func unshuffle2AVX2(dst, src []byte, m, n int)

//go:noescape
func unshuffle4AVX2(dst, src []byte, m, n int)

//go:noescape
func unshuffle8AVX2(dst, src []byte, m, n int)

// shuffleFast shuffles the leading elements of the count elements it can
// with AVX2 (planes m bytes apart) and returns how many it did; the
// portable code finishes the rest.
func shuffleFast(dst, src []byte, s, m, count int) int {
	if !hasAVX2 {
		return 0
	}
	n := count / (256 / s) * (256 / s)
	if n == 0 {
		return 0
	}
	switch s {
	case 2:
		shuffle2AVX2(dst, src, m, n)
	case 4:
		shuffle4AVX2(dst, src, m, n)
	case 8:
		shuffle8AVX2(dst, src, m, n)
	}
	return n
}

func unshuffleFast(dst, src []byte, s, m, count int) int {
	if !hasAVX2 {
		return 0
	}
	n := count / (256 / s) * (256 / s)
	if n == 0 {
		return 0
	}
	switch s {
	case 2:
		unshuffle2AVX2(dst, src, m, n)
	case 4:
		unshuffle4AVX2(dst, src, m, n)
	case 8:
		unshuffle8AVX2(dst, src, m, n)
	}
	return n
}

// The delta kernels handle a multiple of 128 bytes; see asm_gen.go.
//
//go:noescape
func delta2AVX2(dst, src []byte, n int)

//go:noescape
func delta4AVX2(dst, src []byte, n int)

//go:noescape
func delta8AVX2(dst, src []byte, n int)

//go:noescape
func undelta2AVX2(b []byte, prev uint64) uint64

//go:noescape
func undelta4AVX2(b []byte, prev uint64) uint64

//go:noescape
func undelta8AVX2(b []byte, prev uint64) uint64

// deltaFast differences the leading elements of src it can with AVX2 (the
// first one against prev) and returns how many bytes it did.
func deltaFast(dst, src []byte, s int, prev uint64) int {
	if !hasAVX2 || len(src) < s+128 {
		return 0
	}
	// The first element needs prev; every later one reads its
	// predecessor from src, s bytes back.
	putElem(dst, s, elem(src, s)-prev)
	n := (len(src) - s) / 128 * 128
	switch s {
	case 2:
		delta2AVX2(dst[s:s+n], src[:s+n], n)
	case 4:
		delta4AVX2(dst[s:s+n], src[:s+n], n)
	case 8:
		delta8AVX2(dst[s:s+n], src[:s+n], n)
	}
	return s + n
}

// undeltaFast turns the leading differences of b it can into running sums
// with AVX2 and returns how many bytes it did and the last sum.
func undeltaFast(b []byte, s int, prev uint64) (int, uint64) {
	n := len(b) / 128 * 128
	if !hasAVX2 || n == 0 {
		return 0, prev
	}
	switch s {
	case 2:
		prev = undelta2AVX2(b[:n], prev)
	case 4:
		prev = undelta4AVX2(b[:n], prev)
	case 8:
		prev = undelta8AVX2(b[:n], prev)
	}
	return n, prev
}
