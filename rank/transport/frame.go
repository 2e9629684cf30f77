package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Wire format, version 1. Every frame is one NATS message. All integers are
// little-endian. The common header is 32 bytes:
//
//	off size field
//	  0    1 version (1)
//	  1    1 type: 1 data, 2 ack, 3 probe, 4 gone
//	  2    2 flags (only the ack type defines any; all others zero)
//	  4    4 from: the rank that published the frame
//	  8    4 to: the rank it is for
//	 12    4 reserved, zero
//	 16    8 g: incarnation, >= 1
//	 24    8 session: the publisher's session id, != 0 (new at Open and Reset)
//
// data (header 64 bytes, then the payload, which is the rest of the frame):
//
//	32    8 seq: fragment sequence number on the channel from->to, >= 1
//	40    8 msgLen: length of the whole message this fragment belongs to
//	48    8 offset: where this fragment's payload starts in the message
//	56    8 tx: transmission id, >= 1, new for every (re)transmission on
//	          the channel and increasing in publication order
//
// ack (exactly 72 bytes), published by a receiver to the sender of a channel:
//
//	32    8 cum: every fragment up to and including cum has been received
//	40    8 credited: cumulative message bytes the receiver's upper layer returned
//	48    8 gapEnd: 0, or the lowest seq held beyond a gap (cum+1..gapEnd-1 missing)
//	56    8 peerSession: the sender session being acknowledged (0: none yet)
//	64    8 lastTx: the highest transmission id received from that session (0: none)
//
// Since NATS delivers one publisher's messages in order, a fragment whose
// last transmission id is below lastTx and that the ack does not cover was
// lost: the sender resends it without waiting for a timeout.
//
// probe and gone are the common header alone (32 bytes). A probe asks the
// receiver for an ack; gone tells it the sender cannot repair its gap.
const (
	frameVersion = 1

	typeData  = 1
	typeAck   = 2
	typeProbe = 3
	typeGone  = 4

	commonHdrLen = 32
	dataHdrLen   = 64
	ackFrameLen  = 72

	// flagNackAll asks the sender to retransmit every unacknowledged
	// fragment after cum (sent after a reconnect or a slow-consumer drop,
	// when the receiver cannot know what it missed).
	flagNackAll = 1 << 0
	// flagHello marks the first ack of a receiver session (Open, Reset).
	flagHello = 1 << 1
	ackFlags  = flagNackAll | flagHello

	maxRankOnWire = math.MaxInt32
)

// ErrMalformedFrame is wrapped by every frame decoding error.
var ErrMalformedFrame = errors.New("transport: malformed frame")

// header is a decoded frame header; which fields are meaningful depends on typ.
type header struct {
	typ     uint8
	flags   uint16
	from    uint32
	to      uint32
	g       uint64
	session uint64

	// data
	seq    uint64
	msgLen uint64
	offset uint64
	tx     uint64

	// ack
	cum         uint64
	credited    uint64
	gapEnd      uint64
	peerSession uint64
	lastTx      uint64
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedFrame, fmt.Sprintf(format, args...))
}

// decodeFrame parses b, which is hostile: every field is checked, lengths are
// bounded by maxMsg, and nothing is allocated. The payload of a data frame
// aliases b.
func decodeFrame(b []byte, maxMsg uint64) (h header, payload []byte, err error) {
	if len(b) < commonHdrLen {
		return h, nil, malformed("%d bytes, shorter than the %d-byte header", len(b), commonHdrLen)
	}
	if b[0] != frameVersion {
		return h, nil, malformed("version %d, want %d", b[0], frameVersion)
	}
	h.typ = b[1]
	h.flags = binary.LittleEndian.Uint16(b[2:])
	h.from = binary.LittleEndian.Uint32(b[4:])
	h.to = binary.LittleEndian.Uint32(b[8:])
	if r := binary.LittleEndian.Uint32(b[12:]); r != 0 {
		return h, nil, malformed("reserved header bytes are %#x, want 0", r)
	}
	h.g = binary.LittleEndian.Uint64(b[16:])
	h.session = binary.LittleEndian.Uint64(b[24:])
	if h.from > maxRankOnWire || h.to > maxRankOnWire {
		return h, nil, malformed("rank out of range (from %d, to %d)", h.from, h.to)
	}
	if h.g == 0 {
		return h, nil, malformed("incarnation 0")
	}
	if h.session == 0 {
		return h, nil, malformed("session 0")
	}
	switch h.typ {
	case typeData:
		if len(b) < dataHdrLen {
			return h, nil, malformed("data frame of %d bytes, shorter than its %d-byte header", len(b), dataHdrLen)
		}
		if h.flags != 0 {
			return h, nil, malformed("data frame with flags %#x", h.flags)
		}
		h.seq = binary.LittleEndian.Uint64(b[32:])
		h.msgLen = binary.LittleEndian.Uint64(b[40:])
		h.offset = binary.LittleEndian.Uint64(b[48:])
		h.tx = binary.LittleEndian.Uint64(b[56:])
		payload = b[dataHdrLen:]
		n := uint64(len(payload))
		switch {
		case h.seq == 0 || h.tx == 0:
			return h, nil, malformed("data frame with seq %d, transmission %d", h.seq, h.tx)
		case h.msgLen > maxMsg:
			return h, nil, malformed("message length %d over the limit %d", h.msgLen, maxMsg)
		case h.offset > h.msgLen || n > h.msgLen-h.offset:
			return h, nil, malformed("fragment [%d, +%d) outside a message of %d bytes", h.offset, n, h.msgLen)
		case n == 0 && h.msgLen != 0:
			return h, nil, malformed("empty fragment of a %d-byte message", h.msgLen)
		}
		return h, payload, nil
	case typeAck:
		if len(b) != ackFrameLen {
			return h, nil, malformed("ack frame of %d bytes, want %d", len(b), ackFrameLen)
		}
		if h.flags&^ackFlags != 0 {
			return h, nil, malformed("ack frame with unknown flags %#x", h.flags)
		}
		h.cum = binary.LittleEndian.Uint64(b[32:])
		h.credited = binary.LittleEndian.Uint64(b[40:])
		h.gapEnd = binary.LittleEndian.Uint64(b[48:])
		h.peerSession = binary.LittleEndian.Uint64(b[56:])
		h.lastTx = binary.LittleEndian.Uint64(b[64:])
		if h.gapEnd != 0 && (h.cum == math.MaxUint64 || h.gapEnd <= h.cum+1) {
			return h, nil, malformed("ack gap end %d not beyond cum+1 (cum %d)", h.gapEnd, h.cum)
		}
		return h, nil, nil
	case typeProbe, typeGone:
		if len(b) != commonHdrLen {
			return h, nil, malformed("type %d frame of %d bytes, want %d", h.typ, len(b), commonHdrLen)
		}
		if h.flags != 0 {
			return h, nil, malformed("type %d frame with flags %#x", h.typ, h.flags)
		}
		return h, nil, nil
	default:
		return h, nil, malformed("unknown frame type %d", h.typ)
	}
}

func putCommon(b []byte, h *header) {
	b[0] = frameVersion
	b[1] = h.typ
	binary.LittleEndian.PutUint16(b[2:], h.flags)
	binary.LittleEndian.PutUint32(b[4:], h.from)
	binary.LittleEndian.PutUint32(b[8:], h.to)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint64(b[16:], h.g)
	binary.LittleEndian.PutUint64(b[24:], h.session)
}

// appendFrame encodes h (and, for data, payload) onto dst.
func appendFrame(dst []byte, h *header, payload []byte) []byte {
	var n int
	switch h.typ {
	case typeData:
		n = dataHdrLen
	case typeAck:
		n = ackFrameLen
	default:
		n = commonHdrLen
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	b := dst[start:]
	putCommon(b, h)
	switch h.typ {
	case typeData:
		binary.LittleEndian.PutUint64(b[32:], h.seq)
		binary.LittleEndian.PutUint64(b[40:], h.msgLen)
		binary.LittleEndian.PutUint64(b[48:], h.offset)
		binary.LittleEndian.PutUint64(b[56:], h.tx)
		dst = append(dst, payload...)
	case typeAck:
		binary.LittleEndian.PutUint64(b[32:], h.cum)
		binary.LittleEndian.PutUint64(b[40:], h.credited)
		binary.LittleEndian.PutUint64(b[48:], h.gapEnd)
		binary.LittleEndian.PutUint64(b[56:], h.peerSession)
		binary.LittleEndian.PutUint64(b[64:], h.lastTx)
	}
	return dst
}
