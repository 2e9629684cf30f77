//go:build cuda

// Package cuda is cutpoint's CUDA device: a kernels.Device on one GPU,
// driven through gorgonia.org/cu (the CUDA driver API) and built only with
// the `cuda` tag (make build-cuda). Importing it registers "cuda" and
// "cuda:N" with kernels.Open.
//
// gorgonia.org/cu initializes the driver in its package init and exits the
// process when there is no GPU, so a cuda binary (and this package's tests)
// runs only on a GPU machine; CI vets and builds it (make cuda-check) and
// `make gpu-test-bin` builds the test binaries to run there.
//
// What it owns:
//   - the primary context of the GPU, made current on the calling OS thread
//     for each call (no locked thread needed by callers), one compute stream
//     for the job's work and one drain stream for snapshot copies;
//   - device buffers, and pinned host memory through a few cgo lines of its
//     own (cuMemHostAlloc/cuMemFreeHost, which cu does not wrap);
//   - the kernels of kernels.cu, compiled to PTX for sm_80 by genptx.sh (go
//     generate; clang-16 or nvcc), committed as kernels.ptx, embedded and
//     loaded with cu.LoadData, so neither CI nor a GPU node needs a CUDA
//     compiler: chunk_pass (snapshot copy, per-chunk byte shuffle and chunk
//     hash sums in one pass), heat2d_step (the stencil with round-to-nearest
//     adds and multiplies and no FMA, bit-identical to the CPU), heat2d_edges
//     and heat2d_ghosts (halo packing);
//   - capture (see Device.Capture): a device-side snapshot on the compute
//     stream, then a background copy to a ring of pinned chunk slots on the
//     drain stream, skipping chunks whose hash equals the base's.
//
// Kernel arguments are all 8 bytes wide: cu's Function.Launch copies 8 bytes
// from behind every parameter pointer.
package cuda
