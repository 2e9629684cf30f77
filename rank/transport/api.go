package transport

import (
	"errors"

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
	ErrStaleIncarnation = channel.ErrStaleIncarnation
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

// EventKind and Event are package channel's: the machine reports its
// events (gap, malformed, stale) and the Endpoint's (slow consumer,
// disconnect, reconnect, a frame that fails authentication) in one
// stream, rate-limited alike; see channel.EventKind for each kind.
type (
	EventKind = channel.EventKind
	Event     = channel.Event
)

// Event kinds.
const (
	EventSlowConsumer = channel.EventSlowConsumer
	EventDisconnect   = channel.EventDisconnect
	EventReconnect    = channel.EventReconnect
	EventGap          = channel.EventGap
	EventMalformed    = channel.EventMalformed
	EventStale        = channel.EventStale
)

// Stats are cumulative counters since Open (Reset does not clear them):
// the machine's, and those of the Endpoint itself.
type Stats struct {
	channel.Stats
	MsgsDelivered  uint64 // messages handed to Handler.Deliver
	BytesDelivered uint64 // their bytes
	SlowConsumer   uint64 // slow-consumer episodes reported by the NATS client
	Disconnects    uint64
	Reconnects     uint64
	PublishErrors  uint64 // publishes the NATS client refused (the frame is retransmitted)
	EventsDropped  uint64 // events not queued because too many were pending
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
