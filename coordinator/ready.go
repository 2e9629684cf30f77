package coordinator

import (
	"fmt"

	"github.com/cutpoint/cutpoint/internal/exitcode"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// Broadcast is the To of a Message for every rank.
const Broadcast = -1

// Ready is what the coordinator asks its driver to do, in this order (see
// the package documentation for the duties).
type Ready struct {
	// JobRecord to write durably (temp file, fsync, rename, fsync dir)
	// before anything else in this Ready; then call JobRecordWritten(Seq),
	// or JobRecordFailed. The coordinator holds back whatever depends on it
	// (a new incarnation's Rollback and Spawn, Go, a new block of epochs)
	// until the acknowledgement.
	JobRecord *wire.JobRecord
	// Kill these processes and wait until each is gone (R13) before any
	// Spawn; Spawn 0 means whatever process of that rank may run.
	Kill []Process
	// Spawn these ranks (new processes) at incarnation G, restoring cut
	// Epoch at Step (0: fresh start at step 0); the launcher reports their
	// exits with RankExited(Rank, G, code).
	Spawn []Spawn
	// Messages to publish, in order: To is a rank (its control subject)
	// or Broadcast.
	Messages []Message
	// Confirm: ask the launcher, without blocking, whether each of these
	// silent processes still exists and runs, and answer each with
	// Confirmed(Rank, Spawn, Liveness) (LiveUnknown when it cannot
	// tell). Only with Config.ConfirmSilence.
	Confirm []Process
	// Commit: write the cut manifest (temp, fsync, rename, fsync dir: the
	// rename is the commit), then call ManifestCommitted(Epoch), or
	// ManifestFailed(Epoch, err).
	Commit *Manifest
	// GC: delete cuts beyond the newest Keep, never one in Pins, and packs
	// nothing kept references. No result is expected.
	GC *GC
	// Events to log and count (loud ones at error level).
	Events []Event
	// Outcome: the job is over; the driver sends Messages (the Stop
	// broadcast) and then exits with Outcome.Code.
	Outcome *Outcome

	n uint64 // which Ready this is, for Advance's check
}

// Process names one rank process.
type Process struct {
	Rank  int
	Spawn uint64
}

// Spawn starts rank Rank as a new process at incarnation G (its spawn id),
// restoring committed cut Epoch (taken at Step); Epoch 0: from step 0.
type Spawn struct {
	Rank  int
	G     uint64
	Epoch uint64
	Step  int64
}

// Message is an encoded coordinator-to-rank message.
type Message struct {
	To   int
	Data []byte
}

// Manifest is everything a cut manifest names (the store adds its own
// fields, e.g. sizes and time). Shards[r] is rank r's opaque reference.
type Manifest struct {
	Job    string
	Epoch  uint64
	Step   int64
	World  int
	G      uint64
	Final  bool
	Shards [][]byte
	Bytes  uint64 // logical bytes over all shards
	Stored uint64 // stored bytes over all shards
}

// GC asks the store to keep the newest Keep committed cuts of the job and
// every cut in Pins (e.g. the target of a recovery in progress).
type GC struct {
	Keep int
	Pins []uint64
}

// Outcome ends the job.
type Outcome struct {
	Code   int // 0 finished, 1 failed, 5 stopped after a final cut, 6 stopped without, 7 deterministic failure, 8 finished unprotected
	Reason string
	Epoch  uint64 // the last committed cut
}

// Exit codes of an Outcome (they are also cutpoint's exit codes; the
// numbers are defined once, in internal/exitcode).
const (
	CodeFinished       = exitcode.OK
	CodeFailed         = exitcode.Failure
	CodeStoppedWithCut = exitcode.StoppedWithCut
	CodeStoppedNoCut   = exitcode.StoppedNoCut
	// CodeDeterministic: a rank failed in a way no recovery can fix (it
	// failed before its first step, failed the same way twice from the
	// same cut, or its restore failed for a reason no other cut cures);
	// Reason carries the rank's own error.
	CodeDeterministic = exitcode.Deterministic
	// CodeUnprotected: every rank finished, but cutting had stopped
	// (cutting-stopped) and no cut committed since: the job ran
	// unprotected from Outcome.Epoch's step on.
	CodeUnprotected = exitcode.Unprotected
)

// Exit codes of rank processes the coordinator reads (RankExited).
const (
	// RankExitCutDamaged: the restore found damage in the cut (the rank
	// also says so with an AlarmCutDamaged).
	RankExitCutDamaged = exitcode.Damaged
	// RankExitTransient: the rank could not reach NATS or the store
	// within its wait; the coordinator respawns it with backoff without
	// counting a recovery (bounded by Config.OutageLimit).
	RankExitTransient = exitcode.Transient
)

// EventKind classifies an Event.
type EventKind uint8

const (
	EvCutStarted       EventKind = iota + 1
	EvCutCommitted               // Bytes, Stored, Duration
	EvCutAborted                 // Reason, Rank, Peer
	EvRecoveryStarted            // Rank: a lost rank (or -1), Text: why
	EvRecoveryFinished           // Duration
	EvRankLost                   // Rank
	EvFenced                     // Rank, Spawn in Text
	EvAlignment                  // loud: R7 violation, Rank (receiver), Peer (sender), Step (receiver), Text
	EvCuttingStopped             // loud: K blocked aborts on one channel, or other reasons
	EvCountsMismatch             // loud: R4 failed at commit
	EvRebuilt                    // coordinator restart finished its rebuild
	EvJobStarting                // start or restore: the first launch (Text says which)
	EvJobRunning                 // the first Go after a start or restore; Duration since it began
	EvJobFinished
	EvJobStopped
	EvJobFailed      // loud
	EvProtocol       // a message broke the protocol and was ignored
	EvCutDamaged     // loud: a restore found the cut damaged; it is marked bad (Epoch)
	EvCuttingResumed // a cut committed after cutting-stopped
	EvRankNotJoined  // a spawned rank was not heard within the start timeout
	// EvRankSilentRunning: a rank silent past the failure timeout whose
	// process the launcher says runs gets one more failure timeout.
	EvRankSilentRunning
)

var eventNames = map[EventKind]string{
	EvCutStarted: "cut-started", EvCutCommitted: "cut-committed", EvCutAborted: "cut-aborted",
	EvRecoveryStarted: "recovery-started", EvRecoveryFinished: "recovery-finished", EvRankLost: "rank-lost",
	EvFenced: "fenced", EvAlignment: "alignment-violation", EvCuttingStopped: "cutting-stopped",
	EvCountsMismatch: "counts-mismatch", EvRebuilt: "rebuilt", EvJobStarting: "job-starting", EvJobRunning: "job-running",
	EvJobFinished: "job-finished",
	EvJobStopped:  "job-stopped", EvJobFailed: "job-failed", EvProtocol: "protocol",
	EvCutDamaged: "cut-damaged", EvCuttingResumed: "cutting-resumed", EvRankNotJoined: "rank-not-joined",
	EvRankSilentRunning: "rank-silent-running",
}

func (k EventKind) String() string { return eventNames[k] }

// Event is a log line and a metric.
type Event struct {
	Kind     EventKind
	Epoch    uint64
	Step     int64
	G        uint64
	Rank     int
	Peer     int
	Reason   wire.AbortReason
	Bytes    uint64
	Stored   uint64
	Duration int64 // nanoseconds of injected time
	Text     string
}

// Loud reports whether the event must be shown at error level.
func (e Event) Loud() bool {
	switch e.Kind {
	case EvAlignment, EvCuttingStopped, EvCountsMismatch, EvJobFailed, EvCutDamaged, EvRankNotJoined:
		return true
	}
	return false
}

func (e Event) String() string {
	s := fmt.Sprintf("%s g=%d", e.Kind, e.G)
	if e.Epoch != 0 {
		s += fmt.Sprintf(" e=%d", e.Epoch)
	}
	if e.Step != 0 {
		s += fmt.Sprintf(" step=%d", e.Step)
	}
	if e.Rank >= 0 {
		s += fmt.Sprintf(" rank=%d", e.Rank)
	}
	if e.Peer >= 0 {
		s += fmt.Sprintf(" peer=%d", e.Peer)
	}
	if e.Reason != wire.ReasonNone {
		s += " reason=" + e.Reason.String()
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// IsEmpty reports whether r asks for nothing.
func (r *Ready) IsEmpty() bool {
	return r.JobRecord == nil && len(r.Kill) == 0 && len(r.Spawn) == 0 && len(r.Messages) == 0 && len(r.Confirm) == 0 &&
		r.Commit == nil && r.GC == nil && len(r.Events) == 0 && r.Outcome == nil
}
