package rank

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/levels"
	"github.com/cutpoint/cutpoint/internal/nodestore"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// nodeLevels binds a rank to the job's node-local levels: its own host's
// store (L1), the partner host's store (L2, reached as a directory) and
// the shared store (L3). Each node-local directory is a ckpt store with
// the shared store's chunk size and hash, holding packs only; the
// manifests stay in the shared store.
type nodeLevels struct {
	cfg    levels.Config
	job    string
	jobID  string // the job's subject-space id (subjects.Space)
	host   string
	log    *slog.Logger
	shared *ckpt.Store
	local  *ckpt.Store
	opts   ckpt.Options

	mu     sync.Mutex
	stores map[string]*ckpt.Store // other hosts' directories, by host

	// serve: this host's store, served to the other hosts' ranks; nc the
	// job's NATS connection the copies travel over; limit the bandwidth
	// bound of this rank's copies and flushes.
	serve *storeServer
	nc    *nats.Conn
	limit *sharedBucket
	// flushTo is the shared store as the flushes see it (paced by limit,
	// through paced, whose fault points are the flushes'); flush runs them
	// in the background (rank/flush.go). protectTo is the same store,
	// paced too, for the shards the commit rule sends there (protect):
	// the flush fault points do not fire in those.
	flushTo   *ckpt.Store
	protectTo *ckpt.Store
	flush     *flusher
	paced     *pacedBackend
	rank      int
	t0        time.Time // when the rank joined

	// partners: where this rank's partner copies go; frags: where its
	// erasure fragments go (l.mu held).
	partners *levels.Partners
	frags    *levels.Fragments

	// bg: background copies into the local store (keepLocal), waited
	// for at close.
	bg sync.WaitGroup

	gcBusy sync.Mutex
	// final: epochs the coordinator marked final (a preemption's cut),
	// which go to the shared store whatever FlushEvery says.
	final map[uint64]bool
}

// noteFinal remembers a final cut from a coordinator message (r.mu held);
// the participant decodes the message for everything else.
func (l *nodeLevels) noteFinal(data []byte) {
	m, err := wire.DecodeCoord(data)
	if err != nil {
		return
	}
	if c, ok := m.(*wire.Cut); ok && c.Final {
		l.mu.Lock()
		if len(l.final) < 64 {
			l.final[c.Epoch] = true
		}
		l.mu.Unlock()
	}
}

func (l *nodeLevels) isFinal(epoch uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.final[epoch]
}

func openLevels(ctx context.Context, o Options, nc *nats.Conn, shared *ckpt.Store, log *slog.Logger) (*nodeLevels, error) {
	if o.Host == "" {
		// Launchers that do not say (srun): the Slurm node's name, which
		// is the one the allocation's node list (the partner ring) uses
		// and may differ from the machine's host name; else the machine's.
		h, err := os.Getenv("SLURMD_NODENAME"), error(nil)
		if h == "" {
			h, err = os.Hostname()
		}
		if err != nil || h == "" {
			return nil, fmt.Errorf("node-local level %s: the launcher did not say which host this rank is on (%s): %v", o.Levels.Local, EnvHost, err)
		}
		o.Host = h
	}
	l := &nodeLevels{
		cfg: o.Levels, job: o.Job, jobID: o.JobID, rank: o.Rank, host: o.Host, t0: time.Now(), log: log, shared: shared, stores: map[string]*ckpt.Store{}, final: map[uint64]bool{}, nc: nc, flushTo: shared, protectTo: shared,
		opts: ckpt.Options{Codec: o.Codec, ChunkSize: shared.ChunkSize(), Hash: shared.Hash(), Workers: o.WriterWorkers, Logger: log, BufferedIO: o.StoreIO == "buffered"},
	}
	if l.cfg.Partner() {
		p, err := l.cfg.NewPartners(o.Host)
		if err != nil {
			return nil, fmt.Errorf("partner copy: %w", err)
		}
		l.partners = p
	}
	if _, _, rs := l.cfg.Erasure(); rs {
		f, err := l.cfg.NewFragments(o.Host)
		if err != nil {
			return nil, fmt.Errorf("erasure fragments: %w", err)
		}
		l.frags = f
	}
	opts := l.opts
	opts.Create = true
	s, err := ckpt.OpenDir(ctx, l.cfg.Dir(o.Host), opts)
	if err != nil {
		return nil, fmt.Errorf("node-local level: %w", err)
	}
	l.local = s
	if l.cfg.Bandwidth > 0 {
		l.limit = &sharedBucket{b: nodestore.NewBucket(l.cfg.Bandwidth)}
	}
	l.paced = &pacedBackend{Backend: shared.Backend(), limit: l.limit}
	if l.flushTo, err = ckpt.Open(ctx, l.paced, ckpt.Options{Codec: o.Codec, Logger: log}); err != nil {
		s.Close()
		return nil, fmt.Errorf("node-local level: %w", err)
	}
	if l.protectTo, err = ckpt.Open(ctx, &pacedBackend{Backend: shared.Backend(), limit: l.limit}, ckpt.Options{Codec: o.Codec, Logger: log}); err != nil {
		s.Close()
		return nil, fmt.Errorf("node-local level: %w", err)
	}
	l.flush = newFlusher(l)
	if l.cfg.Redundant() && nc != nil { // a flush-only process serves nothing
		if l.serve, err = serveStore(nc, o.Job, o.JobID, o.Host, s.Backend(), log); err != nil {
			s.Close()
			return nil, fmt.Errorf("node-local level: %w", err)
		}
	}
	log.Info("node-local level", "dir", l.cfg.Dir(o.Host), "redundancy", l.cfg.Redundancy, "flush_every", l.cfg.FlushEvery, "bandwidth_mibps", l.cfg.Bandwidth)
	return l, nil
}

// store opens (once) the node-local store of another host: over the
// network, through the ranks on that host (rank/nodestore.go), which
// created it when they started. A host with no rank serving is
// ErrNoStore.
func (l *nodeLevels) store(ctx context.Context, host string) (*ckpt.Store, error) {
	if host == l.host {
		return l.local, nil
	}
	l.mu.Lock()
	s := l.stores[host]
	l.mu.Unlock()
	if s != nil {
		return s, nil
	}
	rb, err := l.remote(host)
	if err != nil {
		return nil, err
	}
	// A host that does not answer costs the probe's timeout, not the
	// retried requests of opening a store; and l.mu is not held meanwhile
	// (the rank's own lock waits on it).
	if err := rb.ping(ctx, probeTimeout); err != nil {
		return nil, fmt.Errorf("%w: %w", ckpt.ErrNoStore, err)
	}
	if s, err = ckpt.Open(ctx, rb, l.opts); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := l.stores[host]; o != nil {
		s.Close() // opened meanwhile by another writer or restore
		return o, nil
	}
	l.stores[host] = s
	return s, nil
}

// remote is host's node-local store as a backend, reached over NATS.
func (l *nodeLevels) remote(host string) (*remoteBackend, error) {
	if l.nc == nil {
		return nil, fmt.Errorf("host %s: no NATS connection to reach it: %w", host, ckpt.ErrNoStore)
	}
	return &remoteBackend{nc: l.nc, host: host, subj: storeSubject(l.job, l.jobID, host), timeout: remoteTimeout, limit: l.limit, graceUntil: l.t0.Add(startGrace)}, nil
}

func (l *nodeLevels) close() {
	l.bg.Wait()
	l.flush.close()
	if l.serve != nil {
		l.serve.close()
	}
	l.local.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.stores {
		s.Close()
	}
}

// prepare makes spec's base usable in the node-local store: the base
// shard is named by its ref from the shared manifest, and when this host
// lacks it (the rank moved, or its directory was lost) it is copied in
// from the level that has it. When no level has it the shard is written
// whole (warned): correct, only larger.
func (l *nodeLevels) prepare(ctx context.Context, spec ckpt.ShardSpec) ckpt.ShardSpec {
	if spec.Base == nil {
		return spec
	}
	drop := func(why error) ckpt.ShardSpec {
		l.log.Warn("node-local level: the incremental base is not here; writing the shard whole", "epoch", spec.Epoch, "base", spec.Base.Epoch, "err", why)
		spec.Base = nil
		return spec
	}
	cut, err := l.shared.LoadCut(ctx, spec.Job, spec.Base.Epoch)
	if err != nil {
		return drop(err)
	}
	if spec.Rank >= len(cut.Shards) {
		return drop(fmt.Errorf("base cut %d has %d ranks", spec.Base.Epoch, len(cut.Shards)))
	}
	ref := cut.Shards[spec.Rank]
	if err := l.local.HasShard(ctx, ref); err != nil {
		copied := false
		for _, c := range l.candidates(ctx)[1:] {
			st, err := c.get(ctx)
			if err != nil || st.HasShard(ctx, ref) != nil {
				continue
			}
			if _, err := st.CopyShard(ctx, l.local, ref); err == nil {
				copied = true
				break
			}
		}
		if !copied && l.rebuild(ctx, ref) == nil {
			copied = true
		}
		if !copied {
			return drop(err)
		}
	}
	spec.Base = &ckpt.BaseRef{Epoch: ref.Epoch, Ref: &ref}
	return spec
}

// copies is what protect copied where.
type copies struct {
	// partner: bytes copied to other hosts (partner copy or fragments);
	// flushed: bytes copied to the shared store; fallback: flushed only
	// because no copy on another host could be made.
	partner, flushed int64
	fallback         bool
	// moved: the partner changed (another host took the copy);
	// fragMoves: the erasure fragments that went to another host than
	// the shard before's.
	moved, fragMoves int
}

// protect copies a shard just written to the node-local store to the
// levels the commit rule needs before the rank reports it: the partner's
// store (or the erasure fragments on other hosts), over the network. The
// shared store gets it now only when the cut is final (a preemption's),
// when there is no copy on another host, or when no other host took one (a
// local copy alone does not survive its host); a flush epoch's shard goes
// there in the background once the cut commits (rank/flush.go).
func (l *nodeLevels) protect(ctx context.Context, ref ckpt.ShardRef, final bool) (c copies, err error) {
	shared := final || !l.cfg.Redundant()
	if l.cfg.Partner() {
		c.partner, c.moved, err = l.copyToPartner(ctx, ref)
		if err != nil && ctx.Err() != nil {
			return c, fmt.Errorf("partner copy: %w", err) // the cut was given up (a rollback)
		}
		if err != nil {
			l.log.Error("partner copy failed on every other host: this shard goes to the shared store", "epoch", ref.Epoch, "err", err)
			shared, c.fallback = true, !final
		}
	}
	if k, m, rs := l.cfg.Erasure(); rs {
		n, moves, err := l.encode(ctx, ref, k, m)
		c.partner += n
		c.fragMoves = moves
		if err != nil && ctx.Err() != nil {
			return c, fmt.Errorf("erasure fragments: %w", err) // the cut was given up (a rollback)
		}
		if err != nil {
			l.log.Error("erasure fragments failed: this shard goes to the shared store", "epoch", ref.Epoch, "err", err)
			shared, c.fallback = true, !final
		}
	}
	if shared {
		if c.flushed, err = l.local.CopyShard(ctx, l.protectTo, ref); err != nil {
			return c, fmt.Errorf("flush to the shared store: %w", err)
		}
	}
	return c, nil
}

// keepLocal copies a shard this rank restored from another host's store
// into its own node-local store, in the background: the rank's flush of
// that cut (the last one of a job that ends before the next commit, a
// final flush) and its next incremental cut then find it on this host,
// and need no longer the other host's ranks, which may have finished and
// left by then.
func (l *nodeLevels) keepLocal(from *ckpt.Store, ref ckpt.ShardRef) {
	if l.local.HasShard(context.Background(), ref) == nil {
		return
	}
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		if _, err := from.CopyShard(context.Background(), l.local, ref); err != nil {
			l.log.Warn("node-local level: the restored shard was not kept on this host (a flush of that cut needs its other copy)", "epoch", ref.Epoch, "err", err)
		}
	}()
}

// copyToPartner copies the shard to the current partner host, or, when
// that copy fails, to the next host that takes it (levels.Partners): a
// dead partner costs one failed try, its probe bounded by probeTimeout
// when the host does not answer, and none at the cuts after. moved is 1
// when another host than before took the copy (logged once here).
func (l *nodeLevels) copyToPartner(ctx context.Context, ref ckpt.ShardRef) (n int64, moved int, err error) {
	l.mu.Lock()
	hosts := l.partners.Candidates(time.Now())
	l.mu.Unlock()
	var errs []error
	// graceOrder: a dead first choice costs a respawned rank nothing
	// while another host takes the copy, not its whole start grace per
	// cut.
	var perr error
	copied := false
	try := func(ctx context.Context, i int) (bool, error) {
		h := hosts[i]
		t := time.Now()
		var err error
		if n, err = l.copyTo(ctx, h, ref); err != nil {
			l.log.Debug("partner copy failed", "host", h, "epoch", ref.Epoch, "took", time.Since(t), "err", err)
			return ctx.Err() != nil, err
		}
		l.mu.Lock()
		from, changed, cerr := l.partners.Copied(h)
		first := l.partners.First()
		l.mu.Unlock()
		copied = true
		if perr = cerr; cerr == nil && changed {
			l.log.Warn("partner copies go to another host", "from", from, "to", h, "first_choice", first, "epoch", ref.Epoch, "failed", errors.Join(errs...))
			moved = 1
		}
		return true, nil
	}
	failed := func(i int, err error) {
		l.mu.Lock()
		l.partners.Failed(hosts[i], time.Now())
		l.mu.Unlock()
		errs = append(errs, fmt.Errorf("host %s: %w", hosts[i], err))
	}
	if graceOrder(ctx, len(hosts), try, failed) {
		switch {
		case !copied:
			return 0, 0, ctx.Err() // the cut was given up
		case perr != nil:
			return n, 0, perr
		}
		return n, moved, nil
	}
	return 0, 0, errors.Join(errs...)
}

// copyTo copies the shard to host's node-local store (probed).
func (l *nodeLevels) copyTo(ctx context.Context, host string, ref ckpt.ShardRef) (int64, error) {
	ps, err := l.probed(ctx, host)
	if err != nil {
		return 0, err
	}
	return l.local.CopyShard(ctx, ps, ref)
}

// probed opens host's node-local store after a probe that bounds what a
// host that does not answer costs (store probes a host it opens; one
// opened before is probed here).
func (l *nodeLevels) probed(ctx context.Context, host string) (*ckpt.Store, error) {
	l.mu.Lock()
	opened := l.stores[host] != nil
	l.mu.Unlock()
	if opened {
		rb, err := l.remote(host)
		if err != nil {
			return nil, err
		}
		if err := rb.ping(ctx, probeTimeout); err != nil {
			return nil, err
		}
	}
	return l.store(ctx, host)
}

// encode writes the shard's K+M erasure fragments to K+M distinct other
// hosts (levels.Fragments): fragment i to slot i's host, or, when that
// host does not take it (no rank serves its store, none answers a probe
// within probeTimeout, or a write fails), to the next spare host that
// does; the hosts that took them are the slots' hosts for the shards
// after, so a dead host costs one failed try. Only when fewer live hosts
// than K+M remain does encode fail (the caller sends the shard to the
// shared store). moves counts the fragments that went to another host
// than before (logged once here).
func (l *nodeLevels) encode(ctx context.Context, ref ckpt.ShardRef, k, m int) (n int64, moves int, err error) {
	l.mu.Lock()
	slots, spares := l.frags.Plan(time.Now())
	l.mu.Unlock()
	dsts := make([]*ckpt.Store, len(slots))
	// errs: every try that failed, for the log; failed: a host that
	// failed for good (not one where no rank served yet while another
	// took the fragment: asked again at the next shard, at no cost, as
	// copyToPartner does), whose backoff starts.
	var errs []error
	failed := func(host string) {
		l.mu.Lock()
		l.frags.Failed(host, time.Now())
		l.mu.Unlock()
	}
	// fill gives slot i a host that answers: its own first, then the
	// spares in order (graceOrder: those where no rank served yet are
	// waited for, within the start grace, only when no other answers); a
	// spare it takes, or one that failed, is no spare for the slots after.
	fill := func(i int) bool {
		cands := append([]string{slots[i]}, spares...)
		var dead []string
		try := func(ctx context.Context, j int) (bool, error) {
			st, err := l.probed(ctx, cands[j])
			if err != nil {
				l.log.Debug("erasure fragment host failed", "host", cands[j], "fragment", i, "epoch", ref.Epoch, "err", err)
				errs = append(errs, fmt.Errorf("host %s: %w", cands[j], err))
				return ctx.Err() != nil, err
			}
			dsts[i], slots[i] = st, cands[j]
			return true, nil
		}
		graceOrder(ctx, len(cands), try, func(j int, _ error) {
			failed(cands[j])
			dead = append(dead, cands[j])
		})
		spares = slices.DeleteFunc(spares, func(h string) bool { return h == slots[i] || slices.Contains(dead, h) })
		return dsts[i] != nil
	}
	for {
		for i := range dsts {
			if dsts[i] == nil && !fill(i) {
				if err := ctx.Err(); err != nil {
					return n, 0, err
				}
				return n, 0, fmt.Errorf("fragment %d of %d: no live host left to take it (%d needed, none of them the writer's or one host twice): %w", i, len(dsts), len(dsts), errors.Join(errs...))
			}
		}
		c, err := l.local.EncodeShard(ctx, ref, dsts, k, m)
		n += c
		if err == nil {
			break
		}
		var fe *ckpt.FragmentError
		if ctx.Err() != nil || !errors.As(err, &fe) || fe.Index < 0 || fe.Index >= len(dsts) {
			return n, 0, err
		}
		// That host failed the write: its fragment goes to the next
		// spare, and the encode runs again (what the others hold is
		// skipped).
		failed(slots[fe.Index])
		errs = append(errs, fmt.Errorf("host %s: %w", slots[fe.Index], err))
		if len(spares) == 0 {
			return n, 0, fmt.Errorf("fragment %d of %d: no live host left to take it: %w", fe.Index, len(dsts), errors.Join(errs...))
		}
		dsts[fe.Index], slots[fe.Index], spares = nil, spares[0], spares[1:]
	}
	l.mu.Lock()
	mv, perr := l.frags.Placed(slots)
	first := l.frags.First()
	l.mu.Unlock()
	if perr != nil {
		return n, 0, perr // a bug: the slots are distinct hosts of the order
	}
	if len(mv) > 0 {
		l.log.Warn("erasure fragments go to other hosts", "moves", fmt.Sprint(mv), "hosts", strings.Join(slots, ","), "first_choice", strings.Join(first, ","), "epoch", ref.Epoch, "failed", errors.Join(errs...))
	}
	return n, len(mv), nil
}

// rebuild rebuilds a shard into this host's store from erasure fragments
// in every node-local store it can reach (wherever the fragments went).
// The hosts that answer now come first: a host where no rank served yet
// (a dead one, or one still starting) is waited for, within the rank's
// start grace, only when the others hold too few fragments, so a dead
// host costs a respawned rank's rebuild nothing. Under withoutGrace that
// wait is left to the caller (graceOrder asks again): the error then
// matches errNoServer.
func (l *nodeLevels) rebuild(ctx context.Context, ref ckpt.ShardRef) error {
	if _, _, rs := l.cfg.Erasure(); !rs {
		return fmt.Errorf("no erasure fragments: %w", ckpt.ErrNotFound)
	}
	quick := withoutGrace(ctx)
	var srcs []*ckpt.Store
	var later []levelStore
	for _, c := range l.candidates(ctx) {
		if c.level == ckpt.LevelShared {
			continue
		}
		st, err := c.get(quick)
		switch {
		case err == nil:
			srcs = append(srcs, st)
		case errors.Is(err, errNoServer) && ctx.Err() == nil:
			later = append(later, c)
		}
	}
	_, err := l.local.RebuildShard(quick, ref, srcs)
	if err == nil || len(later) == 0 || !errors.Is(err, ckpt.ErrNotFound) {
		return err
	}
	if ctx.Value(noGraceKey{}) != nil {
		return fmt.Errorf("%w (%d hosts where no rank serves yet: %w)", err, len(later), errNoServer)
	}
	for _, c := range later {
		if st, err := c.get(ctx); err == nil {
			srcs = append(srcs, st)
		}
	}
	_, err = l.local.RebuildShard(ctx, ref, srcs)
	return err
}

type levelStore struct {
	level string
	host  string // "" for the shared store
	st    *ckpt.Store
	// rebuild: rebuild the shard into st from erasure fragments first.
	rebuild bool
	l       *nodeLevels
}

// get opens the level's store when first needed: another host's is
// reached over the network, and a host that does not answer (gone) is
// only waited for by the restores that get that far.
func (c *levelStore) get(ctx context.Context) (*ckpt.Store, error) {
	if c.st != nil {
		return c.st, nil
	}
	s, err := c.l.store(ctx, c.host)
	if err != nil {
		if !errors.Is(err, ckpt.ErrNoStore) {
			c.l.log.Debug("node-local store not readable", "host", c.host, "err", err)
		}
		return nil, err
	}
	c.st = s
	return s, nil
}

// candidates lists the stores a restore tries, fastest first: this host's
// node-local store, the partner's and the other hosts' (opened when
// used), then the shared store.
func (l *nodeLevels) candidates(ctx context.Context) []levelStore {
	out := []levelStore{{level: ckpt.LevelLocal, host: l.host, st: l.local, l: l}}
	for _, h := range l.cfg.ReadOrder(l.host)[1:] {
		out = append(out, levelStore{level: ckpt.LevelPartner, host: h, l: l})
	}
	return append(out, levelStore{level: ckpt.LevelShared, st: l.shared, l: l})
}

// gc collects this host's node-local store in the background after a
// commit: packs of cuts whose manifests the coordinator's GC removed from
// the shared store go (one GC at a time; a commit meanwhile asks again).
func (l *nodeLevels) gc(job string, latest uint64) {
	if !l.gcBusy.TryLock() {
		return
	}
	go func() {
		defer l.gcBusy.Unlock()
		ctx := context.Background()
		cuts, err := l.shared.List(ctx, job)
		if err != nil {
			l.log.Warn("node-local gc: list the shared store's cuts", "err", err)
			return
		}
		var kept []ckpt.ShardRef
		for _, c := range cuts {
			cut, err := l.shared.LoadCut(ctx, job, c.Epoch)
			if err != nil {
				return // removed meanwhile, or damaged: try at the next commit
			}
			kept = append(kept, cut.Shards...)
		}
		rep, err := l.local.NodeLocalGC(ctx, job, kept, latest, false)
		if err != nil {
			l.log.Warn("node-local gc", "err", err)
			return
		}
		if rep.DeletedPacks > 0 {
			l.log.Debug("node-local gc", "deleted_packs", rep.DeletedPacks, "deleted_bytes", rep.DeletedBytes)
		}
	}()
}
