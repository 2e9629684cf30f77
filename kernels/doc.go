// Package kernels owns cutpoint's compute devices: the Device/Buffer
// abstraction through which the rank runtime protects, captures and restores
// a job's state without knowing where it lives, the multi-core CPU device,
// the chunk hash that finds changed chunks for incremental checkpoints, and
// the heat2d stencil (the built-in workload) on every device. The CUDA device
// lives in kernels/cuda, built only with the `cuda` tag; kernels/shuffle holds
// the store's byte-shuffle filter; kernels/kernelstest is the conformance
// suite every device passes.
//
// # Devices and buffers
//
//	dev, err := kernels.Open("cpu")   // or "cuda", "cuda:1" in the cuda build
//	buf, err := dev.Alloc(n, 8)       // n bytes of 8-byte elements, zeroed
//	err = dev.CopyFromHost(buf, 0, b) // host -> buffer at a byte offset
//	err = dev.CopyToHost(b, buf, 0)   // buffer -> host
//
// Open("cpu") always works and returns the process's shared CPU device
// (kernels.CPUDevice; NewCPU(w) gives one with w workers). Open("cuda") works
// only in a binary that links kernels/cuda, which registers itself from an
// init function; elsewhere it fails with ErrNotBuilt, whose message says to
// build with `make build-cuda`. CPU buffers are HostBuffers: host memory the
// job reads and writes directly (Bytes, Float64s, Float32s); HostBytes,
// HostFloat64 and HostFloat32 wrap existing slices without copying. Any CPU
// device accepts any HostBuffer.
//
// # Capture: a consistent snapshot while the job runs on
//
//	snap, err := dev.Capture(buf, kernels.CaptureOptions{
//		ChunkSize: 4 << 20, Shuffle: true, Incremental: true, Base: committed,
//	})
//	// The job may overwrite buf now. snap is a ckpt.Source:
//	data, unchanged, err := snap.Chunk(ctx, i) // blocks until chunk i is in host memory
//	snap.Done(i)                                // data is invalid after this
//	hashes, err := snap.Hashes(ctx)             // keep; Base of the next capture once this cut commits
//	snap.Release()                              // staging memory back to the device's pool
//
// Capture returns quickly: the CPU device copies the buffer into pooled
// staging memory on all cores (about one memcpy; Reserve pre-faults the
// staging so that the first cut costs the same); the CUDA device enqueues a
// device-side copy (shuffled and hashed in the same pass) on its compute
// stream and drains it to pinned host memory in the background. The
// snapshot owns its staging memory until Release; bytes from Chunk stay
// valid until Done(i). Chunk may be called concurrently and in any order.
//
// Incremental checkpoints: with Incremental the snapshot computes the chunk
// hash of every chunk (Hashes). kernels keeps no state between captures: the
// caller keeps the hashes of each capture, and once that cut is committed
// passes them as CaptureOptions.Base of a later capture of the same buffer.
// Chunks whose hash equals the base's are reported unchanged (data nil) and
// the shard writer references the base cut's chunk; on CUDA they never cross
// PCIe. After a restore, Device.Hash of the restored buffer gives the hashes
// of the cut restored from. A Base whose length, chunk size or element size
// differs is ignored (every chunk is then changed).
//
// # The chunk hash
//
// ChunkHash is a 64-bit hash of a chunk whose computation splits over any
// number of threads and reduces in any order with identical bits: keyed
// MurmurHash3 finalizers of the chunk's 8-byte words, summed mod 2^64, then
// finalized with the length (hash.go has the exact definition, and
// kernels/cuda computes the same bits on the GPU). It detects every change
// confined to one 8-byte word and misses other changes with probability
// about 2^-64. It is not the content address of a stored chunk (ckpt uses
// BLAKE3-256 for that).
//
// # heat2d
//
// A Tile is an NX×NY block of the global grid with a one-cell ghost border,
// row-major float64. Heat2DInit fills a tile from global coordinates only
// (so every decomposition starts from the same global field); Heat2DStep
// runs one Jacobi step of StencilPoint,
//
//	c + alpha*(((n + s) + (e + w)) - 4*c),
//
// evaluated in exactly that order with every operation rounded and no fused
// multiply-add, so the CPU (any number of cores) and the GPU give the same
// bits. ReadEdges and WriteGhosts move the four interior edges to the host and
// the four ghost edges back, for the halo exchange through rank channels.
//
// # Threading
//
// Every Device method may be called from any goroutine. The CPU device runs a
// kernel on up to Workers goroutines and returns when it is done. The CUDA
// device binds its context to the calling OS thread for each call (callers
// need no runtime.LockOSThread) and orders its work on one compute stream:
// Heat2DStep and Capture return once enqueued; CopyToHost, ReadEdges,
// Restore, Hash and Synchronize return when done.
package kernels
