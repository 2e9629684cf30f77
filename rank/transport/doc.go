// Package transport gives a rank reliable, flow-controlled FIFO channels to
// its declared peers over core NATS, which itself keeps order per publisher
// but delivers at most once and caps payloads.
//
// It owns: one channel per ordered pair (Self->peer and peer->Self) of
// opaque messages, with per-channel fragment sequence numbers, cumulative
// acks that also carry byte credit, retransmission after an ack timeout, a
// NACK or a reconnect, deduplication and a bounded reorder buffer on the
// receiver, fragmentation under the server's max payload and reassembly;
// the incarnation g in every frame and subject (frames of an older g are
// dropped and counted); the in-memory self-channel; and the reporting of
// slow consumers, disconnects, reconnects, malformed or stale frames and
// unrepairable gaps as events. It knows nothing of cuts or markers: the
// upper layer encodes those as messages, and messages are only ever handed
// up whole, so markers sit at message boundaries by construction.
//
// Sending is two calls, so that the caller never blocks under its protocol
// lock: Acquire waits for window credit, Enqueue queues without blocking.
// Arrivals go to Handler.Deliver on one goroutine, in channel order,
// exactly once; the upper layer returns the window with Credit.
//
//	ep, err := transport.Open(ctx, nc, transport.Options{
//		Job: "heat", Self: 1, Peers: []int{0, 2}, G: 1,
//	}, handler)
//	if err := ep.Acquire(ctx, 2, len(msg)); err != nil { ... }
//	mu.Lock(); err = ep.Enqueue(2, msg); mu.Unlock()
//	// in handler.Deliver(from, g, msg), once consumed: ep.Credit(from, len(msg))
//
// Every protocol decision is made by a pure state machine, package
// rank/transport/channel, which also holds the wire format (its frame.go)
// and is tested by deterministic simulation; the Endpoint is its driver:
// NATS subscriptions and publishes, the clock, session ids, the waiting of
// Acquire and the goroutines. The design and its guarantees are in
// docs/design.md (section "Rank transport").
package transport
