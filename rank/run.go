package rank

import (
	"context"
	"errors"
)

// Run is a job's loop with the rollbacks handled in one place. It calls
// Start, then step(ctx, s) for every step s from the one Start returns up
// to total (step computes step s+1 from the state at s: its Send and Recv,
// its compute), and SafePoint(ctx, s+1) after each; then Finish with
// result() (result may be nil: no result). Whenever a call reports
// ErrRolledBack (step's own Send or Recv, SafePoint, or Finish after the
// last step), Run calls SafePoint, which restores the protected buffers
// in place, and goes on from the cut's step. step must therefore compute
// only from protected state and s, and return ErrRolledBack (or an error
// wrapping it) as it gets it.
//
// Run returns nil when the job finished, or the error to exit with:
// an *ExitError when the coordinator stopped the job (exit with its Code)
// or fenced this process (ErrFenced: exit 1), step's own error, or a
// failure of the runtime (exit 1).
func (r *Rank) Run(ctx context.Context, total int64, step func(ctx context.Context, s int64) error, result func() []byte) error {
	s, err := r.Start(ctx)
	for {
		for err == nil && s < total {
			if err = step(ctx, s); err == nil {
				var next int64
				if next, err = r.SafePoint(ctx, s+1); err == nil {
					s = next
				}
			}
			if errors.Is(err, ErrRolledBack) {
				s, err = r.SafePoint(ctx, s)
			}
		}
		if err == nil {
			var res []byte
			if result != nil {
				res = result()
			}
			err = r.Finish(ctx, res)
		}
		if !errors.Is(err, ErrRolledBack) {
			return err
		}
		s, err = r.SafePoint(ctx, s) // rolled back after the last step: go on from the cut
	}
}
