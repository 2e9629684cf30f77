package transport

import (
	"sync/atomic"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// counters are what the driver counts itself (the protocol's counters are
// the machine's); atomics, so that the delivery and publish paths need no
// lock for them.
type counters struct {
	msgsDelivered, bytesDelivered, slowConsumer atomic.Uint64
	disconnects, reconnects, publishErrors      atomic.Uint64
	eventsDropped, authDropped                  atomic.Uint64
}

func (c *counters) snapshot(m channel.Stats) Stats {
	return Stats{
		MsgsSent:       m.MsgsQueued,
		BytesSent:      m.BytesQueued,
		MsgsDelivered:  c.msgsDelivered.Load(),
		BytesDelivered: c.bytesDelivered.Load(),
		Fragmented:     m.Fragmented,
		FramesSent:     m.FramesSent,
		FramesReceived: m.FramesReceived,
		Retransmits:    m.Retransmits,
		Timeouts:       m.Timeouts,
		Probes:         m.Probes,
		AcksSent:       m.AcksSent,
		AcksReceived:   m.Acks,
		Duplicates:     m.Duplicates,
		ReorderDropped: m.ReorderDropped,
		StaleDropped:   m.StaleDropped,
		FutureDropped:  m.FutureDropped,
		Malformed:      m.Malformed,
		SlowConsumer:   c.slowConsumer.Load(),
		Disconnects:    c.disconnects.Load(),
		Reconnects:     c.reconnects.Load(),
		Gaps:           m.Gaps,
		PublishErrors:  c.publishErrors.Load(),
		EventsDropped:  c.eventsDropped.Load(),
		Resets:         m.Resets,
		AheadDropped:   m.AheadDropped,
		WindowDropped:  m.WindowDropped,
		Conflicts:      m.Conflicts,
		AckPastSent:    m.AckPastSent,
		AckClamped:     m.AckClamped,
		AuthDropped:    c.authDropped.Load(),
	}
}
