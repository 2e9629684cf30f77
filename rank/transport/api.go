package transport

import (
	"errors"
	"fmt"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// Sentinel errors, returned wrapped (test with errors.Is).
var (
	// ErrClosed: the Endpoint was closed (every method after Close).
	ErrClosed = errors.New("transport: endpoint closed")
	// ErrUnknownPeer: Acquire or Enqueue to a rank that is neither Self nor
	// a declared peer.
	ErrUnknownPeer = channel.ErrUnknownPeer
	// ErrTooLarge: Acquire or Enqueue of more than Options.MaxMessage bytes.
	ErrTooLarge = errors.New("transport: message larger than MaxMessage")
	// ErrBroken: the channel has an unrepairable gap (EventGap was reported);
	// it stays broken until Reset.
	ErrBroken = channel.ErrBroken
	// ErrReset: a Reset happened while Acquire waited; the credit it waited
	// for belonged to the previous incarnation.
	ErrReset = errors.New("transport: endpoint reset while waiting")
	// ErrConnClosed: the NATS connection is closed for good (it gave up
	// reconnecting, or its owner closed it); nothing can be sent any more.
	ErrConnClosed = errors.New("transport: NATS connection closed")
	// ErrStaleIncarnation: Reset to an incarnation older than the current one.
	ErrStaleIncarnation = errors.New("transport: incarnation older than the current one")
	// ErrMalformedFrame is wrapped by every frame decoding error (the
	// wire format is package channel's).
	ErrMalformedFrame = channel.ErrMalformedFrame
)

// Handler receives what arrives. Both methods are called on one goroutine
// owned by the Endpoint, one call at a time, in arrival order (messages of
// one channel in channel order). They may take the caller's locks and call
// the Endpoint's Credit, Enqueue, Stats, G, Reset and Close, but not Acquire
// (it may wait for credit only this goroutine could free), and must not
// block for long: a blocked Handler holds up every channel's delivery,
// though not the NATS client (frames keep being received, acknowledged and
// queued, within the credit windows).
type Handler interface {
	// Deliver hands up message msg of channel from->Self, of incarnation g,
	// exactly once and in channel order. msg belongs to the Handler from
	// then on. The window credit of msg (len(msg) bytes) comes back to the
	// sender only when the upper layer calls Credit(from, len(msg)).
	Deliver(from int, g uint64, msg []byte)
	// Event reports a transport event (also logged and counted in Stats).
	Event(Event)
}

// EventKind says what happened.
type EventKind int

// Event kinds.
const (
	// EventSlowConsumer: the NATS client dropped frames of this rank's
	// subscription (pending limit hit). Retransmission repairs it; an
	// event is still worth a warning because it costs throughput.
	EventSlowConsumer EventKind = iota + 1
	// EventDisconnect: the NATS connection was lost; the client is
	// reconnecting (or gave up: Err says so).
	EventDisconnect
	// EventReconnect: the connection is back; unacknowledged frames are
	// being retransmitted and peers asked to resend.
	EventReconnect
	// EventGap: the channel with Peer has lost messages that cannot be
	// retransmitted (the peer lost its state within one incarnation, or the
	// stream was corrupt). The channel is broken until Reset: the upper
	// layer should report it so that the coordinator starts a recovery.
	EventGap
	// EventMalformed: a frame failed to decode or did not fit the channel
	// (Peer is -1 when the sender is unknown); it was dropped.
	EventMalformed
	// EventStale: a frame of an older incarnation was dropped.
	EventStale
)

func (k EventKind) String() string {
	switch k {
	case EventSlowConsumer:
		return "slow-consumer"
	case EventDisconnect:
		return "disconnect"
	case EventReconnect:
		return "reconnect"
	case EventGap:
		return "gap"
	case EventMalformed:
		return "malformed"
	case EventStale:
		return "stale-incarnation"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one transport event. EventMalformed, EventStale and
// EventSlowConsumer are rate-limited to one per kind and peer per second
// (Stats counts them all); the others are always reported.
type Event struct {
	Kind EventKind
	// Peer is the rank concerned, or -1.
	Peer int
	// G is the endpoint's incarnation when the event happened.
	G uint64
	// Err gives the detail.
	Err error
}

func (e Event) String() string {
	return fmt.Sprintf("%s peer=%d g=%d: %v", e.Kind, e.Peer, e.G, e.Err)
}

// Stats are cumulative counters since Open (Reset does not clear them).
type Stats struct {
	MsgsSent       uint64 // messages accepted by Enqueue (self-channel included)
	BytesSent      uint64 // their bytes
	MsgsDelivered  uint64 // messages handed to Handler.Deliver
	BytesDelivered uint64 // their bytes
	Fragmented     uint64 // messages sent in more than one frame
	FramesSent     uint64 // data frames published for the first time
	FramesReceived uint64 // data frames received (in any order, duplicates included)
	Retransmits    uint64 // data frames published again
	Timeouts       uint64 // retransmission timeouts fired
	Probes         uint64 // credit probes sent
	AcksSent       uint64
	AcksReceived   uint64
	Duplicates     uint64 // data frames dropped as already received
	ReorderDropped uint64 // out-of-order frames dropped for lack of reorder room (retransmitted later)
	StaleDropped   uint64 // frames of an older incarnation dropped
	FutureDropped  uint64 // frames of a newer incarnation dropped (their sender retransmits them)
	Malformed      uint64 // frames rejected by the decoder or by channel checks
	SlowConsumer   uint64 // slow-consumer episodes reported by the NATS client
	Disconnects    uint64
	Reconnects     uint64
	Gaps           uint64 // unrepairable gaps reported
	PublishErrors  uint64 // publishes the NATS client refused (the frame is retransmitted)
	EventsDropped  uint64 // events not queued because too many were pending
	Resets         uint64
	// Bounds on what any sender can make this rank hold (each also counted
	// in Malformed and warned about, rate-limited): data frames far past
	// the window, in-order frames past the bytes granted, conflicting
	// copies of a held fragment (a gap), acks past what was sent, acks
	// clamped (a transmission never made, credit never granted).
	AheadDropped, WindowDropped, Conflicts, AckPastSent, AckClamped uint64
	// AuthDropped: frames whose tag did not authenticate them under the
	// pair key of the rank they claim to come from (Options.Keys), or that
	// claim an undeclared rank; dropped before the machine saw them.
	AuthDropped uint64
}

// Faults intercepts frames, for fault-injection tests. Both methods may be
// called from several goroutines at once.
type Faults interface {
	// Outgoing is called with each encoded frame before it is published on
	// subject, and returns the frames to publish on subject instead: none
	// drops it, the frame twice duplicates it, and frames kept from earlier
	// calls on the same subject may be released later to reorder. frame is
	// reused after the call returns: keep a copy, never the slice.
	Outgoing(subject string, frame []byte) [][]byte
	// Incoming is called with each frame received, on the NATS client's
	// callback goroutine, before it is decoded; false drops it. It may
	// sleep to make this rank a slow consumer.
	Incoming(subject string, frame []byte) bool
}
