package wire

import "fmt"

// RankState is where a rank process stands, as it reports in Status.
type RankState uint8

const (
	// StateWaitGo: restored (or fresh) at incarnation G and waiting for
	// Go(G); this is the "Ready(g)" of the recovery barrier (R12).
	StateWaitGo RankState = 1
	// StateRunning: the job is running at incarnation G.
	StateRunning RankState = 2
	// StateFinished: the job's code returned after its last step; the
	// process stays until Stop (or is killed for a recovery).
	StateFinished RankState = 3
	// StateRollingBack: told Rollback(G'), reloading; a new participant at
	// G' will report StateWaitGo.
	StateRollingBack RankState = 4
)

func (s RankState) String() string {
	switch s {
	case StateWaitGo:
		return "wait-go"
	case StateRunning:
		return "running"
	case StateFinished:
		return "finished"
	case StateRollingBack:
		return "rolling-back"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// EpochPhase is how far a rank got with its current epoch.
type EpochPhase uint8

const (
	PhaseNone      EpochPhase = 0 // no epoch known
	PhasePending   EpochPhase = 1 // cut known, local capture not yet done
	PhaseCaptured  EpochPhase = 2 // captured, recording channels until markers
	PhaseSealed    EpochPhase = 3 // all markers in, shard being written
	PhaseReported  EpochPhase = 4 // shard durable and reported
	PhaseAborted   EpochPhase = 5 // aborted (Reason says why)
	PhaseCommitted EpochPhase = 6 // the coordinator committed it
)

func (p EpochPhase) String() string {
	switch p {
	case PhaseNone:
		return "none"
	case PhasePending:
		return "pending"
	case PhaseCaptured:
		return "captured"
	case PhaseSealed:
		return "sealed"
	case PhaseReported:
		return "reported"
	case PhaseAborted:
		return "aborted"
	case PhaseCommitted:
		return "committed"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// AbortReason says why an epoch was aborted, by a rank or the coordinator.
type AbortReason uint8

const (
	ReasonNone               AbortReason = 0
	ReasonLate               AbortReason = 1  // rank past S when it learned of e (R6)
	ReasonBlocked            AbortReason = 2  // Recv on a channel whose marker is in and nothing deliverable (R8)
	ReasonHoldOverflow       AbortReason = 3  // held+recorded bytes over the hold budget
	ReasonCoordinatorSilent  AbortReason = 4  // no word from the coordinator for T (R15)
	ReasonWriteFailed        AbortReason = 5  // the shard writer failed
	ReasonFinished           AbortReason = 6  // the job ended with the cut in flight
	ReasonCounts             AbortReason = 7  // marker or report counts disagree (R4)
	ReasonTimeout            AbortReason = 8  // epoch timeout at the coordinator
	ReasonRankFailed         AbortReason = 9  // a rank was lost; recovery supersedes
	ReasonCommitFailed       AbortReason = 10 // the manifest could not be written
	ReasonCoordinatorRestart AbortReason = 11 // epoch of a previous coordinator generation, not completable
	ReasonSuperseded         AbortReason = 12 // a newer epoch was seen
	ReasonCaptureFailed      AbortReason = 13 // the runtime could not capture
	ReasonStopped            AbortReason = 14 // the job is being stopped
	maxReason                            = 14
)

func (r AbortReason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonLate:
		return "late"
	case ReasonBlocked:
		return "blocked"
	case ReasonHoldOverflow:
		return "hold-overflow"
	case ReasonCoordinatorSilent:
		return "coordinator-silent"
	case ReasonWriteFailed:
		return "write-failed"
	case ReasonFinished:
		return "finished"
	case ReasonCounts:
		return "counts"
	case ReasonTimeout:
		return "timeout"
	case ReasonRankFailed:
		return "rank-failed"
	case ReasonCommitFailed:
		return "commit-failed"
	case ReasonCoordinatorRestart:
		return "coordinator-restart"
	case ReasonSuperseded:
		return "superseded"
	case ReasonCaptureFailed:
		return "capture-failed"
	case ReasonStopped:
		return "stopped"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// AlarmKind classifies an Alarm a rank raises.
type AlarmKind uint8

const (
	// AlarmAlignment: a message received before SafePoint(k) was sent
	// after the sender's SafePoint(k) (R7).
	AlarmAlignment AlarmKind = 1
	// AlarmChannelFault: a channel lost or duplicated a message, or
	// delivered a malformed frame; recovery is needed (R14).
	AlarmChannelFault AlarmKind = 2
	// AlarmCutDamaged: restoring committed cut Alarm.Cut found damaged or
	// missing data (a checksum, a shard index, a pack trailer or index, a
	// missing pack); Detail names job, cut, rank, buffer, chunk and file.
	// The coordinator marks the cut bad and falls back to an older one.
	AlarmCutDamaged AlarmKind = 3
	// AlarmRestoreFailed: restoring cut Alarm.Cut failed for a reason no
	// other cut can cure (the job protects other buffers or sizes than
	// the one that wrote it); Detail is the rank's error. The job stops.
	AlarmRestoreFailed AlarmKind = 4
)

func (k AlarmKind) restore() bool { return k == AlarmCutDamaged || k == AlarmRestoreFailed }

func (k AlarmKind) String() string {
	switch k {
	case AlarmAlignment:
		return "alignment"
	case AlarmChannelFault:
		return "channel-fault"
	case AlarmCutDamaged:
		return "cut-damaged"
	case AlarmRestoreFailed:
		return "restore-failed"
	}
	return fmt.Sprintf("alarm(%d)", uint8(k))
}

// JobPhase is the coordinator's phase as broadcast in Beat.
type JobPhase uint8

const (
	JobStarting   JobPhase = 1 // collecting Ready(g) before the first Go
	JobRunning    JobPhase = 2
	JobRecovering JobPhase = 3
	JobStopping   JobPhase = 4
)

func (p JobPhase) String() string {
	switch p {
	case JobStarting:
		return "starting"
	case JobRunning:
		return "running"
	case JobRecovering:
		return "recovering"
	case JobStopping:
		return "stopping"
	}
	return fmt.Sprintf("jobphase(%d)", uint8(p))
}

// EpochState is the coordinator's view of an epoch, as broadcast in Beat.
type EpochState uint8

const (
	EpochNone      EpochState = 0
	EpochInFlight  EpochState = 1
	EpochAborted   EpochState = 2
	EpochCommitted EpochState = 3
)

func (s EpochState) String() string {
	switch s {
	case EpochNone:
		return "none"
	case EpochInFlight:
		return "in-flight"
	case EpochAborted:
		return "aborted"
	case EpochCommitted:
		return "committed"
	}
	return fmt.Sprintf("epochstate(%d)", uint8(s))
}
