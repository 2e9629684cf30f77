package wire

import (
	"encoding/binary"
	"fmt"
)

// Data-plane frame kinds (what a rank enqueues on a channel to a peer).
const (
	KindData   byte = 0x01
	KindMarker byte = 0x02
)

// DataHeaderLen is the fixed length of a data frame's header: a frame for a
// payload of n bytes is exactly DataHeaderLen+n bytes long, which is the
// flow-control credit a sender acquires before the participant numbers it.
const DataHeaderLen = 26

// Data is an application message with the header the participant puts in
// front of it.
type Data struct {
	G       uint64 // sender's incarnation (R11)
	Seq     uint64 // per-channel sequence number, 1 for the first message (R4)
	Step    int64  // sender's last completed SafePoint when it sent (R7)
	Payload []byte // decoded: aliases the frame; the caller keeps the frame alive
}

// Marker is the Chandy-Lamport marker of epoch Epoch, cut at Step, on one
// channel. Sent is the number of data messages the sender had put on this
// channel before the marker (R4).
type Marker struct {
	G     uint64
	Epoch uint64
	Step  int64
	Sent  uint64
}

// AppendData appends a data frame to dst and returns the extended slice.
func AppendData(dst []byte, d Data) []byte {
	var h [DataHeaderLen]byte
	h[0] = Version
	h[1] = KindData
	binary.BigEndian.PutUint64(h[2:], d.G)
	binary.BigEndian.PutUint64(h[10:], d.Seq)
	binary.BigEndian.PutUint64(h[18:], uint64(d.Step))
	dst = append(dst, h[:]...)
	return append(dst, d.Payload...)
}

// EncodeMarker returns the bytes of a marker frame.
func EncodeMarker(m Marker) []byte {
	b := make([]byte, 0, 32)
	b = append(b, Version, KindMarker)
	b = putU(b, m.G)
	b = putU(b, m.Epoch)
	b = putI(b, m.Step)
	return putU(b, m.Sent)
}

// Frame is a decoded data-plane frame: Kind says which of Data and Marker is
// set.
type Frame struct {
	Kind   byte
	Data   Data
	Marker Marker
}

// DecodeFrame decodes a data or marker frame. Data.Payload aliases b.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) > DataHeaderLen+MaxPayload {
		return Frame{}, fmt.Errorf("wire: frame of %d bytes > %d: %w", len(b), DataHeaderLen+MaxPayload, ErrTooLarge)
	}
	kind, r, err := header(b, DataHeaderLen+MaxPayload)
	if err != nil {
		return Frame{}, err
	}
	switch kind {
	case KindData:
		if len(b) < DataHeaderLen {
			return Frame{}, fmt.Errorf("wire: data frame of %d bytes < header %d: %w", len(b), DataHeaderLen, ErrMalformed)
		}
		d := Data{
			G:    binary.BigEndian.Uint64(b[2:]),
			Seq:  binary.BigEndian.Uint64(b[10:]),
			Step: int64(binary.BigEndian.Uint64(b[18:])),
		}
		if d.Seq == 0 {
			return Frame{}, fmt.Errorf("wire: data frame: seq 0: %w", ErrMalformed)
		}
		if d.Step < 0 {
			return Frame{}, fmt.Errorf("wire: data frame: negative step %d: %w", d.Step, ErrMalformed)
		}
		d.Payload = b[DataHeaderLen:len(b):len(b)]
		return Frame{Kind: KindData, Data: d}, nil
	case KindMarker:
		if len(b) > 64 {
			return Frame{}, fmt.Errorf("wire: marker of %d bytes: %w", len(b), ErrTooLarge)
		}
		m := Marker{
			G:     r.uvarint("marker.g"),
			Epoch: r.uvarint("marker.epoch"),
			Step:  r.nonNeg("marker.step"),
			Sent:  r.uvarint("marker.sent"),
		}
		if err := r.done(); err != nil {
			return Frame{}, err
		}
		if m.Epoch == 0 {
			return Frame{}, fmt.Errorf("wire: marker: epoch 0: %w", ErrMalformed)
		}
		return Frame{Kind: KindMarker, Marker: m}, nil
	default:
		return Frame{}, fmt.Errorf("wire: frame kind 0x%02x: %w", kind, ErrUnknownKind)
	}
}
