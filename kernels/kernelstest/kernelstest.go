// Package kernelstest checks that a kernels.Device keeps the package's
// contracts, byte for byte against the CPU reference: copies and restore,
// chunk hashes, capture (full, shuffled, incremental, any read order, slots
// held), and the heat2d stencil, edges and ghosts over many steps. The CPU
// device runs it in the default test suite; the CUDA device runs the same
// suite in its cuda-tagged test binary on a GPU machine.
package kernelstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cutpoint/cutpoint/kernels"
)

// Heat2DDevice is a device with the heat2d kernels (both built-in devices).
type Heat2DDevice interface {
	kernels.Device
	kernels.Heat2DKernels
}

// Run runs every check against dev as subtests; dev must have the heat2d
// kernels.
func Run(t *testing.T, dev kernels.Device) {
	t.Run("Copies", func(t *testing.T) { Copies(t, dev) })
	t.Run("Hash", func(t *testing.T) { Hash(t, dev) })
	t.Run("Capture", func(t *testing.T) { Capture(t, dev) })
	t.Run("CaptureReadOrders", func(t *testing.T) { CaptureReadOrders(t, dev) })
	t.Run("CaptureIncremental", func(t *testing.T) { CaptureIncremental(t, dev) })
	t.Run("CaptureRelease", func(t *testing.T) { CaptureRelease(t, dev) })
	if _, ok := dev.(kernels.StreamRestorer); ok {
		t.Run("RestoreStreams", func(t *testing.T) { RestoreStreams(t, dev) })
	}
	hd, ok := dev.(Heat2DDevice)
	if !ok {
		t.Fatalf("%s has no heat2d kernels (kernels.Heat2DKernels)", dev.Name())
	}
	t.Run("Heat2D", func(t *testing.T) { Heat2D(t, hd) })
	t.Run("EdgesGhosts", func(t *testing.T) { EdgesGhosts(t, hd) })
}

// RandBytes returns n pseudo-random bytes from seed.
func RandBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// RefShuffle is the per-chunk byte shuffle of the store's format, written
// plainly: out[p*m + i] = in[i*s + p] for the m = n/s whole elements, the
// n%s trailing bytes copied unchanged.
func RefShuffle(dst, src []byte, s int) {
	m := len(src) / s
	for i := range m {
		for p := range s {
			dst[p*m+i] = src[i*s+p]
		}
	}
	copy(dst[m*s:], src[m*s:])
}

// RefUnshuffle inverts RefShuffle.
func RefUnshuffle(dst, src []byte, s int) {
	m := len(src) / s
	for i := range m {
		for p := range s {
			dst[i*s+p] = src[p*m+i]
		}
	}
	copy(dst[m*s:], src[m*s:])
}

func alloc(t *testing.T, dev kernels.Device, content []byte, elem int) kernels.Buffer {
	t.Helper()
	b, err := dev.Alloc(int64(len(content)), elem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := dev.CopyFromHost(b, 0, content); err != nil {
		t.Fatal(err)
	}
	return b
}

func read(t *testing.T, dev kernels.Device, b kernels.Buffer) []byte {
	t.Helper()
	out := make([]byte, b.Len())
	if err := dev.CopyToHost(out, b, 0); err != nil {
		t.Fatal(err)
	}
	return out
}

// RestoreStreams: a buffer restored from pieces written in any order from
// many goroutines at once (sizes that are not multiples of anything,
// pieces larger than any staging slot) holds exactly what was written
// once Close returns, over what the buffer held before; writes outside the
// buffer and after Close fail.
func RestoreStreams(t *testing.T, dev kernels.Device) {
	sr, ok := dev.(kernels.StreamRestorer)
	if !ok {
		t.Fatalf("%s restores no streams (kernels.StreamRestorer)", dev.Name())
	}
	for _, c := range []struct{ n, piece int }{{0, 1}, {1, 1}, {1000, 7}, {3 << 20, 64 << 10}, {9<<20 + 13, 1<<20 + 5}, {5 << 20, 5 << 20}} {
		t.Run(fmt.Sprintf("%d/%d", c.n, c.piece), func(t *testing.T) {
			b := alloc(t, dev, RandBytes(1, c.n), 8)
			want := RandBytes(uint64(c.n)+2, c.n)
			w, err := sr.RestoreStream(b)
			if err != nil {
				t.Fatal(err)
			}
			var offs []int
			for off := 0; off < c.n; off += c.piece {
				offs = append(offs, off)
			}
			rand.New(rand.NewPCG(uint64(c.n), 3)).Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
			var wg sync.WaitGroup
			errs := make(chan error, len(offs))
			next := make(chan int)
			for range 4 {
				wg.Go(func() {
					for off := range next {
						p := append([]byte(nil), want[off:min(off+c.piece, c.n)]...)
						if n, err := w.WriteAt(p, int64(off)); err != nil || n != len(p) {
							errs <- fmt.Errorf("WriteAt %d bytes at %d: %d, %v", len(p), off, n, err)
						}
						clear(p) // the writer must have copied it
					}
				})
			}
			for _, off := range offs {
				next <- off
			}
			close(next)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := read(t, dev, b); !bytes.Equal(got, want) {
				t.Fatalf("restored buffer differs from what was written (%d bytes in pieces of %d)", c.n, c.piece)
			}
			if _, err := w.WriteAt([]byte{1}, 0); err == nil {
				t.Fatal("a write after Close succeeded")
			}
		})
	}
	b := alloc(t, dev, make([]byte, 100), 1)
	w, err := sr.RestoreStream(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n   int
		off int64
	}{{1, 100}, {2, 99}, {1, -1}} {
		if _, err := w.WriteAt(make([]byte, c.n), c.off); err == nil {
			t.Errorf("WriteAt of %d bytes at %d into a 100-byte buffer succeeded", c.n, c.off)
		}
	}
	w.Close()
	if _, err := sr.RestoreStream(foreign{}); err == nil {
		t.Error("RestoreStream of another device's buffer succeeded")
	}
}

// Copies: host copies at offsets, restore, zeroed allocation, bounds.
func Copies(t *testing.T, dev kernels.Device) {
	b, err := dev.Alloc(1000, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Len() != 1000 || b.ElemSize() != 4 || b.Device() != dev {
		t.Fatalf("buffer: %d bytes, elem %d, device %s", b.Len(), b.ElemSize(), kernels.DeviceName(b))
	}
	if got := read(t, dev, b); !bytes.Equal(got, make([]byte, 1000)) {
		t.Fatal("a new buffer is not zeroed")
	}
	src := RandBytes(1, 1000)
	if err := dev.Restore(b, src); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dev, b); !bytes.Equal(got, src) {
		t.Fatal("restore round trip differs")
	}
	if err := dev.CopyFromHost(b, 997, []byte{7, 8, 9}); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 4)
	if err := dev.CopyToHost(part, b, 996); err != nil || !bytes.Equal(part, []byte{src[996], 7, 8, 9}) {
		t.Fatalf("offset copies: %v, %v", part, err)
	}
	for name, err := range map[string]error{
		"copy past the end":  dev.CopyFromHost(b, 998, []byte{1, 2, 3}),
		"negative offset":    dev.CopyToHost(part, b, -4),
		"short restore":      dev.Restore(b, src[:999]),
		"element size 3":     allocErr(dev, 8, 3),
		"negative alloc":     allocErr(dev, -1, 1),
		"capture chunk 100":  captureErr(dev, b, kernels.CaptureOptions{ChunkSize: 100}),
		"hash chunk 0":       hashErr(dev, b, 0),
		"hash chunk 65":      hashErr(dev, b, 65),
		"capture slots < 0":  captureErr(dev, b, kernels.CaptureOptions{ChunkSize: 64, Slots: -1}),
		"reserve chunk 32":   dev.Reserve(b, kernels.CaptureOptions{ChunkSize: 32}),
		"other device's buf": dev.CopyFromHost(foreign{}, 0, nil),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := dev.CopyFromHost(foreign{}, 0, nil); !errors.Is(err, kernels.ErrWrongDevice) {
		t.Errorf("other device's buffer: %v, want ErrWrongDevice", err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := dev.CopyToHost(part, b, 0); !errors.Is(err, kernels.ErrClosed) {
		t.Errorf("closed buffer: %v, want ErrClosed", err)
	}
}

func allocErr(dev kernels.Device, n int64, elem int) error {
	b, err := dev.Alloc(n, elem)
	if err == nil {
		b.Close()
	}
	return err
}

func captureErr(dev kernels.Device, b kernels.Buffer, o kernels.CaptureOptions) error {
	s, err := dev.Capture(b, o)
	if err == nil {
		s.Release()
	}
	return err
}

func hashErr(dev kernels.Device, b kernels.Buffer, chunk int) error {
	_, err := dev.Hash(b, chunk)
	return err
}

type foreign struct{}

func (foreign) Device() kernels.Device { return nil }
func (foreign) Len() int64             { return 0 }
func (foreign) ElemSize() int          { return 1 }
func (foreign) Close() error           { return nil }

// Hash: the device's chunk hashes equal kernels.HashChunks of the bytes.
func Hash(t *testing.T, dev kernels.Device) {
	for _, n := range []int{1, 7, 64, 4096 + 3, 3<<20 + 5} {
		content := RandBytes(uint64(n), n)
		b := alloc(t, dev, content, 1)
		for _, chunk := range []int{64, 4096, 1 << 20, 4 << 20} {
			got, err := dev.Hash(b, chunk)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := kernels.HashChunks(content, chunk, 1, 0)
			if got.Len != want.Len || got.ChunkSize != chunk || got.ElemSize != 1 || len(got.Sums) != len(want.Sums) {
				t.Fatalf("%d bytes, chunk %d: hashes %+v, want %+v", n, chunk, got, want)
			}
			for k := range want.Sums {
				if got.Sums[k] != want.Sums[k] {
					t.Fatalf("%d bytes, chunk %d, chunk %d: %#x, want %#x", n, chunk, k, got.Sums[k], want.Sums[k])
				}
			}
		}
	}
}

// ReadAll reads every chunk of s from workers goroutines in the given order,
// copying the data and calling Done, the way the shard writer does.
func ReadAll(ctx context.Context, s kernels.Snapshot, order []int, workers int) (data [][]byte, unchanged []bool, err error) {
	n := s.NumChunks()
	data = make([][]byte, n)
	unchanged = make([]bool, n)
	next := make(chan int, len(order))
	for _, i := range order {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range workers {
		wg.Go(func() {
			for i := range next {
				b, u, e := s.Chunk(ctx, i)
				if e != nil {
					mu.Lock()
					err = errors.Join(err, fmt.Errorf("chunk %d: %w", i, e))
					mu.Unlock()
					return
				}
				c := append([]byte(nil), b...)
				s.Done(i)
				// An order may name a chunk twice, read by two workers.
				mu.Lock()
				data[i], unchanged[i] = c, u
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return data, unchanged, err
}

func inOrder(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

// unfilter returns chunk k's raw bytes from what Chunk returned.
func unfilter(s kernels.Snapshot, chunk []byte) []byte {
	if !s.Shuffled() {
		return chunk
	}
	raw := make([]byte, len(chunk))
	RefUnshuffle(raw, chunk, s.ElemSize())
	return raw
}

// Capture: a snapshot holds the buffer as it was when captured, although
// the buffer is overwritten right after; shuffled chunks are exactly the
// reference shuffle of the raw chunks.
func Capture(t *testing.T, dev kernels.Device) {
	for _, elem := range []int{1, 2, 4, 8} {
		for _, shuffle := range []bool{false, true} {
			t.Run(fmt.Sprintf("elem%d/shuffle=%v", elem, shuffle), func(t *testing.T) {
				const chunk = 64 << 10
				n := 37*chunk + 61 // a short last chunk with a partial element
				orig := RandBytes(uint64(elem), n)
				b := alloc(t, dev, orig, elem)
				opt := kernels.CaptureOptions{ChunkSize: chunk, Shuffle: shuffle}
				if shuffle {
					if err := dev.Reserve(b, opt); err != nil {
						t.Fatal(err)
					}
				}
				s, err := dev.Capture(b, opt)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Release()
				if err := dev.CopyFromHost(b, 0, RandBytes(99, n)); err != nil {
					t.Fatal(err)
				}
				if s.Len() != int64(n) || s.ElemSize() != elem || s.NumChunks() != 38 {
					t.Fatalf("snapshot: %d bytes, elem %d, %d chunks", s.Len(), s.ElemSize(), s.NumChunks())
				}
				data, unchanged, err := ReadAll(context.Background(), s, inOrder(s.NumChunks()), 3)
				if err != nil {
					t.Fatal(err)
				}
				for k := range data {
					lo, hi := kernels.ChunkBounds(int64(n), chunk, k)
					if unchanged[k] {
						t.Fatalf("chunk %d unchanged in a full capture", k)
					}
					if s.Shuffled() {
						want := make([]byte, hi-lo)
						RefShuffle(want, orig[lo:hi], elem)
						if !bytes.Equal(data[k], want) {
							t.Fatalf("chunk %d is not the reference shuffle", k)
						}
					}
					if !bytes.Equal(unfilter(s, data[k]), orig[lo:hi]) {
						t.Fatalf("chunk %d differs from the buffer at capture", k)
					}
				}
			})
		}
	}
}

// CaptureReadOrders: reverse and random orders, few slots and many readers,
// a chunk read twice: every read returns the right bytes and nothing
// deadlocks.
func CaptureReadOrders(t *testing.T, dev kernels.Device) {
	const chunk = 4096
	n := 50*chunk + 8
	orig := RandBytes(5, n)
	b := alloc(t, dev, orig, 8)
	r := rand.New(rand.NewPCG(6, 7))
	orders := map[string][]int{"reverse": nil, "random": r.Perm(51), "twice": append(inOrder(51), 3, 50, 0)}
	for i := 50; i >= 0; i-- {
		orders["reverse"] = append(orders["reverse"], i)
	}
	for name, order := range orders {
		for _, slots := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/slots%d", name, slots), func(t *testing.T) {
				s, err := dev.Capture(b, kernels.CaptureOptions{ChunkSize: chunk, Shuffle: true, Slots: slots})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Release()
				data, _, err := ReadAll(context.Background(), s, order, min(slots, 3))
				if err != nil {
					t.Fatal(err)
				}
				for k := range data {
					lo, hi := kernels.ChunkBounds(int64(n), chunk, k)
					if !bytes.Equal(unfilter(s, data[k]), orig[lo:hi]) {
						t.Fatalf("chunk %d wrong", k)
					}
				}
			})
		}
	}
}

// CaptureIncremental: the first capture's hashes serve as the base of the
// second; exactly the chunks written in between come back changed, and the
// hashes are those of kernels.HashChunks.
func CaptureIncremental(t *testing.T, dev kernels.Device) {
	const chunk = 64 << 10
	n := 40*chunk + 77
	orig := RandBytes(8, n)
	b := alloc(t, dev, orig, 8)
	ctx := context.Background()
	for _, shuffle := range []bool{false, true} {
		opt := kernels.CaptureOptions{ChunkSize: chunk, Incremental: true, Shuffle: shuffle}
		if err := dev.Restore(b, orig); err != nil {
			t.Fatal(err)
		}
		s1, err := dev.Capture(b, opt)
		if err != nil {
			t.Fatal(err)
		}
		base, err := s1.Hashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s1.Release()
		want, _ := kernels.HashChunks(orig, chunk, 8, 0)
		for k := range want.Sums {
			if base.Sums[k] != want.Sums[k] {
				t.Fatalf("chunk %d: capture hash %#x, HashChunks %#x", k, base.Sums[k], want.Sums[k])
			}
		}
		if base.Len != int64(n) || base.ChunkSize != chunk || base.ElemSize != 8 {
			t.Fatalf("hashes geometry %+v", base)
		}

		now := append([]byte(nil), orig...)
		changed := map[int]bool{0: true, 9: true, 31: true, 40: true}
		for k := range changed {
			lo, _ := kernels.ChunkBounds(int64(n), chunk, k)
			now[lo+9] ^= 0x40
		}
		if err := dev.Restore(b, now); err != nil {
			t.Fatal(err)
		}
		opt.Base = base
		s2, err := dev.Capture(b, opt)
		if err != nil {
			t.Fatal(err)
		}
		// The job overwrites its buffer right away.
		if err := dev.CopyFromHost(b, 0, RandBytes(77, n)); err != nil {
			t.Fatal(err)
		}
		data, unchanged, err := ReadAll(ctx, s2, inOrder(s2.NumChunks()), 2)
		if err != nil {
			t.Fatal(err)
		}
		for k := range data {
			if unchanged[k] == changed[k] {
				t.Fatalf("shuffle=%v chunk %d: unchanged %v, but written %v", shuffle, k, unchanged[k], changed[k])
			}
			lo, hi := kernels.ChunkBounds(int64(n), chunk, k)
			if !unchanged[k] && !bytes.Equal(unfilter(s2, data[k]), now[lo:hi]) {
				t.Fatalf("shuffle=%v chunk %d: wrong bytes", shuffle, k)
			}
		}
		h2, err := s2.Hashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s2.Release()
		w2, _ := kernels.HashChunks(now, chunk, 8, 0)
		for k := range w2.Sums {
			if h2.Sums[k] != w2.Sums[k] {
				t.Fatalf("second capture chunk %d: hash %#x, want %#x", k, h2.Sums[k], w2.Sums[k])
			}
		}
		// Device.Hash of the restored contents equals the capture's.
		if err := dev.Restore(b, now); err != nil {
			t.Fatal(err)
		}
		h3, err := dev.Hash(b, chunk)
		if err != nil {
			t.Fatal(err)
		}
		for k := range h3.Sums {
			if h3.Sums[k] != h2.Sums[k] {
				t.Fatalf("Hash after restore, chunk %d differs from the capture's", k)
			}
		}
	}
	s, err := dev.Capture(b, kernels.CaptureOptions{ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hashes(ctx); !errors.Is(err, kernels.ErrNoHashes) {
		t.Errorf("Hashes of a full capture: %v, want ErrNoHashes", err)
	}
	s.Release()
}

// CaptureRelease: release before reading, a cancelled wait, reading after
// release, a buffer of zero bytes.
func CaptureRelease(t *testing.T, dev kernels.Device) {
	b := alloc(t, dev, RandBytes(3, 1<<20), 4)
	s, err := dev.Capture(b, kernels.CaptureOptions{ChunkSize: 1 << 16, Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	s.Release()
	if _, _, err := s.Chunk(context.Background(), 0); !errors.Is(err, kernels.ErrReleased) {
		t.Errorf("Chunk after Release: %v, want ErrReleased", err)
	}
	if _, _, err := s.Chunk(context.Background(), -1); err == nil {
		t.Error("chunk -1 accepted")
	}
	s.Done(0) // ignored

	s, err = dev.Capture(b, kernels.CaptureOptions{ChunkSize: 1 << 16, Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	held, _, err := s.Chunk(context.Background(), 0)
	if err != nil || len(held) != 1<<16 {
		t.Fatalf("chunk 0: %d bytes, %v", len(held), err)
	}
	// One slot, held: a second chunk can only wait, and the wait ends with
	// the context (on devices without slots it returns at once).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Chunk(ctx, 1); err == nil {
		s.Done(1) // served at once: it must be given back like any other
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	s.Done(0)
	if _, _, err := s.Chunk(context.Background(), 1); err != nil {
		t.Errorf("chunk 1 after Done(0): %v", err)
	}
	s.Done(1)
	s.Release()

	ReleaseWhileHeld(t, dev, b, RandBytes(3, 1<<20))

	z, err := dev.Alloc(0, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	s, err = dev.Capture(z, kernels.CaptureOptions{ChunkSize: 64, Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.NumChunks() != 0 {
		t.Errorf("empty buffer: %d chunks", s.NumChunks())
	}
	if h, err := s.Hashes(context.Background()); err != nil || len(h.Sums) != 0 {
		t.Errorf("empty buffer hashes: %v, %v", h, err)
	}
	s.Release()
}

// ReleaseWhileHeld: the shard writer hands out every chunk, and its caller
// may Release the snapshot, before the last chunks are compressed. Chunks
// held at Release keep their bytes until Done, and Done after Release (a
// second one included) is harmless. b holds content.
func ReleaseWhileHeld(t *testing.T, dev kernels.Device, b kernels.Buffer, content []byte) {
	t.Helper()
	const chunk = 1 << 16
	for _, slots := range []int{0, 2} {
		s, err := dev.Capture(b, kernels.CaptureOptions{ChunkSize: chunk, Slots: slots})
		if err != nil {
			t.Fatal(err)
		}
		held := map[int][]byte{}
		for _, i := range []int{0, 3} {
			data, _, err := s.Chunk(context.Background(), i)
			if err != nil {
				t.Fatalf("slots %d: chunk %d: %v", slots, i, err)
			}
			held[i] = data
		}
		s.Release()
		for i, data := range held {
			if !bytes.Equal(data, content[i*chunk:(i+1)*chunk]) {
				t.Errorf("slots %d: chunk %d changed after Release", slots, i)
			}
			s.Done(i)
			s.Done(i)
		}
		s.Done(1) // never held
	}
}

func sameBits(a, b []float64) (int, bool) {
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return i, false
		}
	}
	return 0, len(a) == len(b)
}

// Heat2D: steps on the device equal kernels.Heat2DStepSlices on the host
// bit for bit, with ghost edges rewritten from the host every step.
func Heat2D(t *testing.T, dev Heat2DDevice) {
	for _, sh := range [][2]int{{1, 1}, {3, 300}, {300, 3}, {257, 129}, {1000, 700}} {
		t.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(t *testing.T) {
			tile := kernels.Tile{NX: sh[0], NY: sh[1], X0: 1, Y0: 2, GX: sh[0] + 3, GY: sh[1] + 5}
			init := make([]float64, tile.Elems())
			if err := kernels.Heat2DInit(init, tile); err != nil {
				t.Fatal(err)
			}
			ha, hb := append([]float64(nil), init...), append([]float64(nil), init...)
			da := alloc(t, dev, kernels.Float64Bytes(init), 8)
			db := alloc(t, dev, kernels.Float64Bytes(init), 8)
			r := rand.New(rand.NewPCG(uint64(sh[0]), uint64(sh[1])))
			steps := 200
			if tile.NX*tile.NY > 100000 {
				steps = 40
			}
			for step := range steps {
				if step%3 == 0 {
					g := kernels.Edges{North: make([]float64, tile.NX), East: make([]float64, tile.NY)}
					for i := range g.North {
						g.North[i] = 250 + 100*r.Float64()
					}
					for i := range g.East {
						g.East[i] = 250 + 100*r.Float64()
					}
					if err := dev.WriteGhosts(da, tile, g); err != nil {
						t.Fatal(err)
					}
					if err := kernels.WriteGhostsSlice(ha, tile, g); err != nil {
						t.Fatal(err)
					}
				}
				if err := dev.Heat2DStep(db, da, tile, 0.23); err != nil {
					t.Fatal(err)
				}
				if err := kernels.Heat2DStepSlices(hb, ha, tile, 0.23, 0); err != nil {
					t.Fatal(err)
				}
				da, db = db, da
				ha, hb = hb, ha
			}
			got, err := kernels.BytesFloat64(read(t, dev, da))
			if err != nil {
				t.Fatal(err)
			}
			if i, ok := sameBits(got, ha); !ok {
				t.Fatalf("after %d steps element %d: device %v, CPU %v", steps, i, got[i], ha[i])
			}
		})
	}
}

// EdgesGhosts: ReadEdges and WriteGhosts agree with the host versions.
func EdgesGhosts(t *testing.T, dev Heat2DDevice) {
	tile := kernels.Tile{NX: 37, NY: 23}
	vals := make([]float64, tile.Elems())
	for i := range vals {
		vals[i] = float64(i) + 0.5
	}
	b := alloc(t, dev, kernels.Float64Bytes(vals), 8)
	mk := func() kernels.Edges {
		return kernels.Edges{North: make([]float64, tile.NX), South: make([]float64, tile.NX), West: make([]float64, tile.NY), East: make([]float64, tile.NY)}
	}
	got, want := mk(), mk()
	if err := dev.ReadEdges(b, tile, got); err != nil {
		t.Fatal(err)
	}
	if err := kernels.ReadEdgesSlice(vals, tile, want); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string][2][]float64{"north": {got.North, want.North}, "south": {got.South, want.South}, "west": {got.West, want.West}, "east": {got.East, want.East}} {
		if i, ok := sameBits(p[0], p[1]); !ok {
			t.Errorf("%s edge, value %d: %v, want %v", name, i, p[0][i], p[1][i])
		}
	}
	g := kernels.Edges{South: make([]float64, tile.NX), West: make([]float64, tile.NY)}
	for i := range g.South {
		g.South[i] = -float64(i)
	}
	for i := range g.West {
		g.West[i] = -1000 - float64(i)
	}
	if err := dev.WriteGhosts(b, tile, g); err != nil {
		t.Fatal(err)
	}
	if err := kernels.WriteGhostsSlice(vals, tile, g); err != nil {
		t.Fatal(err)
	}
	all, _ := kernels.BytesFloat64(read(t, dev, b))
	if i, ok := sameBits(all, vals); !ok {
		t.Fatalf("after WriteGhosts, element %d: %v, want %v", i, all[i], vals[i])
	}
	if err := dev.ReadEdges(b, tile, kernels.Edges{West: make([]float64, 5)}); err == nil {
		t.Error("west edge of 5 values accepted for 23 rows")
	}
	other := kernels.Tile{NX: 36, NY: 23}
	if err := dev.Heat2DStep(b, b, other, 0.2); err == nil {
		t.Error("step on a buffer of another tile's size accepted")
	}
}
