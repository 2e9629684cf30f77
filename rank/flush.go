package rank

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/levels"
)

// The flush to the shared store (level 3) runs in the background: a cut
// commits once its shards are on their node-local stores and their copies
// on other hosts (the commit rule), and every --flush-every N epochs each
// rank then copies its shard of the committed cut to the shared store,
// paced by --redundancy-bandwidth. The coordinator driver records the cut
// as held in the shared store too (ckpt.Store.MarkShared) once every
// shard is there. A flush that fails (the shared store unreachable) is
// tried again, with the latest committed flush epoch taking the place of
// an older one: the flush catches up. A killed flush leaves temporary
// files, never a changed committed cut.

// flusher is one rank's background flush.
type flusher struct {
	l *nodeLevels

	mu      sync.Mutex
	cond    *sync.Cond
	want    uint64        // latest committed epoch to flush; 0: none
	last    ckpt.ShardRef // the last shard reported durable
	running bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	// added is told the bytes each flush copied (the rank's stats).
	added func(int64)
	// fault is the fault point hook (tests).
	fault func(string)
}

func newFlusher(l *nodeLevels) *flusher {
	f := &flusher{l: l, added: func(int64) {}, fault: func(string) {}}
	f.cond = sync.NewCond(&f.mu)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// committed is told every committed epoch; a flush epoch is queued.
func (f *flusher) committed(e uint64) {
	if !f.l.cfg.Flush(e) || f.l.isFinal(e) {
		return // a final cut was flushed before it was reported
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || e <= f.want {
		return
	}
	f.want = e
	if !f.running {
		f.running = true
		go f.loop()
	}
}

func (f *flusher) loop() {
	backoff := time.Second
	f.mu.Lock()
	for !f.closed && f.want != 0 {
		e := f.want
		f.mu.Unlock()
		err := f.flush(f.ctx, e)
		f.mu.Lock()
		switch {
		case err == nil, errors.Is(err, ckpt.ErrNotFound), errors.Is(err, ckpt.ErrStaleEpoch):
			// Done, or the cut is gone (collected, or rolled back past):
			// nothing left to flush for it.
			if err != nil {
				f.l.log.Warn("flush to the shared store: the cut is gone", "epoch", e, "err", err)
			}
			if f.want == e {
				f.want = 0
			}
			backoff = time.Second
		case f.closed:
		default:
			f.l.log.Warn("flush to the shared store failed; trying again (the cut is committed on the node-local levels)", "epoch", e, "retry_in", backoff, "err", err)
			f.mu.Unlock()
			select {
			case <-f.ctx.Done():
			case <-time.After(backoff):
			}
			f.mu.Lock()
			backoff = min(2*backoff, 10*time.Second)
		}
	}
	f.running = false
	f.cond.Broadcast()
	f.mu.Unlock()
}

// flush copies this rank's shard of committed cut e to the shared store
// from the first level that holds it intact.
func (f *flusher) flush(ctx context.Context, e uint64) error {
	l := f.l
	cut, err := l.shared.LoadCut(ctx, l.job, e)
	if err != nil {
		return err
	}
	if l.rank >= len(cut.Shards) {
		return fmt.Errorf("cut %d has %d ranks: %w", e, len(cut.Shards), ckpt.ErrNotFound)
	}
	return f.flushRef(ctx, cut.Shards[l.rank])
}

// reported remembers the last shard this rank reported durable: its cut
// may commit as the job ends, after the rank learns of no more commits.
func (f *flusher) reported(ref ckpt.ShardRef) {
	f.mu.Lock()
	if ref.Epoch > f.last.Epoch {
		f.last = ref
	}
	f.mu.Unlock()
}

func (f *flusher) flushRef(ctx context.Context, ref ckpt.ShardRef) error {
	l := f.l
	e := ref.Epoch
	if l.flushTo.HasShard(ctx, ref) == nil {
		return nil
	}
	t := time.Now()
	var errs []error
	// The node-local copies, hosts that answer now first (graceOrder, as
	// a restore does).
	var cands []levelStore
	for _, c := range l.candidates(ctx) {
		if c.level != ckpt.LevelShared {
			cands = append(cands, c)
		}
	}
	var ferr error
	try := func(ctx context.Context, i int) (bool, error) {
		c := &cands[i]
		st, err := c.get(ctx)
		if err == nil {
			err = st.HasShard(ctx, ref)
		}
		if err != nil {
			return false, err
		}
		f.fault("flush")
		n, err := st.CopyShard(ctx, l.flushTo, ref)
		f.added(n)
		if err != nil {
			ferr = fmt.Errorf("flush cut %d from %s: %w", e, c.level, err)
			return true, nil
		}
		l.log.Debug("flushed to the shared store", "epoch", e, "from", c.level, "bytes", n, "took", time.Since(t).Round(time.Millisecond))
		// The shard is in the shared store and checked there; the
		// driver has not necessarily recorded the cut as shared yet.
		f.fault("flushed")
		return true, nil
	}
	if graceOrder(ctx, len(cands), try, func(_ int, err error) { errs = append(errs, err) }) {
		return ferr
	}
	return fmt.Errorf("flush cut %d: no node-local level holds the shard: %w", e, errors.Join(errs...))
}

// final flushes the rank's shard of committed cut e now (the last cut of a
// job that ends), after any background flush, trying again for up to
// wait while the shared store fails.
func (f *flusher) final(ctx context.Context, e uint64, wait time.Duration) error {
	if e == 0 {
		return nil
	}
	// A background flush of an older epoch may still be trying: this one
	// supersedes it (a concurrent copy of the same pack is harmless: each
	// goes through its own temporary file and renames the same bytes).
	f.mu.Lock()
	if f.want <= e {
		f.want = 0
	}
	f.mu.Unlock()
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	f.fault("final-flush")
	deadline := time.Now().Add(wait)
	for {
		err := f.flush(ctx, e)
		if err == nil && last.Epoch > e {
			err = f.flushRef(ctx, last)
		}
		if err == nil || errors.Is(err, ckpt.ErrNotFound) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		f.l.log.Warn("final flush to the shared store failed; trying again", "epoch", e, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (f *flusher) close() {
	f.mu.Lock()
	f.closed = true
	f.cancel()
	for f.running {
		f.cond.Wait()
	}
	f.mu.Unlock()
}

// finalFlushWait bounds how long a finishing rank retries the flush of
// its last committed cut while the shared store fails.
const finalFlushWait = 2 * time.Minute

// hook connects the flusher to its rank: stats and fault points.
func (l *nodeLevels) hook(r *Rank) {
	l.flush.added = func(n int64) {
		r.mu.Lock()
		r.stats.FlushBytes += n
		r.mu.Unlock()
	}
	if r.faults != nil {
		l.flush.fault = r.faults.hit
		l.paced.fault = r.faults.hit
	}
}

// finalFlush puts the rank's shard of its last committed cut in the
// shared store once the coordinator said the job is over, before the rank
// leaves: the last cut of a job that ends is always in the shared store
// (the driver waits for it, driver/flush.go). A failure is logged, not
// returned: the job's work is done, and the cut stays on the node-local
// levels.
func (r *Rank) finalFlush(ctx context.Context) {
	r.mu.Lock()
	e := r.committed
	r.mu.Unlock()
	if err := r.lv.flush.final(ctx, e, finalFlushWait); err != nil {
		r.log.Error("the last cut was not flushed to the shared store: it is on the node-local levels only", "epoch", e, "err", err)
	}
}

// FlushOnly flushes rank o.Rank's shard of committed cut epoch to the
// shared store from this host's node-local store (its own copy, or the
// partner copy it holds for a rank of another host), retrying while the
// shared store fails, as the final flush of a finishing rank does. It
// reaches no other host (their ranks have left) and joins no job.
// It is what a process started with levels.EnvFlushOnly runs.
func FlushOnly(ctx context.Context, o Options, epoch uint64) error {
	if err := o.check(); err != nil {
		return err
	}
	if !o.Levels.Enabled() || epoch == 0 {
		return fmt.Errorf("rank %d: %s=%d: the job has no node-local levels to flush from", o.Rank, levels.EnvFlushOnly, epoch)
	}
	log := o.Logger.With("rank", o.Rank)
	store, err := openStore(ctx, o, log)
	if err != nil {
		return fmt.Errorf("rank %d: %w", o.Rank, err)
	}
	defer store.Close()
	l, err := openLevels(ctx, o, nil, store, log)
	if err != nil {
		return fmt.Errorf("rank %d: %w", o.Rank, err)
	}
	defer l.close()
	if err := l.flush.final(ctx, epoch, finalFlushWait); err != nil {
		return fmt.Errorf("rank %d: flush of cut %d: %w", o.Rank, epoch, err)
	}
	log.Info("flushed the last cut in place of a rank that died during its final flush", "epoch", epoch)
	return nil
}
