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
		Stats:          m,
		MsgsDelivered:  c.msgsDelivered.Load(),
		BytesDelivered: c.bytesDelivered.Load(),
		SlowConsumer:   c.slowConsumer.Load(),
		Disconnects:    c.disconnects.Load(),
		Reconnects:     c.reconnects.Load(),
		PublishErrors:  c.publishErrors.Load(),
		EventsDropped:  c.eventsDropped.Load(),
		AuthDropped:    c.authDropped.Load(),
	}
}
