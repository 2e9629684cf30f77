package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/ckpt/backend/discard"
	"github.com/cutpoint/cutpoint/internal/datagen"
	"github.com/cutpoint/cutpoint/kernels"
)

// storeSpec is one scenario of the store family: R ranks' buffers captured
// on a device and written by R shard writers into one store on the
// scratch disk, committed, then restored, all in this process.
type storeSpec struct {
	Kind    datagen.Kind
	Size    int64 // total over ranks
	Ranks   int
	Codec   string
	Shuffle bool
	Changed float64 // 1: a full cut; below 1: an incremental cut after a full one
	Device  string
	Workers int // writer goroutines per store; 0: GOMAXPROCS
}

func (s storeSpec) elem() int {
	if s.Shuffle {
		return s.Kind.ElemSize()
	}
	return 1
}

func (s storeSpec) name() string {
	sh := "noshuffle"
	if s.Shuffle {
		sh = "shuffle"
	}
	n := fmt.Sprintf("store/%s/%s/%s/%s/r%d/%s", s.Device, s.Kind, s.Codec, sh, s.Ranks, sizeName(s.Size))
	if s.Changed < 1 {
		n += fmt.Sprintf("/changed=%g", s.Changed)
	}
	if s.Workers > 0 {
		n += fmt.Sprintf("/workers=%d", s.Workers)
	}
	return n
}

// cutResult is one cut of a store scenario.
type cutResult struct {
	blocking   time.Duration // slowest rank's Capture call
	durable    time.Duration // capture start to the last shard durable
	committed  time.Duration // to the manifest renamed
	raw, newB  int64
	ratio      float64
	cpu        float64 // process CPU seconds over the cut
	peakExtra  int64
	peakFlight int64
	hashes     []*kernels.ChunkHashes // per rank, device-incremental captures only
}

// rankBufs are the ranks' buffers on the scenario's device.
type rankBufs struct {
	devs  []kernels.Device // per rank
	bufs  []kernels.Buffer
	parts [][]byte // host copies (the data)
	close func()
}

func (h *harness) openBufs(sp storeSpec, data []byte) (*rankBufs, error) {
	parts := split(data, sp.Ranks, sp.Kind.ElemSize())
	rb := &rankBufs{parts: parts}
	if sp.Device == "cpu" {
		for _, p := range parts {
			// A CPU device per rank, as each rank process has its own:
			// its staging pool holds that rank's reserved staging (one
			// shared pool would hand one reservation to two ranks), and
			// goes away with the scenario.
			rb.devs = append(rb.devs, kernels.NewCPU(0))
			b, err := kernels.HostBytes(p, sp.elem())
			if err != nil {
				return nil, err
			}
			rb.bufs = append(rb.bufs, b)
		}
		rb.close = func() {}
		return rb, nil
	}
	dev, err := h.device(sp.Device)
	if err != nil {
		return nil, err
	}
	for range parts {
		rb.devs = append(rb.devs, dev)
	}
	rb.close = func() {
		for _, b := range rb.bufs {
			b.Close()
		}
	}
	for _, p := range parts {
		b, err := dev.Alloc(int64(len(p)), sp.elem())
		if err != nil {
			rb.close()
			return nil, fmt.Errorf("%s: allocate %d bytes: %w", sp.Device, len(p), err)
		}
		rb.bufs = append(rb.bufs, b)
		if err := dev.CopyFromHost(b, 0, p); err != nil {
			rb.close()
			return nil, err
		}
	}
	return rb, nil
}

// captureOptions mirror the rank runtime's: on the CPU a plain copy (the
// writer shuffles, the store deduplicates against the base shard); on
// other devices shuffle on the device and skip unchanged chunks.
func captureOptions(dev kernels.Device, chunk int, shuffle bool, base *kernels.ChunkHashes) kernels.CaptureOptions {
	opt := kernels.CaptureOptions{ChunkSize: chunk}
	if _, cpu := dev.(*kernels.CPU); !cpu {
		opt.Shuffle = shuffle
		opt.Incremental = true
		opt.Base = base
	}
	return opt
}

// cut captures every rank's buffer at once, writes the shards in parallel
// and commits the cut.
func (h *harness) cut(ctx context.Context, st *ckpt.Store, sp storeSpec, rb *rankBufs, epoch uint64, base []*kernels.ChunkHashes) (cutResult, error) {
	var res cutResult
	resetPeakRSS()
	rss0, _ := rss()
	cpu0 := cpuTime()
	refs := make([]ckpt.ShardRef, sp.Ranks)
	blocking := make([]time.Duration, sp.Ranks)
	durable := make([]time.Duration, sp.Ranks)
	flight := make([]int64, sp.Ranks)
	hashes := make([]*kernels.ChunkHashes, sp.Ranks)
	errs := make([]error, sp.Ranks)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range sp.Ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b *kernels.ChunkHashes
			if base != nil {
				b = base[i]
			}
			opt := captureOptions(rb.devs[i], st.ChunkSize(), sp.Shuffle, b)
			tc := time.Now()
			snap, err := rb.devs[i].Capture(rb.bufs[i], opt)
			blocking[i] = time.Since(tc)
			if err != nil {
				errs[i] = fmt.Errorf("rank %d: capture: %w", i, err)
				return
			}
			defer snap.Release()
			spec := ckpt.ShardSpec{Job: "bench", Epoch: epoch, Rank: i, Incarnation: 1, Step: int64(epoch)}
			if epoch > 1 {
				spec.Base = &ckpt.BaseRef{Epoch: epoch - 1}
			}
			w, err := st.NewShard(ctx, spec)
			if err != nil {
				errs[i] = err
				return
			}
			if err := w.AddBuffer(ctx, "state", snap); err != nil {
				w.Abort()
				errs[i] = fmt.Errorf("rank %d: %w", i, err)
				return
			}
			ref, err := w.Close(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("rank %d: %w", i, err)
				return
			}
			durable[i] = time.Since(t0)
			refs[i] = ref
			flight[i] = w.Stats().PeakInFlight
			if opt.Incremental {
				if hs, err := snap.Hashes(ctx); err == nil {
					hashes[i] = hs
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	info, err := st.Commit(ctx, ckpt.CutSpec{Job: "bench", Epoch: epoch, Step: int64(epoch), World: sp.Ranks, Incarnation: 1, Shards: refs})
	if err != nil {
		return res, err
	}
	res.committed = time.Since(t0)
	res.cpu = cpuTime() - cpu0
	_, hwm := rss()
	res.peakExtra = max(0, hwm-rss0)
	for i := range sp.Ranks {
		res.blocking = max(res.blocking, blocking[i])
		res.durable = max(res.durable, durable[i])
		res.peakFlight = max(res.peakFlight, flight[i])
	}
	res.raw, res.newB, res.ratio = info.RawBytes, info.NewBytes, info.Ratio()
	if hashes[0] != nil {
		res.hashes = hashes
	}
	return res, nil
}

// restore reads every rank's shard of epoch back into its host part, in
// parallel, after dropping the packs from the page cache, and checks the
// bytes against want (per part).
func (h *harness) restore(ctx context.Context, st *ckpt.Store, dir string, epoch uint64, parts [][]byte, want []uint64) (time.Duration, error) {
	dropCache(dir)
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sr, err := st.OpenShard(ctx, "bench", epoch, i)
			if err != nil {
				errs[i] = err
				return
			}
			defer sr.Close()
			errs[i] = sr.ReadBuffer(ctx, "state", p)
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	for i, err := range errs {
		if err != nil {
			return d, fmt.Errorf("restore rank %d: %w", i, err)
		}
		if got := digest(parts[i]); got != want[i] {
			return d, fmt.Errorf("restore rank %d: the restored bytes differ from the captured ones", i)
		}
	}
	return d, nil
}

// storeScenario runs one store scenario and returns its record.
func (h *harness) storeScenario(ctx context.Context, sp storeSpec) (Record, error) {
	rec := Record{
		Name: sp.name(), Family: FamilyStore, Role: RoleScenario, What: "cut",
		Kind: sp.Kind.String(), StateBytes: sp.Size, Ranks: sp.Ranks, Codec: sp.Codec, Shuffle: boolp(sp.Shuffle),
		Device: sp.Device, Workers: sp.Workers, Reps: 1,
	}
	if sp.Changed < 1 {
		rec.What, rec.ChangedFraction = "incremental cut", sp.Changed
	}
	if sp.Workers == 1 {
		rec.Role, rec.What = RoleBaseline, "single-threaded"
	}
	data := h.data.get(sp.Kind, sp.Size)
	rb, err := h.openBufs(sp, data)
	if err != nil {
		return rec, err
	}
	defer rb.close()

	dir := h.scratchDir("store")
	defer os.RemoveAll(dir)
	st, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Create: true, Codec: sp.Codec, Workers: sp.Workers, Logger: h.quiet})
	if err != nil {
		return rec, err
	}
	defer st.Close()
	for i, b := range rb.bufs {
		// As Protect does: the first capture must not pay page faults.
		_ = rb.devs[i].Reserve(b, captureOptions(rb.devs[i], st.ChunkSize(), sp.Shuffle, nil))
	}
	rec.MemcpyMs = one(ms(h.memcpyParts(rb.parts)))

	full, err := h.cut(ctx, st, sp, rb, 1, nil)
	if err != nil {
		return rec, err
	}
	c, epoch := full, uint64(1)
	var flips [][]int
	if sp.Changed < 1 {
		for i, p := range rb.parts {
			ch := changedChunks(kernels.NumChunks(int64(len(p)), st.ChunkSize()), sp.Changed)
			flips = append(flips, ch)
			flipChunks(p, st.ChunkSize(), ch)
			if sp.Device != "cpu" {
				if err := rb.devs[i].CopyFromHost(rb.bufs[i], 0, p); err != nil {
					return rec, err
				}
			}
		}
		defer func() {
			for i, p := range rb.parts {
				flipChunks(p, st.ChunkSize(), flips[i])
			}
		}()
		epoch = 2
		if c, err = h.cut(ctx, st, sp, rb, 2, full.hashes); err != nil {
			return rec, err
		}
		rec.FullCutDurableMs = one(ms(full.durable))
		rec.SpeedupVsFull = one(full.durable.Seconds() / c.durable.Seconds())
	}
	want := make([]uint64, len(rb.parts))
	for i, p := range rb.parts {
		want[i] = digest(p)
	}
	rd, err := h.restore(ctx, st, dir, epoch, rb.parts, want)
	if err != nil {
		return rec, err
	}

	rec.BlockingMs = one(ms(c.blocking))
	rec.BlockingVsMemcpy = one(c.blocking.Seconds() / rec.MemcpyMs.Median * 1e3)
	rec.DurableMs = one(ms(c.durable))
	rec.CommittedMs = one(ms(c.committed))
	rec.StopWorldBlockingMs = one(ms(c.durable))
	rec.RawGBps = one(gbps(sp.Size, c.durable))
	rec.StoredGBps = one(gbps(c.newB, c.durable))
	rec.Ratio = one(c.ratio)
	if c.cpu > 0 {
		rec.WriteMBPerCPUs = one(float64(sp.Size) / 1e6 / c.cpu)
	}
	rec.RestoreGBps = one(gbps(sp.Size, rd))
	rec.RestoreVsWrite = one(rec.RestoreGBps.Median / rec.RawGBps.Median)
	rec.PeakInflightBytes = one(float64(c.peakFlight))
	if c.peakExtra > 0 {
		rec.PeakRSSExtraBytes = one(float64(c.peakExtra))
	}
	return rec, nil
}

// memcpyParts copies the parts as the capture does: every part at once,
// each on GOMAXPROCS goroutines (a CPU rank's capture copies on all its
// device's workers, kernels.NewCPU(0)).
func (h *harness) memcpyParts(parts [][]byte) time.Duration {
	return h.memcpyThreads(parts, runtime.GOMAXPROCS(0))
}

// memcpyThreads copies every part into the harness's window at once, each
// part split over perPart goroutines, and returns the wall time of the
// second pass (the first faults the window in).
func (h *harness) memcpyThreads(parts [][]byte, perPart int) time.Duration {
	var total int
	for _, p := range parts {
		total += len(p)
	}
	perPart = max(1, perPart)
	// At least a page per goroutine, so that every copy makes progress.
	win := h.window(max(min(total, maxWindow), len(parts)*perPart*4096))
	var d time.Duration
	for pass := range 2 {
		var wg sync.WaitGroup
		t0 := time.Now()
		n := len(win) / (len(parts) * perPart)
		slot := 0
		for _, p := range parts {
			piece := (len(p) + perPart - 1) / perPart
			for lo := 0; lo < len(p); lo += piece {
				src := p[lo:min(lo+piece, len(p))]
				// Each goroutine gets its share of the window.
				w := win[slot*n : (slot+1)*n]
				slot++
				wg.Add(1)
				go func() {
					defer wg.Done()
					for o := 0; o < len(src); o += len(w) {
						copy(w, src[o:min(o+len(w), len(src))])
					}
				}()
			}
		}
		wg.Wait()
		if pass == 1 {
			d = time.Since(t0)
		}
	}
	return d
}

// pipelineGBps is the engine on all cores into a backend that drops the
// pack bytes: the "cores x codec speed" side of the storage goal.
func (h *harness) pipelineGBps(ctx context.Context, sp storeSpec) (float64, error) {
	data := h.data.get(sp.Kind, sp.Size)
	st, err := ckpt.Open(ctx, discard.New(), ckpt.Options{Create: true, Codec: sp.Codec, Logger: h.quiet})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	t0 := time.Now()
	w, err := st.NewShard(ctx, ckpt.ShardSpec{Job: "bench", Epoch: 1, Incarnation: 1})
	if err != nil {
		return 0, err
	}
	if err := w.AddBuffer(ctx, "state", ckpt.BytesSource(data, sp.elem())); err != nil {
		w.Abort()
		return 0, err
	}
	if _, err := w.Close(ctx); err != nil {
		return 0, err
	}
	return gbps(sp.Size, time.Since(t0)), nil
}

// pipelineRecord is the limit row of the engine without storage for the
// data, size, codec and shuffle of sp.
func (h *harness) pipelineRecord(sp storeSpec, r float64) Record {
	return Record{
		Name: fmt.Sprintf("limit/engine-no-storage/%s/%s/%s/%v", sp.Kind, sizeName(sp.Size), sp.Codec, sp.Shuffle), Family: FamilyStore,
		Role: RoleLimit, What: "engine, no storage",
		Kind: sp.Kind.String(), StateBytes: sp.Size, Ranks: 1, Codec: sp.Codec, Shuffle: boolp(sp.Shuffle), Device: "cpu", Reps: 1,
		RawGBps: one(r), Note: "filter, hash, compress on all cores into a backend that drops the bytes",
	}
}

func (h *harness) scratchDir(prefix string) string {
	h.seq++
	return filepath.Join(h.scratch, fmt.Sprintf("%s-%d", prefix, h.seq))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// gbps is n bytes over d in GB/s (1e9 bytes per second).
func gbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / float64(d.Nanoseconds())
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<30:
		return fmt.Sprintf("%.2fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
