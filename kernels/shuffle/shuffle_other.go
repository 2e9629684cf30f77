//go:build !amd64 || purego

package shuffle

var hasAVX2 = false

func shuffleFast(dst, src []byte, s, m int) int   { return 0 }
func unshuffleFast(dst, src []byte, s, m int) int { return 0 }
