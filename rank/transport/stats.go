package transport

import "sync/atomic"

// counters back Stats; atomics so that the hot paths need no extra lock.
type counters struct {
	msgsSent, bytesSent, msgsDelivered, bytesDelivered atomic.Uint64
	fragmented, framesSent, framesReceived             atomic.Uint64
	retransmits, timeouts, probes, acksSent, acksRecvd atomic.Uint64
	duplicates, reorderDropped, staleDropped           atomic.Uint64
	futureDropped, malformed, slowConsumer             atomic.Uint64
	disconnects, reconnects, gaps, publishErrors       atomic.Uint64
	eventsDropped, resets                              atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		MsgsSent:       c.msgsSent.Load(),
		BytesSent:      c.bytesSent.Load(),
		MsgsDelivered:  c.msgsDelivered.Load(),
		BytesDelivered: c.bytesDelivered.Load(),
		Fragmented:     c.fragmented.Load(),
		FramesSent:     c.framesSent.Load(),
		FramesReceived: c.framesReceived.Load(),
		Retransmits:    c.retransmits.Load(),
		Timeouts:       c.timeouts.Load(),
		Probes:         c.probes.Load(),
		AcksSent:       c.acksSent.Load(),
		AcksReceived:   c.acksRecvd.Load(),
		Duplicates:     c.duplicates.Load(),
		ReorderDropped: c.reorderDropped.Load(),
		StaleDropped:   c.staleDropped.Load(),
		FutureDropped:  c.futureDropped.Load(),
		Malformed:      c.malformed.Load(),
		SlowConsumer:   c.slowConsumer.Load(),
		Disconnects:    c.disconnects.Load(),
		Reconnects:     c.reconnects.Load(),
		Gaps:           c.gaps.Load(),
		PublishErrors:  c.publishErrors.Load(),
		EventsDropped:  c.eventsDropped.Load(),
		Resets:         c.resets.Load(),
	}
}
