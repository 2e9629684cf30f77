package shuffle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refDelta is the definition from the format spec, one element at a time:
// element i becomes x[i] - x[i-1] (x[-1] = 0) modulo 2^(8s), trailing
// bytes unchanged; the result is then shuffled.
func refDelta(src []byte, s int) []byte {
	m := len(src) / s
	out := append([]byte(nil), src...)
	mask := uint64(1)<<(8*s) - 1
	if s == 8 {
		mask = math.MaxUint64
	}
	elem := func(b []byte, i int) uint64 {
		var buf [8]byte
		copy(buf[:], b[i*s:(i+1)*s])
		return binary.LittleEndian.Uint64(buf[:])
	}
	var prev uint64
	for i := 0; i < m; i++ {
		v := elem(src, i)
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], (v-prev)&mask)
		copy(out[i*s:], buf[:s])
		prev = v
	}
	return out
}

func checkDeltaAgainstRef(t testing.TB, src []byte, s int) {
	t.Helper()
	want := make([]byte, len(src))
	refShuffle(want, refDelta(src, s), s)
	got := make([]byte, len(src))
	DeltaShuffle(got, src, s)
	if !bytes.Equal(got, want) {
		t.Fatalf("DeltaShuffle(len %d, s %d) differs from the reference at byte %d", len(src), s, firstDiff(got, want))
	}
	back := make([]byte, len(src))
	DeltaUnshuffle(back, got, s)
	if !bytes.Equal(back, src) {
		t.Fatalf("DeltaUnshuffle(DeltaShuffle(x)) != x for len %d, s %d (byte %d)", len(src), s, firstDiff(back, src))
	}
}

// smooth is a slowly varying float64 or float32 series, the data the
// filter is for, with carries and borrows across every byte of the
// differences.
func smooth(n, s int) []byte {
	b := make([]byte, n)
	for i := 0; i+s <= n; i += s {
		x := 300 + 20*math.Sin(float64(i)/977)
		switch s {
		case 8:
			binary.LittleEndian.PutUint64(b[i:], math.Float64bits(x))
		case 4:
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(x)))
		case 2:
			binary.LittleEndian.PutUint16(b[i:], uint16(int16(x*50)))
		}
	}
	return b
}

func TestDeltaMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, s := range []int{2, 4, 8} {
		for n := 0; n < 600; n++ {
			checkDeltaAgainstRef(t, random(n), s)
		}
		// Around the block size, so that the running value is carried
		// across blocks, and a whole 4 MiB chunk with a tail.
		for _, n := range []int{deltaBlock - 1, deltaBlock, deltaBlock + s, deltaBlock + 255, 3*deltaBlock + 7, 65536 + 63, 4<<20 + 5} {
			checkDeltaAgainstRef(t, random(n), s)
			checkDeltaAgainstRef(t, smooth(n, s), s)
		}
		// Extremes: every difference wraps.
		for _, fill := range []byte{0x00, 0xff} {
			b := bytes.Repeat([]byte{fill}, 1000+s-1)
			for i := 0; i < len(b); i += 2 * s {
				b[i] ^= 0xff
			}
			checkDeltaAgainstRef(t, b, s)
		}
	}
}

func TestDeltaPortablePath(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no assembly kernels on this machine: TestDeltaMatchesReference already covers the portable path")
	}
	hasAVX2 = false
	defer func() { hasAVX2 = true }()
	TestDeltaMatchesReference(t)
}

// TestDeltaSpecExample pins the byte layout of docs/format.md's example.
func TestDeltaSpecExample(t *testing.T) {
	// Three 16-bit elements 0x0102, 0x0105, 0x00ff and a trailing byte:
	// differences 0x0102, 0x0003, 0xfffa (wrapped), shuffled into planes.
	src := []byte{0x02, 0x01, 0x05, 0x01, 0xff, 0x00, 0xee}
	want := []byte{0x02, 0x03, 0xfa, 0x01, 0x00, 0xff, 0xee}
	got := make([]byte, len(src))
	DeltaShuffle(got, src, 2)
	if !bytes.Equal(got, want) {
		t.Fatalf("DeltaShuffle = % x, want % x", got, want)
	}
}

func TestDeltaPanicsOnMisuse(t *testing.T) {
	buf := make([]byte, 64)
	cases := []struct {
		name     string
		dst, src []byte
		s        int
	}{
		{"elem size 1", make([]byte, 8), make([]byte, 8), 1},
		{"elem size 3", make([]byte, 8), make([]byte, 8), 3},
		{"length mismatch", make([]byte, 8), make([]byte, 9), 4},
		{"overlap", buf[8:40], buf[0:32], 8},
	}
	for _, c := range cases {
		for name, fn := range map[string]func([]byte, []byte, int){"DeltaShuffle": DeltaShuffle, "DeltaUnshuffle": DeltaUnshuffle} {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Fatal("no panic")
					}
				}()
				fn(c.dst, c.src, c.s)
			})
		}
	}
}

func FuzzDeltaShuffle(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{0x02, 0x01, 0x05, 0x01, 0xff, 0x00, 0xee}, uint8(0))
	f.Add(smooth(1000, 4), uint8(1))
	f.Add(smooth(777, 8), uint8(2))
	f.Fuzz(func(t *testing.T, src []byte, sel uint8) {
		checkDeltaAgainstRef(t, src, []int{2, 4, 8}[sel%3])
	})
}

// FuzzDeltaUnshuffle decodes arbitrary bytes (what a reader gets from a
// chunk): the inverse must take any input, and filtering its output again
// must give the input back.
func FuzzDeltaUnshuffle(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{0x02, 0x03, 0xfa, 0x01, 0x00, 0xff, 0xee}, uint8(0))
	f.Add(bytes.Repeat([]byte{0x80}, 300), uint8(1))
	f.Add(smooth(1001, 8), uint8(2))
	f.Fuzz(func(t *testing.T, src []byte, sel uint8) {
		s := []int{2, 4, 8}[sel%3]
		out := make([]byte, len(src))
		DeltaUnshuffle(out, src, s)
		again := make([]byte, len(src))
		DeltaShuffle(again, out, s)
		if !bytes.Equal(again, src) {
			t.Fatalf("DeltaShuffle(DeltaUnshuffle(x)) != x for len %d, s %d (byte %d)", len(src), s, firstDiff(again, src))
		}
	})
}

// BenchmarkDelta measures one 4 MiB chunk per operation: the fused filter
// and its inverse against plain shuffle, and the delta pass alone (pure
// Go, in L1-sized blocks like the fused kernel, and over the whole chunk).
func BenchmarkDelta(b *testing.B) {
	const n = 4 << 20
	dst := make([]byte, n)
	for _, s := range []int{2, 4, 8} {
		src := smooth(n, s)
		filtered := make([]byte, n)
		DeltaShuffle(filtered, src, s)
		b.Run(fmt.Sprintf("delta-shuffle/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				DeltaShuffle(dst, src, s)
			}
		})
		b.Run(fmt.Sprintf("delta-unshuffle/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				DeltaUnshuffle(dst, filtered, s)
			}
		})
		b.Run(fmt.Sprintf("shuffle/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				Shuffle(dst, src, s)
			}
		})
		b.Run(fmt.Sprintf("unshuffle/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				Unshuffle(dst, filtered, s)
			}
		})
		b.Run(fmt.Sprintf("delta-pass/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				delta(dst, src, s, 0)
			}
		})
		b.Run(fmt.Sprintf("undelta-pass/s=%d", s), func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				undelta(dst, s, 0)
			}
		})
		b.Run(fmt.Sprintf("delta-shuffle-portable/s=%d", s), func(b *testing.B) {
			saved := hasAVX2
			hasAVX2 = false
			defer func() { hasAVX2 = saved }()
			b.SetBytes(n)
			for b.Loop() {
				DeltaShuffle(dst, src, s)
			}
		})
	}
}
