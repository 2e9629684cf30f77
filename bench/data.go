package bench

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/cutpoint/cutpoint/internal/datagen"
)

// dataCache generates each kind of data once, at the largest size the plan
// asks for, and hands out prefixes (a prefix of the heat field is a heat
// field: it is row-major). A kind is dropped after its last use, so that
// the 4 GiB data set does not sit beside the others.
type dataCache struct {
	mu      sync.Mutex
	max     map[datagen.Kind]int64
	left    map[datagen.Kind]int // uses still planned
	data    map[datagen.Kind][]byte
	genTime map[datagen.Kind]float64
}

func newDataCache() *dataCache {
	return &dataCache{max: map[datagen.Kind]int64{}, left: map[datagen.Kind]int{}, data: map[datagen.Kind][]byte{}, genTime: map[datagen.Kind]float64{}}
}

// plan announces a use of size bytes of kind.
func (c *dataCache) plan(k datagen.Kind, size int64) {
	c.max[k] = max(c.max[k], size)
	c.left[k]++
}

// get returns size bytes of kind k (seed 1), generating the planned maximum
// on first use.
func (c *dataCache) get(k datagen.Kind, size int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.data[k]
	if !ok || int64(len(d)) < size {
		n := max(c.max[k], size)
		if size <= 1<<30 && n > 1<<30 {
			// The largest data set runs last, alone (see plan): until then
			// a prefix of 1 GiB serves. Uniform data is generated per 1 MiB
			// block, so the prefixes are the same bytes either way.
			n = 1 << 30
		}
		d = nil
		delete(c.data, k)
		debug.FreeOSMemory()
		d = datagen.New(k, int(n), 1)
		c.data[k] = d
	}
	return d[:size]
}

// done ends one planned use of k; after the last the data is freed.
func (c *dataCache) done(k datagen.Kind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left[k]--
	if c.left[k] <= 0 {
		delete(c.data, k)
		runtime.GC()
		debug.FreeOSMemory()
	}
}

// split cuts b into n parts of whole elements of elem bytes, as even as
// the elements allow (the first parts get one more element).
func split(b []byte, n, elem int) [][]byte {
	elems := len(b) / elem
	parts := make([][]byte, n)
	off := 0
	for i := range n {
		k := elems / n
		if i < elems%n {
			k++
		}
		parts[i] = b[off : off+k*elem : off+k*elem]
		off += k * elem
	}
	return parts
}

// changedChunks lists the chunks of an n-chunk buffer that change when a
// fraction f of them does (at least one), spread evenly over the buffer.
func changedChunks(n int, f float64) []int {
	if n == 0 || f <= 0 {
		return nil
	}
	count := min(n, max(1, int(math.Round(float64(n)*f))))
	out := make([]int, count)
	for i := range count {
		out[i] = i * n / count
	}
	return out
}

// flipChunks flips the lowest bit of the first byte of the listed chunks:
// the change an incremental cut must pick up, and its own undo.
func flipChunks(b []byte, chunkSize int, chunks []int) {
	for _, k := range chunks {
		if off := k * chunkSize; off < len(b) {
			b[off] ^= 1
		}
	}
}

func digest(b []byte) uint64 { return xxhash.Sum64(b) }
