package datagen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Kind is a kind of data.
type Kind int

const (
	// Heat is a float64 temperature field on a 2-D grid (row-major, 4096
	// columns once large enough): 300 K background, a 20 K sinusoid and
	// 200 K hot squares, smoothed by explicit 5-point diffusion steps. It
	// is what a stencil code's state looks like.
	Heat Kind = iota
	// Uniform is float64 uniform in [0, 1): incompressible mantissas.
	Uniform
	// Weights is float32 from N(0, 0.02), like a neural network's weights.
	Weights
)

// Kinds lists every kind.
var Kinds = []Kind{Heat, Uniform, Weights}

func (k Kind) String() string {
	switch k {
	case Heat:
		return "heat-f64"
	case Uniform:
		return "uniform-f64"
	case Weights:
		return "weights-f32"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ElemSize is the element size in bytes (8 or 4), which selects the
// shuffle.
func (k Kind) ElemSize() int {
	if k == Weights {
		return 4
	}
	return 8
}

// ParseKind parses a Kind's String.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("data kind %q: want heat-f64, uniform-f64 or weights-f32", s)
}

// New returns size bytes of kind k from seed. size need not be a multiple
// of the element size: the last element is cut.
func New(k Kind, size int, seed uint64) []byte {
	b := make([]byte, size)
	Fill(k, b, seed)
	return b
}

// Fill fills b with kind k from seed.
func Fill(k Kind, b []byte, seed uint64) {
	switch k {
	case Heat:
		heat(b, seed)
	case Uniform:
		blocks(b, seed, 8, func(rng *rand.Rand, p []byte) {
			binary.LittleEndian.PutUint64(p, math.Float64bits(rng.Float64()))
		})
	case Weights:
		blocks(b, seed, 4, func(rng *rand.Rand, p []byte) {
			binary.LittleEndian.PutUint32(p, math.Float32bits(float32(rng.NormFloat64()*0.02)))
		})
	default:
		panic(fmt.Sprintf("datagen: unknown kind %d", int(k)))
	}
}

const blockSize = 1 << 20

// blocks fills b in 1 MiB blocks on all cores, each block from its own
// generator seeded by (seed, block number), one element of size es at a
// time; a partial last element gets the leading bytes of a full one.
func blocks(b []byte, seed uint64, es int, elem func(*rand.Rand, []byte)) {
	n := (len(b) + blockSize - 1) / blockSize
	parallel(n, func(i int) {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		p := b[i*blockSize : min((i+1)*blockSize, len(b))]
		var tmp [8]byte
		for len(p) >= es {
			elem(rng, p)
			p = p[es:]
		}
		if len(p) > 0 {
			elem(rng, tmp[:es])
			copy(p, tmp[:])
		}
	})
}

// parallel runs fn(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, fn func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Heat field parameters.
const (
	heatSteps  = 50
	heatAlpha  = 0.2
	heatCols   = 4096
	background = 300.0
	waveAmp    = 20.0
	hotDelta   = 200.0
)

// heat builds the field on a grid of ceil(cells / cols) rows (the last
// row's tail is computed and cut), then runs the diffusion steps with
// fixed (Dirichlet) borders. The squares' positions come from the seed.
func heat(b []byte, seed uint64) {
	cells := (len(b) + 7) / 8
	if cells == 0 {
		return
	}
	cols := heatCols
	if cells < cols*64 {
		cols = max(1, int(math.Sqrt(float64(cells))))
	}
	rows := (cells + cols - 1) / cols
	cur := make([]float64, rows*cols)
	next := make([]float64, rows*cols)

	rng := rand.New(rand.NewPCG(seed, 0x6865617432))
	type square struct{ r, c, size int }
	nsq := max(1, rows*cols/(1<<18))
	squares := make([]square, nsq)
	for i := range squares {
		size := 4 + rng.IntN(max(1, min(rows, cols)/8)+1)
		squares[i] = square{rng.IntN(rows), rng.IntN(cols), size}
	}
	fr, fc := 2*math.Pi*3/float64(rows), 2*math.Pi*5/float64(cols)
	parallel(rows, func(r int) {
		for c := 0; c < cols; c++ {
			cur[r*cols+c] = background + waveAmp*math.Sin(fr*float64(r))*math.Cos(fc*float64(c))
		}
	})
	for _, s := range squares {
		for r := s.r; r < min(rows, s.r+s.size); r++ {
			for c := s.c; c < min(cols, s.c+s.size); c++ {
				cur[r*cols+c] += hotDelta
			}
		}
	}
	const band = 64 // rows per parallel task
	for range heatSteps {
		parallel((rows+band-1)/band, func(t int) {
			for r := t * band; r < min(rows, (t+1)*band); r++ {
				for c := 0; c < cols; c++ {
					i := r*cols + c
					if r == 0 || r == rows-1 || c == 0 || c == cols-1 {
						next[i] = cur[i]
						continue
					}
					next[i] = cur[i] + heatAlpha*(cur[i-1]+cur[i+1]+cur[i-cols]+cur[i+cols]-4*cur[i])
				}
			}
		})
		cur, next = next, cur
	}
	full := len(b) / 8
	parallel((full+blockSize/8-1)/(blockSize/8), func(t int) {
		for i := t * blockSize / 8; i < min(full, (t+1)*blockSize/8); i++ {
			binary.LittleEndian.PutUint64(b[i*8:], math.Float64bits(cur[i]))
		}
	})
	if rem := len(b) % 8; rem > 0 {
		var tmp [8]byte
		binary.LittleEndian.PutUint64(tmp[:], math.Float64bits(cur[full]))
		copy(b[full*8:], tmp[:rem])
	}
}
