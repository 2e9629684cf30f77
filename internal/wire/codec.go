package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the format version written in the first byte of every message.
// A decoder rejects any other version with ErrVersion.
const Version = 1

// Limits. Decoders reject anything larger with ErrTooLarge.
const (
	// MaxWorld bounds the world size and therefore every rank id.
	MaxWorld = 1 << 20
	// MaxControlLen bounds a control message (rank to coordinator or back)
	// and a shard meta record. A Status with a full peer list at MaxWorld
	// ranks stays well under it.
	MaxControlLen = 16 << 20
	// MaxPayload bounds the application payload of one data frame. The
	// transport fragments frames under the server's max payload.
	MaxPayload = 1 << 30
	// MaxRefLen bounds the opaque shard reference a rank reports.
	MaxRefLen = 4096
	// MaxTextLen bounds free-text fields (reasons, details).
	MaxTextLen = 1024
	// MaxJobRecordLen bounds the encoded job record.
	MaxJobRecordLen = 16 << 20
)

// Sentinel errors; every decoding error wraps exactly one of them.
var (
	// ErrMalformed: the bytes do not parse (truncated, overflowing varint,
	// value out of range, trailing bytes, inconsistent fields).
	ErrMalformed = errors.New("malformed message")
	// ErrVersion: the first byte is not a version this package reads.
	ErrVersion = errors.New("unsupported format version")
	// ErrUnknownKind: the kind byte names no message of the expected family.
	ErrUnknownKind = errors.New("unknown message kind")
	// ErrTooLarge: a length or count exceeds a limit of this package.
	ErrTooLarge = errors.New("message exceeds a size limit")
)

// reader decodes fields in order and remembers the first error, so a
// decoder reads every field and checks once (as bufio.Scanner does).
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(base error, field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("wire: %s: %s: %w", field, fmt.Sprintf(format, args...), base)
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte1(field string) byte {
	if r.err != nil {
		return 0
	}
	if r.remaining() < 1 {
		r.fail(ErrMalformed, field, "truncated")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(ErrMalformed, field, "bad uvarint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint(field string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail(ErrMalformed, field, "bad varint")
		return 0
	}
	r.off += n
	return v
}

// rank reads a rank id in [0, MaxWorld).
func (r *reader) rank(field string) int {
	v := r.uvarint(field)
	if r.err == nil && v >= MaxWorld {
		r.fail(ErrTooLarge, field, "rank %d >= %d", v, MaxWorld)
		return 0
	}
	return int(v)
}

// optRank reads a rank id or -1 (encoded as id+1, 0 meaning none).
func (r *reader) optRank(field string) int {
	v := r.uvarint(field)
	if r.err != nil {
		return -1
	}
	if v > MaxWorld {
		r.fail(ErrTooLarge, field, "rank %d >= %d", v-1, MaxWorld)
		return -1
	}
	return int(v) - 1
}

// nonNeg reads a varint that must be >= 0.
func (r *reader) nonNeg(field string) int64 {
	v := r.varint(field)
	if r.err == nil && v < 0 {
		r.fail(ErrMalformed, field, "negative value %d", v)
		return 0
	}
	return v
}

// count reads a list length, bounded by max and by the bytes left: each
// element takes at least minElem bytes, so a hostile count cannot make the
// caller allocate more than the input could hold.
func (r *reader) count(field string, max, minElem int) int {
	v := r.uvarint(field)
	if r.err != nil {
		return 0
	}
	if v > uint64(max) {
		r.fail(ErrTooLarge, field, "count %d > %d", v, max)
		return 0
	}
	if v*uint64(minElem) > uint64(r.remaining()) {
		r.fail(ErrMalformed, field, "count %d exceeds the %d bytes left", v, r.remaining())
		return 0
	}
	return int(v)
}

// bytesField reads a length-prefixed byte string (copied: decoded values
// never alias the input).
func (r *reader) bytesField(field string, max int) []byte {
	n := r.count(field, max, 1)
	if r.err != nil {
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	copy(out, r.b[r.off:r.off+n])
	r.off += n
	return out
}

func (r *reader) text(field string) string {
	return string(r.bytesField(field, MaxTextLen))
}

func (r *reader) boolean(field string) bool {
	v := r.byte1(field)
	if r.err == nil && v > 1 {
		r.fail(ErrMalformed, field, "boolean byte %d", v)
	}
	return v == 1
}

// done reports the first error, or trailing bytes.
func (r *reader) done() error {
	if r.err == nil && r.remaining() != 0 {
		r.fail(ErrMalformed, "message", "%d trailing bytes", r.remaining())
	}
	return r.err
}

// header checks version and length and returns the kind byte.
func header(b []byte, maxLen int) (byte, *reader, error) {
	if len(b) > maxLen {
		return 0, nil, fmt.Errorf("wire: message of %d bytes > %d: %w", len(b), maxLen, ErrTooLarge)
	}
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("wire: message of %d bytes has no header: %w", len(b), ErrMalformed)
	}
	if b[0] != Version {
		return 0, nil, fmt.Errorf("wire: version %d, this build reads %d: %w", b[0], Version, ErrVersion)
	}
	return b[1], &reader{b: b, off: 2}, nil
}

// Writers. Encoding cannot fail for values the protocol produces; values out
// of range (negative ranks, oversize strings) are clamped by the caller's
// validation, and decoders reject whatever slips through.

func putU(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func putI(b []byte, v int64) []byte  { return binary.AppendVarint(b, v) }

func putRank(b []byte, r int) []byte { return putU(b, uint64(r)) }

func putOptRank(b []byte, r int) []byte {
	if r < 0 {
		return putU(b, 0)
	}
	return putU(b, uint64(r)+1)
}

func putBytes(b, v []byte) []byte {
	b = putU(b, uint64(len(v)))
	return append(b, v...)
}

func putText(b []byte, s string) []byte {
	if len(s) > MaxTextLen {
		s = s[:MaxTextLen]
	}
	b = putU(b, uint64(len(s)))
	return append(b, s...)
}

func putBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
