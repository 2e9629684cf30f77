// Package exitcode is the one definition of cutpoint's process exit codes:
// those of the cutpoint command (README, cmd/cutpoint's main.go), the job
// outcome codes the coordinator decides (coordinator.Code*, sent to ranks in
// wire.Stop), and the rank process codes the coordinator reads back
// (coordinator.RankExit*). Every other name for a code refers to a
// constant here; the numbers are part of the user interface (scripts and
// batch systems test them) and never change.
package exitcode

const (
	// OK: success; the job finished.
	OK = 0
	// Failure: the job or the command failed (the message says why); also
	// the code of a fenced rank process (a newer one replaced it).
	Failure = 1
	// Usage: a usage or configuration error (bad flag, bad config value,
	// wrong or missing store, the job has a live owner).
	Usage = 2
	// Damaged: verification found damage; for a rank process, the cut to
	// restore is damaged (the coordinator then falls back to an older cut).
	Damaged = 3
	// NotBuilt: a feature not in this build (--device cuda without the
	// cuda build).
	NotBuilt = 4
	// StoppedWithCut: stopped by a signal after a final cut was committed.
	StoppedWithCut = 5
	// StoppedNoCut: stopped by a signal and no final cut could be
	// committed (an earlier cut, if any, is intact).
	StoppedNoCut = 6
	// Deterministic: a rank failed in a way no recovery fixes (before its
	// first step, the same way twice from the same cut, a restore that does
	// not fit the job).
	Deterministic = 7
	// Unprotected: the job finished, but cutting had stopped and no cut
	// committed since; the result is right but was unprotected.
	Unprotected = 8
	// Transient: a rank process could not reach NATS or the store for its
	// whole wait; the coordinator respawns it with backoff (EX_TEMPFAIL).
	Transient = 75
	// SpawnFailed: what the coordinator's driver reports as a rank's exit
	// when the process could not be started at all (the shell's "command
	// not found").
	SpawnFailed = 127
)
