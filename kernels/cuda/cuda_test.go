//go:build cuda

// These tests need a GPU: gorgonia.org/cu exits the process in its init when
// there is none. Build them with `make gpu-test-bin` and run the binary on a
// GPU machine.
package cuda_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/kernels/cuda"
	"github.com/cutpoint/cutpoint/kernels/kernelstest"
)

var (
	devOnce sync.Once
	dev     *cuda.Device
	devErr  error
)

// device is the GPU shared by the tests (staged captures).
func device(t testing.TB) *cuda.Device {
	t.Helper()
	devOnce.Do(func() { dev, devErr = cuda.Open(0, cuda.Options{}) })
	if devErr != nil {
		t.Fatalf("opening GPU 0: %v", devErr)
	}
	return dev
}

func TestOpen(t *testing.T) {
	d := device(t)
	t.Logf("%s: %s", d.Name(), d.GPU())
	k, err := kernels.Open("cuda")
	if err != nil {
		t.Fatalf("kernels.Open(cuda): %v", err)
	}
	if k.Name() != "cuda:0" {
		t.Errorf("name %q", k.Name())
	}
	if err := k.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := kernels.Open("cuda:x"); err == nil || !strings.Contains(err.Error(), "ordinal") {
		t.Errorf("cuda:x: %v", err)
	}
	if _, err := kernels.Open("cuda:4096"); !errors.Is(err, kernels.ErrUnknownDevice) {
		t.Errorf("cuda:4096: %v", err)
	}
}

// The CUDA device keeps every contract the CPU device keeps, byte for byte.
func TestConformanceStaged(t *testing.T) {
	kernelstest.Run(t, device(t))
}

// The same through the fallback capture path (no device staging buffer).
func TestConformanceDirect(t *testing.T) {
	d, err := cuda.Open(0, cuda.Options{DirectCapture: true})
	if err != nil {
		t.Fatal(err)
	}
	kernelstest.Run(t, d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// The GPU shuffle kernel produces exactly the store's shuffle, per chunk.
func TestShuffleKernel(t *testing.T) {
	d := device(t)
	for _, elem := range []int{1, 2, 4, 8} {
		for _, chunk := range []int{64, 4096, 1 << 20} {
			for _, n := range []int{1, 63, 4096 + 7, 3<<20 + 3} {
				src := kernelstest.RandBytes(uint64(n+elem), n)
				sb, _ := d.Alloc(int64(n), elem)
				db, _ := d.Alloc(int64(n), elem)
				if err := d.CopyFromHost(sb, 0, src); err != nil {
					t.Fatal(err)
				}
				if err := d.Shuffle(db, sb, chunk); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, n)
				if err := d.CopyToHost(got, db, 0); err != nil {
					t.Fatal(err)
				}
				for k := range kernels.NumChunks(int64(n), chunk) {
					lo, hi := kernels.ChunkBounds(int64(n), chunk, k)
					want := make([]byte, hi-lo)
					kernelstest.RefShuffle(want, src[lo:hi], elem)
					if !bytes.Equal(got[lo:hi], want) {
						t.Fatalf("elem %d, chunk %d, %d bytes: chunk %d differs from the reference shuffle", elem, chunk, n, k)
					}
				}
				sb.Close()
				db.Close()
			}
		}
	}
}

// A capture enqueued between asynchronous stencil steps holds exactly the
// state after the steps enqueued before it, although later steps are
// enqueued at once.
func TestCaptureOrderedWithSteps(t *testing.T) {
	d := device(t)
	tile := kernels.Tile{NX: 700, NY: 500, GX: 700, GY: 500}
	init := make([]float64, tile.Elems())
	if err := kernels.Heat2DInit(init, tile); err != nil {
		t.Fatal(err)
	}
	a, _ := d.Alloc(tile.Bytes(), 8)
	b, _ := d.Alloc(tile.Bytes(), 8)
	defer a.Close()
	defer b.Close()
	for _, buf := range []kernels.Buffer{a, b} {
		if err := d.CopyFromHost(buf, 0, kernels.Float64Bytes(init)); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := append([]float64(nil), init...), append([]float64(nil), init...)
	const before, after = 37, 50
	for range before {
		if err := d.Heat2DStep(b, a, tile, 0.2); err != nil {
			t.Fatal(err)
		}
		a, b = b, a
		if err := kernels.Heat2DStepSlices(hb, ha, tile, 0.2, 0); err != nil {
			t.Fatal(err)
		}
		ha, hb = hb, ha
	}
	s, err := d.Capture(a, kernels.CaptureOptions{ChunkSize: 1 << 20, Shuffle: true, Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	for range after {
		if err := d.Heat2DStep(b, a, tile, 0.2); err != nil {
			t.Fatal(err)
		}
		a, b = b, a
	}
	data, _, err := kernelstest.ReadAll(context.Background(), s, seq(s.NumChunks()), 4)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for _, c := range data {
		r := make([]byte, len(c))
		kernelstest.RefUnshuffle(r, c, 8)
		raw = append(raw, r...)
	}
	if !bytes.Equal(raw, kernels.Float64Bytes(ha)) {
		t.Fatalf("the capture is not the state after %d steps", before)
	}
}

// Many steps of a large tile: the GPU field equals the CPU field bit for bit.
func TestHeat2DLongRun(t *testing.T) {
	d := device(t)
	tile := kernels.Tile{NX: 1024, NY: 768, X0: 1024, Y0: 0, GX: 4096, GY: 768}
	init := make([]float64, tile.Elems())
	if err := kernels.Heat2DInit(init, tile); err != nil {
		t.Fatal(err)
	}
	a, _ := d.Alloc(tile.Bytes(), 8)
	b, _ := d.Alloc(tile.Bytes(), 8)
	defer a.Close()
	defer b.Close()
	for _, buf := range []kernels.Buffer{a, b} {
		if err := d.CopyFromHost(buf, 0, kernels.Float64Bytes(init)); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := append([]float64(nil), init...), append([]float64(nil), init...)
	const steps = 1000
	for range steps {
		if err := d.Heat2DStep(b, a, tile, 0.25); err != nil {
			t.Fatal(err)
		}
		a, b = b, a
		if err := kernels.Heat2DStepSlices(hb, ha, tile, 0.25, 0); err != nil {
			t.Fatal(err)
		}
		ha, hb = hb, ha
	}
	got := make([]byte, tile.Bytes())
	if err := d.CopyToHost(got, a, 0); err != nil {
		t.Fatal(err)
	}
	g, _ := kernels.BytesFloat64(got)
	for i := range g {
		if math.Float64bits(g[i]) != math.Float64bits(ha[i]) {
			t.Fatalf("after %d steps element %d: GPU %v, CPU %v", steps, i, g[i], ha[i])
		}
	}
}

func TestCloseWithLiveBuffer(t *testing.T) {
	d, err := cuda.Open(0, cuda.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Alloc(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err == nil {
		t.Fatal("Close with a live buffer succeeded")
	}
	b.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alloc(8, 1); !errors.Is(err, kernels.ErrClosed) {
		t.Errorf("Alloc after Close: %v", err)
	}
}

// A chunk held across Release keeps the device open until its Done.
func TestCloseWithChunkHeldAfterRelease(t *testing.T) {
	for _, direct := range []bool{false, true} {
		d, err := cuda.Open(0, cuda.Options{DirectCapture: direct})
		if err != nil {
			t.Fatal(err)
		}
		content := kernelstest.RandBytes(9, 1<<20)
		b, err := d.Alloc(int64(len(content)), 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.CopyFromHost(b, 0, content); err != nil {
			t.Fatal(err)
		}
		s, err := d.Capture(b, kernels.CaptureOptions{ChunkSize: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		data, _, err := s.Chunk(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
		b.Close()
		if err := d.Close(); err == nil {
			t.Fatalf("direct=%v: Close with a chunk held after Release succeeded", direct)
		}
		if !bytes.Equal(data, content[2<<16:3<<16]) {
			t.Errorf("direct=%v: held chunk changed after Release", direct)
		}
		s.Done(2)
		if err := d.Close(); err != nil {
			t.Fatalf("direct=%v: Close after the last Done: %v", direct, err)
		}
	}
}

func seq(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

// A wrapped buffer is the job's memory: writes through it land in the
// original allocation, a capture reads it, a restore writes it in place,
// and closing it frees nothing.
func TestWrapBorrowed(t *testing.T) {
	d := device(t)
	const n = 1 << 20
	orig, err := d.Alloc(n, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	w, err := d.Wrap(orig.(*cuda.Buffer).Ptr(), n, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i * 7)
	}
	if err := d.CopyFromHost(w, 0, want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if err := d.CopyToHost(got, orig, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("a write through the wrapped buffer did not reach the allocation")
	}
	zero := make([]byte, n)
	if err := d.Restore(w, zero); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyToHost(got, orig, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, zero) {
		t.Fatal("a restore into the wrapped buffer did not reach the allocation")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyFromHost(orig, 0, want); err != nil {
		t.Fatalf("the allocation is gone after closing the wrapped buffer: %v", err)
	}
	if _, err := d.Wrap(0, 8, 8); err == nil {
		t.Error("wrapping NULL succeeded")
	}
	if _, err := d.Wrap(orig.(*cuda.Buffer).Ptr(), 12, 8); err == nil {
		t.Error("wrapping 12 bytes of 8-byte elements succeeded")
	}
}

// TestStreamTime: a capture's time on the compute stream is measured on
// both paths (staged and direct), is positive for a non-empty buffer, and
// is refused after Release.
func TestStreamTime(t *testing.T) {
	for _, direct := range []bool{false, true} {
		d, err := cuda.Open(0, cuda.Options{DirectCapture: direct})
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.Alloc(64<<20, 8)
		if err != nil {
			t.Fatal(err)
		}
		s, err := d.Capture(b, kernels.CaptureOptions{ChunkSize: 1 << 20, Shuffle: true, Incremental: true})
		if err != nil {
			t.Fatal(err)
		}
		st, ok := s.(kernels.StreamTimed)
		if !ok {
			t.Fatal("a CUDA snapshot is not kernels.StreamTimed")
		}
		dt, err := st.StreamTime()
		if err != nil || dt <= 0 || dt > 10*time.Second {
			t.Fatalf("direct %v: StreamTime %v, %v", direct, dt, err)
		}
		t.Logf("direct %v: 64 MiB held the stream %v", direct, dt)
		s.Release()
		if _, err := st.StreamTime(); !errors.Is(err, kernels.ErrReleased) {
			t.Fatalf("StreamTime after Release: %v", err)
		}
		b.Close()
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
