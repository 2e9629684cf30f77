package transport

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// onData runs on the data subscription's goroutine: decode, then order,
// deduplicate and reassemble under the lock; complete messages go to the
// deliverer's queue, never to the Handler from here.
func (e *Endpoint) onData(m *nats.Msg) {
	if f := e.cfg.Faults; f != nil && !f.Incoming(m.Subject, m.Data) {
		return
	}
	h, payload, err := decodeFrame(m.Data, e.maxMsg)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.malformedLocked(-1, err)
		return
	}
	if e.closed || !e.checkIncarnationLocked(&h) {
		return
	}
	if int(h.to) != e.self {
		e.malformedLocked(e.peerLocked(h.from), fmt.Errorf("%w: frame for rank %d delivered to rank %d", ErrMalformedFrame, h.to, e.self))
		return
	}
	rc := e.recv[int(h.from)]
	if rc == nil {
		e.malformedLocked(-1, fmt.Errorf("%w: frame from undeclared rank %d", ErrMalformedFrame, h.from))
		return
	}
	switch h.typ {
	case typeData:
		e.st.framesReceived.Add(1)
		if rc.broken || !e.adoptSessionLocked(rc, &h) {
			return
		}
		rc.received = true
		e.dataLocked(rc, &h, payload)
	case typeProbe:
		if rc.broken || !e.adoptSessionLocked(rc, &h) {
			return
		}
		e.markAckLocked(rc, true)
	case typeGone:
		if rc.broken || (rc.sess != 0 && rc.sess != h.session) {
			return
		}
		e.breakRecvLocked(rc, fmt.Errorf("rank %d cannot retransmit what this rank is missing (it reports an unrepairable gap)", rc.peer))
	default:
		e.malformedLocked(rc.peer, fmt.Errorf("%w: type %d frame on the data subject", ErrMalformedFrame, h.typ))
	}
}

// adoptSessionLocked accepts frames of the sender session rc knows, or of a
// new one if nothing has been received from the old: a sender that changes
// session after sending us data has lost its send state within this
// incarnation, a gap nothing can repair.
func (e *Endpoint) adoptSessionLocked(rc *recvChan, h *header) bool {
	if rc.sess == h.session {
		return true
	}
	if rc.sess != 0 && rc.received {
		e.breakRecvLocked(rc, fmt.Errorf("rank %d restarted its sender (session %#x -> %#x) after %d fragments",
			rc.peer, rc.sess, h.session, rc.next-1))
		return false
	}
	rc.sess = h.session
	rc.next = 1
	rc.maxTx = 0
	rc.ooo, rc.oooBytes, rc.oooMin = nil, 0, 0
	rc.asm, rc.asmLen, rc.asmOn = nil, 0, false
	return true
}

func (e *Endpoint) dataLocked(rc *recvChan, h *header, payload []byte) {
	cost := len(payload) + dataHdrLen
	rc.maxTx = max(rc.maxTx, h.tx)
	switch {
	case h.seq < rc.next:
		// A retransmission of something we have: our ack was lost or slow.
		e.st.duplicates.Add(1)
		e.markAckLocked(rc, true)
		return
	case h.seq > rc.next:
		if _, dup := rc.ooo[h.seq]; dup {
			e.st.duplicates.Add(1)
		} else if rc.oooBytes+cost > e.oooLimit || h.seq-rc.next > uint64(e.maxAhead) {
			// Dropping is always safe: the sender keeps every
			// unacknowledged fragment and resends it.
			e.st.reorderDropped.Add(1)
		} else {
			if rc.ooo == nil {
				rc.ooo = make(map[uint64]heldFrag)
			}
			rc.ooo[h.seq] = heldFrag{msgLen: h.msgLen, offset: h.offset, payload: payload}
			rc.oooBytes += cost
			// oooMin == 0 with frames held means "unknown": the ack
			// builder recomputes it.
			if len(rc.ooo) == 1 || (rc.oooMin != 0 && h.seq < rc.oooMin) {
				rc.oooMin = h.seq
			}
		}
		// The ack carries the gap: the sender resends it at once.
		e.markAckLocked(rc, true)
		return
	}
	if !e.acceptLocked(rc, h.msgLen, h.offset, payload) {
		return
	}
	rc.next++
	rc.bytesSinceAck += cost
	drained := false
	for len(rc.ooo) > 0 {
		f, ok := rc.ooo[rc.next]
		if !ok {
			break
		}
		delete(rc.ooo, rc.next)
		rc.oooBytes -= len(f.payload) + dataHdrLen
		rc.bytesSinceAck += len(f.payload) + dataHdrLen
		drained = true
		if !e.acceptLocked(rc, f.msgLen, f.offset, f.payload) {
			return
		}
		rc.next++
	}
	if len(rc.ooo) == 0 {
		rc.ooo, rc.oooBytes, rc.oooMin = nil, 0, 0
	} else if rc.oooMin < rc.next {
		rc.oooMin = 0 // recomputed when the next ack is built
	}
	// After a repair, ack at once so the sender learns of the next gap.
	e.markAckLocked(rc, drained || len(rc.ooo) > 0 || rc.bytesSinceAck >= e.urgentBytes)
}

// acceptLocked consumes the next in-order fragment. Fragments of a message
// follow each other with consecutive offsets; anything else means the
// stream is corrupt, which breaks the channel.
func (e *Endpoint) acceptLocked(rc *recvChan, msgLen, offset uint64, payload []byte) bool {
	n := uint64(len(payload))
	if !rc.asmOn {
		if offset != 0 {
			e.corruptLocked(rc, fmt.Errorf("a message starts at offset %d", offset))
			return false
		}
		if n == msgLen {
			// Whole message in one frame: hand up the frame's own bytes
			// (the NATS client allocates them per message).
			e.pushLocked(upcall{from: rc.peer, g: e.g, msg: payload})
			return true
		}
		rc.asmOn, rc.asmLen = true, msgLen
		// Allocate for the whole message only when the window vouches
		// for its size; larger ones grow as their bytes arrive, so a
		// hostile length cannot make us allocate what was never sent.
		rc.asm = make([]byte, 0, min(msgLen, uint64(e.cfg.Window)))
	}
	if msgLen != rc.asmLen || offset != uint64(len(rc.asm)) {
		e.corruptLocked(rc, fmt.Errorf("fragment [%d, +%d) of a %d-byte message after %d of %d bytes",
			offset, n, msgLen, len(rc.asm), rc.asmLen))
		return false
	}
	rc.asm = append(rc.asm, payload...)
	if uint64(len(rc.asm)) == rc.asmLen {
		e.pushLocked(upcall{from: rc.peer, g: e.g, msg: rc.asm})
		rc.asm, rc.asmLen, rc.asmOn = nil, 0, false
	}
	return true
}

func (e *Endpoint) corruptLocked(rc *recvChan, err error) {
	e.malformedLocked(rc.peer, fmt.Errorf("%w: %v", ErrMalformedFrame, err))
	e.breakRecvLocked(rc, fmt.Errorf("corrupt stream from rank %d: %v", rc.peer, err))
}

// breakRecvLocked marks rc broken after an unrepairable gap and reports it.
func (e *Endpoint) breakRecvLocked(rc *recvChan, err error) {
	rc.broken = true
	rc.ooo, rc.oooBytes, rc.oooMin = nil, 0, 0
	rc.asm, rc.asmLen, rc.asmOn = nil, 0, false
	e.st.gaps.Add(1)
	e.emitLocked(Event{Kind: EventGap, Peer: rc.peer, Err: err}, false)
}
