package rank

import (
	"context"
	"fmt"
	"time"
)

// hold keeps the job at its SafePoint (r.mu held; released while it
// waits) until the shard writer w has read every buffer it reads in place
// (Options.MaxStaging), so that the job never writes bytes being written.
// It waits on r.cond, so the transport's arrivals, the control messages,
// the heartbeats and the writer itself (which takes r.mu at its end) run
// meanwhile.
//
// A rollback, a Stop, Close or the connection's end during the hold, or
// ctx, ends it early: the writer is cancelled, and hold returns only once
// the writer has let go of the buffers (a rollback then overwrites them;
// a job that leaves may free them). It returns an error only for ctx and
// the terminal states; after a rollback the caller applies it.
func (r *Rank) hold(ctx context.Context, w *shardWriter) error {
	t := time.Now()
	stop := context.AfterFunc(ctx, r.wake)
	defer stop()
	go func() {
		<-w.consumed
		r.wake()
	}()
	why := ""
	for why == "" {
		select {
		case <-w.consumed:
			why = "consumed"
			continue
		default:
		}
		switch {
		case r.terminalErr() != nil:
			why = "ended"
		case r.rollback != nil:
			why = "rollback"
		case ctx.Err() != nil:
			why = "cancelled"
		default:
			r.cond.Wait()
		}
	}
	if why != "consumed" {
		w.cancel()
		r.mu.Unlock()
		<-w.consumed
		r.mu.Lock()
		r.log.Info("cut's hold ended before the writer read the buffers: the shard is abandoned", "epoch", w.epoch, "why", why)
	}
	r.stats.Holds++
	r.stats.HoldTime += time.Since(t)
	switch why {
	case "cancelled":
		err := fmt.Errorf("rank %d: safe point: %w", r.o.Rank, ctx.Err())
		if r.p == w.owner {
			// The writer was cancelled: without this the cut would wait
			// for a shard that never comes.
			r.p.ShardFailed(w.epoch, err)
			r.process()
		}
		return err
	case "ended":
		return r.terminalErr()
	}
	return nil
}
