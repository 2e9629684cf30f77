package participant

import (
	"fmt"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// Ready is what the participant asks its runtime to do. Fields are listed in
// the order the runtime executes them. See the package documentation for
// the duties; in short: everything before Control is done under the
// runtime's lock before the lock is released.
type Ready struct {
	// Frames to put on channels, in order: transport.Enqueue(To, Data),
	// under the lock, before any later Send can produce frames. Before a
	// data frame's Send the caller waited in Acquire for
	// wire.DataHeaderLen+len(payload) bytes; markers (at most one per
	// channel per epoch, under 40 bytes) are enqueued without waiting. The
	// transport charges every enqueued frame to the window; the receiver
	// credits every frame of the current incarnation back exactly once.
	Frames []Frame
	// Credits to return: transport.Credit(From, Bytes). Markers are
	// credited on arrival, held messages on arrival too (R8), data messages
	// when the job consumes them; frames of another incarnation never.
	Credits []Credit
	// Control messages for the coordinator, in order (publish; they may be
	// lost: the participant repeats what matters in its heartbeats).
	Control [][]byte
	// Seal hands the channel state and meta of epoch Seal.Epoch to that
	// epoch's shard writer (started when SafePoint returned Capture). When
	// the shard is durable the runtime calls ShardDurable; on failure
	// ShardFailed.
	Seal *Seal
	// Cancel lists epochs whose shard writers must stop and discard their
	// output (the epoch was aborted or superseded).
	Cancel []uint64
	// Committed is the latest cut the coordinator committed that this rank
	// is part of (0: none in this Ready): a base for incremental shards.
	Committed uint64
	// Deliverable lists channels (peer ranks, possibly this rank) that got
	// messages a waiting Recv can now take; also set when an abort
	// released held messages. The runtime wakes its waiters.
	Deliverable []int
	// Started: Go(g) arrived; the job's Send, Recv and SafePoint may run.
	Started bool
	// Events to log (and count); nothing to execute.
	Events []Event
	// Rollback: the coordinator ordered a rollback in place. The runtime
	// wakes blocked Send/Recv with ErrRolledBack, cancels shard writers,
	// synchronizes device streams, calls transport.Reset(G), reloads cut
	// Epoch (buffers, meta, channel state; Epoch 0: initial state) and
	// builds a new Participant at incarnation G with that Restore. This
	// participant is finished.
	Rollback *Rollback
	// Exit: end the process with Code (fenced, or the job stopped). The
	// runtime flushes the transport first when Code is 0. An Exit wins
	// over a Rollback in the same Ready.
	Exit *Exit

	n uint64 // which Ready this is, for Advance's check
}

// Frame is one frame for the channel to rank To.
type Frame struct {
	To   int
	Data []byte
}

// Credit returns Bytes of window credit on the channel from rank From.
type Credit struct {
	From  int
	Bytes int
}

// ChannelState is the recorded state of one incoming channel at a cut: the
// data frames (as they arrived, header included) with sequence numbers
// FirstSeq, FirstSeq+1, ..., in order. The store keeps it opaque.
type ChannelState struct {
	From     int
	FirstSeq uint64
	Msgs     [][]byte
}

// Seal carries what the shard of Epoch needs besides the captured buffers.
type Seal struct {
	Epoch uint64
	Step  int64
	// Channels with at least one recorded message, sorted by From (the
	// self-channel included). Channels not listed recorded nothing.
	Channels []ChannelState
	// Meta is the participant's opaque shard metadata (wire.ShardMeta):
	// store it with the shard and hand it back in Restore.
	Meta []byte
	// Bytes is the payload size of the recorded messages.
	Bytes int64
}

// Rollback orders a rollback in place to cut Epoch at Step, incarnation G.
type Rollback struct {
	G     uint64
	Epoch uint64
	Step  int64
}

// Exit ends the process.
type Exit struct {
	Kind   ExitKind
	Code   int
	Reason string // for the log; never parsed (Kind says what happened)
}

// ExitKind says why the process exits. It is decided by the message that
// ended the participant (a wire.Fence or a wire.Stop), not by the reason
// text, which comes from the coordinator and may say anything.
type ExitKind uint8

const (
	// ExitStopped: the coordinator stopped the job (wire.Stop); Code is
	// the code it asked for.
	ExitStopped ExitKind = iota
	// ExitFenced: a newer process replaced this one (wire.Fence, R13); it
	// exits at once without touching the store.
	ExitFenced
)

func (k ExitKind) String() string {
	if k == ExitFenced {
		return "fenced"
	}
	return "stopped"
}

// EventKind classifies an Event.
type EventKind uint8

const (
	EvEpoch        EventKind = iota + 1 // learned of an epoch
	EvCaptured                          // local capture done, markers out
	EvSealed                            // all markers in
	EvReported                          // shard reported
	EvAborted                           // epoch aborted (Reason)
	EvCommitted                         // epoch committed
	EvAlignment                         // R7 violation (first one only)
	EvChannelFault                      // lost, duplicated or malformed frame
	EvProtocol                          // a peer or the coordinator broke the protocol; ignored
)

// Event is something worth a log line.
type Event struct {
	Kind   EventKind
	Epoch  uint64
	Peer   int
	Reason wire.AbortReason
	Text   string
}

func (e Event) String() string {
	names := map[EventKind]string{EvEpoch: "epoch", EvCaptured: "captured", EvSealed: "sealed", EvReported: "reported",
		EvAborted: "aborted", EvCommitted: "committed", EvAlignment: "alignment", EvChannelFault: "channel-fault",
		EvProtocol: "protocol"}
	s := fmt.Sprintf("%s e=%d", names[e.Kind], e.Epoch)
	if e.Reason != wire.ReasonNone {
		s += " reason=" + e.Reason.String()
	}
	if e.Peer >= 0 {
		s += fmt.Sprintf(" peer=%d", e.Peer)
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// IsEmpty reports whether r asks for nothing.
func (r *Ready) IsEmpty() bool {
	return len(r.Frames) == 0 && len(r.Credits) == 0 && len(r.Deliverable) == 0 && !r.Started &&
		len(r.Control) == 0 && r.Seal == nil && len(r.Cancel) == 0 && r.Committed == 0 &&
		r.Rollback == nil && r.Exit == nil && len(r.Events) == 0
}
