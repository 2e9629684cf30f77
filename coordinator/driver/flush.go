package driver

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/levels"
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

// markFlushes records the flushes that are done. One check runs at a
// time (wait: block for it, at the end of the job; else a check already
// running makes this one unneeded); it waits for a GC that runs (a GC
// started after each commit too, and is short).
func (d *driver) markFlushes(ctx context.Context, wait bool) {
	if wait {
		d.flushBusy.Lock()
	} else if !d.flushBusy.TryLock() {
		return
	}
	defer d.flushBusy.Unlock()
	d.gcBusy.Lock()
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

// finalFlushWait bounds how long the driver waits, once the job has
// finished, for the ranks to flush its last cut.
const finalFlushWait = time.Minute

// recordFinalFlush records the flush of the job's last cut once the job
// has finished: the ranks flush it when they are told the job is over,
// before they leave (their last committed cut, and the last shard they
// reported, whose cut may commit as the job ends); this waits for that
// (at most finalFlushWait). A rank process that dies meanwhile (killed
// during its final flush) without its shard in the shared store is
// replaced, once, by a flush-only process (levels.EnvFlushOnly) that
// flushes that shard from its host's node-local store, started as soon as
// the launcher has a slot for it (the other ranks may still be flushing):
// the job is over, no recovery will run, and the last cut would else
// never be whole in the shared store. exits is the launcher's channel of
// ended rank processes (d.late the loop's, for those it held back).
func (d *driver) recordFinalFlush(exits <-chan launch.Exit) {
	if !d.cfg.Levels.Enabled() {
		return
	}
	// A cut whose manifest was being written as the job finished is the
	// last one (its ranks reported their shards and flush them too).
	d.waitBackground()
	ctx, cancel := context.WithTimeout(context.Background(), finalFlushWait)
	defer cancel()
	cuts, err := d.cfg.Store.List(ctx, d.job)
	if err != nil || len(cuts) == 0 {
		return
	}
	last := cuts[len(cuts)-1].Epoch
	if cuts[len(cuts)-1].Levels().Shared {
		return
	}
	cut, err := d.cfg.Store.LoadCut(ctx, d.job, last)
	if err != nil {
		d.log.Warn("the job's last cut cannot be read: its flush is not watched", "epoch", last, "err", err)
		return
	}
	d.flushMu.Lock()
	if !slices.Contains(d.unflushed, last) {
		d.unflushed = append(d.unflushed, last)
	}
	d.flushMu.Unlock()
	ff := &finalFlush{cut: cut, replaced: map[int]bool{}, pending: map[int]bool{}}
	t := time.Now()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		d.markFlushes(ctx, true)
		d.flushMu.Lock()
		left := slices.Contains(d.unflushed, last)
		d.flushMu.Unlock()
		if !left {
			d.log.Debug("last cut flushed", "epoch", last, "waited", time.Since(t).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			d.log.Warn("the job's last cut is not in the shared store (a rank's final flush failed or took too long): it is on the node-local levels only", "epoch", last)
			return
		case ex := <-exits:
			d.finalFlushExit(ctx, ex, ff)
		case ex := <-d.late:
			d.finalFlushExit(ctx, ex, ff)
		case <-retry.C:
			d.replaceFlushers(ctx, ff)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// finalFlush is what recordFinalFlush knows of the ranks that died
// during the final flush of cut.
type finalFlush struct {
	cut      *ckpt.Cut
	replaced map[int]bool // a flush-only process was started
	pending  map[int]bool // to replace; the launcher had no slot yet
}

// finalFlushExit handles a rank process that ended while the driver
// waits for the final flush.
func (d *driver) finalFlushExit(ctx context.Context, ex launch.Exit, ff *finalFlush) {
	if ex.Code != 0 || ex.Signal != "" {
		d.log.Info("rank process ended during the final flush", "rank", ex.Rank, "spawn", ex.Spawn, "how", ex.String())
		if d.cfg.Spawner != nil && !ff.replaced[ex.Rank] && ex.Rank >= 0 && ex.Rank < len(ff.cut.Shards) &&
			d.cfg.Store.HasShard(ctx, ff.cut.Shards[ex.Rank]) != nil { // else its shard made it before it died
			ff.pending[ex.Rank] = true
		}
	}
	// Any exit may free the slot a pending replacement waits for.
	d.replaceFlushers(ctx, ff)
}

// replaceFlushers starts a flush-only process for each pending rank.
func (d *driver) replaceFlushers(ctx context.Context, ff *finalFlush) {
	for rk := range ff.pending {
		// A spawn id no process of the job had (no incarnation follows a
		// finished job's).
		s := coordinator.Spawn{Rank: rk, G: d.c.Incarnation() + 1, Epoch: ff.cut.Epoch, Step: ff.cut.Step}
		var env []string
		if d.cfg.RankEnv != nil {
			env = d.cfg.RankEnv(s)
		}
		env = append(env, levels.EnvFlushOnly+"="+strconv.FormatUint(ff.cut.Epoch, 10))
		err := d.cfg.Spawner.Spawn(s.Rank, s.G, env)
		if errors.Is(err, launch.ErrNoSlot) {
			// The other ranks are still flushing on the live hosts:
			// tried again as they leave.
			d.log.Debug("no slot yet for the flush-only process of a rank that died during the final flush", "rank", rk, "err", err)
			continue
		}
		delete(ff.pending, rk)
		if err != nil {
			d.log.Error("no process could be started to flush the shard of a rank that died during the final flush", "rank", rk, "epoch", ff.cut.Epoch, "err", err)
			continue
		}
		ff.replaced[rk] = true
		d.log.Warn("a rank died during the final flush: a process flushes its shard in its place", "rank", rk, "spawn", s.G, "epoch", ff.cut.Epoch)
	}
}

// latestShared is the newest committed cut whose manifest says it is in
// the shared store (0: none).
func (d *driver) latestShared(ctx context.Context) uint64 {
	cuts, err := d.cfg.Store.List(ctx, d.job)
	if err != nil {
		return 0
	}
	for i := len(cuts) - 1; i >= 0; i-- {
		if cuts[i].Levels().Shared {
			return cuts[i].Epoch
		}
	}
	return 0
}
