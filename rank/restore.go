package rank

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank/participant"
)

// load reads this rank's shard of committed cut epoch into the protected
// buffers (the ones fn(step) names) and returns what the participant
// restores: its meta and the recorded channel state. Epoch 0 is the fresh
// start: nil.
func (r *Rank) load(ctx context.Context, epoch uint64, step int64) (*participant.Restore, error) {
	if epoch == 0 {
		return nil, nil
	}
	t := time.Now()
	if r.lv != nil {
		return r.loadLevels(ctx, epoch, step, t)
	}
	sr, err := r.store.OpenShard(ctx, r.o.Job, epoch, r.o.Rank)
	if err != nil {
		return nil, fmt.Errorf("rank %d: restore cut %d: %w", r.o.Rank, epoch, err)
	}
	defer sr.Close()
	rs, err := r.loadFrom(ctx, sr, epoch, step)
	if err != nil {
		return nil, err
	}
	r.restored(epoch, step, t, ckpt.LevelShared, sr.Ref())
	return rs, nil
}

// loadLevels restores from the fastest intact copy: this host's
// node-local store, another host's (the partner copy), the shared store.
// A missing copy is skipped, a damaged one (any check failing while it is
// read) is reported and the next level is read instead: the whole shard
// is read again from there, so nothing of the damaged copy remains.
func (r *Rank) loadLevels(ctx context.Context, epoch uint64, step int64, t time.Time) (*participant.Restore, error) {
	cut, err := r.store.LoadCut(ctx, r.o.Job, epoch)
	if err != nil {
		return nil, fmt.Errorf("rank %d: restore cut %d: %w", r.o.Rank, epoch, err)
	}
	if r.o.Rank >= len(cut.Shards) {
		return nil, fmt.Errorf("rank %d: restore cut %d: the cut has %d ranks: %w", r.o.Rank, epoch, len(cut.Shards), ckpt.ErrNotFound)
	}
	ref := cut.Shards[r.o.Rank]
	var errs []error
	cands := r.lv.candidates(ctx)
	if _, _, rs := r.lv.cfg.Erasure(); rs {
		// Before the shared store: rebuild this host's copy from erasure
		// fragments (tried only when no full copy was intact).
		n := len(cands) - 1
		cands = append(cands[:n:n], levelStore{level: ckpt.LevelErasure, host: r.lv.host, st: r.lv.local, rebuild: true, l: r.lv}, cands[n])
	}
	// try restores from c; done: restored, or an error no other copy
	// can help with.
	try := func(ctx context.Context, c *levelStore) (rs *participant.Restore, done bool, err error) {
		if c.rebuild {
			if err := r.lv.rebuild(ctx, ref); err != nil {
				return nil, false, fmt.Errorf("%s: %w", c.level, err)
			}
		}
		st, err := c.get(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", c.name(), err)
		}
		if err := st.HasShard(ctx, ref); err != nil {
			if !errors.Is(err, ckpt.ErrNotFound) {
				r.damaged(epoch, *c, err)
			}
			return nil, false, fmt.Errorf("%s: %w", c.name(), err)
		}
		sr, err := st.OpenShardRef(ctx, ref)
		if err != nil {
			return nil, false, err
		}
		rs, err = r.loadFrom(ctx, sr, epoch, step)
		sr.Close()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrRestoreMismatch) {
				// Not damage: no other copy of this cut fits the job
				// better.
				return nil, true, err
			}
			r.damaged(epoch, *c, err)
			return nil, false, fmt.Errorf("%s: %w", c.name(), err)
		}
		r.restored(epoch, step, t, c.level, ref)
		if c.level == ckpt.LevelPartner {
			r.lv.keepLocal(st, ref)
		}
		return rs, true, nil
	}
	// The node-local copies and the erasure rebuild first (graceOrder:
	// hosts that answer now, and a rebuild from the fragments on them;
	// then within the start grace those where no rank served yet, so a
	// dead host costs a rebuild nothing); then the shared store (the last
	// candidate).
	var rs *participant.Restore
	var rerr error
	local := len(cands)
	for local > 0 && cands[local-1].level == ckpt.LevelShared {
		local--
	}
	tryAt := func(ctx context.Context, i int) (bool, error) {
		var done bool
		var err error
		rs, done, err = try(ctx, &cands[i])
		if done {
			rerr = err
		}
		return done, err
	}
	fail := func(_ int, err error) { errs = append(errs, err) }
	if graceOrder(ctx, local, tryAt, fail) {
		return rs, rerr
	}
	for i := local; i < len(cands); i++ {
		if done, err := tryAt(ctx, i); done {
			return rs, rerr
		} else if err != nil {
			fail(i, err)
		}
	}
	return nil, fmt.Errorf("rank %d: restore cut %d: no level holds an intact copy: %w", r.o.Rank, epoch, errors.Join(errs...))
}

// name says which copy c is in errors: its level and, for node-local
// levels, its host ("local a", "partner b", "shared").
func (c *levelStore) name() string {
	if c.host == "" {
		return c.level
	}
	return c.level + " " + c.host
}

// damaged reports a copy that failed its checks and counts it by level,
// so that damage shows in the stats files and not only in the log.
func (r *Rank) damaged(epoch uint64, c levelStore, err error) {
	r.mu.Lock()
	if r.stats.DamagedCopies == nil {
		r.stats.DamagedCopies = map[string]int64{}
	}
	r.stats.DamagedCopies[c.level]++
	r.mu.Unlock()
	r.log.Error("restore: damaged copy, trying the next level", "cut", epoch, "tier", c.level, "host", c.host, "err", err)
}

// restored records a restore and what it read from which level.
func (r *Rank) restored(epoch uint64, step int64, t time.Time, level string, ref ckpt.ShardRef) {
	r.mu.Lock()
	r.committed = epoch
	r.stats.RestoreTime += time.Since(t)
	if r.stats.RestoreBytes == nil {
		r.stats.RestoreBytes = map[string]int64{}
	}
	r.stats.RestoreBytes[level] += ref.StoredBytes
	r.mu.Unlock()
	r.log.Info("restored", "cut", epoch, "step", step, "tier", level, "bytes", ref.StoredBytes, "took", time.Since(t).Round(time.Millisecond))
}

// loadFrom reads an opened shard into the protected buffers.
func (r *Rank) loadFrom(ctx context.Context, sr *ckpt.ShardReader, epoch uint64, step int64) (*participant.Restore, error) {
	var err error
	// A damaged trailer or pack index is never used as if intact, even
	// though the chunk reads would not need them.
	if err := sr.CheckPack(ctx); err != nil {
		return nil, fmt.Errorf("rank %d: restore cut %d: %w", r.o.Rank, epoch, err)
	}
	if sr.Step() != step {
		return nil, fmt.Errorf("rank %d: restore cut %d: the cut is at step %d, the launcher said %d: %w", r.o.Rank, epoch, sr.Step(), step, ErrRestoreMismatch)
	}
	stored := map[string]int64{}
	for _, b := range sr.Buffers() {
		stored[b.Name] = b.Len
	}
	for _, p := range r.prot {
		b := p.buf(step)
		n, ok := stored[p.name]
		if !ok {
			return nil, fmt.Errorf("rank %d: restore cut %d: buffer %q is not in the cut (the job protects other state than the one that wrote it): %w", r.o.Rank, epoch, p.name, ErrRestoreMismatch)
		}
		if n != b.Len() {
			return nil, fmt.Errorf("rank %d: restore cut %d: buffer %q has %d bytes in the cut, %d in the job (different sizes?): %w", r.o.Rank, epoch, p.name, n, b.Len(), ErrRestoreMismatch)
		}
		delete(stored, p.name)
		r.faults.hit("restore")
		if h, ok := b.(*kernels.HostBuffer); ok {
			// Host memory: decompress straight into the job's buffer.
			err = sr.ReadBuffer(ctx, p.name, h.Bytes())
		} else if d, ok := deviceOf(b).(kernels.StreamRestorer); ok {
			// A device that takes the buffer in pieces (CUDA): each chunk
			// goes on to the device as soon as it is checked, while the
			// workers decode the next ones, and no host copy of the whole
			// buffer is made.
			err = restoreStream(ctx, sr, p.name, d, b)
		} else {
			tmp := make([]byte, n)
			if err = sr.ReadBuffer(ctx, p.name, tmp); err == nil {
				err = deviceOf(b).Restore(b, tmp)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("rank %d: restore cut %d buffer %q: %w", r.o.Rank, epoch, p.name, err)
		}
		opt := r.captureOptions(p)
		if opt.Incremental {
			// The restored contents are the base of the next incremental
			// capture (the cut restored from is committed).
			if h, err := deviceOf(b).Hash(b, opt.ChunkSize); err == nil {
				p.base, p.baseEpoch = h, epoch
			}
		}
	}
	for name := range stored {
		return nil, fmt.Errorf("rank %d: restore cut %d: the cut has buffer %q the job does not protect: %w", r.o.Rank, epoch, name, ErrRestoreMismatch)
	}
	chans, err := sr.Channels(ctx)
	if err != nil {
		return nil, fmt.Errorf("rank %d: restore cut %d channel state: %w", r.o.Rank, epoch, err)
	}
	rs := &participant.Restore{Epoch: epoch, Step: step, Meta: sr.Meta()}
	for _, c := range chans {
		rs.Channels = append(rs.Channels, participant.ChannelState{From: c.From, FirstSeq: c.FirstSeq, Msgs: c.Messages})
	}
	return rs, nil
}

// Restore errors (test with errors.Is).
var (
	// ErrCutDamaged: the cut to restore is damaged or incomplete (a
	// checksum, a shard index, a pack trailer or index, a missing pack or
	// manifest); another cut may be intact. It wraps the store's
	// *ckpt.CorruptError, which names job, cut, rank, buffer, chunk and
	// file. cutpoint rank exits with code 3.
	ErrCutDamaged = errors.New("the cut to restore is damaged")
	// ErrRestoreMismatch: the cut does not fit the job (other buffers,
	// other sizes, another step): no other cut of the job will either.
	ErrRestoreMismatch = errors.New("the cut does not fit this job")
)

// restoreFailed classifies a failed restore of cut epoch, tells the
// coordinator (an alarm it acts on: fall back, or stop the job) and
// returns the error to exit with.
func (r *Rank) restoreFailed(ctx context.Context, g, epoch uint64, err error) error {
	kind := wire.AlarmKind(0)
	switch {
	case errors.Is(err, ckpt.ErrCorrupt), errors.Is(err, ckpt.ErrNotFound):
		kind = wire.AlarmCutDamaged
		err = fmt.Errorf("%w: %w", ErrCutDamaged, err)
	case errors.Is(err, ErrRestoreMismatch):
		kind = wire.AlarmRestoreFailed
	default:
		return err // I/O, cancellation: not a property of the cut
	}
	r.log.Error("restore failed", "cut", epoch, "err", err)
	if r.o.BeforeAlarm != nil {
		r.o.BeforeAlarm(err)
	}
	a := &wire.Alarm{RankHeader: wire.RankHeader{Rank: r.o.Rank, Spawn: r.o.Spawn, G: g}, Kind: kind, Peer: -1, Cut: epoch,
		Detail: truncate(err.Error(), 1000)}
	msg := wire.EncodeRank(a)
	if r.o.Keys != nil {
		msg = wire.NewMAC(r.o.Keys.Report).Seal(wire.DomainReport, msg) // its own MAC: r.mu may not be held here
	}
	if perr := r.nc.Publish(subjects.ToCoordinator(r.space(), r.o.Rank), msg); perr == nil {
		_ = r.nc.FlushWithContext(withTimeout(ctx, 2*time.Second))
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// keepInitial copies the protected state at step 0, the state a rollback
// returns to before any cut commits, except the buffers beyond the staging
// bound (Options.MaxStaging). It is dropped at the first commit.
func (r *Rank) keepInitial() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.initial = make([][]byte, len(r.prot))
	for i, p := range r.prot {
		if p.inPlace {
			// Beyond the staging bound no copy is kept: the coordinator
			// never rolls a rank back to step 0 in place (with no
			// committed cut every rank restarts in a new process).
			continue
		}
		b := p.buf(0)
		r.initial[i] = make([]byte, b.Len())
		if err := deviceOf(b).CopyToHost(r.initial[i], b, 0); err != nil {
			return fmt.Errorf("rank %d: keep initial state of %q: %w", r.o.Rank, p.name, err)
		}
	}
	return nil
}

// applyRollback executes the pending rollback (r.mu held; released during
// the I/O): writers stop, devices drain, channels move to the new
// incarnation, the state is reloaded, and a new participant reports
// Ready(g). It returns the restored step; the caller then waits for Go.
func (r *Rank) applyRollback(ctx context.Context) (int64, error) {
	rb := *r.rollback
	r.rollback = nil
	r.running = false
	r.stats.Rollbacks++
	writers := r.writers
	r.writers = map[uint64]*shardWriter{}
	initial := r.initial
	r.mu.Unlock()
	relock := true
	defer func() {
		if relock {
			r.mu.Lock()
		}
	}()
	r.log.Info("rolling back", "g", rb.G, "cut", rb.Epoch, "step", rb.Step)
	t := time.Now()
	for _, w := range writers {
		w.stop()
	}
	// No stale kernel may write a buffer after it is reloaded (R12).
	for _, p := range r.prot {
		if err := deviceOf(p.buf(rb.Step)).Synchronize(); err != nil {
			return 0, fmt.Errorf("rank %d: rollback: synchronize device: %w", r.o.Rank, err)
		}
	}
	if err := r.ep.Reset(ctx, rb.G); err != nil {
		return 0, fmt.Errorf("rank %d: rollback: reset channels to incarnation %d: %w", r.o.Rank, rb.G, err)
	}
	var restore *participant.Restore
	if rb.Epoch == 0 {
		if initial == nil {
			return 0, fmt.Errorf("rank %d: rollback to step 0 after the initial state was dropped (a cut committed)", r.o.Rank)
		}
		for i, p := range r.prot {
			b := p.buf(0)
			if initial[i] == nil && b.Len() > 0 {
				return 0, fmt.Errorf("rank %d: rollback to step 0: no copy of buffer %q's initial state was kept (it is beyond the staging bound, %s)", r.o.Rank, p.name, EnvMaxStaging)
			}
			if err := deviceOf(b).Restore(b, initial[i]); err != nil {
				return 0, fmt.Errorf("rank %d: rollback to step 0: %w", r.o.Rank, err)
			}
		}
	} else {
		var err error
		if restore, err = r.load(ctx, rb.Epoch, rb.Step); err != nil {
			return 0, r.restoreFailed(ctx, rb.G, rb.Epoch, err)
		}
	}
	p, err := r.newParticipant(rb.G, restore)
	if err != nil {
		return 0, err
	}
	relock = false
	r.mu.Lock()
	r.p = p
	r.process()
	r.log.Info("rolled back", "g", rb.G, "cut", rb.Epoch, "step", rb.Step, "took", time.Since(t).Round(time.Millisecond))
	return rb.Step, nil
}

// restoreStream restores buffer name of sr into b through d's writer; the
// writer is closed whatever happens, so that its staging is freed, and the
// first error is returned.
func restoreStream(ctx context.Context, sr *ckpt.ShardReader, name string, d kernels.StreamRestorer, b kernels.Buffer) error {
	w, err := d.RestoreStream(b)
	if err != nil {
		return err
	}
	err = sr.ReadBufferTo(ctx, name, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}
