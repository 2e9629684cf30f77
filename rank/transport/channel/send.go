package channel

import (
	"fmt"
	"time"
)

// header is the common header of a frame of this rank to peer.
func (m *Machine) header(typ uint8, peer int) Header {
	return Header{Type: typ, From: uint32(m.cfg.Self), To: uint32(peer), G: m.g, Session: m.session}
}

func (m *Machine) ackFrame(rc *recvChan) Out {
	h := m.header(TypeAck, rc.peer)
	h.Cum, h.Credited, h.PeerSession, h.LastTx = rc.next-1, rc.credited, rc.sess, rc.maxTx
	if rc.nackAll {
		h.Flags |= FlagNackAll
	}
	if rc.hello {
		h.Flags |= FlagHello
	}
	if len(rc.ooo) > 0 {
		if rc.oooMin == 0 {
			for s := range rc.ooo {
				if rc.oooMin == 0 || s < rc.oooMin {
					rc.oooMin = s
				}
			}
		}
		h.GapEnd = rc.oooMin
	}
	rc.nackAll, rc.hello, rc.ackPending = false, false, false
	rc.creditSent = rc.credited
	rc.bytesSinceAck = 0
	m.st.AcksSent++
	return Out{Sub: AckSub, To: rc.peer, Header: h}
}

// takeFrames appends sc's control frames, retransmissions and new frames,
// up to about budget payload bytes, and returns the bytes used.
func (m *Machine) takeFrames(sc *sendChan, out *[]Out, budget int) int {
	if sc.gone {
		sc.gone = false
		*out = append(*out, Out{Sub: DataSub, To: sc.peer, Header: m.header(TypeGone, sc.peer)})
	}
	if sc.broken {
		return 0
	}
	if sc.probe {
		sc.probe = false
		*out = append(*out, Out{Sub: DataSub, To: sc.peer, Header: m.header(TypeProbe, sc.peer)})
		m.st.Probes++
	}
	used := 0
	data := func(seq uint64, f *frag) {
		h := m.header(TypeData, sc.peer)
		h.Seq, h.MsgLen, h.Offset = seq, uint64(len(f.msg)), uint64(f.off)
		if plant == PlantMisnumberFragment && f.off > 0 && f.off+f.n == len(f.msg) {
			h.Seq++
		}
		f.sent, f.tx = m.now, sc.nextTx
		sc.nextTx++
		h.Tx = f.tx
		*out = append(*out, Out{Sub: DataSub, To: sc.peer, Header: h, Payload: f.msg[f.off : f.off+f.n]})
		used += f.n + DataHeaderLen
	}
	sc.retxFrom = max(sc.retxFrom, sc.base)
	sc.retxTo = min(sc.retxTo, sc.nextSend)
	for sc.retxFrom < sc.retxTo && used < budget {
		seq := sc.retxFrom
		sc.retxFrom++
		if plant == PlantDropRetransmit && sc.retxFrom == sc.retxTo {
			continue // planted: still marked, so never marked (nor sent) again
		}
		if f := &sc.frags[seq-sc.base]; f.resend {
			f.resend = false
			data(seq, f)
			m.st.Retransmits++
		}
	}
	if sc.retxFrom >= sc.retxTo {
		sc.retxFrom, sc.retxTo = 0, 0
	}
	for sc.nextSend < sc.nextSeq() && used < budget {
		if sc.nextSend == sc.base {
			sc.lastProgress = m.now // the retransmission clock starts with the first frame in flight
		}
		data(sc.nextSend, &sc.frags[sc.nextSend-sc.base])
		sc.nextSend++
		m.st.FramesSent++
	}
	return used
}

// resend marks the transmitted fragments in [from, to) whose last
// transmission is at least minAge old for retransmission. The age limit
// keeps a NACK that carries no position (a hello, a reconnect) from
// resending what was just sent.
func (m *Machine) resend(sc *sendChan, from, to uint64, minAge int64) {
	from, to = max(from, sc.base), min(to, sc.nextSend)
	for seq := from; seq < to; seq++ {
		if f := &sc.frags[seq-sc.base]; m.now-f.sent >= minAge {
			m.markResend(sc, seq, f)
		}
	}
}

func (m *Machine) markResend(sc *sendChan, seq uint64, f *frag) {
	if f.resend {
		return
	}
	f.resend = true
	if sc.retxFrom >= sc.retxTo {
		sc.retxFrom, sc.retxTo = seq, seq+1
	} else {
		sc.retxFrom, sc.retxTo = min(sc.retxFrom, seq), max(sc.retxTo, seq+1)
	}
	m.markReady(sc)
}

// markLost marks what an ack proves lost: fragments it does not cover
// (before the receiver's first gap, if it has one) whose last transmission
// preceded the latest one the receiver got. One publisher's frames arrive
// in order, so those will not arrive any more.
func (m *Machine) markLost(sc *sendChan, h *Header) {
	limit := sc.nextSend
	if h.GapEnd != 0 {
		limit = min(limit, h.GapEnd)
	}
	for seq := max(sc.base, h.Cum+1); seq < limit; seq++ {
		f := &sc.frags[seq-sc.base]
		if f.tx < h.LastTx {
			m.markResend(sc, seq, f)
		} else if h.GapEnd == 0 {
			// In flight. Past it, fragments are nearly always in flight
			// too; a rare loss behind a retransmission is found by the
			// next ack.
			break
		}
	}
}

func (m *Machine) handleAck(sc *sendChan, h *Header) {
	if sc.broken {
		return
	}
	if h.PeerSession != 0 && h.PeerSession != m.session {
		// It acknowledges a session of ours that is gone; its numbers
		// mean nothing to this one.
		return
	}
	if h.PeerSession == 0 && h.Cum != 0 {
		m.malformed(sc.peer, fmt.Errorf("%w: ack of seq %d without a session", ErrMalformedFrame, h.Cum))
		return
	}
	if h.Cum >= sc.nextSend {
		m.ackPastSent(sc, h)
		return
	}
	if h.LastTx >= sc.nextTx || h.Credited > sc.charged {
		// A transmission never made or credit for bytes never enqueued:
		// believed, they would mark frames in flight lost or open the
		// window past what was sent. Clamp them and use the rest.
		m.st.AckClamped++
		m.malformed(sc.peer, fmt.Errorf("%w: ack of transmission %d, credit %d: only %d sent, %d enqueued (clamped)",
			ErrMalformedFrame, h.LastTx, h.Credited, sc.nextTx-1, sc.charged))
		if h.LastTx >= sc.nextTx {
			h.LastTx = 0
		}
		h.Credited = min(h.Credited, sc.charged)
	}
	if sc.peerSess != h.Session {
		if sc.peerSess != 0 && sc.base > 1 {
			// The receiver acknowledged fragments under another session
			// and restarted within this incarnation: whatever it had
			// received and not yet handed up is gone, and we no longer
			// hold it.
			m.breakSend(sc, fmt.Errorf("rank %d restarted its receiver (session %#x -> %#x) after acknowledging %d fragments",
				sc.peer, sc.peerSess, h.Session, sc.base-1))
			return
		}
		sc.peerSess = h.Session
	}
	sc.lastAck = m.now
	sc.pastSince, sc.pastCount = 0, 0
	if h.Cum >= sc.base {
		k := int(h.Cum - sc.base + 1)
		if acked := &sc.frags[k-1]; acked.tx == h.LastTx {
			// The ack answers exactly that transmission: a clean sample
			// of the ack delay, even for a retransmitted fragment.
			m.sampleRTT(sc, time.Duration(m.now-acked.sent))
			sc.rto = min(max(sc.srtt+4*sc.rttvar, m.cfg.AckTimeout), m.cfg.MaxBackoff)
		} // else the backed-off timeout stays until a clean sample
		clear(sc.frags[:k])
		sc.frags = sc.frags[k:]
		sc.base = h.Cum + 1
		sc.lastProgress = m.now
	}
	if h.Credited > sc.credited {
		sc.credited = h.Credited
		sc.waiting = false
		m.rd.Wake = true
	}
	if h.Flags&FlagNackAll != 0 {
		m.resend(sc, sc.base, sc.nextSend, m.holdoff)
	}
	m.markLost(sc, h)
}

// ackPastSent handles an ack of fragments this sender never transmitted:
// dropped and counted. One may be forged (it changes nothing); but if the
// receiver itself keeps acknowledging past what was sent for 2 x
// MaxBackoff (3 acks at least) with no valid ack between, it took forged frames for ours:
// the channel reports a gap (so the job rolls back) instead of stalling
// with a window that never reopens, or delivering what it holds as ours.
func (m *Machine) ackPastSent(sc *sendChan, h *Header) {
	m.st.AckPastSent++
	m.malformed(sc.peer, fmt.Errorf("%w: ack of seq %d from rank %d: only %d sent (dropped)",
		ErrMalformedFrame, h.Cum, sc.peer, sc.nextSend-1))
	if sc.peerSess == 0 || h.Session != sc.peerSess || h.PeerSession != m.session {
		return
	}
	sc.pastCount++
	switch {
	case sc.pastSince == 0:
		sc.pastSince = m.now
	case sc.pastCount >= 3 && time.Duration(m.now-sc.pastSince) >= 2*m.cfg.MaxBackoff:
		m.breakSend(sc, fmt.Errorf("rank %d keeps acknowledging seq %d, only %d sent: it accepted forged frames",
			sc.peer, h.Cum, sc.nextSend-1))
	}
}

// breakSend marks sc broken after an unrepairable gap, tells the receiver
// (gone frame) and reports it.
func (m *Machine) breakSend(sc *sendChan, err error) {
	sc.broken = true
	sc.base = sc.nextSeq()
	sc.nextSend = sc.base
	clear(sc.frags)
	sc.frags = nil
	sc.retxFrom, sc.retxTo = 0, 0
	sc.gone = true
	sc.waiting = false
	m.rd.Wake = true
	m.markReady(sc)
	m.st.Gaps++
	m.emit(Event{Kind: EventGap, Peer: sc.peer, Err: err})
}

// sampleRTT folds one ack delay into the channel's estimate
// (Jacobson/Karels, RFC 6298).
func (m *Machine) sampleRTT(sc *sendChan, r time.Duration) {
	if sc.srtt == 0 {
		sc.srtt, sc.rttvar = r, r/2
		return
	}
	d := sc.srtt - r
	if d < 0 {
		d = -d
	}
	sc.rttvar = (3*sc.rttvar + d) / 4
	sc.srtt = (7*sc.srtt + r) / 8
}
