// Command libcutpoint is cutpoint's rank library for programs not written in
// Go: C, C++, Fortran (through iso_c_binding) and Python (through ctypes)
// link it to take part in a cutpoint job exactly as a Go program linking
// package rank does.
//
// It is built with
//
//	go build -buildmode=c-shared  -o bin/lib/libcutpoint.so ./cmd/libcutpoint
//	go build -buildmode=c-archive -o bin/lib/libcutpoint.a  ./cmd/libcutpoint
//
// (`make lib` does both and copies the header), and its interface is the
// hand-written include/cutpoint.h, which is the reference: every function,
// status code and thread-safety rule is documented there. cgo's generated
// libcutpoint.h is not installed: it spells the types in cgo's terms and
// drops const.
//
// Why a main package under cmd/: both c-shared and c-archive build modes
// require package main, and cmd/ is where this module keeps its main
// packages (the only place allowed to be a link target). The library is a
// thin layer: every call maps onto one call of package rank, no protocol
// logic lives here. Handles are integers indexing a table of *rank.Rank, so
// no Go pointer ever crosses the boundary; host buffers the job protects are
// wrapped (not copied) as kernels host buffers, and must stay valid until
// cutpoint_close.
//
// CUDA device buffers (cutpoint_protect_cuda) need the cuda build
// (`make lib-cuda`, -tags cuda), which wraps the job's device memory as a
// kernels/cuda buffer of the GPU current on the calling thread; the default
// build returns CUTPOINT_NO_CUDA. Like every cuda binary, the cuda build
// exits at load on a machine without a GPU (gorgonia.org/cu's init).
package main

func main() {}
