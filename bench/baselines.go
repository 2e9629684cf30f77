package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend/local"
	"github.com/cutpoint/cutpoint/internal/datagen"
)

// maxWindow bounds the memcpy destination: bigger states stream through
// it, which costs the same per byte once the window is far larger than the
// caches.
const maxWindow = 1 << 30

// window returns a pre-faulted destination of at least n bytes.
func (h *harness) window(n int) []byte {
	if len(h.win) < n {
		h.win = nil
		h.win = make([]byte, n)
		for i := 0; i < n; i += 4096 {
			h.win[i] = 1
		}
	}
	return h.win[:n]
}

// limitMemcpy is the state copied on GOMAXPROCS goroutines, as a rank's
// capture copies it: the memory bandwidth limit.
func (h *harness) limitMemcpy(kind datagen.Kind, size int64) Record {
	data := h.data.get(kind, size)
	d := h.memcpyParts([][]byte{data})
	return Record{
		Name: fmt.Sprintf("limit/memcpy/%s/%s", kind, sizeName(size)), Family: FamilyStore, Role: RoleLimit, What: "memcpy",
		Kind: kind.String(), StateBytes: size, Ranks: 1, Reps: 1,
		MemcpyMs: one(ms(d)), RawGBps: one(gbps(size, d)),
		Workers: runtime.GOMAXPROCS(0),
		Note:    fmt.Sprintf("%d goroutines (as the capture), copy() into a pre-faulted window of at most 1 GiB", runtime.GOMAXPROCS(0)),
	}
}

// limitDisk writes the state in writers new files at once (as many as
// the job has ranks, each a rank's share) on the scratch disk in 8 MiB
// writes through the store's own local backend (O_DIRECT where the file
// system allows it, as packs are written) and commits them (fsync,
// rename): the disk's limit for raw bytes on the engine's own write path.
func (h *harness) limitDisk(kind datagen.Kind, size int64, writers int) (Record, error) {
	data := h.data.get(kind, size)
	writers = max(1, writers)
	rec := Record{
		Name: fmt.Sprintf("limit/write+fsync/%s/%s", kind, sizeName(size)), Family: FamilyStore, Role: RoleLimit, What: "write+fsync",
		Kind: kind.String(), StateBytes: size, Ranks: writers, Workers: writers, Reps: 1,
		Note: fmt.Sprintf("%d files written at once (one per rank) through the store's local backend (O_DIRECT where allowed), 8 MiB writes, then fsync", writers),
	}
	b, err := local.New(h.scratch)
	if err != nil {
		return rec, err
	}
	parts := split(data, writers, 8)
	rels := make([]string, len(parts))
	for i := range rels {
		rels[i] = fmt.Sprintf("raw-%d", h.seq)
		h.seq++
		defer os.Remove(filepath.Join(h.scratch, rels[i]))
	}
	ctx := context.Background()
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := b.Create(ctx, rels[i])
			if err != nil {
				errs[i] = err
				return
			}
			for off := 0; off < len(p); off += 8 << 20 {
				if _, err := w.Write(p[off:min(off+8<<20, len(p))]); err != nil {
					w.Abort()
					errs[i] = err
					return
				}
			}
			errs[i] = w.Commit()
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return rec, err
	}
	for _, rel := range rels {
		dropCache(filepath.Join(h.scratch, rel))
	}
	rec.DurableMs = one(ms(d))
	rec.RawGBps = one(gbps(size, d))
	rec.StoredGBps = rec.RawGBps
	rec.Ratio = one(1)
	return rec, nil
}

// baselineZstd runs `zstd -1 -T<cores>` on the state in a file (in the page
// cache, as a user's script would find a dump it just wrote) to a file on
// the same disk, then fsyncs the output: what users script.
func (h *harness) baselineZstd(ctx context.Context, kind datagen.Kind, size int64) (Record, error) {
	cores := runtime.NumCPU()
	rec := Record{
		Name: fmt.Sprintf("baseline/zstd-cli/%s/%s", kind, sizeName(size)), Family: FamilyStore, Role: RoleBaseline, What: "zstd CLI",
		Kind: kind.String(), StateBytes: size, Ranks: 1, Codec: "zstd -1 -T" + strconv.Itoa(cores), Workers: cores, Reps: 1,
	}
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		return rec, errNoZstd
	}
	data := h.data.get(kind, size)
	in := filepath.Join(h.scratch, fmt.Sprintf("zin-%d", h.seq))
	h.seq++
	out := in + ".zst"
	defer os.Remove(in)
	defer os.Remove(out)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		return rec, err
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru0)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, zstd, "-1", "-T"+strconv.Itoa(cores), "-q", "-f", in, "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return rec, fmt.Errorf("zstd: %v: %s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		return rec, err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return rec, err
	}
	d := time.Since(t0)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru1)
	fi, err := os.Stat(out)
	if err != nil {
		return rec, err
	}
	cpu := float64(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / 1e9
	rec.DurableMs = one(ms(d))
	rec.RawGBps = one(gbps(size, d))
	rec.StoredGBps = one(gbps(fi.Size(), d))
	rec.Ratio = one(float64(size) / float64(max(1, fi.Size())))
	if cpu > 0 {
		rec.WriteMBPerCPUs = one(float64(size) / 1e6 / cpu)
	}
	return rec, nil
}
