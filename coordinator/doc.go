// Package coordinator is cutpoint's coordinator as a pure state machine:
// membership, failure detection, cut scheduling, commit and abort, recovery
// decisions and the rebuild after its own restart. It reads no clock,
// starts no goroutine, touches no socket or file and draws no random
// number. Package coordinator/driver binds it to NATS, timers, the store
// and the launcher; sim drives it in a deterministic simulation. Both
// execute its Readys with the one executor, Execute, through small ports
// (Persister, Launcher, Publisher, Committer, Reporter).
//
// # Inputs
//
//	New(cfg, Start{Mode, Now, Record, Committed, Generation})
//	Receive(bytes)                   a rank's message (Status, ShardReport, EpochAbort, Alarm)
//	RankExited(rank, spawn, code)    the launcher saw a process exit
//	RankEnded(rank, spawn, Exit)     the same with the signal, OOM evidence and last output line
//	NATSDown(down)                   the driver lost or regained its NATS connection
//	Confirmed(rank, spawn, Liveness) the launcher's answer to Ready.Confirm
//	Tick(now)                        time passes (call it every few ms)
//	RequestCut(final)                on demand; final: preemption
//	StopNow(reason)                  the preemption grace ran out
//	JobRecordWritten(seq) / JobRecordFailed(seq, err)
//	ManifestCommitted(epoch) / ManifestFailed(epoch, err)
//
// # The Ready loop
//
// The same for every machine of cutpoint (coordinator, participant,
// transport channel), in etcd-io/raft's order: after inputs, while
// HasReady, take Ready(), execute it, then Advance(rd) with that Ready.
// Ready called again before Advance returns the same Ready; inputs made
// while it is executed (JobRecordWritten, a RankExited for a spawn that
// failed) go to the next one. Advance panics unless rd is the Ready handed
// out. Execute(c, ports) is this loop's body; it executes the fields in
// this order:
//
//  1. JobRecord: write it durably (temp file, fsync, rename, fsync the
//     directory), then call JobRecordWritten(Seq) before executing the
//     rest of the Ready. The coordinator never puts anything that depends
//     on the record into the same Ready: a new incarnation's Kill, Spawn
//     and Rollback, the Go after a recovery, and the first epoch of a new
//     id block all wait for the acknowledgement (R15: persist before
//     broadcast). A failed write: JobRecordFailed; the job fails.
//  2. Kill: kill each process and wait until it is gone, including one the
//     launcher is still starting, before any Spawn (R13). Spawn 0 means
//     whatever process of that rank may run.
//  3. Spawn: start each rank process at incarnation G (also its spawn id)
//     restoring cut Epoch at Step (Epoch 0: from step 0). Report every
//     exit with RankEnded(rank, G, Exit) (or RankExited). A rank's exit
//     code carries meaning: RankExitCutDamaged (3) the restore found the
//     cut damaged, RankExitTransient (75) NATS or the store unreachable;
//     a driver should let a failing rank's last messages (its alarm) reach
//     Receive before its exit.
//  4. Messages: publish in order; To is a rank (its control subject,
//     which every process of that rank listens on) or Broadcast.
//     Confirm (with Config.ConfirmSilence): ask the launcher, without
//     blocking, whether each silent process still exists and runs, and
//     answer with Confirmed (LiveUnknown when it cannot tell). A process
//     that runs gets one more failure timeout; any other answer, or none
//     within a failure timeout, and the rank is lost.
//  5. Commit: write the manifest (temp, fsync, rename, fsync dir: the
//     rename is the commit) and report ManifestCommitted or
//     ManifestFailed. It may run in the background; the coordinator waits.
//  6. GC: keep the newest Keep cuts and the Pins; background.
//  7. Events: log them (Loud ones at error level) and count them.
//  8. Outcome: the job is over: after the Messages (a Stop broadcast) the
//     driver stops the launcher's processes and exits with Outcome.Code
//     (0 finished, 1 failed, 5 stopped after a final cut, 6 without,
//     7 a deterministic rank failure, 8 finished unprotected).
//
// Generation: before New, the driver claims the next coordinator generation
// in the store by exclusive create and passes it in Start.Generation.
package coordinator
