package shuffle

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// refShuffle is the byte-at-a-time definition from the format spec.
func refShuffle(dst, src []byte, s int) {
	m := len(src) / s
	for p := 0; p < s; p++ {
		for i := 0; i < m; i++ {
			dst[p*m+i] = src[i*s+p]
		}
	}
	copy(dst[m*s:], src[m*s:])
}

func refUnshuffle(dst, src []byte, s int) {
	m := len(src) / s
	for p := 0; p < s; p++ {
		for i := 0; i < m; i++ {
			dst[i*s+p] = src[p*m+i]
		}
	}
	copy(dst[m*s:], src[m*s:])
}

func checkAgainstRef(t testing.TB, src []byte, s int) {
	t.Helper()
	want := make([]byte, len(src))
	got := make([]byte, len(src))
	refShuffle(want, src, s)
	Shuffle(got, src, s)
	if !bytes.Equal(got, want) {
		t.Fatalf("Shuffle(len %d, s %d) differs from the reference at byte %d", len(src), s, firstDiff(got, want))
	}
	back := make([]byte, len(src))
	Unshuffle(back, got, s)
	if !bytes.Equal(back, src) {
		t.Fatalf("Unshuffle(Shuffle(x)) != x for len %d, s %d (byte %d)", len(src), s, firstDiff(back, src))
	}
	refUnshuffle(want, got, s)
	if !bytes.Equal(want, src) {
		t.Fatalf("reference unshuffle disagrees for len %d, s %d", len(src), s)
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []int{1, 2, 4, 8} {
		// Every length around the tile boundaries of each element size, plus
		// a few large ones.
		for n := 0; n < 300; n++ {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(rng.Uint32())
			}
			checkAgainstRef(t, src, s)
		}
		for _, n := range []int{4096, 4096 + 7, 65536 + 63, 1 << 20} {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(rng.Uint32())
			}
			checkAgainstRef(t, src, s)
		}
	}
}

// TestPortablePath runs the reference comparison with the assembly kernels
// switched off, so the fallback is covered on machines that have AVX2.
func TestPortablePath(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no assembly kernels on this machine: TestMatchesReference already covers the portable path")
	}
	hasAVX2 = false
	defer func() { hasAVX2 = true }()
	TestMatchesReference(t)
}

func TestSpecExample(t *testing.T) {
	// Two float32-sized elements and one trailing byte.
	src := []byte{0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23, 0xff}
	want := []byte{0x10, 0x20, 0x11, 0x21, 0x12, 0x22, 0x13, 0x23, 0xff}
	got := make([]byte, len(src))
	Shuffle(got, src, 4)
	if !bytes.Equal(got, want) {
		t.Fatalf("Shuffle = % x, want % x", got, want)
	}
}

func TestPanicsOnMisuse(t *testing.T) {
	buf := make([]byte, 64)
	cases := []struct {
		name     string
		dst, src []byte
		s        int
	}{
		{"elem size 3", make([]byte, 8), make([]byte, 8), 3},
		{"elem size 0", make([]byte, 8), make([]byte, 8), 0},
		{"length mismatch", make([]byte, 8), make([]byte, 9), 4},
		{"same slice", buf, buf, 8},
		{"overlap", buf[8:40], buf[0:32], 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			Shuffle(c.dst, c.src, c.s)
		})
	}
	// Adjacent but disjoint halves of one array are fine.
	Shuffle(buf[32:], buf[:32], 8)
}

func FuzzShuffle(f *testing.F) {
	f.Add([]byte{}, uint8(8))
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?"), uint8(4))
	f.Add(bytes.Repeat([]byte{1, 2, 3}, 100), uint8(2))
	f.Fuzz(func(t *testing.T, src []byte, sel uint8) {
		s := []int{1, 2, 4, 8}[sel%4]
		checkAgainstRef(t, src, s)
	})
}

// BenchmarkShuffle measures one 4 MiB chunk (the store's default chunk size)
// per operation; "portable" is the pure-Go path, "reference" the
// byte-at-a-time definition.
func BenchmarkShuffle(b *testing.B) {
	const n = 4 << 20
	src := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	dst := make([]byte, n)
	for _, s := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("shuffle/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				Shuffle(dst, src, s)
			}
		})
		b.Run(fmt.Sprintf("unshuffle/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				Unshuffle(dst, src, s)
			}
		})
		b.Run(fmt.Sprintf("portable/s=%d", s), func(b *testing.B) {
			saved := hasAVX2
			hasAVX2 = false
			defer func() { hasAVX2 = saved }()
			b.SetBytes(n)
			for b.Loop() {
				Shuffle(dst, src, s)
			}
		})
		b.Run(fmt.Sprintf("reference/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				refShuffle(dst, src, s)
			}
		})
	}
	b.Run("memcpy", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			copy(dst, src)
		}
	})
}
