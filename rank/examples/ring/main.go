// Command ring is the smallest cutpoint job: N ranks in a ring pass values
// around and mix them. Build it and launch it with the cutpoint launcher:
//
//	go build -o ring ./rank/examples/ring
//	cutpoint run --ranks 4 -- ./ring
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"os"

	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

const steps = 20000

func main() { os.Exit(run()) }

// run is the job; it returns the process's exit code.
func run() int {
	// No signal handling: the launcher turns SIGTERM/SIGINT into a final
	// cut and then stops the job, which the calls below report as
	// rank.ErrStopped. A background context is enough.
	ctx := context.Background()
	// Identity, NATS URL, store and the launcher's --log-level and
	// --log-format (opts.Logger, always set) come from the environment.
	opts, err := rank.OptionsFromEnv()
	log := opts.Logger
	if err != nil {
		log.Error("bad launcher environment", "err", err)
		return 2
	}
	me, n := opts.Rank, opts.World
	next, prev := (me+1)%n, (me+n-1)%n
	opts.Peers, opts.TotalSteps = []int{next, prev}, steps
	r, err := rank.Join(ctx, opts)
	if err != nil {
		log.Error("join the job", "err", err)
		return 1
	}
	defer r.Close()
	state := make([]float64, 1<<16) // the rank's state: captured at cuts, restored on rollback
	state[0] = float64(me)
	if err := r.Protect("state", kernels.HostFloat64(state)); err != nil {
		log.Error("protect the state", "err", err)
		return 1
	}
	return exitCode(log, compute(ctx, r, state, next, prev))
}

// compute runs the steps from wherever Start puts the state and finishes;
// r.Run goes back to the latest cut whenever a call reports
// rank.ErrRolledBack (a rank died) and goes on from there.
func compute(ctx context.Context, r *rank.Rank, state []float64, next, prev int) error {
	L := int64(len(state))
	step := func(ctx context.Context, step int64) error { // step+1 from the state at step
		v := state[step%L]
		if err := r.Send(ctx, next, encode(v)); err != nil {
			return err
		}
		in, err := r.Recv(ctx, prev)
		if err != nil {
			return err
		}
		state[(step+1)%L] = 0.5*v + 0.25*decode(in) + 1
		return nil // then Run calls SafePoint: a cut may be taken there
	}
	result := func() []byte {
		sum := 0.0
		for _, x := range state {
			sum += x
		}
		return encode(sum) // raw bytes: the launcher prints rank 0's as "result <hex>"
	}
	return r.Run(ctx, steps, step, result)
}

// exitCode: 0 when the job finished; the code the coordinator asked for
// when it stopped the job (5 after a final cut: resume with --restore);
// 1 when this process was fenced (a newer one replaced it) or failed.
func exitCode(log *slog.Logger, err error) int {
	var stop *rank.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &stop) && !errors.Is(err, rank.ErrFenced):
		log.Info("stopped by the coordinator", "code", stop.Code, "reason", stop.Reason)
		return stop.Code
	default:
		log.Error("job failed", "err", err)
		return 1
	}
}

func encode(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }

func decode(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }
