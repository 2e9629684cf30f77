// Package rank is the library a cutpoint job links: one Rank per process,
// its reliable channels to its peers, its protected state, and its part in
// the coordinator's step-aligned Chandy-Lamport cuts.
//
// # The life of a rank
//
// The launcher (cutpoint run, a coordinator's spawner, srun in the Slurm
// script) starts every rank process with its identity, the job's NATS URL,
// its store and its log settings in the environment (the Env* variables).
// A job's main does, in order:
//
//  1. OptionsFromEnv: read them. Options.Logger logs in the launcher's
//     --log-level and --log-format on stderr, which the launcher relays into
//     its own stream; log through it. Set Options.Peers (the ranks this one
//     talks to; nil means all) and Options.TotalSteps.
//  2. Join: connect to NATS and the store. Close when done (defer it).
//  3. Protect or ProtectFunc every buffer that holds state: host memory
//     (kernels.HostFloat64 and friends) or device buffers. An error means
//     the buffer is not protected: give up. Only protected buffers are
//     captured at a cut and restored on a rollback; everything else must be
//     recomputable from them and the step.
//  4. Start: restore the state if the launcher says so and wait until the
//     coordinator lets the job run. It returns the step the state is at (0
//     fresh, the cut's step after a restore).
//  5. The loop, for each step: Send and Recv with peers, compute, then
//     SafePoint(ctx, step+1). SafePoint is where a cut may be captured (a
//     copy; the job goes on at once while the shard is written in the
//     background) and where a rollback is applied.
//  6. Finish(ctx, result) when the last step is done; rank 0's result (raw
//     bytes, which cutpoint run prints hex-encoded as "result <hex>") is the
//     job's answer. Finish returns once every rank has finished.
//
// Run does 4 to 6 with the rollbacks handled in one place: the job hands it
// the number of steps, a function that computes step s+1 from the state at
// s (its Send, Recv and compute) and one that makes the result:
//
//	err := r.Run(ctx, steps, func(ctx context.Context, s int64) error {
//		if err := r.Send(ctx, next, encode(state[s%L])); err != nil {
//			return err // ErrRolledBack included: Run rolls back
//		}
//		in, err := r.Recv(ctx, prev)
//		if err != nil {
//			return err
//		}
//		state[(s+1)%L] = mix(state[s%L], decode(in))
//		return nil
//	}, func() []byte { return digest(state) })
//
// and exits as the error says (below).
//
// # Errors and what to do
//
//   - ErrRolledBack (from Send, Recv, SafePoint or Finish): a rank was lost
//     elsewhere and the job goes back to the latest committed cut. Drop
//     whatever the step was doing and call SafePoint: it restores the
//     protected buffers in place and returns the cut's step, from which the
//     loop goes on. A rollback after Finish returns too: go on from
//     SafePoint and call Finish again at the end. Run does all of this; a
//     job that uses it never sees ErrRolledBack.
//   - ErrStopped: the coordinator stopped the job (it finished, was
//     preempted after a final cut, or failed). The error is an *ExitError:
//     exit with its Code (0 finished, 5 stopped after a final cut: resume
//     with run --restore, 1 failed).
//   - ErrFenced: a newer process replaced this one (this one was presumed
//     lost). Exit 1 at once; it must not touch the store.
//   - ErrNotStarted, ErrProtectAfterStart, ErrClosed: the calls were made
//     in the wrong order, a bug in the job.
//   - Anything else (a NATS or store failure at Join or Start, a context
//     cancelled by the job): exit 1; the coordinator respawns the rank from
//     the latest cut.
//
// # Signals and contexts
//
// A job need not handle signals. cutpoint run starts every rank in its own
// process group and turns SIGTERM and SIGINT into a final cut and a stop,
// which the calls report as ErrStopped; SIGUSR1 takes a cut without the
// job noticing. context.Background is the right context; a context the job
// cancels itself abandons the job (the rank then looks failed).
//
// # Determinism
//
// A job rolled back and replayed must compute the same bits as one that
// was not: Recv from a named rank (no "any source"), a fixed reduction
// order, no floating-point atomics, replacements on the same architecture
// and GPU model. A message received before SafePoint(k) must have been sent
// before the sender's SafePoint(k) (the alignment contract; a violation is
// reported naming both ranks).
//
// rank/examples/ring is a whole job written with Run; the package Example
// runs one in process.
package rank
