package kernels

import (
	"fmt"
	"runtime"
	"testing"
)

// Benchmarks of the CPU device; docs/benchmarks.md ("Kernels") records them.
//
//	go test -run XXX -bench . -benchtime 20x ./kernels/

func workerCounts() []int {
	ws := []int{1}
	for w := 2; w <= runtime.GOMAXPROCS(0); w *= 2 {
		ws = append(ws, w)
	}
	if last := ws[len(ws)-1]; last != runtime.GOMAXPROCS(0) {
		ws = append(ws, runtime.GOMAXPROCS(0))
	}
	return ws
}

// Stencil throughput over core counts: cells updated per second.
func BenchmarkHeat2DStep(b *testing.B) {
	tile := Tile{NX: 2048, NY: 2048, GX: 2048, GY: 2048}
	src := make([]float64, tile.Elems())
	if err := Heat2DInit(src, tile); err != nil {
		b.Fatal(err)
	}
	dst := append([]float64(nil), src...)
	for _, w := range workerCounts() {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			for b.Loop() {
				if err := Heat2DStepSlices(dst, src, tile, 0.2, w); err != nil {
					b.Fatal(err)
				}
				src, dst = dst, src
			}
			b.ReportMetric(float64(tile.NX*tile.NY)*float64(b.N)/b.Elapsed().Seconds(), "cells/s")
		})
	}
}

// Chunk hash on one core (the per-core figure) and on all workers.
func BenchmarkChunkHash(b *testing.B) {
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.Run("one-core-4MiB", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			ChunkHash(buf)
		}
	})
	big := make([]byte, 256<<20)
	for i := range big {
		big[i] = byte(i * 13)
	}
	for _, w := range workerCounts() {
		b.Run(fmt.Sprintf("256MiB/workers=%d", w), func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			for b.Loop() {
				if _, err := HashChunks(big, 4<<20, 8, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

const captureBytes = 256 << 20

func captureSource() *HostBuffer {
	buf := make([]byte, captureBytes)
	for i := range buf {
		buf[i] = byte(i)
	}
	h, _ := HostBytes(buf, 8)
	return h
}

// The application-visible cost of a CPU capture against a plain memcpy of
// the same bytes into memory already faulted in.
func BenchmarkCaptureVsMemcpy(b *testing.B) {
	src := captureSource()
	dst := make([]byte, captureBytes)
	copy(dst, src.Bytes()) // fault the pages in
	b.Run("memcpy-1-goroutine", func(b *testing.B) {
		b.SetBytes(captureBytes)
		for b.Loop() {
			copy(dst, src.Bytes())
		}
	})
	for _, w := range workerCounts() {
		b.Run(fmt.Sprintf("capture/workers=%d", w), func(b *testing.B) {
			d := NewCPU(w)
			s, _ := d.Capture(src, CaptureOptions{ChunkSize: 4 << 20})
			s.Release() // warm the staging pool, as in a job's steady state
			b.SetBytes(captureBytes)
			for b.Loop() {
				s, err := d.Capture(src, CaptureOptions{ChunkSize: 4 << 20, Incremental: true})
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
			}
		})
	}
	b.Run("capture-first/cold-staging", func(b *testing.B) {
		b.SetBytes(captureBytes)
		for b.Loop() {
			d := NewCPU(0) // a fresh pool: the staging pages are faulted in by the copy
			s, _ := d.Capture(src, CaptureOptions{ChunkSize: 4 << 20})
			s.Release()
		}
	})
}
