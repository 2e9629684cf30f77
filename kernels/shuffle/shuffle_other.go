//go:build !amd64 || purego

package shuffle

var hasAVX2 = false

func shuffleFast(dst, src []byte, s, m, n int) int   { return 0 }
func unshuffleFast(dst, src []byte, s, m, n int) int { return 0 }

func deltaFast(dst, src []byte, s int, prev uint64) int      { return 0 }
func undeltaFast(b []byte, s int, prev uint64) (int, uint64) { return 0, prev }
