package channel

import (
	"bytes"
	"fmt"
)

// Receive takes a frame that arrived at time now on subject sub of this
// rank. b is hostile, and owned by the machine from now on (a payload may be
// held for reordering or handed up as a message without a copy). Frames of
// another incarnation, malformed frames and frames that do not fit the
// channel are dropped, counted and reported as events.
func (m *Machine) Receive(now int64, sub Sub, b []byte) {
	m.now = max(m.now, now)
	h, payload, err := DecodeFrame(b, uint64(m.cfg.MaxMessage))
	if err != nil {
		m.malformed(-1, err)
		return
	}
	switch {
	case h.G < m.g && plant != PlantAcceptStale:
		m.st.StaleDropped++
		m.emit(Event{Kind: EventStale, Peer: int(h.From),
			Err: fmt.Errorf("dropped a type %d frame of incarnation %d", h.Type, h.G)})
		return
	case h.G > m.g:
		// Not acknowledged: the sender keeps it, and this rank's hello
		// once it reaches h.G makes the sender resend it.
		m.st.FutureDropped++
		return
	}
	if int(h.To) != m.cfg.Self {
		m.malformed(int(h.From), fmt.Errorf("%w: frame for rank %d delivered to rank %d", ErrMalformedFrame, h.To, m.cfg.Self))
		return
	}
	if sub == AckSub {
		if h.Type != TypeAck {
			m.malformed(int(h.From), fmt.Errorf("%w: type %d frame on the ack subject", ErrMalformedFrame, h.Type))
			return
		}
		sc := m.send[int(h.From)]
		if sc == nil {
			m.malformed(-1, fmt.Errorf("%w: ack from undeclared rank %d", ErrMalformedFrame, h.From))
			return
		}
		m.st.AcksReceived++
		m.handleAck(sc, &h)
		return
	}
	rc := m.recv[int(h.From)]
	if rc == nil {
		m.malformed(-1, fmt.Errorf("%w: frame from undeclared rank %d", ErrMalformedFrame, h.From))
		return
	}
	switch h.Type {
	case TypeData:
		m.st.FramesReceived++
		if rc.broken || !m.adoptSession(rc, &h) {
			return
		}
		rc.received = true
		m.data(rc, &h, payload)
	case TypeProbe:
		if rc.broken || !m.adoptSession(rc, &h) {
			return
		}
		m.markAck(rc, true)
	case TypeGone:
		if rc.broken || (rc.sess != 0 && rc.sess != h.Session) {
			return
		}
		m.breakRecv(rc, fmt.Errorf("rank %d cannot retransmit what this rank is missing (it reports an unrepairable gap)", rc.peer))
	default:
		m.malformed(rc.peer, fmt.Errorf("%w: type %d frame on the data subject", ErrMalformedFrame, h.Type))
	}
}

// adoptSession accepts frames of the sender session rc knows, or of a new
// one if nothing has been received from the old: a sender that changes
// session after sending us data has lost its send state within this
// incarnation, a gap nothing can repair.
func (m *Machine) adoptSession(rc *recvChan, h *Header) bool {
	if rc.sess == h.Session {
		return true
	}
	if rc.sess != 0 && rc.received {
		m.breakRecv(rc, fmt.Errorf("rank %d restarted its sender (session %#x -> %#x) after %d fragments",
			rc.peer, rc.sess, h.Session, rc.next-1))
		return false
	}
	rc.sess = h.Session
	rc.next = 1
	rc.maxTx = 0
	rc.ooo, rc.oooBytes, rc.oooMin = nil, 0, 0
	rc.asm, rc.asmLen, rc.asmOn = nil, 0, false
	return true
}

func (m *Machine) data(rc *recvChan, h *Header, payload []byte) {
	cost := len(payload) + DataHeaderLen
	switch {
	case h.Seq < rc.next:
		// A retransmission of something we have: our ack was lost or slow.
		rc.maxTx = max(rc.maxTx, h.Tx)
		m.st.Duplicates++
		m.markAck(rc, true)
		return
	case h.Seq-rc.next > uint64(m.maxAhead):
		// Further ahead than the window lets an honest sender be: never
		// held, and its seq and tx are not believed (they would make the
		// real frames look like duplicates, or poison the acks).
		m.st.AheadDropped++
		m.malformed(rc.peer, fmt.Errorf("%w: data frame seq %d from rank %d, %d past the next expected (window %d frames): dropped",
			ErrMalformedFrame, h.Seq, rc.peer, h.Seq-rc.next, m.maxAhead))
		return
	case h.Seq > rc.next:
		rc.maxTx = max(rc.maxTx, h.Tx)
		if f, dup := rc.ooo[h.Seq]; dup {
			if f.msgLen != h.MsgLen || f.offset != h.Offset || !bytes.Equal(f.payload, payload) {
				// Two different frames claim one seq: one is forged, and
				// nothing tells which. Refuse both rather than deliver
				// either.
				m.st.Conflicts++
				m.corrupt(rc, fmt.Errorf("two different fragments with seq %d", h.Seq))
				return
			}
			m.st.Duplicates++
		} else if rc.oooBytes+cost > m.oooLimit {
			// Dropping is always safe: the sender keeps every
			// unacknowledged fragment and resends it.
			m.st.ReorderDropped++
		} else {
			if rc.ooo == nil {
				rc.ooo = make(map[uint64]heldFrag)
			}
			rc.ooo[h.Seq] = heldFrag{msgLen: h.MsgLen, offset: h.Offset, payload: payload}
			rc.oooBytes += cost
			if len(rc.ooo) == 1 || (rc.oooMin != 0 && h.Seq < rc.oooMin) {
				rc.oooMin = h.Seq
			}
		}
		// The ack carries the gap: the sender resends it at once.
		m.markAck(rc, true)
		return
	}
	if !m.granted(rc, len(payload)) {
		return
	}
	rc.maxTx = max(rc.maxTx, h.Tx)
	msgLen, offset := h.MsgLen, h.Offset
	drained := false
	for { // this frame, then the held ones that follow it
		if !m.accept(rc, msgLen, offset, payload) {
			return
		}
		rc.next++
		rc.accepted += uint64(len(payload))
		rc.bytesSinceAck += len(payload) + DataHeaderLen
		f, ok := rc.ooo[rc.next]
		if !ok {
			break
		}
		delete(rc.ooo, rc.next)
		rc.oooBytes -= len(f.payload) + DataHeaderLen
		if !m.granted(rc, len(f.payload)) {
			break // dropped: it comes again, as everything unacknowledged
		}
		drained = true
		msgLen, offset, payload = f.msgLen, f.offset, f.payload
	}
	if len(rc.ooo) == 0 {
		rc.ooo, rc.oooBytes, rc.oooMin = nil, 0, 0
	} else if rc.oooMin <= rc.next {
		rc.oooMin = 0 // recomputed when the next ack is built
	}
	// After a repair, ack at once so the sender learns of the next gap.
	m.markAck(rc, drained || len(rc.ooo) > 0 || rc.bytesSinceAck >= m.urgentBytes)
}

// granted reports whether n more in-order payload bytes of rc fit what
// this receiver granted: delivered and not credited back within the
// window, or, once every message before the one being received is
// credited back, within that message (at most MaxMessage, which the
// decoder enforces). That is what an honest sender can do (it enqueues
// within the window, or one message alone when nothing is outstanding),
// so a frame past it is dropped and counted, never buffered: a flood that
// ignores the window cannot grow the receiver past the window, nor past
// one message.
func (m *Machine) granted(rc *recvChan, n int) bool {
	held := rc.accepted + uint64(n)
	before := rc.accepted // bytes of the messages before the current one
	if rc.asmOn {
		before -= uint64(len(rc.asm))
	}
	if held <= rc.credited || held-rc.credited <= uint64(m.cfg.Window) || before <= rc.credited {
		return true
	}
	m.st.WindowDropped++
	m.malformed(rc.peer, fmt.Errorf("%w: rank %d sent %d bytes past the %d-byte window it was granted: dropped",
		ErrMalformedFrame, rc.peer, held-rc.credited-uint64(m.cfg.Window), m.cfg.Window))
	return false
}

// accept consumes the next in-order fragment. Fragments of a message follow
// each other with consecutive offsets; anything else means the stream is
// corrupt, which breaks the channel.
func (m *Machine) accept(rc *recvChan, msgLen, offset uint64, payload []byte) bool {
	n := uint64(len(payload))
	if !rc.asmOn {
		if offset != 0 {
			m.corrupt(rc, fmt.Errorf("a message starts at offset %d", offset))
			return false
		}
		if n == msgLen {
			// Whole message in one frame: hand up the frame's own bytes.
			m.deliver(Delivery{From: rc.peer, G: m.g, Msg: payload})
			return true
		}
		rc.asmOn, rc.asmLen = true, msgLen
		// Allocate for the whole message only when the window vouches for
		// its size; larger ones grow as their bytes arrive, so a hostile
		// length cannot make us allocate what was never sent.
		rc.asm = make([]byte, 0, min(msgLen, uint64(m.cfg.Window)))
	}
	if msgLen != rc.asmLen || offset != uint64(len(rc.asm)) {
		m.corrupt(rc, fmt.Errorf("fragment [%d, +%d) of a %d-byte message after %d of %d bytes",
			offset, n, msgLen, len(rc.asm), rc.asmLen))
		return false
	}
	rc.asm = append(rc.asm, payload...)
	if uint64(len(rc.asm)) == rc.asmLen {
		m.deliver(Delivery{From: rc.peer, G: m.g, Msg: rc.asm})
		rc.asm, rc.asmLen, rc.asmOn = nil, 0, false
	}
	return true
}

func (m *Machine) corrupt(rc *recvChan, err error) {
	m.malformed(rc.peer, fmt.Errorf("%w: %v", ErrMalformedFrame, err))
	m.breakRecv(rc, fmt.Errorf("corrupt stream from rank %d: %v", rc.peer, err))
}

// breakRecv marks rc broken after an unrepairable gap and reports it.
func (m *Machine) breakRecv(rc *recvChan, err error) {
	rc.broken = true
	rc.ooo, rc.oooBytes, rc.oooMin = nil, 0, 0
	rc.asm, rc.asmLen, rc.asmOn = nil, 0, false
	m.st.Gaps++
	m.emit(Event{Kind: EventGap, Peer: rc.peer, Err: err})
}
