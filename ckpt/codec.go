package ckpt

import (
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
)

func (c codecID) String() string {
	switch c {
	case codecNone:
		return "none"
	case codecS2:
		return "s2"
	case codecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

func (c codecID) valid() bool { return c <= codecZstd }

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
			zstd.WithEncoderCRC(false), // chunks carry a BLAKE3 hash
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

// maxCompressed is the scratch space compress may need for n input bytes.
func maxCompressed(n int) int {
	m := s2.MaxEncodedLen(n)
	if m < 0 {
		m = n + n/8 + 64
	}
	return m + 64
}

// compress encodes src into scratch (cap >= maxCompressed(len(src))) and
// returns the bytes to store and their codec; data that does not shrink is
// returned as is, with codecNone.
func (c *codecs) compress(scratch, src []byte) ([]byte, codecID, error) {
	var out []byte
	switch c.codec.id {
	case codecNone:
		return src, codecNone, nil
	case codecS2:
		if c.codec.level == 2 {
			out = s2.EncodeBetter(scratch[:cap(scratch)], src)
		} else {
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
	return out, c.codec.id, nil
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
