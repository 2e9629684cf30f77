package ckpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// codecID is the per-chunk codec recorded in the index. A chunk that does
// not shrink is stored raw (codecNone) whatever the store's codec is, so
// incompressible data costs no decompression on restore.
type codecID uint8

const (
	codecNone codecID = 0
	codecS2   codecID = 1
	codecZstd codecID = 2
	// codecSplit is the s2 codec's form for chunks of 2-, 4- and 8-byte
	// elements: the filtered chunk cut into one part per byte plane, each
	// stored as an s2 block or raw (splitEncode). Only shard index version
	// 3 and pack index version 2 may record it.
	codecSplit codecID = 3
)

func (c codecID) String() string {
	switch c {
	case codecNone:
		return "none"
	case codecS2:
		return "s2"
	case codecZstd:
		return "zstd"
	case codecSplit:
		return "s2-split"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

func (c codecID) valid() bool { return c <= codecSplit }

// Codec is a store's compression setting: "none", "s2" (the default),
// "s2-better" (s2's slower, denser encoder: same format, same decoder) or
// "zstd" with a level 1..19 ("zstd" alone is level 3). klauspost/compress
// implements four zstd speeds; levels map onto them as
// zstd.EncoderLevelFromZstd does (1-2 fastest, 3-5 default, 6-9 better,
// 10-19 best).
type Codec struct {
	id    codecID
	level int
}

// ParseCodec parses "none", "s2", "s2-better", "zstd", "zstd-N" (N in
// 1..19).
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "none":
		return Codec{id: codecNone}, nil
	case "s2", "":
		return Codec{id: codecS2}, nil
	case "s2-better":
		return Codec{id: codecS2, level: 2}, nil
	case "zstd":
		return Codec{id: codecZstd, level: 3}, nil
	}
	if lv, ok := strings.CutPrefix(s, "zstd-"); ok {
		n, err := strconv.Atoi(lv)
		if err == nil && n >= 1 && n <= 19 {
			return Codec{id: codecZstd, level: n}, nil
		}
	}
	return Codec{}, fmt.Errorf("codec %q: want none, s2, s2-better, zstd or zstd-1 .. zstd-19", s)
}

func (c Codec) String() string {
	switch {
	case c.id == codecZstd:
		return "zstd-" + strconv.Itoa(c.level)
	case c.id == codecS2 && c.level == 2:
		return "s2-better"
	}
	return c.id.String()
}

// codecs holds the long-lived compressors of a store. zstd's EncodeAll and
// DecodeAll are safe for concurrent use; one encoder and one decoder serve
// all workers (klauspost pools their internal state).
type codecs struct {
	codec   Codec
	workers int

	encOnce sync.Once
	enc     *zstd.Encoder
	encErr  error

	decOnce sync.Once
	dec     *zstd.Decoder
	decErr  error
}

func (c *codecs) zstdEncoder() (*zstd.Encoder, error) {
	c.encOnce.Do(func() {
		c.enc, c.encErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.codec.level)),
			zstd.WithEncoderConcurrency(c.workers),
			zstd.WithEncoderCRC(false), // chunks carry a content hash
			zstd.WithZeroFrames(true),
			zstd.WithSingleSegment(true))
	})
	return c.enc, c.encErr
}

func (c *codecs) zstdDecoder() (*zstd.Decoder, error) {
	c.decOnce.Do(func() {
		c.dec, c.decErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(c.workers),
			// A chunk never decodes to more than MaxChunkSize; DecodeAll
			// is further held to the capacity of the destination, which is
			// the chunk's recorded raw length.
			zstd.WithDecoderMaxMemory(MaxChunkSize),
			zstd.WithDecoderMaxWindow(MaxChunkSize),
			zstd.WithDecodeAllCapLimit(true))
	})
	return c.dec, c.decErr
}

func (c *codecs) close() {
	if c.enc != nil {
		c.enc.Close()
	}
	if c.dec != nil {
		c.dec.Close()
	}
}

// maxCompressed is the scratch space compress may need for n input bytes:
// one s2 block, or a split's header and up to maxSplit blocks.
func maxCompressed(n int) int {
	m := s2.MaxEncodedLen(n)
	if m < 0 {
		m = n + n/8 + 64
	}
	return m + 512
}

// compress encodes src into scratch (cap >= maxCompressed(len(src))) and
// returns the bytes to store and their codec; data that does not shrink is
// returned as is, with codecNone. planes is the number of byte planes of
// src (the element size of filtered bytes, 1 for anything else): the s2
// codec splits chunks of several planes (splitEncode).
func (c *codecs) compress(scratch, src []byte, planes int) ([]byte, codecID, error) {
	var out []byte
	id := c.codec.id
	switch c.codec.id {
	case codecNone:
		return src, codecNone, nil
	case codecS2:
		switch {
		case c.codec.level == 2:
			out = s2.EncodeBetter(scratch[:cap(scratch)], src)
		case planes > 1 && len(src)/planes >= minSplitPart:
			if out = splitEncode(scratch, src, planes); out == nil {
				return src, codecNone, nil
			}
			id = codecSplit
		default:
			out = s2.Encode(scratch[:cap(scratch)], src)
		}
	case codecZstd:
		enc, err := c.zstdEncoder()
		if err != nil {
			return nil, 0, fmt.Errorf("zstd encoder: %w", err)
		}
		out = enc.EncodeAll(src, scratch[:0])
	}
	if len(out) >= len(src) {
		return src, codecNone, nil
	}
	return out, id, nil
}

const (
	maxSplit     = 8    // parts of a split chunk: one per byte plane
	minSplitPart = 1024 // smaller chunks are one s2 block
	// A part is compressed when a sample of it shrinks at least
	// splitMinRatio times. The planes of smooth floating-point data are
	// either nearly constant (ratios of 20 to 80 on the heat field: s2
	// runs through them at 5 to 11 GB/s), noise (s2 gives up on them
	// at once), or in between: on the heat field one plane compresses
	// 2.3 times at 0.4 GB/s, more CPU time than the rest of the chunk
	// together for 7 % of its size. Storing that one raw halves the CPU
	// time of compression (docs/benchmarks.md).
	splitMinRatio = 4
	splitSample   = 2048 // bytes per sample window, 3 windows per part
)

// splitEncode writes src (n bytes of k byte planes) as codec 3 into
// scratch: a u8 part count k, k u32 stored lengths (bit 31 set: the part
// is stored raw), then the parts back to back (splitPart says which bytes
// each holds). Each part is an s2 block or raw, as its sample says
// (splitMinRatio). When no sample is worth compressing it returns nil
// without copying anything: the chunk is stored raw whole.
func splitEncode(scratch, src []byte, k int) []byte {
	var sample [s2MaxSample]byte
	var worth [maxSplit]bool
	any := false
	for i := range k {
		lo, hi := splitPart(len(src), k, i)
		worth[i] = worthCompressing(src[lo:hi], sample[:])
		any = any || worth[i]
	}
	if !any {
		return nil
	}
	out := scratch[:cap(scratch)]
	out[0] = byte(k)
	off := 1 + 4*k
	for i := range k {
		lo, hi := splitPart(len(src), k, i)
		part := src[lo:hi]
		stored := uint32(len(part)) | 1<<31
		if worth[i] {
			// maxCompressed leaves room for every part's worst case, so
			// s2 encodes in place.
			enc := s2.Encode(out[off:], part)
			if len(enc) < len(part) && &enc[0] == &out[off] {
				stored = uint32(len(enc))
			}
		}
		if stored&(1<<31) != 0 {
			copy(out[off:], part)
		}
		binary.LittleEndian.PutUint32(out[1+4*i:], stored)
		off += int(stored &^ (1 << 31))
	}
	return out[:off]
}

// splitPart is the extent of part i of k in a split chunk of n bytes:
// [i*m, (i+1)*m) with m = n/k, the last part running to n (the trailing
// n mod k bytes of a filtered chunk go with it).
func splitPart(n, k, i int) (lo, hi int) {
	m := n / k
	if i == k-1 {
		return i * m, n
	}
	return i * m, (i + 1) * m
}

// s2MaxSample is the s2 encoding bound of one sample window.
const s2MaxSample = 32 + splitSample + splitSample/6 + 64

// worthCompressing reports whether s2 shrinks a sample of part by
// splitMinRatio: up to three windows at even spacings, or all of a part
// shorter than one window. buf holds s2MaxSample bytes.
func worthCompressing(part, buf []byte) bool {
	nw := min(3, len(part)/splitSample)
	if nw == 0 {
		return len(s2.Encode(buf, part))*splitMinRatio <= len(part)
	}
	stored := 0
	for w := range nw {
		start := (len(part) - splitSample) * (2*w + 1) / (2 * nw)
		stored += len(s2.Encode(buf, part[start:start+splitSample]))
	}
	return stored*splitMinRatio <= nw*splitSample
}

var errDecode = errors.New("cannot decompress")

// decompress decodes src into dst, whose length is the chunk's recorded raw
// length; it never writes or allocates beyond dst, so a forged length field
// inside src (a decompression bomb) fails instead of growing memory.
func (c *codecs) decompress(dst, src []byte, id codecID) error {
	switch id {
	case codecNone:
		if len(src) != len(dst) {
			return fmt.Errorf("%w: stored %d bytes raw, want %d", errDecode, len(src), len(dst))
		}
		copy(dst, src)
		return nil
	case codecS2:
		return s2Decode(dst, src)
	case codecSplit:
		return splitDecode(dst, src)
	case codecZstd:
		dec, err := c.zstdDecoder()
		if err != nil {
			return fmt.Errorf("zstd decoder: %w", err)
		}
		out, err := dec.DecodeAll(src, dst[:0:len(dst)])
		if err != nil {
			return fmt.Errorf("%w: zstd: %v", errDecode, err)
		}
		if len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
			return fmt.Errorf("%w: zstd decoded %d bytes, want %d", errDecode, len(out), len(dst))
		}
		return nil
	}
	return fmt.Errorf("%w: unknown codec %d", errDecode, uint8(id))
}

// s2Decode decodes one s2 block into exactly dst.
func s2Decode(dst, src []byte) error {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return fmt.Errorf("%w: s2: %v", errDecode, err)
	}
	if n != len(dst) {
		return fmt.Errorf("%w: s2 header says %d bytes, index says %d", errDecode, n, len(dst))
	}
	out, err := s2.Decode(dst, src)
	if err != nil {
		return fmt.Errorf("%w: s2: %v", errDecode, err)
	}
	if len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
		return fmt.Errorf("%w: s2 decoded %d bytes, want %d", errDecode, len(out), len(dst))
	}
	return nil
}

// splitDecode decodes a split chunk (splitEncode) into exactly dst: every
// length is checked against the bytes present and the part's extent in dst
// before anything is copied or decoded.
func splitDecode(dst, src []byte) error {
	if len(src) == 0 {
		return fmt.Errorf("%w: split: empty", errDecode)
	}
	k := int(src[0])
	hdr := 1 + 4*k
	if k < 2 || k > maxSplit || len(dst) < k || len(src) < hdr {
		return fmt.Errorf("%w: split: %d parts for %d bytes in %d stored", errDecode, k, len(dst), len(src))
	}
	off := hdr
	for i := range k {
		lo, hi := splitPart(len(dst), k, i)
		d := dst[lo:hi]
		l := binary.LittleEndian.Uint32(src[1+4*i:])
		raw, n := l&(1<<31) != 0, int(l&^(1<<31))
		if n > len(src)-off {
			return fmt.Errorf("%w: split part %d: %d bytes, %d left", errDecode, i, n, len(src)-off)
		}
		p := src[off : off+n]
		off += n
		if raw {
			if n != len(d) {
				return fmt.Errorf("%w: split part %d: %d raw bytes, want %d", errDecode, i, n, len(d))
			}
			copy(d, p)
			continue
		}
		if err := s2Decode(d, p); err != nil {
			return fmt.Errorf("split part %d: %w", i, err)
		}
	}
	if off != len(src) {
		return fmt.Errorf("%w: split: %d bytes after the last part", errDecode, len(src)-off)
	}
	return nil
}
