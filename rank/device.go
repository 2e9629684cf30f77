package rank

import "github.com/cutpoint/cutpoint/kernels"

// device is what the runtime needs of a protected buffer's device: capture
// for a cut (with its staging reserved ahead), restore in place, hashes
// after a restore (the incremental base), the copy of the initial state,
// and a barrier before a rollback overwrites the buffers. Declared here,
// where it is consumed, so that a device for jobs (kernels.Device, with
// allocation and the rest) satisfies it without rank depending on more.
type device interface {
	Capture(b kernels.Buffer, opt kernels.CaptureOptions) (kernels.Snapshot, error)
	Reserve(b kernels.Buffer, opt kernels.CaptureOptions) error
	Restore(b kernels.Buffer, src []byte) error
	Hash(b kernels.Buffer, chunkSize int) (*kernels.ChunkHashes, error)
	CopyToHost(dst []byte, b kernels.Buffer, off int64) error
	Synchronize() error
}

// deviceOf is b's device, seen through what the runtime uses of it.
func deviceOf(b kernels.Buffer) device { return b.Device() }

// inPlaceDevice captures a buffer without a copy (the CPU device): the
// runtime uses it for buffers beyond Options.MaxStaging and holds the job
// until the snapshot is consumed.
type inPlaceDevice interface {
	CaptureInPlace(b kernels.Buffer, opt kernels.CaptureOptions) (kernels.InPlaceSnapshot, error)
}
