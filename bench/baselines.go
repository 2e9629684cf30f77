package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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

// limitMemcpy is one core copying the state: the memory bandwidth limit.
func (h *harness) limitMemcpy(kind datagen.Kind, size int64) Record {
	data := h.data.get(kind, size)
	d := h.memcpyParts([][]byte{data})
	return Record{
		Name: fmt.Sprintf("limit/memcpy/%s/%s", kind, sizeName(size)), Family: FamilyStore, Role: RoleLimit, What: "memcpy",
		Kind: kind.String(), StateBytes: size, Ranks: 1, Reps: 1,
		MemcpyMs: one(ms(d)), RawGBps: one(gbps(size, d)),
		Note: "one goroutine, copy() into a pre-faulted window of at most 1 GiB",
	}
}

// limitDisk writes the state to one new file on the scratch disk in 8 MiB
// writes through the store's own local backend (O_DIRECT where the file
// system allows it, as packs are written) and commits it (fsync, rename):
// the disk's limit for raw bytes on the engine's own write path.
func (h *harness) limitDisk(kind datagen.Kind, size int64) (Record, error) {
	data := h.data.get(kind, size)
	rec := Record{
		Name: fmt.Sprintf("limit/write+fsync/%s/%s", kind, sizeName(size)), Family: FamilyStore, Role: RoleLimit, What: "write+fsync",
		Kind: kind.String(), StateBytes: size, Ranks: 1, Reps: 1,
		Note: "one file through the store's local backend (O_DIRECT where allowed), 8 MiB writes, then fsync",
	}
	b, err := local.New(h.scratch)
	if err != nil {
		return rec, err
	}
	rel := fmt.Sprintf("raw-%d", h.seq)
	h.seq++
	defer os.Remove(filepath.Join(h.scratch, rel))
	ctx := context.Background()
	t0 := time.Now()
	w, err := b.Create(ctx, rel)
	if err != nil {
		return rec, err
	}
	for off := 0; off < len(data); off += 8 << 20 {
		if _, err := w.Write(data[off:min(off+8<<20, len(data))]); err != nil {
			w.Abort()
			return rec, err
		}
	}
	if err := w.Commit(); err != nil {
		return rec, err
	}
	d := time.Since(t0)
	dropCache(filepath.Join(h.scratch, rel))
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
