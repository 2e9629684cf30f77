package kernels

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestOpen(t *testing.T) {
	d, err := Open("cpu")
	if err != nil || d.Name() != "cpu" {
		t.Fatalf("Open(cpu) = %v, %v", d, err)
	}
	if d != Device(CPUDevice()) {
		t.Error("Open(cpu) is not the shared CPU device")
	}
	// This test binary does not link kernels/cuda.
	_, err = Open("cuda")
	if !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), "make build-cuda") {
		t.Errorf("Open(cuda) = %v, want ErrNotBuilt naming make build-cuda", err)
	}
	if _, err := Open("cuda:1"); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("Open(cuda:1) = %v", err)
	}
	if _, err := Open("tpu"); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("Open(tpu) = %v", err)
	}
	if _, err := Open("cpu:3"); err == nil {
		t.Error("Open(cpu:3) accepted")
	}
}

func TestRegister(t *testing.T) {
	called := ""
	Register("test-dev", func(arg string) (Device, error) {
		called = arg
		return NewCPU(1), nil
	})
	if _, err := Open("test-dev:7"); err != nil || called != "7" {
		t.Fatalf("Open(test-dev:7): %v, arg %q", err, called)
	}
}

func TestHostBuffers(t *testing.T) {
	f := []float64{1, 2, 3}
	hb := HostFloat64(f)
	if hb.Len() != 24 || hb.ElemSize() != 8 || &hb.Float64s()[0] != &f[0] {
		t.Fatal("HostFloat64 does not wrap the slice")
	}
	if hb.Float32s() != nil {
		t.Error("float64 buffer viewed as float32")
	}
	g := []float32{1, 2}
	if h32 := HostFloat32(g); h32.Len() != 8 || h32.ElemSize() != 4 || &h32.Float32s()[0] != &g[0] {
		t.Error("HostFloat32 does not wrap the slice")
	}
	if _, err := HostBytes(make([]byte, 4), 3); err == nil {
		t.Error("element size 3 accepted")
	}
	b, err := HostBytes(make([]byte, 5), 1)
	if err != nil || b.Len() != 5 {
		t.Fatal(err)
	}
	if _, err := BytesFloat64(make([]byte, 12)); err == nil {
		t.Error("12 bytes viewed as float64s")
	}
	if _, err := BytesFloat32(make([]byte, 6)); err == nil {
		t.Error("6 bytes viewed as float32s")
	}
	d := NewCPU(2)
	a, err := d.Alloc(17, 2)
	if err != nil || a.Len() != 17 || a.ElemSize() != 2 {
		t.Fatalf("Alloc: %v", err)
	}
	if _, err := d.Alloc(-1, 8); err == nil {
		t.Error("negative size accepted")
	}
	if _, err := d.Alloc(8, 16); err == nil {
		t.Error("element size 16 accepted")
	}
}

// otherBuffer is a buffer of some other device.
type otherBuffer struct{}

func (otherBuffer) Device() Device { return fakeDevice{} }
func (otherBuffer) Len() int64     { return 8 }
func (otherBuffer) ElemSize() int  { return 8 }
func (otherBuffer) Close() error   { return nil }

type fakeDevice struct{ Device }

func (fakeDevice) Name() string { return "fake" }

func TestCopiesAndRestore(t *testing.T) {
	d := NewCPU(3)
	r := rand.New(rand.NewPCG(9, 10))
	src := randBytes(r, 9<<20+5) // large enough for the parallel path
	b, _ := d.Alloc(int64(len(src)), 1)
	if err := d.Restore(b, src); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(src))
	if err := d.CopyToHost(out, b, 0); err != nil || !bytes.Equal(out, src) {
		t.Fatalf("round trip: %v", err)
	}
	if err := d.CopyFromHost(b, 100, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 5)
	if err := d.CopyToHost(part, b, 99); err != nil || !bytes.Equal(part, []byte{src[99], 1, 2, 3, src[103]}) {
		t.Fatalf("offset copy: %v %v", part, err)
	}
	for name, err := range map[string]error{
		"past the end":   d.CopyFromHost(b, b.Len()-1, []byte{1, 2}),
		"negative":       d.CopyToHost(part, b, -1),
		"restore length": d.Restore(b, src[1:]),
		"other device":   d.CopyFromHost(otherBuffer{}, 0, nil),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := d.CopyFromHost(otherBuffer{}, 0, nil); !errors.Is(err, ErrWrongDevice) {
		t.Errorf("other device: %v", err)
	}
	b.Close()
	if err := d.CopyToHost(part, b, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("closed buffer: %v", err)
	}
}

// readAll reads every chunk of s like a shard writer would, concurrently.
func readAll(t *testing.T, s Snapshot, workers int) (data [][]byte, unchanged []bool) {
	t.Helper()
	n := s.NumChunks()
	data = make([][]byte, n)
	unchanged = make([]bool, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for i := range next {
				b, u, err := s.Chunk(context.Background(), i)
				if err != nil {
					errs <- err
					return
				}
				data[i] = append([]byte(nil), b...)
				unchanged[i] = u
				s.Done(i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return data, unchanged
}

func TestCaptureRoundTrip(t *testing.T) {
	d := NewCPU(4)
	r := rand.New(rand.NewPCG(11, 12))
	orig := randBytes(r, 5<<20+1000)
	buf, _ := HostBytes(append([]byte(nil), orig...), 4)
	const chunk = 256 << 10
	s, err := d.Capture(buf, CaptureOptions{ChunkSize: chunk, Shuffle: true})
	if err != nil {
		t.Fatal(err)
	}
	// The application goes on writing its buffer at once.
	for i := range buf.Bytes() {
		buf.Bytes()[i] ^= 0xff
	}
	if s.Len() != int64(len(orig)) || s.ElemSize() != 4 || s.Shuffled() || s.NumChunks() != NumChunks(int64(len(orig)), chunk) {
		t.Fatalf("snapshot %d bytes, elem %d, shuffled %v, %d chunks", s.Len(), s.ElemSize(), s.Shuffled(), s.NumChunks())
	}
	data, unchanged := readAll(t, s, 3)
	got := bytes.Join(data, nil)
	if !bytes.Equal(got, orig) {
		t.Fatal("captured bytes differ from the buffer at capture")
	}
	for i, u := range unchanged {
		if u {
			t.Fatalf("chunk %d unchanged without a base", i)
		}
	}
	if _, err := s.Hashes(context.Background()); !errors.Is(err, ErrNoHashes) {
		t.Errorf("Hashes of a full capture: %v", err)
	}
	if _, _, err := s.Chunk(context.Background(), s.NumChunks()); err == nil {
		t.Error("chunk past the end accepted")
	}
	s.Release()
	s.Release()
	if _, _, err := s.Chunk(context.Background(), 0); !errors.Is(err, ErrReleased) {
		t.Errorf("Chunk after Release: %v", err)
	}
	// A restore brings the captured state back.
	if err := d.Restore(buf, got); err != nil || !bytes.Equal(buf.Bytes(), orig) {
		t.Fatalf("restore: %v", err)
	}
}

func TestCaptureIncremental(t *testing.T) {
	d := NewCPU(2)
	r := rand.New(rand.NewPCG(13, 14))
	const chunk = 64 << 10
	buf, _ := HostBytes(randBytes(r, 40*chunk+77), 8)
	opt := CaptureOptions{ChunkSize: chunk, Incremental: true}

	s1, err := d.Capture(buf, opt)
	if err != nil {
		t.Fatal(err)
	}
	_, unchanged := readAll(t, s1, 2)
	for i, u := range unchanged {
		if u {
			t.Fatalf("first capture: chunk %d unchanged without a base", i)
		}
	}
	base, err := s1.Hashes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s1.Release()
	want, _ := d.Hash(buf, chunk)
	if len(base.Sums) != len(want.Sums) || base.Len != want.Len || base.ElemSize != 8 {
		t.Fatalf("hashes %+v, want %+v", base, want)
	}
	for k := range want.Sums {
		if base.Sums[k] != want.Sums[k] {
			t.Fatalf("chunk %d: snapshot hash %#x, Hash %#x", k, base.Sums[k], want.Sums[k])
		}
	}

	// Change 4 of the 41 chunks (one of them the short last one).
	changed := map[int]bool{0: true, 7: true, 23: true, 40: true}
	for k := range changed {
		lo, _ := ChunkBounds(buf.Len(), chunk, k)
		buf.Bytes()[lo+5]++
	}
	opt.Base = base
	s2, err := d.Capture(buf, opt)
	if err != nil {
		t.Fatal(err)
	}
	data, unchanged := readAll(t, s2, 3)
	for k, u := range unchanged {
		if u == changed[k] {
			t.Errorf("chunk %d: unchanged = %v, but changed = %v", k, u, changed[k])
		}
		lo, hi := ChunkBounds(buf.Len(), chunk, k)
		if !u && !bytes.Equal(data[k], buf.Bytes()[lo:hi]) {
			t.Errorf("chunk %d: wrong bytes", k)
		}
		if u && data[k] != nil {
			t.Errorf("chunk %d: unchanged with data", k)
		}
	}
	h2, err := s2.Hashes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s2.Release()
	// Hashes stay available after Release once every chunk was read.
	if _, err := s2.Hashes(context.Background()); err != nil {
		t.Errorf("Hashes after Release: %v", err)
	}
	for k := range h2.Sums {
		if (h2.Sums[k] != base.Sums[k]) != changed[k] {
			t.Errorf("chunk %d: hash changed %v, data changed %v", k, h2.Sums[k] != base.Sums[k], changed[k])
		}
	}

	// A base of another geometry makes every chunk count as changed.
	opt.Base = &ChunkHashes{Len: base.Len, ChunkSize: base.ChunkSize, ElemSize: 4, Sums: base.Sums}
	s3, _ := d.Capture(buf, opt)
	_, unchanged = readAll(t, s3, 1)
	for k, u := range unchanged {
		if u {
			t.Fatalf("chunk %d unchanged against a base of another element size", k)
		}
	}
	s3.Release()
}

// Release while a chunk is still held must not hand the staging memory to
// the next capture (the holder could still be reading it).
func TestCaptureReleaseWhileHeld(t *testing.T) {
	d := NewCPU(1)
	buf, _ := HostBytes(bytes.Repeat([]byte{1}, 4096), 1)
	s, _ := d.Capture(buf, CaptureOptions{ChunkSize: 4096})
	held, _, err := s.Chunk(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	copy(buf.Bytes(), bytes.Repeat([]byte{2}, 4096))
	s2, _ := d.Capture(buf, CaptureOptions{ChunkSize: 4096})
	defer s2.Release()
	if held[0] != 1 {
		t.Fatal("a held chunk was overwritten by the next capture")
	}
	// Done on chunks never returned or twice is ignored.
	s2.Done(0)
	s2.Done(5)
}

func TestCaptureReusesStaging(t *testing.T) {
	d := NewCPU(1)
	buf, _ := HostBytes(make([]byte, 1<<20), 8)
	s, _ := d.Capture(buf, CaptureOptions{ChunkSize: 1 << 16})
	first := &s.(*cpuSnapshot).staging[0]
	s.Release()
	s2, _ := d.Capture(buf, CaptureOptions{ChunkSize: 1 << 16})
	defer s2.Release()
	if &s2.(*cpuSnapshot).staging[0] != first {
		t.Error("second capture of the same size did not reuse the staging memory")
	}
}

// The staging memory of a snapshot released while a chunk was held goes
// back to the pool with the last Done (the shard writer releases before its
// last chunks are compressed), not to the garbage collector.
func TestCaptureReusesStagingAfterHeldRelease(t *testing.T) {
	d := NewCPU(1)
	buf, _ := HostBytes(make([]byte, 1<<20), 8)
	s, _ := d.Capture(buf, CaptureOptions{ChunkSize: 1 << 16})
	first := &s.(*cpuSnapshot).staging[0]
	if _, _, err := s.Chunk(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	s.Release()
	s.Done(3)
	s.Done(3) // a second Done changes nothing
	s2, _ := d.Capture(buf, CaptureOptions{ChunkSize: 1 << 16})
	defer s2.Release()
	if &s2.(*cpuSnapshot).staging[0] != first {
		t.Error("the capture after a held release's last Done did not reuse its staging memory")
	}
}

func TestCaptureOptionsValidate(t *testing.T) {
	d := NewCPU(1)
	buf, _ := HostBytes(make([]byte, 100), 1)
	for _, o := range []CaptureOptions{{ChunkSize: 0}, {ChunkSize: 100}, {ChunkSize: -64}, {ChunkSize: 64, Slots: -1}} {
		if _, err := d.Capture(buf, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	empty, _ := HostBytes(nil, 1)
	s, err := d.Capture(empty, CaptureOptions{ChunkSize: 64, Incremental: true})
	if err != nil || s.NumChunks() != 0 {
		t.Fatalf("empty buffer: %v", err)
	}
	if h, err := s.Hashes(context.Background()); err != nil || len(h.Sums) != 0 {
		t.Errorf("empty buffer hashes: %v", err)
	}
	s.Release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, _ = d.Capture(buf, CaptureOptions{ChunkSize: 64})
	if _, _, err := s.Chunk(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	s.Release()
}

func TestReserveFillsThePool(t *testing.T) {
	d := NewCPU(2)
	buf, _ := HostBytes(make([]byte, 3<<20), 8)
	if err := d.Reserve(buf, CaptureOptions{ChunkSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if len(d.staging.free) != 1 || cap(d.staging.free[0]) != 3<<20 {
		t.Fatalf("pool after Reserve: %d buffers", len(d.staging.free))
	}
	reserved := &d.staging.free[0][0]
	s, _ := d.Capture(buf, CaptureOptions{ChunkSize: 1 << 20})
	defer s.Release()
	if &s.(*cpuSnapshot).staging[0] != reserved {
		t.Error("the first capture did not use the reserved staging")
	}
	if err := d.Reserve(buf, CaptureOptions{}); err == nil {
		t.Error("Reserve accepted chunk size 0")
	}
}
