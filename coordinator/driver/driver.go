// Package driver binds the pure coordinator to the world: NATS for the
// ranks' control messages, a ticker for time, the store for the job record
// and the cut manifests, and a launcher that spawns and kills rank
// processes. It holds no protocol logic: it turns inputs into calls on the
// coordinator and executes each Ready in the order the coordinator
// documents (persist before send).
package driver

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/exitcode"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/levels"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// JobRecordFile is the name of the coordinator's write-ahead record in the
// job's folder of the store.
const JobRecordFile = "job.json"

// JobIDFile is the job file holding the job's random id (Config.JobID),
// written once the lease is held, so that a coordinator that rejoins the
// job's running ranks speaks on their subjects.
const JobIDFile = "nats-job-id"

// Spawner starts and kills rank processes (internal/launch.Local, the Slurm
// spawner). Spawn ids are the coordinator's incarnation numbers.
type Spawner interface {
	Spawn(rank int, spawn uint64, env []string) error
	Kill(ctx context.Context, rank int, spawn uint64) error
	Exits() <-chan launch.Exit
}

// GroupSpawner is a Spawner that starts several ranks in one launch: the
// Slurm spawner runs a whole world as one job step. When a Ready holds
// more than one Spawn, the driver hands them all to SpawnGroup, which must
// act as Spawn called for each; on error none of them was started.
type GroupSpawner interface {
	Spawner
	SpawnGroup(procs []launch.Proc) error
}

// Errors for the launcher to map to exit codes.
var (
	// ErrJobExists: a new job's name already has a record or cuts in the
	// store.
	ErrJobExists = errors.New("job already exists in the store")
	// ErrNoJob: a restore or rejoin found no job record.
	ErrNoJob = errors.New("no such job in the store")
	// ErrNoCut: a restore found the job but no committed cut to resume
	// from (and Config.RestoreIfAny does not allow starting at step 0).
	ErrNoCut = errors.New("no committed cut to resume from")
	// ErrWorldMismatch: the store's job has another number of ranks.
	ErrWorldMismatch = errors.New("number of ranks differs from the store's job")
	// ErrCannotSpawn: the coordinator must start a rank but has no
	// launcher (ranks are started elsewhere).
	ErrCannotSpawn = errors.New("a rank must be (re)started but this coordinator has no launcher")
	// ErrJobOwned (ckpt.ErrLeaseHeld): another live coordinator (or a
	// store tool) owns the job; the error names its host and pid.
	ErrJobOwned = ckpt.ErrLeaseHeld
	// ErrLeaseLost (ckpt.ErrLeaseLost): this coordinator lost the job's
	// lease while it ran (not renewed in time, or taken over); it stopped
	// without writing anything more.
	ErrLeaseLost = ckpt.ErrLeaseLost
)

// Config configures a driver run.
type Config struct {
	Coord coordinator.Config
	Mode  coordinator.Mode
	// RestoreIfAny: a restore (ModeRestore) of a job with no committed cut
	// starts it from step 0, as a new job when the store has no record of
	// it; without it that restore fails with ErrNoCut (or ErrNoJob), so a
	// wrong store or job name never silently starts over.
	RestoreIfAny bool
	Store        *ckpt.Store
	NC           *nats.Conn
	// JobID is the job's random id, part of every subject
	// (internal/subjects); the ranks must be given the same. Empty: the
	// job's name alone. It is written to JobIDFile (not with ModeRejoin,
	// which must be given the one there).
	JobID string
	// Spawner starts ranks; nil when ranks are started by someone else
	// (then a needed respawn fails the job clearly).
	Spawner Spawner
	// RankEnv returns the environment of a spawned rank (identity,
	// restore point) on top of the spawner's base environment.
	RankEnv func(s coordinator.Spawn) []string
	// CutMeta is recorded with every cut (GOARCH, device model).
	CutMeta map[string]string
	// Levels are the job's node-local levels; when enabled each cut
	// records the levels that hold it (see commitLevels).
	Levels levels.Config
	// Requests delivers on-demand cuts (SIGUSR1) and final cuts (SIGTERM).
	Requests <-chan Request
	// OnProgress is called from the driver's goroutine after every change
	// of the progress figures.
	OnProgress func(Progress)
	Metrics    *Metrics
	Logger     *slog.Logger
	// Tick is the period of the coordinator's clock (default 10ms).
	Tick time.Duration
	// RestoreCut (ModeRestore): restore this committed cut rather than
	// the newest intact one (`run --restore --cut E`).
	RestoreCut uint64
	// RecordRetry bounds how long a failing job record write is retried
	// (with backoff) before the job fails (default 2m).
	RecordRetry time.Duration
	// Keys: the job key (wire.JobKey). Every control message is signed
	// with the coordinator's key derived from it, and every rank message
	// and result must carry the tag of the rank it claims, else it is
	// dropped, counted (the "fails authentication" reason of the drop
	// metric) and warned about at most once per 10 s, naming the rank
	// claimed. nil: nothing is signed or checked (tests whose ranks run
	// without keys).
	Keys *wire.JobKey
	// LeaseTTL is the ttl of the job lease the coordinator holds while it
	// runs (default ckpt.DefaultLeaseTTL), renewed every LeaseTTL/3.
	LeaseTTL time.Duration
}

// Request asks for a cut now; Final for preemption (the job stops after
// it commits). Stop stops the job at once (the grace period is over).
type Request struct {
	Final bool
	Stop  bool
}

// Progress is what a person watching the job sees.
type Progress struct {
	Step            int64 // the slowest rank's last completed step
	Steps           int64 // the job's last step, 0 if unknown
	Cuts            int   // cuts committed by this coordinator
	LastCut         uint64
	LastCutStep     int64
	LastCutBytes    uint64
	LastCutStored   uint64
	LastCutTime     time.Duration
	Recoveries      int
	Incarnation     uint64
	Running         bool
	RecoveringSince time.Time
	// Unprotected: cutting has stopped (cutting-stopped) and no cut
	// committed since; the job is unprotected since UnprotectedStep.
	Unprotected     bool
	UnprotectedStep int64
}

// Result is how the job ended.
type Result struct {
	Outcome coordinator.Outcome
	// JobResult is rank 0's result from the incarnation that finished
	// the job (nil when the job did not finish or reported none).
	JobResult []byte
}

type driver struct {
	cfg   Config
	log   *slog.Logger
	c     *coordinator.Coordinator
	job   string
	space string // the job's subjects (internal/subjects.Space)
	t0    time.Time
	inbox *inbox
	late  chan launch.Exit // exits held back a moment (see loop)

	manifests chan manifestResult
	gcBusy    sync.Mutex
	// flushMu guards unflushed: committed flush epochs whose manifests
	// do not record the shared store yet (flush.go).
	flushMu   sync.Mutex
	unflushed []uint64
	flushBusy sync.Mutex
	lease     *ckpt.Lease
	lastTick  int64          // mono of the last tick (stall detection)
	maxStall  time.Duration  // the longest stall seen
	bg        sync.WaitGroup // manifest commits and GCs in the background

	resMu   sync.Mutex
	results map[int]wire.Result

	steps    map[int]int64
	progress Progress
	cutStart map[uint64]time.Time

	// lagWarned: the warning that cuts cannot keep up with CutEverySteps
	// was given (once a run).
	lagWarned bool

	ctl ed25519.PrivateKey // signs control messages; nil without Config.Keys
}

type manifestResult struct {
	epoch uint64
	info  ckpt.CutInfo
	err   error
}

// Run runs the coordinator until the job ends or ctx is cancelled. The
// error is for setup failures (bad store, job mismatch, ErrJobOwned) and
// for a lost lease (ErrLeaseLost); how the job ended is in
// Result.Outcome. The job's lease is held from before the job record is
// read until everything this coordinator started has finished.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Tick == 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	d := &driver{
		cfg: cfg, log: cfg.Logger.With("component", "coordinator"), job: cfg.Coord.Job, space: subjects.Space(cfg.Coord.Job, cfg.JobID), t0: time.Now(),
		inbox: newInbox(cfg.Coord.World, 65536), late: make(chan launch.Exit, 1024), manifests: make(chan manifestResult, 16),
		results: map[int]wire.Result{}, steps: map[int]int64{}, cutStart: map[uint64]time.Time{},
	}
	if cfg.Keys != nil {
		d.inbox.keys = cfg.Keys
		d.ctl = cfg.Keys.ControlKey()
	}
	if err := d.start(ctx); err != nil {
		if d.lease != nil {
			_ = d.lease.Release(context.WithoutCancel(ctx))
		}
		return Result{}, err
	}
	stopRenew := d.renewLease()
	stopPlacement := d.recordPlacement() // placement.go
	defer func() {
		// Nothing of this coordinator writes after the release: the
		// renewals stop, the background commits and GCs end first.
		stopPlacement()
		stopRenew()
		d.waitBackground()
		if err := d.lease.Release(context.WithoutCancel(ctx)); err != nil {
			d.log.Warn("job lease not released (it expires by itself)", "err", err)
		}
	}()
	// A callback subscription decouples the NATS client from the loop;
	// the pending limit is raised so a burst of heartbeats from many
	// ranks is not dropped as a slow consumer.
	sub, err := cfg.NC.Subscribe(subjects.ToCoordinatorAll(d.space), func(m *nats.Msg) {
		if kind := d.inbox.offerFrom(subjects.RankOf(m.Subject), m.Data); kind >= 0 {
			d.cfg.Metrics.messageDropped(kind)
			d.inbox.warn(d.log, kind, time.Now())
		}
	})
	if err != nil {
		return Result{}, fmt.Errorf("subscribe %s: %w", subjects.ToCoordinatorAll(d.space), err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, 256<<20)
	rsub, err := cfg.NC.Subscribe(subjects.Result(d.space), d.onResult)
	if err != nil {
		return Result{}, fmt.Errorf("subscribe %s: %w", subjects.Result(d.space), err)
	}
	defer rsub.Unsubscribe()
	if err := cfg.NC.Flush(); err != nil {
		return Result{}, fmt.Errorf("nats flush: %w", err)
	}
	return d.loop(ctx)
}

// start reads the store, checks the job against the mode, claims a
// coordinator generation and builds the coordinator.
func (d *driver) start(ctx context.Context) error {
	st := d.cfg.Store
	if err := ckpt.ValidJobName(d.job); err != nil {
		return err
	}
	// Check the job as it is first, so that a refused command writes
	// nothing (not even a lease); then take the lease, and read it again:
	// what the coordinator starts from is the job as its previous owner
	// left it, and only one coordinator at a time may act on it.
	if _, _, err := d.readJob(ctx, false); err != nil {
		if errors.Is(err, ErrJobExists) {
			// Say who runs it, when someone does.
			if li, lerr := st.InspectLease(ctx, d.job); lerr == nil && li.State == ckpt.LeaseLive {
				return fmt.Errorf("job %q in store %s: %w", d.job, st, &ckpt.LeaseHeldError{Info: li})
			}
		}
		return err
	}
	lease, err := st.AcquireLease(ctx, d.job, ckpt.LeaseOptions{TTL: d.cfg.LeaseTTL, Owner: ckpt.LeaseOwner{Role: "coordinator"}})
	if err != nil {
		return fmt.Errorf("job %q in store %s: %w", d.job, st, err)
	}
	d.lease = lease
	if d.cfg.JobID != "" && d.cfg.Mode != coordinator.ModeRejoin {
		// Under the lease: the id a later --rejoin must speak on.
		if err := st.PutJobFile(ctx, d.job, JobIDFile, []byte(d.cfg.JobID)); err != nil {
			return fmt.Errorf("job %q: write %s: %w", d.job, JobIDFile, err)
		}
	}
	rec, committed, err := d.readJob(ctx, true)
	if err != nil {
		return err
	}
	gen := uint64(1)
	if rec != nil {
		gen = rec.Generation + 1
	}
	for tries := 0; ; tries++ {
		err := st.CreateJobFile(ctx, d.job, fmt.Sprintf("gen-%08d", gen), []byte(fmt.Sprintf("%d\n", gen)))
		if err == nil {
			break
		}
		if !errors.Is(err, ckpt.ErrExist) || tries > 1000 {
			return fmt.Errorf("job %q: claim coordinator generation %d: %w", d.job, gen, err)
		}
		gen++
	}
	lease.SetGeneration(gen)
	if err := lease.Renew(ctx); err != nil {
		return fmt.Errorf("job %q: %w", d.job, err)
	}
	if d.cfg.Levels.Enabled() {
		// The job's levels, for a later --restore: written by the owner
		// only, once the job was checked (a refused command writes
		// nothing).
		if err := st.PutJobFile(ctx, d.job, levels.RecordFile, d.cfg.Levels.Encode()); err != nil {
			return fmt.Errorf("job %q: write %s: %w", d.job, levels.RecordFile, err)
		}
	}
	d.adoptPlacement(ctx, gen)                      // placement.go
	d.cfg.Coord.ConfirmSilence = d.confirmSilence() // confirm.go
	c, err := coordinator.New(d.cfg.Coord, coordinator.Start{
		Mode: d.cfg.Mode, Now: d.mono(), Record: rec, Committed: committed, Generation: gen, RestoreCut: d.cfg.RestoreCut,
	})
	if err != nil {
		return err
	}
	d.c = c
	if d.cfg.Mode == coordinator.ModeRestore && rec.EpochLimit > 0 {
		// A restore respawns every rank and issues epochs from the
		// record's limit on: no older epoch can commit any more, so GC
		// may reclaim their packs.
		if err := st.RecordAbort(ctx, d.job, 0, rec.EpochLimit, lease); err != nil {
			d.log.Warn("abort record not written (GC keeps the old attempts' packs)", "err", err)
		}
	}
	d.log.Info("coordinator started", "job", d.job, "generation", gen, "mode", modeName(d.cfg.Mode),
		"world", d.cfg.Coord.World, "committed_cuts", len(committed))
	return nil
}

// waitBackground waits for the background commits and GCs, taking the
// results nobody reads any more so that none blocks on a full channel.
func (d *driver) waitBackground() {
	done := make(chan struct{})
	go func() { d.bg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case <-d.manifests:
		}
	}
}

// renewLease renews the lease every ttl/3 until the returned stop is
// called. A failed renewal is retried at the next period; the loop sees a
// lease that is lost (Check) and stops the coordinator.
func (d *driver) renewLease() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d.lease.TTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), d.lease.TTL())
			err := d.lease.Renew(ctx)
			cancel()
			if errors.Is(err, ckpt.ErrLeaseLost) {
				return
			}
			if err != nil {
				d.log.Warn("job lease renewal failed; retrying", "err", err)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// leaseLost is the error that ends a coordinator that lost its lease.
func (d *driver) leaseLost(err error) error {
	d.log.Error("job lease lost: this coordinator stops without writing to the job", "err", err)
	return fmt.Errorf("job %q: coordinator generation %d stopped: %w", d.job, d.c.Generation(), err)
}

// readJob reads the job record and the committed cuts and checks them
// against the mode and the world size. It runs twice, before and after the lease is taken;
// notices are logged only when say is set (the read under the lease).
func (d *driver) readJob(ctx context.Context, say bool) (*wire.JobRecord, []coordinator.CommittedCut, error) {
	st := d.cfg.Store
	var rec *wire.JobRecord
	b, err := st.GetJobFile(ctx, d.job, JobRecordFile)
	switch {
	case err == nil:
		r, err := wire.DecodeJobRecord(b)
		if err != nil {
			return nil, nil, fmt.Errorf("job %q: %s in store %s: %w", d.job, JobRecordFile, st, err)
		}
		rec = &r
	case errors.Is(err, ckpt.ErrNotFound):
	default:
		return nil, nil, fmt.Errorf("job %q: read %s: %w", d.job, JobRecordFile, err)
	}
	cuts, err := st.List(ctx, d.job)
	switch {
	case err != nil && errors.Is(err, ckpt.ErrCorrupt) && (cuts != nil || d.cfg.Mode != coordinator.ModeNew):
		// Damaged manifests are left out: a restore falls back to the
		// newest cut whose manifest is intact.
		if say {
			d.log.Error("damaged cut manifests left out; the job uses the intact cuts", "job", d.job, "err", err)
		}
	case err != nil && !errors.Is(err, ckpt.ErrNotFound):
		return nil, nil, fmt.Errorf("job %q: list cuts: %w", d.job, err)
	}
	var committed []coordinator.CommittedCut
	for _, c := range cuts {
		if c.World != d.cfg.Coord.World {
			return nil, nil, fmt.Errorf("job %q: cut %d has %d ranks, this run has %d: %w", d.job, c.Epoch, c.World, d.cfg.Coord.World, ErrWorldMismatch)
		}
		committed = append(committed, coordinator.CommittedCut{Epoch: c.Epoch, Step: c.Step})
	}
	switch d.cfg.Mode {
	case coordinator.ModeNew:
		if rec != nil || len(cuts) > 0 {
			return nil, nil, fmt.Errorf("job %q in store %s (%d committed cuts): %w; resume it with --restore, delete it with `cutpoint rm`, or pick another --job",
				d.job, st, len(cuts), ErrJobExists)
		}
	default:
		if rec == nil && len(cuts) == 0 && d.cfg.Mode == coordinator.ModeRestore && d.cfg.RestoreIfAny {
			// Idempotent: the second read (under the lease) sees ModeNew.
			d.log.Info("no record of the job in the store: starting it from step 0", "job", d.job)
			d.cfg.Mode = coordinator.ModeNew
			break
		}
		if rec == nil {
			return nil, nil, fmt.Errorf("job %q in store %s: %w (nothing to restore)", d.job, st, ErrNoJob)
		}
		if rec.World != d.cfg.Coord.World {
			return nil, nil, fmt.Errorf("job %q has %d ranks in the store, this run has %d: %w", d.job, rec.World, d.cfg.Coord.World, ErrWorldMismatch)
		}
		if d.cfg.Mode == coordinator.ModeRestore && len(cuts) == 0 {
			if !d.cfg.RestoreIfAny {
				return nil, nil, fmt.Errorf("job %q in store %s: %w; use --restore=if-any to start it from step 0 when there is none", d.job, st, ErrNoCut)
			}
			if say {
				d.log.Info("the job has no committed cut: starting it from step 0", "job", d.job)
			}
		}
	}
	return rec, committed, nil
}

func modeName(m coordinator.Mode) string {
	switch m {
	case coordinator.ModeNew:
		return "new"
	case coordinator.ModeRestore:
		return "restore"
	case coordinator.ModeRejoin:
		return "rejoin"
	}
	return fmt.Sprint(int(m))
}

func (d *driver) mono() int64 { return int64(time.Since(d.t0)) }

func (d *driver) loop(ctx context.Context) (Result, error) {
	tick := time.NewTicker(d.cfg.Tick)
	defer tick.Stop()
	var exits <-chan launch.Exit
	if d.cfg.Spawner != nil {
		exits = d.cfg.Spawner.Exits()
	}
	for {
		if err := d.lease.Check(); err != nil {
			return Result{}, d.leaseLost(err)
		}
		out, err := d.drain(ctx)
		if err != nil {
			return Result{}, err
		}
		if out != nil {
			if out.Code == coordinator.CodeFinished {
				d.recordFinalFlush(exits)
			}
			return d.finish(*out), nil
		}
		select {
		case <-ctx.Done():
			d.c.StopNow("coordinator cancelled: " + context.Cause(ctx).Error())
		case b := <-d.inbox.ch:
			d.observe(b)
			if err := d.c.Receive(b); err != nil {
				d.log.Debug("rank message dropped", "err", err)
			}
		case ex := <-exits:
			if !ex.Killed && ex.Code != 0 {
				// A rank that fails says why first (an alarm, published
				// before it exits): let what is on its way reach the
				// coordinator before the exit does.
				go func() {
					_ = d.cfg.NC.FlushTimeout(200 * time.Millisecond)
					time.Sleep(50 * time.Millisecond)
					d.late <- ex
				}()
				continue
			}
			delete(d.steps, ex.Rank) // its next status, if it lives on, puts it back
			d.liveRanks()
			d.rankEnded(ctx, ex)
		case ex := <-d.late:
			delete(d.steps, ex.Rank)
			d.liveRanks()
			d.rankEnded(ctx, ex)
		case <-tick.C:
			d.tick()
		case m := <-d.manifests:
			if m.err != nil {
				d.log.Error("manifest commit failed", "epoch", m.epoch, "err", m.err)
				d.c.ManifestFailed(m.epoch, m.err)
			} else {
				d.onCommitted(m)
				d.c.ManifestCommitted(m.epoch)
			}
		case req := <-d.cfg.Requests:
			d.request(req)
		}
	}
}

// tick advances the coordinator's clock. What the ranks sent before the
// tick is taken in first: select picks among ready cases at random, and a
// tick handled before the statuses queued beside it would count their
// time in the queue as the ranks' silence. A tick that comes long after
// the previous one means this process was not running (a machine loaded
// beyond its cores, a stop): the ranks' messages of that time may still
// be unread, so the failure clocks restart instead of declaring ranks
// lost for the coordinator's own stall.
func (d *driver) tick() {
	for n := len(d.inbox.ch); n > 0; n-- {
		b := <-d.inbox.ch
		d.observe(b)
		if err := d.c.Receive(b); err != nil {
			d.log.Debug("rank message dropped", "err", err)
		}
	}
	now := d.mono()
	if gap := time.Duration(now - d.lastTick); d.lastTick != 0 && gap > d.stallLimit() {
		lvl := slog.LevelDebug
		if gap > 2*d.stallLimit() {
			lvl = slog.LevelWarn
		}
		d.log.Log(context.Background(), lvl, "the coordinator did not run for a while (machine overloaded?): the stall is not counted as the ranks' silence",
			"stall", gap.Round(time.Millisecond))
		d.c.Stalled(now, gap)
		d.maxStall = max(d.maxStall, gap)
	}
	d.lastTick = now
	d.c.NATSDown(!d.cfg.NC.IsConnected())
	d.c.Tick(now)
}

// stallLimit: a gap between ticks beyond this is the coordinator's own
// stall: a fifth of the failure timeout, at least 50 ticks.
func (d *driver) stallLimit() time.Duration {
	ft := d.cfg.Coord.FailureTimeout
	if ft == 0 {
		ft = 5 * d.cfg.Coord.HeartbeatInterval
	}
	return max(ft/5, 50*d.cfg.Tick)
}

func (d *driver) rankEnded(ctx context.Context, ex launch.Exit) {
	x := coordinator.Exit{Code: ex.Code, Signal: ex.Signal, OOM: ex.OOM, Last: ex.Last, World: ex.World}
	if ex.Signal != "" {
		x.Code = -1
	}
	lvl := slog.LevelInfo
	switch {
	case ex.OOM:
		lvl = slog.LevelError
	case ex.World:
		lvl = slog.LevelDebug // the launcher logged the world's end once
	}
	d.log.Log(ctx, lvl, "rank process ended", "rank", ex.Rank, "spawn", ex.Spawn, "how", ex.String())
	d.c.RankEnded(ex.Rank, ex.Spawn, x)
}

// drain executes every pending Ready (coordinator.Execute, through the
// driver's ports); it returns the outcome when the job is over.
func (d *driver) drain(ctx context.Context) (*coordinator.Outcome, error) {
	p := ports{d: d, ctx: ctx}
	for d.c.HasReady() {
		if err := d.lease.Check(); err != nil {
			return nil, d.leaseLost(err)
		}
		out, err := coordinator.Execute(d.c, p)
		if err != nil {
			return nil, err
		}
		if out != nil {
			_ = d.cfg.NC.Flush()
			return out, nil
		}
	}
	return nil, nil
}

// ports are coordinator.Execute's ports over the store, the launcher and
// NATS.
type ports struct {
	d   *driver
	ctx context.Context
}

func (p ports) WriteRecord(rec wire.JobRecord) error {
	err := p.d.writeRecord(p.ctx, rec)
	if err != nil {
		p.d.log.Error("job record write failed", "err", err)
	}
	return err
}

func (p ports) Kill(k coordinator.Process) { p.d.kill(p.ctx, k) }

func (p ports) Spawn(spawns []coordinator.Spawn) error {
	d := p.d
	if gs, ok := d.cfg.Spawner.(GroupSpawner); ok && len(spawns) > 1 {
		d.spawnGroup(gs, spawns)
		return nil
	}
	for i, s := range spawns {
		// Starting a large world takes a while: a stop (a second
		// SIGTERM, the grace period over) must not wait for it.
		if d.pollRequests() {
			d.log.Warn("stop requested while ranks were being started", "started", i, "ranks", len(spawns))
			break
		}
		if err := d.spawn(s); err != nil {
			return err
		}
	}
	return nil
}

func (p ports) Publish(m coordinator.Message) {
	subj := subjects.ToAll(p.d.space)
	if m.To != coordinator.Broadcast {
		subj = subjects.ToRank(p.d.space, m.To)
	}
	if err := p.d.cfg.NC.Publish(subj, p.d.sign(m.Data)); err != nil {
		p.d.log.Debug("control publish failed", "subject", subj, "err", err)
	}
}

func (p ports) Commit(m coordinator.Manifest)    { p.d.commit(m) }
func (p ports) GC(g coordinator.GC)              { p.d.gc(g) }
func (p ports) Event(ev coordinator.Event)       { p.d.event(ev) }
func (p ports) Confirm(ps []coordinator.Process) { p.d.confirm(ps) } // confirm.go

// request hands a cut or stop request to the coordinator; it reports
// whether it was a stop.
func (d *driver) request(req Request) bool {
	if req.Stop {
		d.c.StopNow("stop requested")
		return true
	}
	d.log.Info("cut requested", "final", req.Final)
	d.c.RequestCut(req.Final)
	return false
}

// pollRequests hands over the requests already waiting; it reports whether
// one was a stop.
func (d *driver) pollRequests() bool {
	for {
		select {
		case req := <-d.cfg.Requests:
			if d.request(req) {
				return true
			}
		default:
			return false
		}
	}
}

// writeRecord writes the job record, retrying a failing write with
// backoff (a store briefly unwritable: EPERM, ENOSPC, a hiccup of a
// network file system) for up to RecordRetry; the coordinator waits, as
// it must (R15), and the job fails only when the store stays unwritable.
func (d *driver) writeRecord(ctx context.Context, rec wire.JobRecord) error {
	b, err := wire.EncodeJobRecord(rec)
	if err != nil {
		return err
	}
	limit := d.cfg.RecordRetry
	if limit == 0 {
		limit = 2 * time.Minute
	}
	deadline := time.Now().Add(limit)
	pause := 50 * time.Millisecond
	for tries := 1; ; tries++ {
		// A coordinator that lost its lease while retrying writes nothing
		// more: the new owner's record is the truth.
		if d.lease != nil {
			if err := d.lease.Check(); err != nil {
				return d.leaseLost(err)
			}
		}
		err := d.cfg.Store.PutJobFile(ctx, d.job, JobRecordFile, b)
		if err == nil {
			if tries > 1 {
				d.log.Info("job record written after retries", "seq", rec.Seq, "tries", tries)
			}
			return nil
		}
		if ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("%w (%d tries in %v)", err, tries, limit)
		}
		d.log.Warn("job record write failed; retrying", "seq", rec.Seq, "try", tries, "in", pause, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

func (d *driver) kill(ctx context.Context, k coordinator.Process) {
	if d.cfg.Spawner == nil {
		return // ranks started elsewhere: they are fenced by incarnation
	}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.cfg.Spawner.Kill(kctx, k.Rank, k.Spawn); err != nil {
		d.log.Error("kill failed", "rank", k.Rank, "spawn", k.Spawn, "err", err)
	}
}

func (d *driver) spawn(s coordinator.Spawn) error {
	if d.cfg.Spawner == nil {
		if s.G == 1 && s.Epoch == 0 {
			return nil // the first launch: the ranks' own launcher starts them
		}
		// Tell the ranks, so they do not wait for a recovery that cannot
		// happen.
		d.stopRanks(fmt.Sprintf("rank %d must be restarted but the coordinator has no launcher", s.Rank))
		return fmt.Errorf("rank %d (incarnation %d, cut %d): %w; restart the job with --restore and a launcher (--spawn local, --hosts)", s.Rank, s.G, s.Epoch, ErrCannotSpawn)
	}
	var env []string
	if d.cfg.RankEnv != nil {
		env = d.cfg.RankEnv(s)
	}
	if err := d.cfg.Spawner.Spawn(s.Rank, s.G, env); err != nil {
		if errors.Is(err, launch.ErrNoSlot) {
			// No retry can help until hosts come back: fail now, clearly,
			// rather than after --max-recoveries futile attempts.
			d.stopRanks(fmt.Sprintf("rank %d must be restarted but no live host has a free slot", s.Rank))
			return fmt.Errorf("incarnation %d, cut %d: %w; restart the job with --restore and --hosts that have room", s.G, s.Epoch, err)
		}
		d.log.Error("spawn failed", "rank", s.Rank, "g", s.G, "err", err)
		d.c.RankExited(s.Rank, s.G, exitcode.SpawnFailed)
		return nil
	}
	d.log.Debug("rank spawned", "rank", s.Rank, "g", s.G, "cut", s.Epoch, "step", s.Step)
	return nil
}

// stopRanks tells every rank that the job failed.
func (d *driver) stopRanks(reason string) {
	stop := &wire.Stop{CoordHeader: wire.CoordHeader{CGen: d.c.Generation(), G: d.c.Incarnation()}, Code: coordinator.CodeFailed, Reason: reason}
	_ = d.cfg.NC.Publish(subjects.ToAll(d.space), d.sign(wire.EncodeCoord(stop)))
	_ = d.cfg.NC.Flush()
}

func (d *driver) spawnGroup(gs GroupSpawner, spawns []coordinator.Spawn) {
	procs := make([]launch.Proc, len(spawns))
	for i, s := range spawns {
		procs[i] = launch.Proc{Rank: s.Rank, Spawn: s.G}
		if d.cfg.RankEnv != nil {
			procs[i].Env = d.cfg.RankEnv(s)
		}
	}
	if err := gs.SpawnGroup(procs); err != nil {
		d.log.Error("spawn failed", "ranks", len(spawns), "g", spawns[0].G, "err", err)
		for _, s := range spawns {
			d.c.RankExited(s.Rank, s.G, exitcode.SpawnFailed)
		}
		return
	}
	d.log.Debug("ranks spawned", "ranks", len(spawns), "g", spawns[0].G, "cut", spawns[0].Epoch, "step", spawns[0].Step)
}

// commit writes the manifest in the background; the result comes back
// through d.manifests.
func (d *driver) commit(m coordinator.Manifest) {
	spec := ckpt.CutSpec{Job: m.Job, Epoch: m.Epoch, Step: m.Step, World: m.World, Incarnation: m.G, Meta: d.cutMeta(m)}
	for r, b := range m.Shards {
		ref, err := ckpt.UnmarshalShardRef(b)
		if err != nil {
			d.manifests <- manifestResult{epoch: m.Epoch, err: fmt.Errorf("rank %d's shard reference: %w", r, err)}
			return
		}
		spec.Shards = append(spec.Shards, ref)
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if err := d.lease.Check(); err != nil {
			d.manifests <- manifestResult{epoch: m.Epoch, err: err}
			return
		}
		if d.cfg.Levels.Enabled() {
			if err := d.commitLevels(&spec); err != nil {
				d.manifests <- manifestResult{epoch: m.Epoch, err: err}
				return
			}
		}
		info, err := d.cfg.Store.Commit(context.Background(), spec)
		d.manifests <- manifestResult{epoch: m.Epoch, info: info, err: err}
	}()
}

// commitLevels records which levels hold a cut of a multi-level job: the
// ranks' node-local stores always, the partner copies when the job makes
// them, the shared store when every shard is there. A cut that would not
// survive the loss of a host is refused (the ranks flush such a shard to
// the shared store before they report it, so this is a bug or damage).
func (d *driver) commitLevels(spec *ckpt.CutSpec) error {
	_, _, rs := d.cfg.Levels.Erasure()
	lv := ckpt.Levels{Local: true, Partner: d.cfg.Levels.Partner(), Erasure: rs, Shared: d.cfg.Store.ShardsPresent(context.Background(), spec.Shards)}
	if !lv.SurvivesHostLoss() {
		return fmt.Errorf("cut %d: held at levels %q only, which do not survive the loss of a host", spec.Epoch, lv)
	}
	spec.Meta[ckpt.MetaLevels] = lv.String()
	return nil
}

func (d *driver) cutMeta(m coordinator.Manifest) map[string]string {
	meta := map[string]string{"goarch": runtime.GOARCH}
	for k, v := range d.cfg.CutMeta {
		meta[k] = v
	}
	if m.Final {
		meta["final"] = "true"
	}
	return meta
}

// gc runs in the background, one at a time; a request while one runs is
// skipped (the next commit asks again).
func (d *driver) gc(g coordinator.GC) {
	if !d.gcBusy.TryLock() {
		return
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer d.gcBusy.Unlock()
		pins := g.Pins
		if d.cfg.Levels.Enabled() {
			// The latest cut held in the shared store stays, however many
			// node-local cuts came after it: it is what a loss of more
			// hosts than the redundancy covers restores from.
			// So do the flush epochs whose flush is still under way.
			pins = slices.Clone(pins)
			if e := d.latestShared(context.Background()); e != 0 {
				pins = append(pins, e)
			}
			d.flushMu.Lock()
			pins = append(pins, d.unflushed...)
			d.flushMu.Unlock()
		}
		rep, err := d.cfg.Store.GC(context.Background(), d.job, ckpt.GCOptions{Keep: g.Keep, Pin: pins, Lease: d.lease})
		if err != nil {
			d.log.Warn("gc failed", "err", err)
			return
		}
		d.log.Debug("gc", "report", fmt.Sprintf("%+v", rep))
	}()
}

// sign appends the coordinator's signature to a control message (a copy:
// the coordinator's Ready may share msg's array).
func (d *driver) sign(msg []byte) []byte {
	if d.ctl == nil {
		return msg
	}
	return wire.SignCoord(d.ctl, append(make([]byte, 0, len(msg)+wire.SigLen), msg...))
}

// openResult checks a result's tag under the key of the rank it claims.
func (d *driver) openResult(b []byte) (wire.Result, error) {
	if d.cfg.Keys == nil {
		return wire.DecodeResult(b)
	}
	rk, ok := wire.ClaimedRank(b)
	if !ok || rk >= d.cfg.Coord.World {
		return wire.Result{}, fmt.Errorf("result claims no rank of the world: %w", wire.ErrMalformed)
	}
	msg, err := wire.NewMAC(d.cfg.Keys.ReportKey(rk)).Open(wire.DomainResult, b)
	if err != nil {
		d.inbox.claimed.Store(int64(rk))
		return wire.Result{}, err
	}
	return wire.DecodeResult(msg)
}

func (d *driver) onResult(m *nats.Msg) {
	r, err := d.openResult(m.Data)
	if !d.inbox.admitResult(r, err) {
		if errors.Is(err, wire.ErrAuth) {
			d.cfg.Metrics.messageDropped(dropAuth)
			d.inbox.warn(d.log, dropAuth, time.Now())
			return
		}
		if err != nil || r.Rank < 0 || r.Rank >= d.cfg.Coord.World {
			d.cfg.Metrics.messageDropped(dropResult)
			d.inbox.warn(d.log, dropResult, time.Now())
			return
		}
		// A rank other than 0 may hand a result in; it is not the job's
		// and is not kept, but it is acknowledged so the rank goes on.
		_ = m.Respond([]byte("ok"))
		return
	}
	d.resMu.Lock()
	if old, ok := d.results[r.Rank]; !ok || r.G >= old.G {
		d.results[r.Rank] = r
	}
	d.resMu.Unlock()
	_ = m.Respond([]byte("ok"))
}

func (d *driver) finish(out coordinator.Outcome) Result {
	res := Result{Outcome: out}
	if out.Code == coordinator.CodeFinished || out.Code == coordinator.CodeUnprotected {
		d.resMu.Lock()
		if r, ok := d.results[0]; ok && r.G == d.c.Incarnation() {
			res.JobResult = r.Data
		}
		d.resMu.Unlock()
	}
	d.log.Info("job over", "code", out.Code, "reason", out.Reason, "last_cut", out.Epoch,
		"max_silence", d.c.Stats().MaxSilence.Round(time.Millisecond), "max_stall", d.maxStall.Round(time.Millisecond))
	return res
}

// observe reads rank status messages for the progress display only; the
// coordinator gets the same bytes.
func (d *driver) observe(b []byte) {
	if len(b) < 2 || b[1] != wire.KindStatus {
		return
	}
	m, err := wire.DecodeRank(b)
	if err != nil {
		return
	}
	st, ok := m.(*wire.Status)
	if !ok || st.G != d.c.Incarnation() {
		return
	}
	d.steps[st.Rank] = st.Step
	if st.Total > 0 {
		d.progress.Steps = st.Total
	}
	if len(d.steps) == d.cfg.Coord.World {
		low := int64(-1)
		for _, s := range d.steps {
			if low < 0 || s < low {
				low = s
			}
		}
		if low != d.progress.Step {
			d.progress.Step = low
			if d.cfg.Metrics != nil {
				d.cfg.Metrics.step.Set(float64(low))
			}
			d.notify()
		}
	}
	d.liveRanks()
}

// liveRanks updates the live-ranks gauge: the ranks of this incarnation
// that reported a status and have not exited.
func (d *driver) liveRanks() {
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.liveRanks.Set(float64(len(d.steps)))
	}
}

func (d *driver) notify() {
	d.progress.Incarnation = d.c.Incarnation()
	d.progress.Running = d.c.Running()
	d.progress.Unprotected, d.progress.UnprotectedStep = d.c.Unprotected()
	if m := d.cfg.Metrics; m != nil {
		v := 0.0
		if d.progress.Unprotected {
			v = 1
		}
		m.unprotected.Set(v)
	}
	if d.cfg.OnProgress != nil {
		d.cfg.OnProgress(d.progress)
	}
}

func (d *driver) onCommitted(m manifestResult) {
	p := &d.progress
	prevStep := p.LastCutStep
	if p.Cuts == 0 {
		prevStep = -1
	}
	p.Cuts++
	p.LastCut = m.epoch
	p.LastCutStep = m.info.Step
	p.LastCutBytes = uint64(m.info.RawBytes)
	p.LastCutStored = uint64(m.info.NewBytes)
	if t, ok := d.cutStart[m.epoch]; ok {
		p.LastCutTime = time.Since(t)
		delete(d.cutStart, m.epoch)
	}
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.cutCommitted(m.info, p.LastCutTime)
	}
	d.log.Info("cut committed", "epoch", m.epoch, "step", m.info.Step, "raw_bytes", m.info.RawBytes,
		"new_bytes", m.info.NewBytes, "took", p.LastCutTime.Round(time.Millisecond))
	d.checkLag(p.Cuts, prevStep, m.info.Step)
	d.watchFlush(m.epoch, m.info)
	d.notify()
}

// checkLag warns once when cuts come much further apart than CutEverySteps
// asks: cuts are taken at least that many steps apart, one at a time, so a
// cut that takes longer than the steps in between spaces them out.
func (d *driver) checkLag(cuts int, prevStep, step int64) {
	every := d.cfg.Coord.CutEverySteps
	if every <= 0 || d.lagWarned || cuts < 2 || prevStep < 0 || step-prevStep <= 2*every {
		return
	}
	d.lagWarned = true
	d.log.Warn("cuts cannot keep up with --every-steps: a cut takes longer than that many steps, so cuts come further apart",
		"every_steps", every, "steps_between_cuts", step-prevStep, "last_cut_took", d.progress.LastCutTime.Round(time.Millisecond))
}

func (d *driver) event(ev coordinator.Event) {
	lvl := slog.LevelDebug
	switch ev.Kind {
	case coordinator.EvCutAborted, coordinator.EvRankLost, coordinator.EvRecoveryStarted, coordinator.EvFenced, coordinator.EvProtocol,
		coordinator.EvRankSilentRunning:
		lvl = slog.LevelWarn
	case coordinator.EvRecoveryFinished, coordinator.EvJobRunning, coordinator.EvJobFinished, coordinator.EvJobStopped, coordinator.EvRebuilt, coordinator.EvJobStarting,
		coordinator.EvCuttingResumed:
		lvl = slog.LevelInfo
	}
	if ev.Loud() {
		lvl = slog.LevelError
	}
	if ev.Kind == coordinator.EvRecoveryFinished || ev.Kind == coordinator.EvJobRunning {
		// How long the recovery (or the start) took, from the first
		// loss (or the launch) to every rank running again.
		d.log.Log(context.Background(), lvl, ev.String(), "took", time.Duration(ev.Duration).Round(time.Millisecond))
	} else {
		d.log.Log(context.Background(), lvl, ev.String())
	}
	m := d.cfg.Metrics
	switch ev.Kind {
	case coordinator.EvCutStarted:
		d.cutStart[ev.Epoch] = time.Now()
	case coordinator.EvCutAborted:
		delete(d.cutStart, ev.Epoch)
		// Durably, so that GC reclaims the attempt's packs at once
		// instead of keeping them as possibly in flight.
		// In the background: the store serializes it with a GC that
		// may be running, which must not hold up the loop.
		if ev.Epoch != 0 {
			epoch := ev.Epoch
			d.bg.Add(1)
			go func() {
				defer d.bg.Done()
				if err := d.cfg.Store.RecordAbort(context.Background(), d.job, epoch, 0, d.lease); err != nil {
					d.log.Warn("abort not recorded (GC keeps the epoch's packs)", "epoch", epoch, "err", err)
				}
			}()
		}
		if m != nil {
			m.cutAborted(ev.Reason.String())
		}
	case coordinator.EvRankLost:
		if m != nil {
			m.failures.Inc()
		}
	case coordinator.EvRecoveryStarted:
		d.progress.Recoveries++
		d.progress.RecoveringSince = time.Now()
		d.steps = map[int]int64{}
		d.liveRanks()
		d.notify()
	case coordinator.EvCuttingStopped, coordinator.EvCuttingResumed:
		d.notify()
	case coordinator.EvCutDamaged:
		if m != nil {
			m.badCuts.Inc()
		}
	case coordinator.EvRecoveryFinished:
		if m != nil {
			m.recovered(time.Duration(ev.Duration))
		}
		d.progress.RecoveringSince = time.Time{}
		d.notify()
	}
}
