// Package pause owns the one way the drivers wait: a sleep that a
// cancelled context ends early (the lease's retries, a standby's polls,
// the node-local copies' bandwidth pacing).
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx is done; it returns ctx's error in that case
// and nil otherwise (also at once for d <= 0).
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
