package transport

import (
	"strconv"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// Hooks for the black-box tests in package transport_test.

// Unacked counts fragments not yet acknowledged (sent or not) on e's
// channels, so that a test can wait until nothing is in flight.
func Unacked(e *Endpoint) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.Unacked()
}

// Session is e's current session id.
func Session(e *Endpoint) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.Session()
}

// DataFrame encodes a data frame as the endpoint would (transmission id seq).
func DataFrame(from, to int, g, session, seq, msgLen, offset uint64, payload []byte) []byte {
	h := channel.Header{Type: channel.TypeData, From: uint32(from), To: uint32(to), G: g, Session: session,
		Seq: seq, MsgLen: msgLen, Offset: offset, Tx: seq}
	return channel.AppendFrame(nil, &h, payload)
}

// AckFrame encodes an ack frame.
func AckFrame(from, to int, g, session, cum, credited, gapEnd, peerSession uint64, flags uint16) []byte {
	h := channel.Header{Type: channel.TypeAck, Flags: flags, From: uint32(from), To: uint32(to), G: g, Session: session,
		Cum: cum, Credited: credited, GapEnd: gapEnd, PeerSession: peerSession}
	return channel.AppendFrame(nil, &h, nil)
}

// DataSubject and AckSubject are the subjects of channel from->to in g.
func DataSubject(job string, g uint64, to, from int) string {
	return subject(jobToken(job), g, channel.DataSub, to, strconv.Itoa(from))
}

func AckSubject(job string, g uint64, to, from int) string {
	return subject(jobToken(job), g, channel.AckSub, to, strconv.Itoa(from))
}

// FrameAuth exposes the tagging of frames to benchmarks: seal appends the
// tag of a frame to peer, open checks one that arrived on the data
// subject.
func FrameAuth(k Keys, peers []int) (seal func(peer int, frame []byte) []byte, open func(frame []byte) error, err error) {
	a, err := newFrameAuth(k, peers)
	if err != nil {
		return nil, nil, err
	}
	return a.sealFrame, func(b []byte) error {
		_, _, err := a.openFrame(channel.DataSub, b)
		return err
	}, nil
}
