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

// shuffleFast shuffles the leading elements it can with AVX2 and returns
// how many it did; the portable code finishes the rest.
func shuffleFast(dst, src []byte, s, m int) int {
	if !hasAVX2 {
		return 0
	}
	n := m / (256 / s) * (256 / s)
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

func unshuffleFast(dst, src []byte, s, m int) int {
	if !hasAVX2 {
		return 0
	}
	n := m / (256 / s) * (256 / s)
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
