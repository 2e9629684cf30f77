package rank

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/participant"
	"github.com/cutpoint/cutpoint/rank/transport"
)

// Rank is one rank of a job: its channels to peers, its protected state and
// its part in the snapshot protocol. Send, Recv, SafePoint and Finish are
// called by the job; Send and Recv may be called from several goroutines
// (one receiver per channel), SafePoint from one.
type Rank struct {
	o     Options
	log   *slog.Logger
	t0    time.Time
	nc    *nats.Conn
	store *ckpt.Store
	ep    *transport.Endpoint
	subs  []*nats.Subscription
	peers []int

	tickStop chan struct{}
	tickDone chan struct{}

	mu   sync.Mutex
	cond *sync.Cond
	p    *participant.Participant
	prot []*protected
	// staged: the bytes of the protected CPU buffers a cut copies into
	// staging, at most Options.MaxStaging (when set).
	staged   int64
	started  bool // Start was called
	running  bool // Go received by the current participant
	rollback *participant.Rollback
	exit     *ExitError
	fault    error // the connection is gone for good
	writers  map[uint64]*shardWriter
	// committed is the latest committed cut holding this rank's shard: the
	// base of the next incremental shard.
	committed uint64
	// initial holds the protected state at step 0 until the first cut
	// commits, for a rollback before any commit.
	initial [][]byte
	closed  bool
	stats   Stats
	faults  *faults
	// lv: the job's node-local levels (rank/levels.go); nil for a job
	// that keeps every cut in store alone.
	lv *nodeLevels

	// ctlWarned: when a dropped control message was last warned about
	// (at most one warning per 10 s: a flood of forged ones cannot flood
	// the log).
	ctlWarned time.Time
	// report seals the control messages to the coordinator (r.mu held;
	// nil without Options.Keys).
	report *wire.MAC
	// forgedWarned: when a control message that failed authentication was
	// last warned about (at most one warning per 10 s, with the count).
	forgedWarned time.Time
	forgedLogged int64
}

// Stats count what a rank did, for logs and benchmarks.
type Stats struct {
	Captures    int
	CaptureTime time.Duration // app-visible time spent capturing
	// Holds counts the cuts that held the job at its SafePoint until the
	// shard writer had read the buffers it reads in place
	// (Options.MaxStaging), HoldTime the time they held it, and
	// InPlaceBytes the bytes those cuts read in place.
	Holds        int
	HoldTime     time.Duration
	InPlaceBytes int64
	// StreamCuts counts the shards whose captures the device timed on
	// the job's own stream (kernels.StreamTimed: CUDA), StreamTime their
	// time there: the part of a cut's stall the SafePoint does not see,
	// since it returns once the work is enqueued.
	StreamCuts    int
	StreamTime    time.Duration
	Rollbacks     int
	RestoreTime   time.Duration
	ShardsWritten int
	ShardBytes    int64 // logical bytes of durable shards
	ShardStored   int64 // stored bytes of durable shards
	LastShardTime time.Duration
	// RestoreBytes counts the stored bytes of the shards restores read,
	// by level (ckpt.LevelLocal, LevelPartner, LevelShared).
	RestoreBytes map[string]int64
	// DamagedCopies counts the copies restores found damaged (a check
	// failed while reading them) and passed over for the next level, by
	// the level that held them.
	DamagedCopies map[string]int64
	// PartnerBytes and FlushBytes count the pack bytes copied to the
	// partner's node-local store and to the shared store.
	PartnerBytes int64
	FlushBytes   int64
	// FallbackBytes counts the part of FlushBytes that went to the shared
	// store before the shard was reported only because no other host took
	// a copy (every partner candidate, or an erasure fragment, failed).
	FallbackBytes int64
	// PartnerChanges counts the times the rank's partner copies moved to
	// another host (the partner failed, or the first choice came back).
	PartnerChanges int64
	// FragmentMoves counts the erasure fragments (--redundancy rs:K+M)
	// that went to another host than the same fragment of the shard
	// before (its host failed, or a first choice came back): one per
	// fragment index that changed host.
	FragmentMoves int64
	// ControlForged counts control messages dropped because they did not
	// carry the coordinator's signature (Options.Keys).
	ControlForged int64
}

// space is the job's subject space (internal/subjects).
func (r *Rank) space() string { return subjects.Space(r.o.Job, r.o.JobID) }

// Join connects to NATS and the store as rank o.Rank of job o.Job. The job
// then protects its state buffers and calls Start.
func Join(ctx context.Context, o Options) (*Rank, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	flt, err := parseFaults(o.Fault, o.Rank, o.Spawn) // before anything is opened
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("rank", o.Rank)
	store, err := openStore(ctx, o, log)
	if err != nil {
		if !errors.Is(err, ckpt.ErrNoStore) && ctx.Err() == nil {
			return nil, fmt.Errorf("rank %d: %w: %w", o.Rank, ErrStoreUnavailable, err)
		}
		return nil, fmt.Errorf("rank %d: %w", o.Rank, err)
	}
	nc, err := natsutil.Connect(o.NATS, natsutil.ConnectOptions{
		Name: fmt.Sprintf("cutpoint %s rank %d", o.Job, o.Rank), Auth: o.Auth, Logger: log, Wait: max(cmp.Or(o.NATSWait, 2*time.Minute), 0),
		// The result's reply comes to an inbox inside the job's
		// permissions (internal/subjects).
		InboxPrefix: subjects.RankInbox(subjects.Space(o.Job, o.JobID), o.Rank),
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("rank %d: %w", o.Rank, err)
	}
	r := &Rank{o: o, log: log, t0: time.Now(), nc: nc, store: store, writers: map[uint64]*shardWriter{}, faults: flt}
	r.cond = sync.NewCond(&r.mu)
	if o.Keys != nil {
		r.report = wire.NewMAC(o.Keys.Report)
	}
	if o.Levels.Enabled() {
		if r.lv, err = openLevels(ctx, o, nc, store, log); err != nil {
			nc.Close()
			store.Close()
			return nil, fmt.Errorf("rank %d: %w", o.Rank, err)
		}
		r.lv.hook(r)
	}
	r.peers = o.Peers
	if r.peers == nil {
		for i := range o.World { // Self goes below
			r.peers = append(r.peers, i)
		}
		if o.World > 64 {
			log.Warn("no peers declared: every rank is a peer; declare neighbours to avoid N^2 markers", "world", o.World)
		}
	}
	r.peers = slices.DeleteFunc(slices.Clone(r.peers), func(p int) bool { return p == o.Rank })
	slices.Sort(r.peers)
	r.peers = slices.Compact(r.peers)
	return r, nil
}

// storeWait bounds how long a rank waits for its coordinator to create the
// store: ranks launched on their own (srun, a test) may start first.
const storeWait = 30 * time.Second

func openStore(ctx context.Context, o Options, log *slog.Logger) (*ckpt.Store, error) {
	deadline := time.Now().Add(storeWait)
	for {
		s, err := ckpt.OpenDir(ctx, o.Store, ckpt.Options{Codec: o.Codec, Workers: o.WriterWorkers, Logger: log, BufferedIO: o.StoreIO == "buffered"})
		if err == nil || !errors.Is(err, ckpt.ErrNoStore) || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ID is this rank's number.
func (r *Rank) ID() int { return r.o.Rank }

// World is the number of ranks.
func (r *Rank) World() int { return r.o.World }

// Options returns the options the rank runs with, defaults filled in
// (Spawn, HeartbeatInterval, Logger).
func (r *Rank) Options() Options { return r.o }

func (r *Rank) mono() int64 { return int64(time.Since(r.t0)) }

// Start joins the job's protocol: it restores the state when the launcher
// asks for it, opens the channels, registers with the coordinator and
// waits until the coordinator lets the job run (Go). It returns the step
// the state is at: 0 for a fresh start, the cut's step after a restore.
func (r *Rank) Start(ctx context.Context) (int64, error) {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return 0, errors.New("rank: Start called twice")
	}
	r.started = true
	r.mu.Unlock()

	g := r.o.Spawn
	restore, err := r.load(ctx, r.o.RestoreEpoch, r.o.RestoreStep)
	if err != nil {
		return 0, r.restoreFailed(ctx, g, r.o.RestoreEpoch, err)
	}
	if r.o.RestoreEpoch == 0 {
		if err := r.keepInitial(); err != nil {
			return 0, err
		}
	}
	topts := transport.Options{Job: r.o.Job, JobID: r.o.JobID, Self: r.o.Rank, Peers: r.peers, G: g, Window: r.o.Window, Logger: r.log}
	switch {
	case r.o.Keys != nil && r.o.FrameAuthOff:
		r.log.Warn("frame tags are off (" + EnvFrameAuth + "=off): frames between ranks are neither tagged nor checked; anyone who can publish on the job's subjects can forge or alter them")
	case r.o.Keys != nil:
		topts.Keys = r.o.Keys
	}
	ep, err := transport.Open(ctx, r.nc, topts, handler{r})
	if err != nil {
		return 0, fmt.Errorf("rank %d: open channels: %w", r.o.Rank, err)
	}
	r.ep = ep
	for _, subj := range []string{subjects.ToRank(r.space(), r.o.Rank), subjects.ToAll(r.space())} {
		sub, err := r.nc.Subscribe(subj, r.onControl)
		if err != nil {
			return 0, fmt.Errorf("rank %d: subscribe %s: %w", r.o.Rank, subj, err)
		}
		r.subs = append(r.subs, sub)
	}
	if err := r.nc.FlushWithContext(withTimeout(ctx, 10*time.Second)); err != nil {
		return 0, fmt.Errorf("rank %d: flush subscriptions: %w", r.o.Rank, err)
	}
	p, err := r.newParticipant(g, restore)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.p = p
	r.process()
	r.mu.Unlock()
	r.tickStop, r.tickDone = make(chan struct{}), make(chan struct{})
	go r.ticker()

	r.mu.Lock()
	defer r.mu.Unlock()
	step := r.o.RestoreStep
	if r.o.RestoreEpoch == 0 {
		step = 0
	}
	return r.waitRunning(ctx, step)
}

func (r *Rank) newParticipant(g uint64, restore *participant.Restore) (*participant.Participant, error) {
	p, err := participant.New(participant.Config{
		Rank: r.o.Rank, World: r.o.World, Peers: r.peers,
		Spawn: r.o.Spawn, Incarnation: g, TotalSteps: r.o.TotalSteps,
		HoldBudget: r.o.HoldBudget, HeartbeatInterval: r.o.HeartbeatInterval,
		Now: r.mono(), Restore: restore,
	})
	if err != nil {
		return nil, fmt.Errorf("rank %d: %w", r.o.Rank, err)
	}
	return p, nil
}

// waitRunning waits (r.mu held) until the current participant received Go,
// applying rollbacks that arrive meanwhile; it returns the step the state
// is at.
func (r *Rank) waitRunning(ctx context.Context, step int64) (int64, error) {
	stop := context.AfterFunc(ctx, r.wake)
	defer stop()
	for {
		if err := r.terminalErr(); err != nil {
			return 0, err
		}
		if r.rollback != nil {
			s, err := r.applyRollback(ctx)
			if err != nil {
				return 0, err
			}
			step = s
			continue
		}
		if r.running {
			return step, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		r.cond.Wait()
	}
}

func (r *Rank) wake() {
	r.mu.Lock()
	r.cond.Broadcast()
	r.mu.Unlock()
}

// terminalErr is the error every call returns once the process must exit.
func (r *Rank) terminalErr() error {
	switch {
	case r.closed:
		return ErrClosed
	case r.exit != nil:
		return r.exit
	case r.fault != nil:
		return r.fault
	}
	return nil
}

// Send sends msg to rank to. It blocks while the channel's credit window is
// full (the receiver has not consumed enough), and returns ErrRolledBack
// when a rollback interrupts it. msg may be reused when Send returns.
func (r *Rank) Send(ctx context.Context, to int, msg []byte) error {
	n := wire.DataHeaderLen + len(msg)
	for {
		r.mu.Lock()
		if err := r.callState(); err != nil {
			r.mu.Unlock()
			return err
		}
		r.mu.Unlock()
		if to != r.o.Rank {
			// r.ep is set once, before the participant callState checks.
			if err := r.ep.Acquire(ctx, to, n); err != nil {
				if errors.Is(err, transport.ErrReset) {
					continue // a rollback happened: callState reports it
				}
				return fmt.Errorf("rank %d: send to %d: %w", r.o.Rank, to, err)
			}
		}
		r.mu.Lock()
		if err := r.callState(); err != nil {
			r.mu.Unlock()
			return err
		}
		err := r.p.Send(to, msg)
		r.process()
		r.mu.Unlock()
		return r.mapErr(err)
	}
}

// callState returns why the job's calls may not proceed now (r.mu held).
func (r *Rank) callState() error {
	if err := r.terminalErr(); err != nil {
		return err
	}
	if r.p == nil {
		return ErrNotStarted
	}
	if r.rollback != nil || !r.running {
		return ErrRolledBack
	}
	return nil
}

// Recv returns the next message from rank from, waiting for one. It
// returns ErrRolledBack when a rollback interrupts it. The message belongs
// to the caller.
func (r *Rank) Recv(ctx context.Context, from int) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stop := context.AfterFunc(ctx, r.wake)
	defer stop()
	for {
		if err := r.callState(); err != nil {
			return nil, err
		}
		msg, ok, err := r.p.Recv(from)
		r.process()
		if err != nil {
			return nil, r.mapErr(err)
		}
		if ok {
			return msg, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rank %d: recv from %d: %w", r.o.Rank, from, err)
		}
		r.cond.Wait()
	}
}

// SafePoint is called by the job after it finished step (steps increase).
// The state must be consistent: no request in flight, buffers written.
// SafePoint takes the rank's part of a cut scheduled at step (capturing the
// protected buffers and returning at once while the shard is written in
// the background; buffers beyond Options.MaxStaging are read in place, and
// SafePoint returns once the writer has read them), and applies a rollback if one was ordered: the buffers
// are restored in place and the cut's step is returned. Otherwise it
// returns step.
func (r *Rank) SafePoint(ctx context.Context, step int64) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch err := r.callState(); {
	case err == ErrRolledBack:
		return r.waitRunning(ctx, step)
	case err != nil:
		return 0, err
	}
	act, err := r.p.SafePoint(step, 0)
	if err != nil {
		r.process()
		if errors.Is(err, participant.ErrRolledBack) {
			return r.waitRunning(ctx, step)
		}
		return 0, r.mapErr(err)
	}
	var w *shardWriter
	if act.Capture {
		w = r.capture(act.Epoch, act.Step)
	}
	r.process()
	if w != nil && w.consumed != nil {
		if err := r.hold(ctx, w); err != nil {
			return 0, err
		}
		if r.rollback != nil {
			return r.waitRunning(ctx, step)
		}
	}
	if w != nil && r.o.StopTheWorld {
		r.mu.Unlock()
		select {
		case <-w.done:
		case <-ctx.Done():
		}
		r.mu.Lock()
	}
	return step, nil
}

// Finish tells the job's protocol that the job's code is done: result
// (the job's answer, e.g. a digest) is handed to the coordinator by rank 0
// (the job's result is rank 0's: another rank's is not sent, and NATS's
// permissions refuse it on a server with per-rank users), and the rank waits until every rank is
// done. It returns nil when the job ended, ErrRolledBack when a failure
// elsewhere rolled the job back (the job must go on from SafePoint), or
// the error that stopped it.
func (r *Rank) Finish(ctx context.Context, result []byte) error {
	r.mu.Lock()
	if err := r.callState(); err != nil {
		r.mu.Unlock()
		return err
	}
	g := r.p.Incarnation()
	r.mu.Unlock()
	if result != nil && r.o.Rank == 0 {
		if err := r.sendResult(ctx, g, result); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.callState(); err != nil {
		return err
	}
	if err := r.p.Finish(); err != nil {
		r.process()
		return r.mapErr(err)
	}
	r.process()
	stop := context.AfterFunc(ctx, r.wake)
	defer stop()
	for {
		if r.exit != nil {
			if r.exit.Code == 0 && !r.exit.fenced {
				if r.lv != nil {
					// The job is over: its last cut goes to the shared
					// store before this rank leaves.
					r.mu.Unlock()
					r.finalFlush(ctx)
					r.mu.Lock()
				}
				return nil
			}
			return r.exit
		}
		if err := r.terminalErr(); err != nil {
			return err
		}
		if r.rollback != nil {
			return ErrRolledBack
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r.cond.Wait()
	}
}

// Close leaves the job: writers are cancelled, channels and connections
// closed. A rank that Close does not follow Finish for looks failed to the
// coordinator.
func (r *Rank) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	writers := r.writers
	r.writers = map[uint64]*shardWriter{}
	r.cond.Broadcast()
	r.mu.Unlock()
	for _, w := range writers {
		w.stop()
	}
	if r.tickStop != nil {
		close(r.tickStop)
		<-r.tickDone
	}
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
	var errs []error
	if r.ep != nil {
		errs = append(errs, r.ep.Close())
	}
	// Let queued control messages (the last status) reach the server.
	_ = r.nc.FlushTimeout(time.Second)
	r.nc.Close()
	errs = append(errs, r.store.Close())
	if r.lv != nil {
		r.lv.close()
	}
	return errors.Join(errs...)
}

// Stats returns the rank's counters.
func (r *Rank) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.RestoreBytes = maps.Clone(st.RestoreBytes)
	st.DamagedCopies = maps.Clone(st.DamagedCopies)
	return st
}
