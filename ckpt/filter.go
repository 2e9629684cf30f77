package ckpt

import (
	"fmt"
	"sync"

	"github.com/cutpoint/cutpoint/kernels/shuffle"
)

// filterID is the filter a chunk reference records: how the chunk's stored
// (decompressed) bytes turn back into the buffer's bytes. It belongs to the
// reference, not to the stored chunk: the stored bytes are the filtered
// bytes, and their BLAKE3 is the chunk's content address whatever filter
// produced them (docs/format.md, "Chunks").
type filterID uint8

const (
	// filterShuffle is the byte shuffle of the stream's element size (the
	// identity for element size 1). Version-1 shard indexes imply it.
	filterShuffle filterID = 0
	// filterDelta replaces each element by its difference from the
	// previous one, then shuffles; element sizes 2, 4 and 8 only.
	filterDelta filterID = 1
)

func (f filterID) String() string {
	switch f {
	case filterShuffle:
		return "shuffle"
	case filterDelta:
		return "delta+shuffle"
	}
	return fmt.Sprintf("filter(%d)", uint8(f))
}

// validFor reports whether f is a known filter that applies to elements of
// size elemSize.
func (f filterID) validFor(elemSize int) bool {
	switch f {
	case filterShuffle:
		return true
	case filterDelta:
		return elemSize > 1
	}
	return false
}

// applyFilter writes the filtered bytes of raw into dst (same length, no
// overlap).
func applyFilter(dst, raw []byte, elemSize int, f filterID) {
	if f == filterDelta {
		shuffle.DeltaShuffle(dst, raw, elemSize)
		return
	}
	shuffle.Shuffle(dst, raw, elemSize)
}

// invertFilter turns filtered bytes back into the buffer's bytes; f must be
// valid for elemSize (decoders check it).
func invertFilter(dst, filtered []byte, elemSize int, f filterID) {
	if f == filterDelta {
		shuffle.DeltaUnshuffle(dst, filtered, elemSize)
		return
	}
	shuffle.Unshuffle(dst, filtered, elemSize)
}

// filterPolicy is how a writer picks the filter of chunks it filters
// itself. Only tests and benchmarks change it from filterAuto.
type filterPolicy int

const (
	filterAuto        filterPolicy = iota // chooseFilter
	filterOnlyShuffle                     // always filterShuffle
	filterOnlyDelta                       // filterDelta wherever it applies
)

// The sample chooseFilter compresses both ways: 1/16 of the chunk, at
// least 1 KiB (the whole chunk if smaller) and at most 32 KiB, in up to
// sampleWindows windows of at least 4 KiB (one window when the sample is
// smaller) centred at even spacings over the chunk, so that a chunk whose
// parts differ is seen whole. With
// the default 4 MiB chunks the sample is 0.8% of the chunk, compressed
// twice.
const (
	sampleMax     = 32 << 10
	sampleMin     = 1 << 10
	sampleWindow  = 4 << 10
	sampleWindows = 8
)

// samplePool holds the scratch of chooseFilter: the filtered sample and
// its compressed form.
var samplePool = sync.Pool{New: func() any {
	b := make([]byte, sampleMax+maxCompressed(sampleMax))
	return &b
}}

// chooseFilter picks the filter for a chunk of raw bytes with elements of
// elemSize: delta+shuffle when a sample of the chunk, filtered and
// compressed with the store's codec, comes out smaller by more than 1/64
// than with plain shuffle; plain shuffle otherwise (it is cheaper to
// restore, so ties go to it). The choice depends only on the bytes, the
// element size and the codec, so the same data is filtered the same way
// in every cut and incremental cuts still find it in their base.
func (s *Store) chooseFilter(raw []byte, elemSize int) filterID {
	switch {
	case elemSize == 1:
		return filterShuffle
	case s.filters == filterOnlyShuffle:
		return filterShuffle
	case s.filters == filterOnlyDelta:
		return filterDelta
	case s.codecs.codec.id == codecNone:
		// Nothing to gain without compression.
		return filterShuffle
	}
	n := len(raw)
	total := min(n, max(n/16, sampleMin), sampleMax)
	nw, w := 1, n
	if total < n {
		nw = min(sampleWindows, max(1, total/sampleWindow))
		w = total / nw / elemSize * elemSize
		total = nw * w
	}
	bp := samplePool.Get().(*[]byte)
	defer samplePool.Put(bp)
	filtered := (*bp)[:total]
	out := (*bp)[sampleMax:]
	size := func(f filterID) int {
		for k := range nw {
			// Window starts are whole elements, so that the windows'
			// differences are those of the chunk.
			start := (n - w) * (2*k + 1) / (2 * nw) / elemSize * elemSize
			applyFilter(filtered[k*w:(k+1)*w], raw[start:start+w], elemSize, f)
		}
		stored, _, err := s.codecs.compress(out, filtered, 1)
		if err != nil {
			// The chunk's own compression reports it.
			return 0
		}
		return len(stored)
	}
	plain := size(filterShuffle)
	if plain == 0 {
		return filterShuffle
	}
	if d := size(filterDelta); d*64 < plain*63 {
		return filterDelta
	}
	return filterShuffle
}
