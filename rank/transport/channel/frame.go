package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Wire format, version 2. Every frame is one NATS message. All integers are
// little-endian. The common header is 32 bytes:
//
//	off size field
//	  0    1 version (2)
//	  1    1 type: 1 data, 2 ack, 3 probe, 4 gone
//	  2    2 flags (only the ack type defines any; all others zero)
//	  4    4 from: the rank that published the frame
//	  8    4 to: the rank it is for
//	 12    4 reserved, zero
//	 16    8 g: incarnation, >= 1
//	 24    8 session: the publisher's session id, != 0 (new at Open and Reset)
//
// data (Header 64 bytes, then the payload, which is the rest of the frame):
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
// probe and gone are the common Header alone (32 bytes). A probe asks the
// receiver for an ack; gone tells it the sender cannot repair its gap.
//
// Version 2 changed no field: it marks the authentication trailer that
// rank/transport appends with keys (GMAC with a nonce in place of keyed
// BLAKE3), so that ranks of both versions in one job fail with a version
// mismatch rather than as forgeries.
const (
	FrameVersion = 2

	TypeData  = 1
	TypeAck   = 2
	TypeProbe = 3
	TypeGone  = 4

	CommonHeaderLen = 32
	DataHeaderLen   = 64
	AckFrameLen     = 72

	// FlagNackAll asks the sender to retransmit every unacknowledged
	// fragment after cum (sent after a reconnect or a slow-consumer drop,
	// when the receiver cannot know what it missed).
	FlagNackAll = 1 << 0
	// FlagHello marks the first ack of a receiver session (Open, Reset).
	FlagHello = 1 << 1
	ackFlags  = FlagNackAll | FlagHello

	MaxRankOnWire = math.MaxInt32
)

// ErrMalformedFrame is wrapped by every frame decoding error.
var ErrMalformedFrame = errors.New("transport: malformed frame")

// Header is a decoded frame header; which fields are meaningful depends on Type.
type Header struct {
	Type    uint8
	Flags   uint16
	From    uint32
	To      uint32
	G       uint64
	Session uint64

	// data
	Seq    uint64
	MsgLen uint64
	Offset uint64
	Tx     uint64

	// ack
	Cum         uint64
	Credited    uint64
	GapEnd      uint64
	PeerSession uint64
	LastTx      uint64
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedFrame, fmt.Sprintf(format, args...))
}

// DecodeFrame parses b, which is hostile: every field is checked, lengths are
// bounded by maxMsg, and nothing is allocated. The payload of a data frame
// aliases b.
func DecodeFrame(b []byte, maxMsg uint64) (h Header, payload []byte, err error) {
	if len(b) < CommonHeaderLen {
		return h, nil, malformed("%d bytes, shorter than the %d-byte Header", len(b), CommonHeaderLen)
	}
	if b[0] != FrameVersion {
		return h, nil, malformed("version %d, want %d", b[0], FrameVersion)
	}
	h.Type = b[1]
	h.Flags = binary.LittleEndian.Uint16(b[2:])
	h.From = binary.LittleEndian.Uint32(b[4:])
	h.To = binary.LittleEndian.Uint32(b[8:])
	if r := binary.LittleEndian.Uint32(b[12:]); r != 0 {
		return h, nil, malformed("reserved Header bytes are %#x, want 0", r)
	}
	h.G = binary.LittleEndian.Uint64(b[16:])
	h.Session = binary.LittleEndian.Uint64(b[24:])
	if h.From > MaxRankOnWire || h.To > MaxRankOnWire {
		return h, nil, malformed("rank out of range (from %d, to %d)", h.From, h.To)
	}
	if h.G == 0 {
		return h, nil, malformed("incarnation 0")
	}
	if h.Session == 0 {
		return h, nil, malformed("session 0")
	}
	w, n := h.words()
	size := CommonHeaderLen + 8*n // data: at least size bytes; the others: exactly
	var flags uint16              // the flags the type may carry
	switch h.Type {
	case TypeData, TypeProbe, TypeGone:
	case TypeAck:
		flags = ackFlags
	default:
		return h, nil, malformed("unknown frame type %d", h.Type)
	}
	if len(b) < size || (h.Type != TypeData && len(b) != size) {
		return h, nil, malformed("type %d frame of %d bytes, want %d", h.Type, len(b), size)
	}
	if h.Flags&^flags != 0 {
		return h, nil, malformed("type %d frame with unknown flags %#x", h.Type, h.Flags)
	}
	for i := range n {
		*w[i] = binary.LittleEndian.Uint64(b[CommonHeaderLen+8*i:])
	}
	switch h.Type {
	case TypeData:
		payload = b[DataHeaderLen:]
		pn := uint64(len(payload))
		switch {
		case h.Seq == 0 || h.Tx == 0:
			return h, nil, malformed("data frame with seq %d, transmission %d", h.Seq, h.Tx)
		case h.MsgLen > maxMsg:
			return h, nil, malformed("message length %d over the limit %d", h.MsgLen, maxMsg)
		case h.Offset > h.MsgLen || pn > h.MsgLen-h.Offset:
			return h, nil, malformed("fragment [%d, +%d) outside a message of %d bytes", h.Offset, pn, h.MsgLen)
		case pn == 0 && h.MsgLen != 0:
			return h, nil, malformed("empty fragment of a %d-byte message", h.MsgLen)
		}
	case TypeAck:
		if h.GapEnd != 0 && (h.Cum == math.MaxUint64 || h.GapEnd <= h.Cum+1) {
			return h, nil, malformed("ack gap end %d not beyond cum+1 (cum %d)", h.GapEnd, h.Cum)
		}
	}
	return h, payload, nil
}

// words are the 8-byte fields that follow the common header of a data
// (4) or an ack (5) frame, in wire order; n of them.
func (h *Header) words() (w [5]*uint64, n int) {
	switch h.Type {
	case TypeData:
		return [5]*uint64{&h.Seq, &h.MsgLen, &h.Offset, &h.Tx}, 4
	case TypeAck:
		return [5]*uint64{&h.Cum, &h.Credited, &h.GapEnd, &h.PeerSession, &h.LastTx}, 5
	}
	return w, 0
}

// AppendFrame encodes h (and, for data, payload) onto dst.
func AppendFrame(dst []byte, h *Header, payload []byte) []byte {
	w, n := h.words()
	start := len(dst)
	dst = append(dst, make([]byte, CommonHeaderLen+8*n)...) // the reserved bytes stay zero
	b := dst[start:]
	b[0] = FrameVersion
	b[1] = h.Type
	binary.LittleEndian.PutUint16(b[2:], h.Flags)
	binary.LittleEndian.PutUint32(b[4:], h.From)
	binary.LittleEndian.PutUint32(b[8:], h.To)
	binary.LittleEndian.PutUint64(b[16:], h.G)
	binary.LittleEndian.PutUint64(b[24:], h.Session)
	for i := range n {
		binary.LittleEndian.PutUint64(b[CommonHeaderLen+8*i:], *w[i])
	}
	if h.Type == TypeData {
		dst = append(dst, payload...)
	}
	return dst
}
