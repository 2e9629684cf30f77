package transport

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// outFrame is a frame chosen under the lock and encoded and published
// outside it.
type outFrame struct {
	subj    string
	h       header
	payload []byte
}

// writeLoop is the only goroutine that publishes. Acks go out before data
// in each round, and each channel gets a bounded share of a round, so that
// one busy channel neither starves the others nor delays acks long.
func (e *Endpoint) writeLoop() {
	defer e.wg.Done()
	tick := time.NewTicker(min(max(e.cfg.AckTimeout/4, time.Millisecond), 50*time.Millisecond))
	defer tick.Stop()
	var batch []outFrame
	var scratch []byte
	for {
		select {
		case <-e.stop:
			return
		case <-e.wkick:
		case <-tick.C:
			e.checkTimers()
		}
		for {
			batch = e.collect(batch[:0])
			if len(batch) == 0 {
				break
			}
			for i := range batch {
				f := &batch[i]
				scratch = appendFrame(scratch[:0], &f.h, f.payload)
				e.publish(f.subj, scratch)
				*f = outFrame{}
			}
			select {
			case <-e.stop:
				return
			default:
			}
		}
	}
}

func (e *Endpoint) publish(subj string, frame []byte) {
	if e.cfg.Faults == nil {
		if err := e.nc.Publish(subj, frame); err != nil {
			e.publishFailed(subj, err)
		}
		return
	}
	for _, f := range e.cfg.Faults.Outgoing(subj, frame) {
		if err := e.nc.Publish(subj, f); err != nil {
			e.publishFailed(subj, err)
		}
	}
}

// publishFailed needs no repair of its own: the frame stays unacknowledged
// and goes out again on the retransmission timeout or the reconnect.
func (e *Endpoint) publishFailed(subj string, err error) {
	if n := e.st.publishErrors.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th, ...
		e.log.Debug("transport publish failed", "subject", subj, "err", err, "count", n)
	}
}

// collect picks the next frames to publish.
func (e *Endpoint) collect(out []outFrame) []outFrame {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return out
	}
	for _, rc := range e.ackq {
		rc.inAckq = false
		if rc.broken || !rc.ackPending {
			continue
		}
		out = append(out, e.ackFrameLocked(rc))
	}
	clear(e.ackq)
	e.ackq = e.ackq[:0]
	if e.connDown {
		// Publishes would only fill the client's reconnect buffer; the
		// reconnect retransmits what is outstanding anyway.
		return out
	}
	// About one full frame of data per round: publishing a frame holds the
	// connection's lock for the socket write, and acks (this rank's credit
	// to its peers) must not wait behind more than that.
	budget := max(e.frameMax, 64<<10)
	now := e.now()
	for budget > 0 && len(e.ready) > 0 {
		sc := e.ready[0]
		e.ready[0] = nil
		e.ready = e.ready[1:]
		sc.inReady = false
		var used int
		out, used = e.takeFramesLocked(sc, out, budget, now)
		budget -= used
		if sc.hasWork() {
			e.readyLocked(sc)
		}
	}
	return out
}

func (e *Endpoint) ackFrameLocked(rc *recvChan) outFrame {
	h := header{
		typ: typeAck, from: uint32(e.self), to: uint32(rc.peer), g: e.g, session: e.session,
		cum: rc.next - 1, credited: rc.credited, peerSession: rc.sess, lastTx: rc.maxTx,
	}
	if rc.nackAll {
		h.flags |= flagNackAll
	}
	if rc.hello {
		h.flags |= flagHello
	}
	if len(rc.ooo) > 0 {
		if rc.oooMin == 0 {
			for s := range rc.ooo {
				if rc.oooMin == 0 || s < rc.oooMin {
					rc.oooMin = s
				}
			}
		}
		h.gapEnd = rc.oooMin
	}
	rc.nackAll, rc.hello, rc.ackPending = false, false, false
	rc.creditSent = rc.credited
	rc.bytesSinceAck = 0
	e.st.acksSent.Add(1)
	return outFrame{subj: rc.ackSubj, h: h}
}

// takeFramesLocked appends sc's control frames, retransmissions and new
// frames, up to about budget payload bytes.
func (e *Endpoint) takeFramesLocked(sc *sendChan, out []outFrame, budget int, now int64) ([]outFrame, int) {
	ctl := header{from: uint32(e.self), to: uint32(sc.peer), g: e.g, session: e.session}
	if sc.gone {
		sc.gone = false
		h := ctl
		h.typ = typeGone
		out = append(out, outFrame{subj: sc.subj, h: h})
	}
	if sc.broken {
		return out, 0
	}
	if sc.probe {
		sc.probe = false
		h := ctl
		h.typ = typeProbe
		out = append(out, outFrame{subj: sc.subj, h: h})
		e.st.probes.Add(1)
	}
	used := 0
	data := func(seq uint64, f *frag) {
		h := ctl
		h.typ = typeData
		h.seq, h.msgLen, h.offset = seq, uint64(len(f.msg)), uint64(f.off)
		f.sent, f.tx = now, sc.nextTx
		sc.nextTx++
		h.tx = f.tx
		out = append(out, outFrame{subj: sc.subj, h: h, payload: f.msg[f.off : f.off+f.n]})
		used += f.n + dataHdrLen
	}
	sc.retxFrom = max(sc.retxFrom, sc.base)
	sc.retxTo = min(sc.retxTo, sc.nextSend)
	for sc.retxFrom < sc.retxTo && used < budget {
		seq := sc.retxFrom
		sc.retxFrom++
		if f := &sc.frags[seq-sc.base]; f.resend {
			f.resend = false
			data(seq, f)
			e.st.retransmits.Add(1)
		}
	}
	if sc.retxFrom >= sc.retxTo {
		sc.retxFrom, sc.retxTo = 0, 0
	}
	for sc.nextSend < sc.nextSeq && used < budget {
		if sc.nextSend == sc.base {
			sc.lastProgress = now // the retransmission clock starts with the first frame in flight
		}
		data(sc.nextSend, &sc.frags[sc.nextSend-sc.base])
		sc.nextSend++
		e.st.framesSent.Add(1)
	}
	return out, used
}

// resendLocked marks the transmitted fragments in [from, to) whose last
// transmission is at least minAge ns old for retransmission. The age limit
// keeps a NACK that carries no position (a hello, a reconnect) from
// resending what was just sent.
func (e *Endpoint) resendLocked(sc *sendChan, from, to uint64, minAge int64) {
	from, to = max(from, sc.base), min(to, sc.nextSend)
	now := e.now()
	for seq := from; seq < to; seq++ {
		if f := &sc.frags[seq-sc.base]; now-f.sent >= minAge {
			e.markResendLocked(sc, seq, f)
		}
	}
}

func (e *Endpoint) markResendLocked(sc *sendChan, seq uint64, f *frag) {
	if f.resend {
		return
	}
	f.resend = true
	if sc.retxFrom >= sc.retxTo {
		sc.retxFrom, sc.retxTo = seq, seq+1
	} else {
		sc.retxFrom, sc.retxTo = min(sc.retxFrom, seq), max(sc.retxTo, seq+1)
	}
	e.readyLocked(sc)
}

// markLostLocked marks what an ack proves lost: fragments it does not
// cover (before the receiver's first gap, if it has one) whose last
// transmission preceded the latest one the receiver got. One publisher's
// frames arrive in order, so those will not arrive any more.
func (e *Endpoint) markLostLocked(sc *sendChan, h *header) {
	limit := sc.nextSend
	if h.gapEnd != 0 {
		limit = min(limit, h.gapEnd)
	}
	for seq := max(sc.base, h.cum+1); seq < limit; seq++ {
		f := &sc.frags[seq-sc.base]
		if f.tx < h.lastTx {
			e.markResendLocked(sc, seq, f)
		} else if h.gapEnd == 0 {
			// In flight. Past it, fragments are nearly always in
			// flight too; a rare loss behind a retransmission is
			// found by the next ack.
			break
		}
	}
}

// checkTimers fires retransmission timeouts and credit probes.
func (e *Endpoint) checkTimers() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.connDown {
		return
	}
	now := e.now()
	kick := false
	for _, sc := range e.sendList {
		if sc.broken {
			continue
		}
		switch {
		case sc.base < sc.nextSend:
			if time.Duration(now-sc.lastProgress) >= sc.rto {
				// Resend only the oldest fragment: if the acks were just
				// slow that costs one frame, and if frames were lost its
				// ack shows which (see handleAckLocked).
				e.resendLocked(sc, sc.base, sc.base+1, 0)
				sc.lastProgress = now
				sc.rto = min(2*sc.rto, e.cfg.MaxBackoff)
				e.st.timeouts.Add(1)
				kick = true
			}
		case sc.wait != nil && time.Duration(now-sc.lastAck) >= sc.rto:
			// An Acquire waits and nothing is in flight: the ack that
			// would carry the credit may have been lost. Ask for it.
			sc.probe = true
			sc.lastAck = now
			sc.rto = min(2*sc.rto, e.cfg.MaxBackoff)
			e.readyLocked(sc)
			kick = true
		}
	}
	if kick {
		e.kickWriter()
	}
}

// onAck runs on the ack subscription's goroutine.
func (e *Endpoint) onAck(m *nats.Msg) {
	if f := e.cfg.Faults; f != nil && !f.Incoming(m.Subject, m.Data) {
		return
	}
	h, _, err := decodeFrame(m.Data, e.maxMsg)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.malformedLocked(-1, err)
		return
	}
	if e.closed || !e.checkIncarnationLocked(&h) {
		return
	}
	if h.typ != typeAck {
		e.malformedLocked(e.peerLocked(h.from), fmt.Errorf("%w: type %d frame on the ack subject", ErrMalformedFrame, h.typ))
		return
	}
	if int(h.to) != e.self {
		e.malformedLocked(e.peerLocked(h.from), fmt.Errorf("%w: ack for rank %d delivered to rank %d", ErrMalformedFrame, h.to, e.self))
		return
	}
	sc := e.send[int(h.from)]
	if sc == nil {
		e.malformedLocked(-1, fmt.Errorf("%w: ack from undeclared rank %d", ErrMalformedFrame, h.from))
		return
	}
	e.st.acksRecvd.Add(1)
	e.handleAckLocked(sc, &h)
}

func (e *Endpoint) handleAckLocked(sc *sendChan, h *header) {
	if sc.broken {
		return
	}
	if h.peerSession != 0 && h.peerSession != e.session {
		// It acknowledges a session of ours that is gone; its numbers
		// mean nothing to this one.
		return
	}
	if h.peerSession == 0 && h.cum != 0 {
		e.malformedLocked(sc.peer, fmt.Errorf("%w: ack of seq %d without a session", ErrMalformedFrame, h.cum))
		return
	}
	if h.cum >= sc.nextSend || h.lastTx >= sc.nextTx {
		e.malformedLocked(sc.peer, fmt.Errorf("%w: ack of seq %d, transmission %d: only %d and %d sent",
			ErrMalformedFrame, h.cum, h.lastTx, sc.nextSend-1, sc.nextTx-1))
		return
	}
	if sc.peerSess != h.session {
		if sc.peerSess != 0 && sc.base > 1 {
			// The receiver acknowledged fragments under another session
			// and restarted within this incarnation: whatever it had
			// received and not yet handed up is gone, and we no longer
			// hold it.
			e.breakSendLocked(sc, fmt.Errorf("rank %d restarted its receiver (session %#x -> %#x) after acknowledging %d fragments",
				sc.peer, sc.peerSess, h.session, sc.base-1))
			return
		}
		sc.peerSess = h.session
	}
	now := e.now()
	sc.lastAck = now
	if h.cum >= sc.base {
		k := int(h.cum - sc.base + 1)
		if acked := &sc.frags[k-1]; acked.tx == h.lastTx {
			// The ack answers exactly that transmission: a clean sample
			// of the ack delay, even for a retransmitted fragment.
			e.sampleRTTLocked(sc, time.Duration(now-acked.sent))
			sc.rto = e.rtoLocked(sc)
		} // else the backed-off timeout stays until a clean sample
		clear(sc.frags[:k])
		sc.frags = sc.frags[k:]
		sc.base = h.cum + 1
		sc.lastProgress = now
	}
	if h.credited > sc.credited {
		sc.credited = h.credited
		sc.wake()
	}
	if h.flags&flagNackAll != 0 {
		e.resendLocked(sc, sc.base, sc.nextSend, e.holdoff)
	}
	e.markLostLocked(sc, h)
	if sc.inReady {
		e.kickWriter()
	}
}

// breakSendLocked marks sc broken after an unrepairable gap, tells the
// receiver (gone frame) and reports it.
func (e *Endpoint) breakSendLocked(sc *sendChan, err error) {
	sc.broken = true
	clear(sc.frags)
	sc.frags = nil
	sc.base = sc.nextSeq
	sc.nextSend = sc.nextSeq
	sc.retxFrom, sc.retxTo = 0, 0
	sc.gone = true
	sc.wake()
	e.readyLocked(sc)
	e.kickWriter()
	e.st.gaps.Add(1)
	e.emitLocked(Event{Kind: EventGap, Peer: sc.peer, Err: err}, false)
}

// checkIncarnationLocked drops frames not of the current incarnation.
func (e *Endpoint) checkIncarnationLocked(h *header) bool {
	switch {
	case h.g == e.g:
		return true
	case h.g < e.g:
		e.st.staleDropped.Add(1)
		e.emitLocked(Event{Kind: EventStale, Peer: e.peerLocked(h.from),
			Err: fmt.Errorf("dropped a type %d frame of incarnation %d", h.typ, h.g)}, true)
	default:
		e.st.futureDropped.Add(1)
	}
	return false
}

func (e *Endpoint) malformedLocked(peer int, err error) {
	e.st.malformed.Add(1)
	e.emitLocked(Event{Kind: EventMalformed, Peer: peer, Err: err}, true)
}

// peerLocked names the sender of a frame in an event: its rank if it is a
// declared peer, else -1 (so that hostile frames cannot grow the event
// rate limiter's map).
func (e *Endpoint) peerLocked(from uint32) int {
	if _, ok := e.recv[int(from)]; ok {
		return int(from)
	}
	return -1
}

// sampleRTTLocked folds one ack delay into the channel's estimate
// (Jacobson/Karels, RFC 6298).
func (e *Endpoint) sampleRTTLocked(sc *sendChan, r time.Duration) {
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

// rtoLocked is the retransmission timeout without backoff: the ack delay
// plus four deviations, never below AckTimeout (which so is the floor as
// well as the first timeout) nor above MaxBackoff.
func (e *Endpoint) rtoLocked(sc *sendChan) time.Duration {
	return min(max(sc.srtt+4*sc.rttvar, e.cfg.AckTimeout), e.cfg.MaxBackoff)
}
