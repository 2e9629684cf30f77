//go:build cuda

package cuda

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"gorgonia.org/cu"

	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/kernels/shuffle"
)

var (
	report    = flag.Bool("report", false, "run TestReport: measure the GPU figures of docs/benchmarks.md")
	reportGiB = flag.Int("report.gib", 1, "buffer size of TestReport in GiB")
)

// TestReport measures, on the GPU it runs on, what docs/benchmarks.md
// records: pinned device-to-host bandwidth, capture drain rate against it,
// the job-visible cost of a cut, incremental against full captures, and the
// kernels' throughput. Run it alone: ./cuda.test -test.run Report -report.
func TestReport(t *testing.T) {
	if !*report {
		t.Skip("pass -report to measure")
	}
	d, err := Open(0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := int64(*reportGiB) << 30
	const chunk = 4 << 20
	gib := float64(n) / (1 << 30)
	row := func(what string, format string, args ...any) {
		t.Logf("| %s | %s |", what, fmt.Sprintf(format, args...))
	}
	t.Logf("GPU: %s, driver %d, GOMAXPROCS %d, buffer %d GiB, chunks of %d MiB", d.GPU(), cu.Version(), runtime.GOMAXPROCS(0), *reportGiB, chunk>>20)
	t.Logf("| measurement | result |")
	t.Logf("|---|---|")

	buf, err := d.Alloc(n, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	fill := make([]byte, 64<<20)
	for i := range fill {
		fill[i] = byte(i * 131)
	}
	for off := int64(0); off < n; off += int64(len(fill)) {
		if err := d.CopyFromHost(buf, off, fill[:min(int64(len(fill)), n-off)]); err != nil {
			t.Fatal(err)
		}
	}
	cb := buf.(*Buffer)
	if err := d.Reserve(buf, kernels.CaptureOptions{ChunkSize: chunk, Incremental: true}); err != nil {
		t.Fatal(err)
	}

	// Pinned bandwidth: one copy of the whole buffer, best of 5.
	pinnedBW := func() float64 {
		unbind, err := d.bind()
		if err != nil {
			t.Fatal(err)
		}
		defer unbind()
		p, err := hostAlloc(int(n))
		if err != nil {
			t.Fatal(err)
		}
		defer hostFree(p)
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			if err := cu.MemcpyDtoHAsync(p, cb.ptr, n, d.drain); err != nil {
				t.Fatal(err)
			}
			if err := d.drain.Synchronize(); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return gib / best.Seconds()
	}()
	row("pinned D2H, one cuMemcpyDtoHAsync of the buffer (best of 5)", "%.1f GiB/s", pinnedBW)
	host := make([]byte, n)
	start := time.Now()
	if err := d.CopyToHost(host, buf, 0); err != nil {
		t.Fatal(err)
	}
	row("pageable D2H (CopyToHost into Go memory)", "%.1f GiB/s", gib/time.Since(start).Seconds())
	host = nil

	ctx := context.Background()
	readers := runtime.GOMAXPROCS(0)
	drain := func(s kernels.Snapshot) {
		next := make(chan int, s.NumChunks())
		for i := range s.NumChunks() {
			next <- i
		}
		close(next)
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for i := range next {
					if _, _, err := s.Chunk(ctx, i); err != nil {
						t.Error(err)
						return
					}
					s.Done(i)
				}
			})
		}
		wg.Wait()
	}
	timeCapture := func(dev *Device, opt kernels.CaptureOptions) (total, call time.Duration, s kernels.Snapshot) {
		start := time.Now()
		s, err := dev.Capture(buf, opt)
		if err != nil {
			t.Fatal(err)
		}
		call = time.Since(start)
		drain(s)
		return time.Since(start), call, s
	}

	// Full captures, drained by GOMAXPROCS readers that only copy nothing:
	// the rate at which a writer could be fed. Median of 5 after a warm-up
	// (the first capture allocates and pins its staging).
	for _, c := range []struct {
		name   string
		direct bool
		opt    kernels.CaptureOptions
	}{
		{"staged, raw", false, kernels.CaptureOptions{ChunkSize: chunk}},
		{"staged, shuffled", false, kernels.CaptureOptions{ChunkSize: chunk, Shuffle: true}},
		{"staged, shuffled + hashes", false, kernels.CaptureOptions{ChunkSize: chunk, Shuffle: true, Incremental: true}},
		{"direct (fallback)", true, kernels.CaptureOptions{ChunkSize: chunk}},
	} {
		// The fallback path is a device option; the buffer is d's, so
		// switch d itself for this row.
		d.opt.DirectCapture = c.direct
		var totals []time.Duration
		for i := range 6 {
			total, _, s := timeCapture(d, c.opt)
			s.Release()
			if i > 0 {
				totals = append(totals, total)
			}
		}
		d.opt.DirectCapture = false
		slices.Sort(totals)
		med := totals[len(totals)/2]
		rate := gib / med.Seconds()
		row("capture + drain, "+c.name+" (median of 5)", "%.1f GiB/s = %.0f%% of pinned D2H", rate, 100*rate/pinnedBW)
	}

	// Job-visible cost of a cut: the Capture call on the host, and the time
	// the device-side snapshot occupies the job's stream.
	evA, _ := cu.MakeEvent(cu.BlockingSyncEvent)
	evB, _ := cu.MakeEvent(cu.BlockingSyncEvent)
	var calls, gpu []time.Duration
	opt := kernels.CaptureOptions{ChunkSize: chunk, Shuffle: true, Incremental: true}
	for range 21 {
		if err := d.Synchronize(); err != nil {
			t.Fatal(err)
		}
		func() {
			unbind, _ := d.bind()
			defer unbind()
			_ = evA.Record(d.compute)
		}()
		start := time.Now()
		s, err := d.Capture(buf, opt)
		call := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		func() {
			unbind, _ := d.bind()
			defer unbind()
			_ = evB.Record(d.compute)
			_ = evB.Synchronize()
			ms, _ := evA.Elapsed(evB)
			gpu = append(gpu, time.Duration(ms*float64(time.Millisecond)))
		}()
		calls = append(calls, call)
		drain(s)
		s.Release()
	}
	calls, gpu = calls[1:], gpu[1:]
	slices.Sort(calls)
	slices.Sort(gpu)
	row("Capture call, host time (median / max of 20)", "%v / %v", calls[len(calls)/2], calls[len(calls)-1])
	row("device-side snapshot on the job's stream (shuffle + hash, median)", "%v (%.0f GiB/s)", gpu[len(gpu)/2], gib/gpu[len(gpu)/2].Seconds())

	// Incremental: 10% of the chunks written between two cuts.
	nch := kernels.NumChunks(n, chunk)
	base, _ := func() (*kernels.ChunkHashes, error) {
		_, _, s := timeCapture(d, opt)
		defer s.Release()
		return s.Hashes(ctx)
	}()
	var full, incr []time.Duration
	for rep := range 5 {
		for k := rep; k < nch; k += 10 {
			lo, _ := kernels.ChunkBounds(n, chunk, k)
			if err := d.CopyFromHost(buf, lo, []byte{byte(rep + 1), 2, 3}); err != nil {
				t.Fatal(err)
			}
		}
		o := opt
		o.Base = base
		total, _, s := timeCapture(d, o)
		h, _ := s.Hashes(ctx)
		s.Release()
		incr = append(incr, total)
		base = h
		total, _, s = timeCapture(d, opt)
		s.Release()
		full = append(full, total)
	}
	slices.Sort(full)
	slices.Sort(incr)
	row("cut with 10% of chunks changed vs full (median of 5)", "%v vs %v: %.1fx faster", incr[2], full[2], full[2].Seconds()/incr[2].Seconds())

	// Restore: one pageable copy of a whole host copy (Restore) against
	// pieces written by GOMAXPROCS writers through pinned slots
	// (RestoreStream, as a restore that decodes on all cores feeds it);
	// the bytes are ready in host memory, so this is the copy alone.
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i * 7)
	}
	var whole, pieces []time.Duration
	for range 3 {
		start := time.Now()
		if err := d.Restore(buf, src); err != nil {
			t.Fatal(err)
		}
		whole = append(whole, time.Since(start))
		start = time.Now()
		w, err := d.RestoreStream(buf)
		if err != nil {
			t.Fatal(err)
		}
		next := make(chan int64, nch)
		for k := range nch {
			lo, _ := kernels.ChunkBounds(n, chunk, k)
			next <- lo
		}
		close(next)
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for lo := range next {
					if _, err := w.WriteAt(src[lo:min(lo+chunk, n)], lo); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, time.Since(start))
	}
	check := make([]byte, 1<<20)
	for _, off := range []int64{0, n / 2, n - int64(len(check))} {
		if err := d.CopyToHost(check, buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(check, src[off:off+int64(len(check))]) {
			t.Fatalf("restored in pieces: bytes at %d differ", off)
		}
	}
	src = nil
	slices.Sort(whole)
	slices.Sort(pieces)
	row("restore H2D, Restore of a whole pageable host copy (median of 3)", "%.1f GiB/s", gib/whole[1].Seconds())
	row(fmt.Sprintf("restore H2D, RestoreStream: %d writers of %d MiB pieces through pinned slots (median of 3)", readers, chunk>>20), "%.1f GiB/s = %.0f%% of pinned D2H", gib/pieces[1].Seconds(), 100*gib/pieces[1].Seconds()/pinnedBW)

	// Kernels.
	unbindTiming := func(f func()) time.Duration {
		if err := d.Synchronize(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		f()
		if err := d.Synchronize(); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	hd := unbindTiming(func() {
		for range 5 {
			if _, err := d.Hash(buf, chunk); err != nil {
				t.Fatal(err)
			}
		}
	})
	row("GPU chunk hash", "%.0f GiB/s", 5*gib/hd.Seconds())
	other, err := d.Alloc(n, 8)
	if err != nil {
		t.Fatal(err)
	}
	sd := unbindTiming(func() {
		for range 5 {
			if err := d.Shuffle(other, buf, chunk); err != nil {
				t.Fatal(err)
			}
		}
	})
	other.Close()
	row("GPU shuffle (8-byte elements)", "%.0f GiB/s read+write", 5*gib/sd.Seconds())

	tile := kernels.Tile{NX: 8192, NY: 8192, GX: 8192, GY: 8192}
	a, err := d.Alloc(tile.Bytes(), 8)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Alloc(tile.Bytes(), 8)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 200
	st := unbindTiming(func() {
		for range steps {
			if err := d.Heat2DStep(b, a, tile, 0.2); err != nil {
				t.Fatal(err)
			}
			a, b = b, a
		}
	})
	a.Close()
	b.Close()
	row("GPU heat2d step, 8192x8192 tile", "%.2f Gcells/s", float64(steps)*float64(tile.NX*tile.NY)/st.Seconds()/1e9)
}

var largeFrac = flag.Float64("large", 0, "run TestLargeState with a buffer of this fraction of the GPU's free memory (e.g. 0.55)")

// TestLargeState: a buffer larger than half the GPU's free memory, so that
// a capture cannot get a device staging copy and takes the direct path
// (copies to pinned host memory on the job's stream), is captured whole
// and every chunk checked against its expected hash, then restored in
// pieces through RestoreStream and checked on the device. It logs the
// figures as rows of the report's table.
func TestLargeState(t *testing.T) {
	if *largeFrac <= 0 {
		t.Skip("pass -large FRACTION to run")
	}
	d, err := Open(0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const chunk = 4 << 20
	var free, total int64
	func() {
		unbind, err := d.bind()
		if err != nil {
			t.Fatal(err)
		}
		defer unbind()
		if free, total, err = cu.MemInfo(); err != nil {
			t.Fatal(err)
		}
	}()
	n := int64(float64(free)**largeFrac) &^ (chunk - 1)
	buf, err := d.Alloc(n, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	cb := buf.(*Buffer)
	nch := kernels.NumChunks(n, chunk)
	gib := float64(n) / (1 << 30)
	row := func(what string, format string, args ...any) {
		t.Logf("| %s | %s |", what, fmt.Sprintf(format, args...))
	}
	t.Logf("GPU: %s, %.1f of %.1f GiB free; buffer %.1f GiB (%.0f %% of the GPU's memory), chunks of %d MiB, GOMAXPROCS %d",
		d.GPU(), float64(free)/(1<<30), float64(total)/(1<<30), gib, 100*float64(n)/float64(total), chunk>>20, runtime.GOMAXPROCS(0))

	// Chunk k holds the 32-bit word pattern(k, gen) throughout.
	pattern := func(k, gen int) uint32 { return uint32(k)*2654435761 + uint32(gen)*40503 + 1 }
	fillHost := func(p []byte, v uint32) {
		for i := 0; i+4 <= len(p); i += 4 {
			p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
	}
	want := func(gen int) []uint64 {
		sums := make([]uint64, nch)
		next := make(chan int, nch)
		for k := range nch {
			next <- k
		}
		close(next)
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				p := make([]byte, chunk)
				for k := range next {
					fillHost(p, pattern(k, gen))
					sums[k] = kernels.ChunkHash(p)
				}
			})
		}
		wg.Wait()
		return sums
	}
	checkDevice := func(gen int, what string) {
		h, err := d.Hash(buf, chunk)
		if err != nil {
			t.Fatal(err)
		}
		w := want(gen)
		for k := range nch {
			if h.Sums[k] != w[k] {
				t.Fatalf("%s: chunk %d on the device has hash %x, want %x", what, k, h.Sums[k], w[k])
			}
		}
	}
	func() {
		unbind, err := d.bind()
		if err != nil {
			t.Fatal(err)
		}
		defer unbind()
		for k := range nch {
			if err := cu.MemsetD32Async(cb.ptr+cu.DevicePtr(int64(k)*chunk), uint(pattern(k, 0)), chunk/4, d.compute); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.compute.Synchronize(); err != nil {
			t.Fatal(err)
		}
	}()
	checkDevice(0, "filled")

	// Capture and drain, every chunk checked on the host.
	w0 := want(0)
	start := time.Now()
	s, err := d.Capture(buf, kernels.CaptureOptions{ChunkSize: chunk, Shuffle: true})
	if err != nil {
		t.Fatal(err)
	}
	call := time.Since(start)
	path := "staged"
	if s.(*snapshot).direct {
		path = "direct"
	}
	ctx := context.Background()
	next := make(chan int, nch)
	for k := range nch {
		next <- k
	}
	close(next)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			raw := make([]byte, chunk)
			for k := range next {
				c, _, err := s.Chunk(ctx, k)
				if err != nil {
					t.Error(err)
					return
				}
				b := c
				if s.Shuffled() {
					shuffle.Unshuffle(raw[:len(c)], c, 8)
					b = raw[:len(c)]
				}
				if h := kernels.ChunkHash(b); h != w0[k] {
					t.Errorf("captured chunk %d: hash %x, want %x", k, h, w0[k])
				}
				s.Done(k)
			}
		})
	}
	wg.Wait()
	drained := time.Since(start)
	onStream, err := s.(kernels.StreamTimed).StreamTime()
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	if t.Failed() {
		return
	}
	row(fmt.Sprintf("large state: capture of %.1f GiB (%s path), Capture call", gib, path), "%v", call)
	row("large state: capture + drain with every chunk checked", "%.1f GiB/s (%v)", gib/drained.Seconds(), drained)
	row("large state: the capture's time on the job's stream (CUDA events)", "%v", onStream)

	// Restore in pieces, checked on the device.
	start = time.Now()
	rw, err := d.RestoreStream(buf)
	if err != nil {
		t.Fatal(err)
	}
	next = make(chan int, nch)
	for k := range nch {
		next <- k
	}
	close(next)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			p := make([]byte, chunk)
			for k := range next {
				fillHost(p, pattern(k, 1))
				if _, err := rw.WriteAt(p, int64(k)*chunk); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	restored := time.Since(start)
	checkDevice(1, "restored in pieces")
	row("large state: restore in pieces (RestoreStream, the pieces made on the host as it goes)", "%.1f GiB/s (%v)", gib/restored.Seconds(), restored)
}
