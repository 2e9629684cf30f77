//go:build cuda

package cuda

// gorgonia.org/cu v0.9.6 wraps no pinned host allocator (its generator skips
// cuMemHostAlloc on purpose), so these few lines call the driver directly.
// They link the same -lcuda as cu and find cuda.h the same way.

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// driverError names a CUresult the way the driver does.
func driverError(op string, r C.CUresult) error {
	var name *C.char
	if C.cuGetErrorName(r, &name) == C.CUDA_SUCCESS && name != nil {
		return fmt.Errorf("%s: %s (%d)", op, C.GoString(name), int(r))
	}
	return fmt.Errorf("%s: CUDA error %d", op, int(r))
}

// hostAlloc returns n bytes of page-locked host memory, which the DMA
// engines read and write directly (a device-to-host copy into pageable
// memory goes through a driver bounce buffer and cannot overlap other work).
// The calling thread must have the device's context current. The memory is
// outside the Go heap: free it with hostFree.
func hostAlloc(n int) (unsafe.Pointer, error) {
	if n <= 0 {
		return nil, fmt.Errorf("cuMemHostAlloc: %d bytes", n)
	}
	var p unsafe.Pointer
	if r := C.cuMemHostAlloc(&p, C.size_t(n), 0); r != C.CUDA_SUCCESS {
		if r == C.CUDA_ERROR_OUT_OF_MEMORY {
			return nil, fmt.Errorf("%w: %w", driverError("cuMemHostAlloc", r), errPinnedOOM)
		}
		return nil, driverError("cuMemHostAlloc", r)
	}
	return p, nil
}

// hostFree frees memory from hostAlloc (context current, as for hostAlloc).
func hostFree(p unsafe.Pointer) error {
	if p == nil {
		return nil
	}
	if r := C.cuMemFreeHost(p); r != C.CUDA_SUCCESS {
		return driverError("cuMemFreeHost", r)
	}
	return nil
}
