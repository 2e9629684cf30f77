package driver

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

// The flush of a multi-level job's cuts to the shared store runs in the
// ranks' background after the cut commits (rank/flush.go). The driver
// records it: after each commit it checks the flush epochs whose
// manifests do not say shared yet, and once every shard of one is in the
// shared store it replaces that manifest by one whose levels add shared
// (ckpt.Store.MarkShared). It does so under the GC's lock, so that no GC
// removes the manifest meanwhile, and only while it holds the job lease.

// maxUnflushed bounds the flush epochs waiting to be recorded; older ones
// are forgotten (they stay recorded at the node-local levels, which is
// true).
const maxUnflushed = 16

// watchFlush is told each committed cut (on the loop's goroutine).
func (d *driver) watchFlush(epoch uint64, info ckpt.CutInfo) {
	if !d.cfg.Levels.Enabled() {
		return
	}
	d.flushMu.Lock()
	if !info.Levels().Shared && d.cfg.Levels.Flush(epoch) {
		d.unflushed = append(d.unflushed, epoch)
		if len(d.unflushed) > maxUnflushed {
			d.unflushed = d.unflushed[1:]
		}
	}
	pending := len(d.unflushed) > 0
	d.flushMu.Unlock()
	if pending {
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.markFlushes(context.Background(), false)
		}()
	}
}

// markFlushes records the flushes that are done. wait: block for the GC's
// lock (at the end of the job) instead of leaving it to the next commit.
func (d *driver) markFlushes(ctx context.Context, wait bool) {
	if wait {
		d.gcBusy.Lock()
	} else if !d.gcBusy.TryLock() {
		return // a GC or another check runs; the next commit asks again
	}
	defer d.gcBusy.Unlock()
	d.flushMu.Lock()
	epochs := slices.Clone(d.unflushed)
	d.flushMu.Unlock()
	var done []uint64
	for i := len(epochs) - 1; i >= 0; i-- { // newest first
		e := epochs[i]
		if err := d.lease.Check(); err != nil {
			return
		}
		ok, err := d.cfg.Store.MarkShared(ctx, d.job, e)
		switch {
		case ok, errors.Is(err, ckpt.ErrNotFound):
			done = append(done, e) // recorded, or the cut is gone
		case err != nil:
			d.log.Warn("flush record: cut not checked", "epoch", e, "err", err)
		}
		if ok {
			// An older flush epoch that never completed is superseded.
			done = append(done, epochs[:i]...)
			break
		}
	}
	d.flushMu.Lock()
	d.unflushed = slices.DeleteFunc(d.unflushed, func(e uint64) bool { return slices.Contains(done, e) })
	d.flushMu.Unlock()
}

// recordFinalFlush records the flush of the job's last cut once the job
// has finished (every rank flushed it before it reported finished).
func (d *driver) recordFinalFlush() {
	if !d.cfg.Levels.Enabled() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cuts, err := d.cfg.Store.List(ctx, d.job)
	if err != nil || len(cuts) == 0 {
		return
	}
	last := cuts[len(cuts)-1]
	if last.Levels().Shared {
		return
	}
	d.flushMu.Lock()
	if !slices.Contains(d.unflushed, last.Epoch) {
		d.unflushed = append(d.unflushed, last.Epoch)
	}
	d.flushMu.Unlock()
	d.markFlushes(ctx, true)
	d.flushMu.Lock()
	left := slices.Contains(d.unflushed, last.Epoch)
	d.flushMu.Unlock()
	if left {
		d.log.Warn("the job's last cut is not in the shared store (a rank's final flush failed): it is on the node-local levels only", "epoch", last.Epoch)
	}
}
