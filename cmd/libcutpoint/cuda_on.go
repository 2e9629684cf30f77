//go:build cuda

package main

import (
	"fmt"
	"sync"

	"gorgonia.org/cu"

	"github.com/cutpoint/cutpoint/kernels/cuda"
	"github.com/cutpoint/cutpoint/rank"
)

// The cuda build wraps the job's device memory (kernels/cuda Device.Wrap).
// One kernels/cuda device per GPU, opened on first use and kept for the
// process's life (they hold the primary context the job's memory lives in).
var cudaDevs struct {
	mu sync.Mutex
	m  map[int]*cuda.Device
}

func protectCUDA(r *rank.Rank, name string, ptr uint64, size uint64, elemSize int) error {
	// Called from C: this goroutine runs on the caller's thread, so the
	// current context is the job's.
	dev, err := cu.CurrentDevice()
	if err != nil {
		return fmt.Errorf("libcutpoint: protect %q: no current CUDA context on the calling thread (select the device, e.g. cudaSetDevice, before protecting): %w", name, err)
	}
	cudaDevs.mu.Lock()
	d := cudaDevs.m[int(dev)]
	if d == nil {
		if d, err = cuda.Open(int(dev), cuda.Options{}); err != nil {
			cudaDevs.mu.Unlock()
			return fmt.Errorf("libcutpoint: protect %q: %w", name, err)
		}
		if cudaDevs.m == nil {
			cudaDevs.m = map[int]*cuda.Device{}
		}
		cudaDevs.m[int(dev)] = d
	}
	cudaDevs.mu.Unlock()
	b, err := d.Wrap(cu.DevicePtr(ptr), int64(size), elemSize)
	if err != nil {
		return fmt.Errorf("libcutpoint: protect %q: %w: %w", name, err, errInvalid)
	}
	return r.Protect(name, b)
}
