package transport

import (
	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// onData and onAck run on the subscriptions' goroutines: the machine
// decodes, orders, deduplicates and reassembles under the lock; complete
// messages reach the Handler through the writer and the deliverer, never
// from here.
func (e *Endpoint) onData(m *nats.Msg) { e.receive(channel.DataSub, m) }
func (e *Endpoint) onAck(m *nats.Msg)  { e.receive(channel.AckSub, m) }

func (e *Endpoint) receive(sub channel.Sub, m *nats.Msg) {
	if f := e.cfg.Faults; f != nil && !f.Incoming(m.Subject, m.Data) {
		return
	}
	b := m.Data
	if e.auth != nil {
		// Checked outside the endpoint's lock: a flood of forged frames
		// costs the subscription's goroutine, not the senders.
		frame, from, err := e.auth.openFrame(sub, b)
		if err != nil {
			e.mu.Lock()
			e.st.AuthDropped++
			e.noteLocked(Event{Kind: EventMalformed, Peer: from, Err: err})
			e.mu.Unlock()
			return
		}
		b = frame
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	// The NATS client allocates Data per message: the machine may keep it.
	e.m.Receive(e.now(), sub, b)
	e.afterLocked()
}
