// Package channel is the protocol of cutpoint's rank transport as a pure
// state machine: one rank's end of all its channels (a sender Self->peer
// and a receiver peer->Self for each declared peer, and the self-channel)
// with per-channel fragment sequence numbers, cumulative acks that carry
// byte credit, retransmission, deduplication, a bounded reorder buffer,
// fragmentation and reassembly, sessions and incarnation fencing (R11,
// R14). It starts no goroutine, reads no clock, touches no socket and draws
// no random number: time comes in with Tick and Receive, session ids with
// New and Reset. Package transport (the Endpoint) is its driver over NATS,
// package sim its driver in the whole-stack simulation, this package's
// TestSim a driver of many machines alone; all execute its Ready with
// Execute.
//
// The wire format (version 2) is in frame.go: DecodeFrame treats bytes as
// hostile and allocates nothing; AppendFrame encodes.
//
// # Inputs
//
// All calls are serialized by the driver (one mutex):
//
//	New(cfg, g, session, now)     a machine in incarnation g; greets nobody yet
//	Subscribed()                  the driver's subscriptions of g are registered: hello every peer
//	Receive(now, sub, frame)      a frame arrived on this rank's data or ack subject (frame is the machine's now)
//	Room(to, n)                   may a sender that waits for credit go on? nil, ErrWait, ErrBroken, ErrUnknownPeer
//	Enqueue(to, msg)              queue a message (the machine's until acknowledged; to Self: delivered as is)
//	Credit(from, n)               the upper layer returned n bytes of window of channel from->Self
//	                              (Tick first: a delayed ack is due AckDelay after the machine's now)
//	Tick(now)                     time passes: retransmission timeouts, credit probes, delayed acks
//	Reset(g, session)             rollback to incarnation g: everything queued or half-received is dropped
//	Disconnected(), Reconnected() the connection went down / came back
//	Note(now, ev)                 an event of the driver, reported with the machine's
//
// # The Ready loop
//
// The same for every machine of cutpoint (coordinator, participant,
// transport channel), in etcd-io/raft's order: after inputs, while
// HasReady, the driver calls Tick(now) if time has passed (the frames'
// transmission times and the delayed ack are read from the machine's
// clock), takes rd := Ready(), executes it, then calls Advance(rd).
// Execute(m, ports) is this loop's body, shared by the Endpoint and the
// simulation; it executes the fields in this order, each through one
// method of Ports:
//
//  1. Frames (Publish): publish each, in order, from one publisher: the loss
//     inference relies on one publisher's frames arriving in order. Out.Sub
//     and Out.To name the subject (data or ack subject of rank To in
//     Header.G); AppendFrame encodes Header and Payload. A publish that
//     fails needs nothing: the frame is still unacknowledged and goes out
//     again. Payload aliases an enqueued message, which nobody writes.
//  2. Deliver (Deliver): hand each message to the upper layer, in order, on one
//     goroutine. A delivery whose G is no longer the current incarnation
//     when its turn comes (a Reset in between) is dropped, never handed up.
//  3. Events (Event): report them (the machine's gaps, malformed and
//     stale frames, and what the driver noted).
//  4. Wake (Wake): senders waiting for credit call Room again.
//
// Advance(rd) acknowledges the Ready and panics unless rd is the one handed
// out (not yet acknowledged): its frames were taken for publishing (the
// driver may publish them after Advance and outside its lock, as long as
// the frames of successive Readys leave in order), its deliveries queued,
// its events reported. Ready called again before Advance returns the same
// Ready; inputs between Ready and Advance (a port's Credit or Enqueue) go
// to the next one. Each Ready
// carries the acks that are due and about one full frame (at least 64 KiB)
// of data taken round-robin from the channels with work, so acks never
// queue behind more than that; HasReady stays true while there is more.
// When HasReady is false but NextAck is non-zero, the driver calls Tick at
// that time (a delayed ack is due). It calls Tick every AckTimeout/4 or so
// in any case.
//
// # What it guarantees
//
// Per channel and incarnation, to an upper layer that credits what it
// consumes: every message enqueued is delivered exactly once and in order,
// whatever the network drops, duplicates, delays or reorders, through
// partitions and reconnects; or the channel reports an unrepairable gap
// (EventGap: a peer lost its channel state within the incarnation, or the
// stream is corrupt) and delivers nothing more. Bytes enqueued and not
// credited back stay within the window plus one message when senders ask
// Room before Enqueue; the reorder buffer stays within 2 x Window + 2
// frames. Whatever a sender does (frames are not authenticated), a
// receiver holds at most the window delivered and not credited back (or
// one message, once all before it are credited) and the reorder bound:
// in-order frames past what it granted and frames more than the window in frames ahead are dropped and
// counted (WindowDropped, AheadDropped), two different copies of a held
// seq break the channel (Conflicts), and acks past what was sent are
// dropped (AckPastSent; persisting, they break the channel) or clamped
// (AckClamped). After Reset(g), no message of an older incarnation is delivered,
// and frames of other incarnations are dropped (StaleDropped,
// FutureDropped). TestSim checks these on thousands of seeded runs.
package channel
