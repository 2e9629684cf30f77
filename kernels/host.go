package kernels

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// HostBuffer is a CPU device buffer: host memory the application reads and
// writes directly through Bytes, Float64s or Float32s. HostBytes,
// HostFloat64 and HostFloat32 wrap existing Go slices without copying;
// CPU.Alloc allocates one. A HostBuffer belongs to every CPU device.
type HostBuffer struct {
	dev    *CPU // the device that allocated it; the shared one for wrapped slices
	b      []byte
	elem   int
	closed atomic.Bool
}

// HostBytes wraps b (not copied) as a buffer of elemSize-byte elements.
func HostBytes(b []byte, elemSize int) (*HostBuffer, error) {
	if !ValidElemSize(elemSize) {
		return nil, fmt.Errorf("kernels: element size %d is not 1, 2, 4 or 8", elemSize)
	}
	return &HostBuffer{b: b, elem: elemSize}, nil
}

// HostFloat64 wraps s (not copied) as a buffer of 8-byte elements.
func HostFloat64(s []float64) *HostBuffer {
	return &HostBuffer{b: Float64Bytes(s), elem: 8}
}

// HostFloat32 wraps s (not copied) as a buffer of 4-byte elements.
func HostFloat32(s []float32) *HostBuffer {
	return &HostBuffer{b: Float32Bytes(s), elem: 4}
}

// Device returns the CPU device that allocated the buffer, or the shared
// one (CPUDevice) for a wrapped slice. Any CPU device accepts any
// HostBuffer: host memory is host memory.
func (h *HostBuffer) Device() Device {
	if h.dev != nil {
		return h.dev
	}
	return CPUDevice()
}

// Len is the length in bytes.
func (h *HostBuffer) Len() int64 { return int64(len(h.b)) }

// ElemSize is the element size in bytes.
func (h *HostBuffer) ElemSize() int { return h.elem }

// Close marks the buffer closed; devices refuse it afterwards. Memory from
// wrapped slices stays the caller's.
func (h *HostBuffer) Close() error {
	h.closed.Store(true)
	return nil
}

// Bytes is the buffer's memory.
func (h *HostBuffer) Bytes() []byte { return h.b }

// Float64s views the memory as float64s; nil unless the element size is 8
// and the memory is 8-byte aligned (always so for Alloc and HostFloat64).
func (h *HostBuffer) Float64s() []float64 {
	s, err := BytesFloat64(h.b)
	if err != nil || h.elem != 8 {
		return nil
	}
	return s
}

// Float32s views the memory as float32s; nil unless the element size is 4
// and the memory is 4-byte aligned.
func (h *HostBuffer) Float32s() []float32 {
	s, err := BytesFloat32(h.b)
	if err != nil || h.elem != 4 {
		return nil
	}
	return s
}

// Float64Bytes views s as its bytes (machine byte order; little-endian on
// every platform cutpoint builds for), without copying.
func Float64Bytes(s []float64) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*8)
}

// Float32Bytes views s as its bytes, without copying.
func Float32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*4)
}

// BytesFloat64 views b as float64s without copying; b's length must be a
// multiple of 8 and its memory 8-byte aligned.
func BytesFloat64(b []byte) ([]float64, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b)%8 != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 != 0 {
		return nil, fmt.Errorf("kernels: %d bytes at %p are not whole aligned float64s", len(b), unsafe.SliceData(b))
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8), nil
}

// BytesFloat32 views b as float32s without copying; b's length must be a
// multiple of 4 and its memory 4-byte aligned.
func BytesFloat32(b []byte) ([]float32, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b)%4 != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 != 0 {
		return nil, fmt.Errorf("kernels: %d bytes at %p are not whole aligned float32s", len(b), unsafe.SliceData(b))
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4), nil
}

// alignedBytes allocates n zeroed bytes, 8-byte aligned (backed by uint64s),
// so that every element size views them without a copy.
func alignedBytes(n int64) []byte {
	if n == 0 {
		return []byte{}
	}
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}
