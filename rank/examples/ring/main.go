// Command ring is the smallest cutpoint job: N ranks in a ring pass values
// around and mix them; launch it with `cutpoint run --ranks 4 -- ./ring`.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"log"
	"math"

	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

func main() {
	ctx := context.Background()
	opts, err := rank.OptionsFromEnv() // identity, NATS URL, store: set by the launcher
	if err != nil {
		log.Fatal(err)
	}
	me, n, steps := opts.Rank, opts.World, int64(20000)
	next, prev := (me+1)%n, (me+n-1)%n
	opts.Peers, opts.TotalSteps = []int{next, prev}, steps
	r, err := rank.Join(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	state := make([]float64, 1<<16) // the rank's state: captured at cuts, restored on rollback
	state[0] = float64(me)
	L := int64(len(state))
	r.Protect("state", kernels.HostFloat64(state))
	step, err := r.Start(ctx) // 0, or the step of the cut this process restored
	for {
		for err == nil && step < steps {
			v := state[step%L]
			if err = r.Send(ctx, next, binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))); err == nil {
				var in []byte
				if in, err = r.Recv(ctx, prev); err == nil {
					state[(step+1)%L] = 0.5*v + 0.25*math.Float64frombits(binary.LittleEndian.Uint64(in)) + 1
					step++
					step, err = r.SafePoint(ctx, step) // a cut may be taken here
				}
			}
			if errors.Is(err, rank.ErrRolledBack) { // a rank died: back to the latest cut
				step, err = r.SafePoint(ctx, step)
			}
		}
		if err == nil {
			sum := 0.0
			for _, x := range state {
				sum += x
			}
			err = r.Finish(ctx, binary.LittleEndian.AppendUint64(nil, math.Float64bits(sum))) // rank 0's is printed
		}
		if !errors.Is(err, rank.ErrRolledBack) {
			break
		}
		step, err = r.SafePoint(ctx, step)
	}
	if err != nil {
		log.Fatal(err)
	}
}
