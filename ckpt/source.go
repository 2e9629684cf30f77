package ckpt

import (
	"context"
	"fmt"
)

// Source hands a buffer's bytes to a ShardWriter chunk by chunk (the chunk
// size C is the store's, Store.ChunkSize()). CPU buffers are served from a
// staging copy; GPU buffers from pinned host memory that an asynchronous
// device-to-host copy fills, which is why Chunk may block.
type Source interface {
	// Len is the buffer length in bytes.
	Len() int64
	// ElemSize is 1, 2, 4 or 8 and selects the shuffle filter.
	ElemSize() int
	// Shuffled reports that Chunk returns bytes already shuffled per
	// chunk (the GPU path shuffles on the device); the writer then only
	// hashes and compresses them.
	Shuffled() bool
	// Chunk blocks until chunk i, the bytes [i*C, min((i+1)*C, Len)), is
	// in host memory and returns it. unchanged == true asserts that chunk
	// i equals chunk i of the same buffer in the base shard (data is then
	// nil): the writer references the base chunk without reading. data
	// stays valid until Done(i). Chunk must honour ctx.
	Chunk(ctx context.Context, i int) (data []byte, unchanged bool, err error)
	// Done releases chunk i. The writer calls it exactly once for every
	// Chunk call that returned no error, unchanged chunks included, also
	// when the writer fails or is aborted; never for a failed Chunk call.
	Done(i int)
}

// BytesSource serves a plain host buffer. The writer reads b until it
// releases the last chunk, so b must not change until the ShardWriter's
// Close or Abort returns.
func BytesSource(b []byte, elemSize int) Source {
	return &bytesSource{b: b, elemSize: elemSize}
}

type bytesSource struct {
	b         []byte
	elemSize  int
	chunkSize int
}

// chunkSizer is implemented by sources of this package, which learn the
// chunk size from the writer instead of from their constructor.
type chunkSizer interface{ setChunkSize(int) }

func (s *bytesSource) setChunkSize(c int) { s.chunkSize = c }
func (s *bytesSource) Len() int64         { return int64(len(s.b)) }
func (s *bytesSource) ElemSize() int      { return s.elemSize }
func (s *bytesSource) Shuffled() bool     { return false }
func (s *bytesSource) Done(int)           {}

func (s *bytesSource) Chunk(ctx context.Context, i int) ([]byte, bool, error) {
	if s.chunkSize <= 0 {
		return nil, false, fmt.Errorf("bytes source: chunk size not set")
	}
	start := int64(i) * int64(s.chunkSize)
	if i < 0 || start >= int64(len(s.b)) {
		return nil, false, fmt.Errorf("bytes source: chunk %d out of range", i)
	}
	end := min(start+int64(s.chunkSize), int64(len(s.b)))
	return s.b[start:end:end], false, nil
}
