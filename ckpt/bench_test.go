package ckpt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend/discard"
	"github.com/cutpoint/cutpoint/ckpt/backend/local"
	"github.com/cutpoint/cutpoint/internal/datagen"
)

// Benchmarks of the write and restore paths on the three data kinds.
//
//	CUTPOINT_BENCH_SIZE  bytes per data set (default 32 MiB; 1073741824 for the record)
//	CUTPOINT_BENCH_DIR   where stores and files go (default the system temp dir)
//
// Write is raw bytes to durable (NewShard, AddBuffer, Close: the pack is
// fsynced and renamed when Close returns); restore is ReadBuffer of the
// same shard, every chunk read, decompressed, checked and unshuffled (from
// the page cache: the pack was just written). Limits: memcpy and a plain
// write+fsync of the same bytes; baseline: the zstd command line tool at
// -1 -T2 on the same bytes to the same directory, followed by an fsync.
//
//	go test -run '^$' -bench . -benchtime 3x ./ckpt

func benchSize(b *testing.B) int {
	if s := os.Getenv("CUTPOINT_BENCH_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("CUTPOINT_BENCH_SIZE=%q: want a positive byte count", s)
		}
		return n
	}
	return 32 << 20
}

func benchDir(b *testing.B) string {
	if d := os.Getenv("CUTPOINT_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "cutpoint-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

var (
	benchDataMu sync.Mutex
	benchData   = map[string][]byte{}
)

// dataFor generates a data set once per process.
func dataFor(kind datagen.Kind, size int) []byte {
	benchDataMu.Lock()
	defer benchDataMu.Unlock()
	key := fmt.Sprint(kind, size)
	if d, ok := benchData[key]; ok {
		return d
	}
	d := datagen.New(kind, size, 1)
	benchData[key] = d
	return d
}

// cpuClock measures the process's CPU time (user + system) over a
// benchmark loop: on a shared machine, bytes per CPU-second says more about
// the code than bytes per wall-second.
type cpuClock struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{cpuNow()} }

// report adds MB/cpu-s for n bytes per iteration.
func (c cpuClock) report(b *testing.B, n int64, iters int) {
	if d := cpuNow() - c.start; d > 0 && iters > 0 {
		b.ReportMetric(float64(n)*float64(iters)/1e6/d.Seconds(), "MB/cpu-s")
	}
}

type benchCase struct {
	codec   string
	shuffle bool
	hash    string // "": the default
}

// The last case is the second one with the other hash: what the choice
// costs per cut.
var benchCases = []benchCase{{"none", false, ""}, {"s2", false, ""}, {"s2", true, ""}, {"s2-better", true, ""}, {"zstd-1", false, ""}, {"zstd-1", true, ""}, {"s2", true, "blake3"}}

func (c benchCase) String() string {
	sh := "off"
	if c.shuffle {
		sh = "on"
	}
	s := fmt.Sprintf("codec=%s/shuffle=%s", c.codec, sh)
	if c.hash != "" {
		s += "/hash=" + c.hash
	}
	return s
}

func benchStore(b *testing.B, c benchCase) *Store {
	s, err := OpenDir(bg, filepath.Join(benchDir(b), "store"), Options{Create: true, Codec: c.codec, Hash: c.hash, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func writeBench(b *testing.B, s *Store, data []byte, elem int, epoch uint64) (ShardRef, WriterStats) {
	w, err := s.NewShard(bg, ShardSpec{Job: "bench", Epoch: epoch, Incarnation: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.AddBuffer(bg, "data", BytesSource(data, elem)); err != nil {
		b.Fatal(err)
	}
	ref, err := w.Close(bg)
	if err != nil {
		b.Fatal(err)
	}
	return ref, w.Stats()
}

func BenchmarkWrite(b *testing.B) {
	size := benchSize(b)
	for _, kind := range datagen.Kinds {
		for _, c := range benchCases {
			b.Run(fmt.Sprintf("data=%s/%s", kind, c), func(b *testing.B) {
				data := dataFor(kind, size)
				elem := 1
				if c.shuffle {
					elem = kind.ElemSize()
				}
				s := benchStore(b, c)
				b.SetBytes(int64(size))
				var ref ShardRef
				var st WriterStats
				epoch := uint64(0)
				cpu := startCPU()
				for b.Loop() {
					epoch++
					ref, st = writeBench(b, s, data, elem, epoch)
					b.StopTimer()
					os.Remove(filepath.Join(s.String(), filepath.FromSlash(ref.Pack())))
					b.StartTimer()
				}
				cpu.report(b, int64(size), int(epoch))
				b.ReportMetric(float64(ref.RawBytes)/float64(ref.StoredBytes), "ratio")
				b.ReportMetric(float64(st.PeakInFlight)/(1<<20), "peak-inflight-MiB")
			})
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	size := benchSize(b)
	for _, kind := range datagen.Kinds {
		for _, c := range benchCases {
			b.Run(fmt.Sprintf("data=%s/%s", kind, c), func(b *testing.B) {
				data := dataFor(kind, size)
				elem := 1
				if c.shuffle {
					elem = kind.ElemSize()
				}
				s := benchStore(b, c)
				ref, _ := writeBench(b, s, data, elem, 1)
				r, err := s.OpenShardRef(bg, ref)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				dst := make([]byte, size)
				b.SetBytes(int64(size))
				cpu, n := startCPU(), 0
				for b.Loop() {
					if err := r.ReadBuffer(bg, "data", dst); err != nil {
						b.Fatal(err)
					}
					n++
				}
				cpu.report(b, int64(size), n)
				b.ReportMetric(float64(ref.RawBytes)/float64(ref.StoredBytes), "ratio")
			})
		}
	}
}

// BenchmarkLimitMemcpy is the memory bandwidth of one core.
func BenchmarkLimitMemcpy(b *testing.B) {
	size := benchSize(b)
	src := dataFor(datagen.Uniform, size)
	dst := make([]byte, size)
	copy(dst, src) // fault the pages in
	b.SetBytes(int64(size))
	for b.Loop() {
		copy(dst, src)
	}
}

// BenchmarkLimitDiskWriteFsync writes the bytes to a new file in 8 MiB
// writes through the local backend, as packs are written (O_DIRECT where
// the file system allows it), and commits it (fsync, rename): what the
// disk takes, uncompressed.
func BenchmarkLimitDiskWriteFsync(b *testing.B) {
	size := benchSize(b)
	data := dataFor(datagen.Uniform, size)
	be, err := local.New(benchDir(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("raw-%d", i)
		w, err := be.Create(context.Background(), name)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += 8 << 20 {
			if _, err := w.Write(data[off:min(off+8<<20, len(data))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(filepath.Join(be.Root(), name))
		b.StartTimer()
	}
}

// BenchmarkBaselineZstdCLI runs `zstd -1 -T2` on the same bytes (input in
// the page cache) and fsyncs its output: the script a user would write.
func BenchmarkBaselineZstdCLI(b *testing.B) {
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		b.Skip("zstd command line tool not installed: no baseline")
	}
	size := benchSize(b)
	for _, kind := range datagen.Kinds {
		b.Run("data="+kind.String(), func(b *testing.B) {
			dir := benchDir(b)
			in := filepath.Join(dir, "in")
			if err := os.WriteFile(in, dataFor(kind, size), 0o644); err != nil {
				b.Fatal(err)
			}
			out := filepath.Join(dir, "in.zst")
			b.SetBytes(int64(size))
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru0)
			n := 0
			for b.Loop() {
				n++
				cmd := exec.Command(zstd, "-1", "-T2", "-q", "-f", in, "-o", out)
				if msg, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("zstd: %v: %s", err, msg)
				}
				f, err := os.Open(out)
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			if cpu > 0 {
				b.ReportMetric(float64(size)*float64(n)/1e6/cpu.Seconds(), "MB/cpu-s")
			}
			fi, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(size)/float64(fi.Size()), "ratio")
		})
	}
}

// BenchmarkPipeline is the write path into a backend that drops the pack
// bytes: the shuffle, hash, compress pipeline on all cores without any
// storage, i.e. the "cores x codec speed" side of the goal.
func BenchmarkPipeline(b *testing.B) {
	size := benchSize(b)
	for _, kind := range datagen.Kinds {
		for _, c := range benchCases {
			b.Run(fmt.Sprintf("data=%s/%s", kind, c), func(b *testing.B) {
				data := dataFor(kind, size)
				elem := 1
				if c.shuffle {
					elem = kind.ElemSize()
				}
				s, err := Open(bg, discard.New(), Options{Create: true, Codec: c.codec, Hash: c.hash, Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(int64(size))
				var ref ShardRef
				epoch := uint64(0)
				cpu := startCPU()
				for b.Loop() {
					epoch++
					ref, _ = writeBench(b, s, data, elem, epoch)
				}
				cpu.report(b, int64(size), int(epoch))
				b.ReportMetric(float64(ref.RawBytes)/float64(ref.StoredBytes), "ratio")
			})
		}
	}
}

// BenchmarkHash is each hash's two functions on one chunk of heat data (in
// cache: the pipeline hashes a chunk right after filtering it): content
// hash of the raw chunk, checksum of a stored chunk of the same size.
func BenchmarkHash(b *testing.B) {
	data := dataFor(datagen.Heat, DefaultChunkSize)
	for _, h := range []hashID{hashXXH3, hashBLAKE3} {
		b.Run("hash="+h.String()+"/content", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				h.content(data)
			}
		})
		b.Run("hash="+h.String()+"/sum", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				h.sum(data)
			}
		})
	}
}
