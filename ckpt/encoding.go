package ckpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The encodings are little-endian, with explicit lengths, and every decoder
// treats its input as hostile: each read is bounds-checked, each count is
// checked against the bytes left before anything is allocated, and the
// first problem is kept with where it happened.

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }
func (e *encoder) raw(p []byte) { e.b = append(e.b, p...) }

// str8, str16 and bytes32 write a length prefix of that width; callers have
// checked the length against the format's limits.
func (e *encoder) str8(s string)    { e.u8(uint8(len(s))); e.b = append(e.b, s...) }
func (e *encoder) str16(s string)   { e.u16(uint16(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes32(p []byte) { e.u32(uint32(len(p))); e.b = append(e.b, p...) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

var errShort = errors.New("unexpected end of data")

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.left() {
		d.err = fmt.Errorf("at byte %d: %w (need %d, have %d)", d.off, errShort, n, d.left())
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u8() uint8 {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) u16() uint16 {
	p := d.take(2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

func (d *decoder) u32() uint32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

func (d *decoder) u64() uint64 {
	p := d.take(8)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

func (d *decoder) i64() int64 { return int64(d.u64()) }

// alg reads a hash byte (hashID) and fails on values this build does not
// know.
func (d *decoder) alg() hashID {
	h := hashID(d.u8())
	if d.err == nil && !h.valid() {
		d.fail("unknown hash %d", uint8(h))
	}
	return h
}

func (d *decoder) hash() (h [32]byte) {
	copy(h[:], d.take(32))
	return h
}

func (d *decoder) str8() string  { return string(d.take(int(d.u8()))) }
func (d *decoder) str16() string { return string(d.take(int(d.u16()))) }

// bytes32 reads a length-prefixed byte string of at most limit bytes and
// returns a copy.
func (d *decoder) bytes32(limit int, what string) []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if int64(n) > int64(limit) {
		d.fail("%s: %d bytes, limit %d", what, n, limit)
		return nil
	}
	p := d.take(int(n))
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// count reads a u32 element count and checks that count elements of at
// least minSize bytes each fit in what is left and that count <= limit.
func (d *decoder) count(minSize, limit int, what string) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if int64(n) > int64(limit) {
		d.fail("%s: count %d over the limit %d", what, n, limit)
		return 0
	}
	if minSize > 0 && int64(n)*int64(minSize) > int64(d.left()) {
		d.fail("%s: count %d needs at least %d bytes, %d left", what, n, int64(n)*int64(minSize), d.left())
		return 0
	}
	return int(n)
}

// magic checks a fixed marker.
func (d *decoder) magic(want string, what string) {
	p := d.take(len(want))
	if d.err == nil && string(p) != want {
		d.fail("not a %s (magic %q, want %q)", what, p, want)
	}
}

// end checks that everything was consumed.
func (d *decoder) end(what string) {
	if d.err == nil && d.left() != 0 {
		d.fail("%s: %d trailing bytes", what, d.left())
	}
}

// ceilDiv is the number of chunks of size c in n bytes.
func ceilDiv(n int64, c int) int64 {
	if n <= 0 {
		return 0
	}
	return (n-1)/int64(c) + 1
}

// addClamp adds non-negative sizes without overflow (for totals shown to
// users from hostile counts).
func addClamp(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
