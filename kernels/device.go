package kernels

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Sentinel errors. Every error a device returns wraps one of these or says
// plainly what argument was wrong.
var (
	// ErrNotBuilt: the named device is not compiled into this binary. The
	// "cuda" device exists only in the cuda build (make build-cuda).
	ErrNotBuilt = errors.New("device not in this build")
	// ErrUnknownDevice: no device of that name exists in any build.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrWrongDevice: a buffer was passed to a device that did not allocate it.
	ErrWrongDevice = errors.New("buffer belongs to another device")
	// ErrClosed: the buffer or device was closed.
	ErrClosed = errors.New("closed")
	// ErrReleased: the snapshot was released.
	ErrReleased = errors.New("snapshot released")
	// ErrNoHashes: Hashes was called on a snapshot captured without
	// CaptureOptions.Incremental.
	ErrNoHashes = errors.New("snapshot has no chunk hashes (capture was not incremental)")
	// ErrOutOfMemory: the device could not allocate the memory asked for.
	ErrOutOfMemory = errors.New("out of device memory")
)

// Device computes on buffers it allocated and moves bytes between them and
// the host. Methods are safe for concurrent use; work a device enqueues
// (CUDA) runs in call order on one compute stream, so callers that need an
// order between their calls make them from one goroutine.
type Device interface {
	// Name is "cpu" or "cuda:N".
	Name() string
	// Alloc returns a zeroed buffer of n bytes holding elements of elemSize
	// (1, 2, 4 or 8) bytes; n need not be a multiple of elemSize.
	Alloc(n int64, elemSize int) (Buffer, error)
	// CopyFromHost copies src into b at byte offset off. src may be reused
	// when it returns; on CUDA the device-side write is ordered before any
	// later work on b.
	CopyFromHost(b Buffer, off int64, src []byte) error
	// CopyToHost fills dst from b at byte offset off, after all work
	// enqueued before it; it returns when dst holds the bytes.
	CopyToHost(dst []byte, b Buffer, off int64) error
	// Synchronize waits until all work enqueued on the device is done.
	Synchronize() error

	// Capture snapshots b for a checkpoint and returns at once where the
	// device allows it (see Snapshot). The buffer may be modified as soon
	// as Capture returns: the snapshot keeps the contents b had when the
	// work enqueued before Capture finished.
	Capture(b Buffer, opt CaptureOptions) (Snapshot, error)
	// Reserve allocates, ahead of the first capture, the staging memory a
	// capture of b with opt takes (CPU: a copy of b, its pages faulted in;
	// CUDA: the device staging buffer and the pinned slots), into the
	// device's pool, so that the first cut costs what every later one does.
	// Call it when a buffer is protected; it is an optimization only.
	Reserve(b Buffer, opt CaptureOptions) error
	// Restore overwrites b with src (len(src) == b.Len()), raw bytes as
	// the application wrote them (not shuffled), and waits until done.
	Restore(b Buffer, src []byte) error
	// Hash returns the chunk hashes (ChunkHash) of b's current contents,
	// e.g. to serve as the incremental base after a Restore.
	Hash(b Buffer, chunkSize int) (*ChunkHashes, error)

	// Close releases the device's resources. Buffers and snapshots must
	// be closed and released first.
	Close() error
}

// Buffer is device memory (or host memory for the CPU device) holding
// elements of ElemSize bytes. A Buffer is what the rank runtime protects.
type Buffer interface {
	Device() Device
	Len() int64
	ElemSize() int
	// Close frees the memory; later use fails with ErrClosed. Closing
	// twice is a no-op.
	Close() error
}

// CaptureOptions select how a buffer is snapshotted.
type CaptureOptions struct {
	// ChunkSize is the store's chunk size in bytes: positive and a multiple
	// of 64. Chunk k covers bytes [k*ChunkSize, min((k+1)*ChunkSize, Len)).
	ChunkSize int
	// Shuffle asks the device to byte-shuffle each chunk (kernels/shuffle
	// semantics) before it crosses to the host. Snapshot.Shuffled reports
	// whether it did: the CUDA device does; the CPU device does not, since
	// shuffling while the application waits would cost more than the copy,
	// and the shard writer shuffles on its own goroutines instead.
	Shuffle bool
	// Incremental computes the chunk hash (ChunkHash) of every captured
	// chunk, available from Snapshot.Hashes for use as the Base of a later
	// capture. With a Base as well, a chunk whose hash equals the base's
	// is reported unchanged by Chunk (and on CUDA never crosses PCIe).
	Incremental bool
	// Base holds the chunk hashes of the capture whose shard the writer
	// uses as its base, i.e. of a committed cut. kernels keeps no state
	// between captures: the caller decides what the base is. Ignored
	// unless Incremental; a Base of another length, chunk size or element
	// size makes every chunk count as changed.
	Base *ChunkHashes
	// Slots bounds the pinned host chunk buffers a CUDA snapshot keeps in
	// flight (0: a default of GOMAXPROCS+2, at least 4). The CPU device
	// ignores it.
	Slots int
}

// Validate checks the options against a buffer of n bytes.
func (o CaptureOptions) Validate() error {
	if o.ChunkSize <= 0 || o.ChunkSize%64 != 0 {
		return fmt.Errorf("kernels: chunk size %d is not a positive multiple of 64", o.ChunkSize)
	}
	if o.Slots < 0 {
		return fmt.Errorf("kernels: negative slot count %d", o.Slots)
	}
	return nil
}

// Snapshot is a captured buffer. Its Len, ElemSize, Shuffled, Chunk and
// Done methods are exactly ckpt.Source's, so a snapshot is handed to the
// shard writer as is.
//
// Chunk may be called from several goroutines and in any order. It blocks
// until chunk i is in host memory (CPU: never; CUDA: until its copy from
// the device snapshot into a pinned slot is done) and returns it; the bytes
// stay valid until Done(i), and Done must be called for every chunk Chunk
// returned data for. On CUDA a caller holding as many chunks as there are
// slots blocks in Chunk until it calls Done on one of them; ctx cancels
// the wait. unchanged == true (data nil) asserts that chunk i equals chunk
// i of the capture whose hashes were CaptureOptions.Base.
//
// Release frees the snapshot's memory (staging memory belongs to the
// snapshot until then and returns to the device's pool); call it after the
// writer has taken every chunk it needs, or to abandon the snapshot. Chunk
// then fails with ErrReleased. Chunks still held at Release keep their
// bytes until their Done (the shard writer returns from AddBuffer with the
// last chunks still being compressed); a second Release is ignored.
type Snapshot interface {
	Len() int64
	ElemSize() int
	Shuffled() bool
	Chunk(ctx context.Context, i int) (data []byte, unchanged bool, err error)
	Done(i int)

	// NumChunks is the number of chunks of CaptureOptions.ChunkSize.
	NumChunks() int
	// Hashes returns the chunk hashes of the captured contents (a copy the
	// caller owns), blocking until they are computed. Call it before
	// Release. It fails with ErrNoHashes unless the capture was
	// Incremental.
	Hashes(ctx context.Context) (*ChunkHashes, error)
	// Release frees the snapshot; see the type's documentation.
	Release()
}

// NumChunks is how many chunks of chunkSize bytes cover n bytes.
func NumChunks(n int64, chunkSize int) int {
	if n <= 0 {
		return 0
	}
	return int((n + int64(chunkSize) - 1) / int64(chunkSize))
}

// ChunkBounds returns the byte range [lo, hi) of chunk i.
func ChunkBounds(n int64, chunkSize, i int) (lo, hi int64) {
	lo = int64(i) * int64(chunkSize)
	hi = min(lo+int64(chunkSize), n)
	return lo, hi
}

// ValidElemSize reports whether s is an element size buffers accept.
func ValidElemSize(s int) bool { return s == 1 || s == 2 || s == 4 || s == 8 }

// Opener opens a device; arg is what follows "name:" in Open's argument
// ("" when absent).
type Opener func(arg string) (Device, error)

var registry = struct {
	sync.Mutex
	m map[string]Opener
}{m: map[string]Opener{}}

// knownDevices are the devices some build of cutpoint provides, with the
// build that does.
var knownDevices = map[string]string{
	"cpu":  "every build",
	"cuda": "the cuda build: build with -tags cuda (make build-cuda)",
}

// Register makes a device available to Open. kernels/cuda registers
// "cuda" from an init function in its cuda-tagged files.
func Register(name string, open Opener) {
	registry.Lock()
	defer registry.Unlock()
	registry.m[name] = open
}

// Open opens the device named "cpu", "cuda" or "cuda:N" (GPU ordinal N).
// "cpu" is always available and returns the process's shared CPU device;
// on a build without the cuda tag "cuda" fails with ErrNotBuilt.
// Check reports, without opening it, whether the device name is one this
// build can open: nil, an ErrNotBuilt error naming the build to use, or an
// ErrUnknownDevice error.
func Check(name string) error {
	base, _, _ := strings.Cut(name, ":")
	if base == "cpu" {
		return nil
	}
	registry.Lock()
	_, ok := registry.m[base]
	registry.Unlock()
	if ok {
		return nil
	}
	if how, known := knownDevices[base]; known {
		return fmt.Errorf("kernels: device %q is only in %s: %w", base, how, ErrNotBuilt)
	}
	return fmt.Errorf("kernels: device %q (known: %s): %w", name, strings.Join(deviceNames(), ", "), ErrUnknownDevice)
}

func Open(name string) (Device, error) {
	base, arg, _ := strings.Cut(name, ":")
	if base == "cpu" {
		if arg != "" {
			return nil, fmt.Errorf("kernels: device %q: the cpu device takes no argument", name)
		}
		return CPUDevice(), nil
	}
	registry.Lock()
	open, ok := registry.m[base]
	registry.Unlock()
	if ok {
		return open(arg)
	}
	if how, known := knownDevices[base]; known {
		return nil, fmt.Errorf("kernels: device %q is only in %s: %w", base, how, ErrNotBuilt)
	}
	return nil, fmt.Errorf("kernels: device %q (known: %s): %w", name, strings.Join(deviceNames(), ", "), ErrUnknownDevice)
}

func deviceNames() []string {
	names := make([]string, 0, len(knownDevices))
	for n := range knownDevices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
