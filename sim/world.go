package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// Config is one simulated run; ConfigFor derives it from a seed.
type Config struct {
	Seed    uint64
	N       int
	Pattern Pattern
	Steps   int64

	HB, FailureTimeout, StartTimeout, EpochTimeout int64
	CutInterval                                    int64
	CutEverySteps                                  int64
	Tick                                           int64
	ComputeMin, ComputeMax                         int64
	SlowRank                                       int // this rank computes 4x slower; -1 none
	DataDelayMin, DataDelayMax                     int64
	CtlDelayMin, CtlDelayMax                       int64
	CtlLoss                                        float64
	Window                                         int64
	// The transport machine's fragment payload and timers.
	FragPayload                      int
	AckTimeout, MaxBackoff, AckDelay int64
	// Net is how the data network misbehaves.
	Net                    NetFaults
	HoldBudget             int64
	WriteMin, WriteMax     int64
	CommitMin, CommitMax   int64
	RecordMin, RecordMax   int64
	SpawnMin, SpawnMax     int64
	RestartMin, RestartMax int64
	Keep                   int
	Faults                 []Fault
	// ExpectCuttingStopped: the scenario breaks R7 on purpose.
	ExpectCuttingStopped bool
	// ExitAfterFinish: a rank's process exits 0 two heartbeats after its
	// job finished instead of waiting for Stop (a recovery must then
	// respawn it).
	ExitAfterFinish bool
	// WholeWorld runs the coordinator with coordinator.Config.WholeWorld
	// (MPI mode: every recovery respawns every rank). ConfigFor never
	// sets it; TestSimWholeWorld does.
	WholeWorld bool
}

func (c *Config) hb() time.Duration { return time.Duration(c.HB) }

const ms = int64(time.Millisecond)
const us = int64(time.Microsecond)

// Profile selects the size of the runs ConfigFor draws.
type Profile uint8

const (
	// Small: 1..16 ranks, 15..60 steps: most seeds.
	Small Profile = iota + 1
	// Large: 64..1024 ranks, few steps.
	Large
)

// ConfigFor derives a run from a seed.
func ConfigFor(seed uint64, profile Profile) Config {
	c := configFor(seed, profile)
	drawNetwork(&c, profile)
	return c
}

// drawNetwork draws the transport's settings and the data network's
// faults from a stream of their own, so that the rest of a seed's run is
// what it was before the simulation ran the real transport. Seeds without
// faults get a network that only delays and reorders.
func drawNetwork(c *Config, profile Profile) {
	e := newEngine(c.Seed ^ 0x6e37)
	// Fragments small enough that the larger messages (up to 6 KB) come
	// in several; the acks' delay as the Endpoint's default (1 ms) or
	// shorter.
	c.FragPayload = []int{256, 1400, 8192}[e.rng.IntN(3)]
	c.AckTimeout = e.between(4*ms, 12*ms)
	c.MaxBackoff = c.AckTimeout * e.between(2, 8)
	c.AckDelay = e.between(200*us, 1*ms)
	c.Net.Reorder = e.chance(0.3)
	if len(c.Faults) == 0 && c.CtlLoss == 0 {
		return
	}
	if e.chance(0.7) {
		c.Net.Drop = []float64{0.001, 0.01, 0.05, 0.15}[e.rng.IntN(4)]
	}
	if e.chance(0.5) {
		c.Net.Dup = []float64{0.01, 0.05}[e.rng.IntN(2)]
	}
	span := c.Steps * (c.ComputeMin + c.ComputeMax) / 2
	if c.N > 1 && e.chance(0.3) {
		for range e.between(1, 3) {
			a := e.rng.IntN(c.N)
			b := (a + 1 + e.rng.IntN(c.N-1)) % c.N
			from := e.between(0, span)
			c.Net.Partitions = append(c.Net.Partitions, Partition{A: a, B: b, From: from, To: from + e.between(1*ms, 40*ms)})
		}
	}
	if profile == Small && e.chance(0.2) {
		// Shorter than the coordinator's failure timeout: the heartbeats
		// lost with the connection do not make the rank look dead.
		from := e.between(0, span)
		c.Net.Disconnects = append(c.Net.Disconnects, Disconnect{Rank: e.rng.IntN(c.N), From: from, To: from + e.between(1*ms, c.FailureTimeout/3)})
	}
}

func configFor(seed uint64, profile Profile) Config {
	e := newEngine(seed ^ 0x5eed)
	c := Config{Seed: seed, SlowRank: -1}
	c.Pattern = Pattern(1 + e.rng.IntN(int(numPatterns)))
	switch profile {
	case Large:
		c.N = []int{64, 128, 256, 512, 1024}[e.rng.IntN(5)]
		c.Steps = e.between(20, 30)
		if c.Pattern == AllToAll {
			c.Pattern = Halo2D
		}
	default:
		c.N = int(e.between(1, 16))
		if e.chance(0.1) {
			c.N = int(e.between(17, 40))
		}
		c.Steps = e.between(15, 60)
		if c.Pattern == AllToAll && c.N > 12 {
			c.N = 12
		}
	}
	c.HB = 5 * ms
	c.FailureTimeout = 25 * ms
	c.StartTimeout = 150 * ms
	c.EpochTimeout = 1000 * ms // over the skew of a pipeline with a slow rank
	c.Tick = 1 * ms
	if e.chance(0.5) {
		c.CutInterval = e.between(2*ms, 15*ms)
	}
	if c.CutInterval == 0 || e.chance(0.3) {
		c.CutEverySteps = e.between(3, 12)
	}
	c.ComputeMin = e.between(50*us, 400*us)
	c.ComputeMax = c.ComputeMin + e.between(0, 1500*us)
	if c.N > 1 && e.chance(0.3) {
		c.SlowRank = e.rng.IntN(c.N)
	}
	c.DataDelayMin = e.between(5*us, 100*us)
	c.DataDelayMax = c.DataDelayMin + e.between(0, 1500*us)
	c.CtlDelayMin = e.between(5*us, 100*us)
	c.CtlDelayMax = c.CtlDelayMin + e.between(0, 1000*us)
	// The window binds when a rank runs ahead, but holds one step's
	// traffic on a channel (two of the largest messages): a smaller one
	// deadlocks the job itself, protocol or not (each rank sends before it
	// receives).
	c.Window = []int64{12288, 16384, 65536}[e.rng.IntN(3)]
	c.HoldBudget = 64 << 20
	c.WriteMin = e.between(100*us, 2*ms)
	c.WriteMax = c.WriteMin + e.between(0, 6*ms)
	c.CommitMin, c.CommitMax = 100*us, e.between(200*us, 3*ms)
	c.RecordMin, c.RecordMax = 50*us, e.between(100*us, 1*ms)
	c.SpawnMin, c.SpawnMax = 1*ms, e.between(2*ms, 15*ms)
	c.RestartMin, c.RestartMax = 2*ms, e.between(3*ms, 30*ms)
	if e.chance(0.2) {
		// Longer than the ranks' coordinator-silence limit (10 heartbeats).
		c.RestartMin, c.RestartMax = 40*ms, 150*ms
	}
	c.Keep = int(e.between(1, 3))
	c.ExitAfterFinish = e.chance(0.3)
	if profile == Large {
		// A thousand ranks take a while to say Ready and to report; cut
		// often enough that a short job commits.
		c.CutInterval = 0
		c.CutEverySteps = e.between(3, 6)
		c.ComputeMin = e.between(500*us, 1*ms)
		c.ComputeMax = c.ComputeMin + e.between(0, 1*ms)
		c.FailureTimeout = 60 * ms
		c.EpochTimeout = 1000 * ms
		c.StartTimeout = 400 * ms
		c.CtlDelayMax = c.CtlDelayMin + e.between(0, 300*us)
	}
	if e.chance(0.3) {
		return c // no faults: progress is checked
	}
	if e.chance(0.3) {
		c.CtlLoss = []float64{0.001, 0.01, 0.03}[e.rng.IntN(3)]
	}
	if e.chance(0.15) {
		c.HoldBudget = e.between(512, 8192) // hold-overflow aborts happen
	}
	c.Faults = randomFaults(e, c)
	return c
}

func (c Config) String() string {
	s := fmt.Sprintf("seed=%d n=%d pattern=%s steps=%d interval=%v every=%d window=%d budget=%d loss=%.3f keep=%d exit-after-finish=%v",
		c.Seed, c.N, c.Pattern, c.Steps, time.Duration(c.CutInterval), c.CutEverySteps, c.Window, c.HoldBudget, c.CtlLoss, c.Keep, c.ExitAfterFinish)
	for _, f := range c.Faults {
		s += " " + f.String()
	}
	return s + fmt.Sprintf(" frag=%d ack-timeout=%v ", c.FragPayload, time.Duration(c.AckTimeout)) + c.Net.String()
}

// Stats summarise a run.
type Stats struct {
	Commits, Aborts, Recoveries, CoordCrashes, RankCrashes int
	CtlLost, Alignment, CuttingStopped                     int
	CutsDamaged, DamageFound                               int            // CutDamage faults, restores that found one
	FramesLost, Gaps, Stale                                int            // data frames the network lost; transport gaps; stale frames dropped
	AbortReasons                                           map[string]int // at the coordinator
	RankAborts                                             map[string]int // at the ranks (by their own reason)
	Events                                                 uint64
	SimTime                                                time.Duration
	Committed                                              []uint64
}

// World is one simulated run.
type World struct {
	cfg      Config
	prog     *Program
	ref      *Reference
	eng      *engine
	store    *store
	net      *network
	coord    *coordNode
	procs    []*rankProc
	finals   []uint64
	outcome  *coordinator.Outcome
	maxEpoch uint64
	stats    Stats
	failures []string
	checked  map[uint64]bool
	// startStep is where the job started (a restored run starts at its cut).
	startStep int64
	// runningAt: when the job first ran (Go); halfAt: when a rank first
	// passed half of its steps.
	runningAt, halfAt int64
	// starting: processes the launcher is starting, per rank, by spawn id.
	starting []map[uint64]bool
}

func (w *World) now() int64                 { return w.eng.now }
func (w *World) between(lo, hi int64) int64 { return w.eng.between(lo, hi) }
func (w *World) computeTime(rank int) int64 {
	d := w.between(w.cfg.ComputeMin, w.cfg.ComputeMax)
	if rank == w.cfg.SlowRank {
		d *= 4
	}
	return d
}

func (w *World) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.eng.tracef("FAIL: %s", msg)
	if len(w.failures) < 10 {
		w.failures = append(w.failures, fmt.Sprintf("t=%.3fms: %s", float64(w.now())/1e6, msg))
	}
}

func (w *World) coordConfig() coordinator.Config {
	return coordinator.Config{Job: "sim", World: w.cfg.N, HeartbeatInterval: w.cfg.hb(),
		FailureTimeout: time.Duration(w.cfg.FailureTimeout), StartTimeout: time.Duration(w.cfg.StartTimeout),
		CutInterval: time.Duration(w.cfg.CutInterval), CutEverySteps: w.cfg.CutEverySteps,
		EpochTimeout: time.Duration(w.cfg.EpochTimeout), RequestLatency: time.Duration(w.cfg.CtlDelayMax),
		Keep: w.cfg.Keep, EpochBlock: 4, MaxRecoveries: 20, WholeWorld: w.cfg.WholeWorld,
		ConfirmSilence: true}
}

func newWorld(cfg Config, st *store) (*World, error) {
	prog := NewProgram(cfg.Pattern, cfg.N, cfg.Steps, cfg.Seed)
	ref, err := NewReference(prog)
	if err != nil {
		return nil, err
	}
	w := &World{cfg: cfg, prog: prog, ref: ref, eng: newEngine(cfg.Seed), store: st,
		procs: make([]*rankProc, cfg.N), finals: make([]uint64, cfg.N), checked: map[uint64]bool{},
		starting: make([]map[uint64]bool, cfg.N)}
	w.stats.AbortReasons = map[string]int{}
	w.stats.RankAborts = map[string]int{}
	w.net = newNetwork(w)
	return w, nil
}

// Run executes one simulated job and checks every invariant.
func Run(cfg Config) (Stats, error) {
	w, err := newWorld(cfg, newStore())
	if err != nil {
		return Stats{}, err
	}
	w.scheduleFaults()
	w.startCoordinator(coordinator.ModeNew)
	w.loop()
	return w.stats, w.verdict()
}

// RunRestore runs the job restored from committed cut epoch of a store (a
// job killed whole and started with --restore): no faults, same checks.
func RunRestore(cfg Config, from *store, epoch uint64) (Stats, error) {
	cfg.Faults = nil
	cfg.CtlLoss = 0
	cfg.Net = NetFaults{Reorder: cfg.Net.Reorder}
	cfg.HoldBudget = 64 << 20
	w, err := newWorld(cfg, from.copyUpTo(epoch))
	if err != nil {
		return Stats{}, err
	}
	if m := w.store.manifests[epoch]; m != nil {
		w.startStep = m.Step
	}
	w.startCoordinator(coordinator.ModeRestore)
	w.loop()
	return w.stats, w.verdict()
}

func (w *World) deadline() int64 {
	// Generous: the fault-free job takes Steps x ~1ms; recoveries,
	// timeouts and restarts add a few hundred ms each.
	return 30*time.Second.Nanoseconds() + int64(w.cfg.Steps)*100*ms
}

func (w *World) loop() {
	w.eng.run(w.deadline(), func() bool { return w.outcome != nil || len(w.failures) > 0 })
	if w.outcome != nil && len(w.failures) == 0 {
		w.net.auditCredit()
	}
	w.stats.Events = w.eng.steps
	w.stats.SimTime = time.Duration(w.now())
	for _, c := range w.store.committed() {
		w.stats.Committed = append(w.stats.Committed, c.Epoch)
	}
}

func (w *World) verdict() error {
	var errs []string
	errs = append(errs, w.failures...)
	if len(errs) == 0 {
		switch {
		case w.outcome == nil:
			errs = append(errs, "no outcome before the deadline: deadlock or livelock\n"+w.diagnose())
		case w.outcome.Code != coordinator.CodeFinished:
			errs = append(errs, fmt.Sprintf("job ended with exit %d: %s", w.outcome.Code, w.outcome.Reason))
		}
	}
	if len(errs) == 0 {
		for r := range w.cfg.N {
			if w.finals[r] != w.ref.State[r][w.cfg.Steps] {
				errs = append(errs, fmt.Sprintf("rank %d final state %x, reference %x", r, w.finals[r], w.ref.State[r][w.cfg.Steps]))
			}
		}
	}
	if len(errs) == 0 && w.cfg.ExpectCuttingStopped != (w.stats.CuttingStopped > 0) {
		errs = append(errs, fmt.Sprintf("cutting stopped %d times, expected %v", w.stats.CuttingStopped, w.cfg.ExpectCuttingStopped))
	}
	if len(errs) == 0 && len(w.cfg.Faults) == 0 && w.cfg.CtlLoss == 0 && !w.cfg.ExpectCuttingStopped && w.stats.DamageFound == 0 {
		// Progress: with nothing failing, cuts commit and abort only for
		// lateness (or because the job ended with one in flight).
		for reason, n := range w.stats.AbortReasons {
			if reason != wire.ReasonLate.String() && reason != wire.ReasonFinished.String() {
				errs = append(errs, fmt.Sprintf("%d aborts for %s without any fault", n, reason))
			}
		}
		if w.stats.Recoveries != 0 {
			errs = append(errs, fmt.Sprintf("%d recoveries without any fault", w.stats.Recoveries))
		}
		// Cuts must commit whenever the schedule leaves room for one: the
		// first half of the job (until the fastest rank is half way) lasts
		// several heartbeats past the cut interval, and the margin the
		// coordinator needs at the ranks' speed fits in it twice.
		if w.stats.Commits == 0 && w.runningAt > 0 && w.halfAt > w.runningAt {
			half := (w.cfg.Steps - w.startStep) / 2
			span := w.halfAt - w.runningAt
			rate := float64(half) / float64(span) // steps per ns
			margin := rate*float64(w.cfg.HB+w.cfg.CtlDelayMax) + 2
			if span >= 8*w.cfg.HB+w.cfg.CutInterval && float64(half) >= 2*margin && half >= 8 {
				errs = append(errs, fmt.Sprintf("no cut committed in a fault-free run: %d steps in the first half took %.1fms (margin %.1f steps)",
					half, float64(span)/1e6, margin))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s\n%s\nlast events:\n%s", w.cfg, strings.Join(errs, "\n"), w.eng.lastTrace(60))
}

func (w *World) diagnose() string {
	var b strings.Builder
	for r, p := range w.procs {
		if p == nil {
			fmt.Fprintf(&b, "rank %d: no process\n", r)
			continue
		}
		fmt.Fprintf(&b, "rank %d: spawn %d g %d alive %v hung %v part %v step %d pc %d/%d finished %v waitRecv %d waitCred %v\n",
			r, p.spawn, p.g, p.alive, p.hung, p.part != nil, p.step, p.pc, len(p.ops), p.finished, p.waitRecv, p.waitCred)
	}
	if w.coord != nil {
		fmt.Fprintf(&b, "coordinator: alive %v busy %v inbox %d stopped %v\n", w.coord.alive, w.coord.busy, len(w.coord.inbox), w.coord.c.Stopped())
	}
	return b.String()
}

// toCoord carries a rank's control message to whichever coordinator
// process runs when it arrives.
func (w *World) toCoord(rank int, b []byte) {
	w.net.control(rank, coordKey, func() {
		if n := w.coord; n != nil && n.alive {
			n.input(func() {
				if err := n.c.Receive(b); err != nil {
					w.failf("coordinator rejected a rank message: %v", err)
				}
			})
		}
	})
}

func (w *World) toRank(rank int, b []byte) {
	w.net.control(coordKey, rank, func() {
		if p := w.procs[rank]; p != nil {
			p.control(b)
		}
	})
}

// spawn is the launcher starting a process.
func (w *World) spawn(s coordinator.Spawn) {
	if w.starting[s.Rank] == nil {
		w.starting[s.Rank] = map[uint64]bool{}
	}
	w.starting[s.Rank][s.G] = true
	w.eng.after(w.between(w.cfg.SpawnMin, w.cfg.SpawnMax), func() {
		if w.outcome != nil || !w.starting[s.Rank][s.G] {
			return
		}
		delete(w.starting[s.Rank], s.G)
		if old := w.procs[s.Rank]; old != nil && old.alive {
			w.failf("R13: rank %d spawned at g=%d while spawn %d is alive", s.Rank, s.G, old.spawn)
			return
		}
		p := w.newRankProc(s.Rank, s.G)
		w.procs[s.Rank] = p
		p.load(s.G, s.Epoch, s.Step)
		w.eng.after(w.between(0, w.cfg.Tick), p.tick)
	})
}

// kill is the launcher's kill; it returns when the process is gone. A
// process still being started is cancelled (it must not appear after its
// replacement, R13).
func (w *World) kill(rank int, spawn uint64) {
	if p := w.procs[rank]; p != nil && p.alive && (spawn == 0 || spawn == p.spawn) {
		w.eng.tracef("launcher kills rank %d spawn %d", rank, p.spawn)
		p.die(137)
	}
	for g := range w.starting[rank] {
		if spawn == 0 || g == spawn {
			delete(w.starting[rank], g)
			w.eng.tracef("launcher cancels the start of rank %d spawn %d", rank, g)
		}
	}
}

func (w *World) launcherExit(rank int, spawn uint64, code int) {
	if n := w.coord; n != nil && n.alive {
		n.input(func() { n.c.RankExited(rank, spawn, code) })
	}
}

// commitManifest is the rename that commits a cut; the cut is checked
// against the reference right here.
func (w *World) commitManifest(m *coordinator.Manifest) {
	if _, ok := w.store.manifests[m.Epoch]; ok {
		w.failf("manifest of epoch %d committed twice", m.Epoch)
		return
	}
	w.store.manifests[m.Epoch] = m
	w.eng.tracef("store: cut %d at step %d committed", m.Epoch, m.Step)
	w.checkCut(m)
}

// checkCut verifies a committed cut against the reference execution.
func (w *World) checkCut(m *coordinator.Manifest) {
	ref := w.ref
	if m.World != w.cfg.N || len(m.Shards) != w.cfg.N || m.Step < 1 || m.Step > w.cfg.Steps {
		w.failf("cut %d: world %d, %d shards, step %d", m.Epoch, m.World, len(m.Shards), m.Step)
		return
	}
	S := m.Step
	for r := range w.cfg.N {
		sh := w.store.shards[string(m.Shards[r])]
		if sh == nil {
			w.failf("cut %d: shard %q of rank %d not durable", m.Epoch, m.Shards[r], r)
			return
		}
		if sh.Rank != r || sh.Epoch != m.Epoch || sh.Step != S {
			w.failf("cut %d: rank %d's shard is rank %d epoch %d step %d", m.Epoch, r, sh.Rank, sh.Epoch, sh.Step)
			return
		}
		if sh.State != ref.State[r][S] {
			w.failf("cut %d: rank %d captured state %x, reference after step %d is %x", m.Epoch, r, sh.State, S, ref.State[r][S])
			return
		}
		meta, err := wire.DecodeShardMeta(sh.Meta)
		if err != nil {
			w.failf("cut %d: rank %d meta: %v", m.Epoch, r, err)
			return
		}
		for _, o := range meta.Counts.Out {
			c, _ := ref.Chan(r, o.To)
			if o.Sent != ref.SentAt[c][S] {
				w.failf("cut %d: channel %d->%d: %d sent before the cut, reference %d", m.Epoch, r, o.To, o.Sent, ref.SentAt[c][S])
				return
			}
		}
		recorded := map[int]int{}
		for i, cs := range sh.Channels {
			recorded[cs.From] = i
		}
		for _, in := range meta.Counts.In {
			c, _ := ref.Chan(in.From, r)
			sent, recv := ref.SentAt[c][S], ref.RecvAt[c][S]
			if in.Delivered != recv {
				w.failf("cut %d: channel %d->%d: %d delivered before the cut, reference %d", m.Epoch, in.From, r, in.Delivered, recv)
				return
			}
			// Exactly once (R1, R4): the channel state is the messages
			// sent before the sender's cut and not received before the
			// receiver's, in order, each once.
			if in.Recorded != sent-recv {
				w.failf("cut %d: channel %d->%d: %d recorded, the cut leaves %d in flight (sent %d, received %d)",
					m.Epoch, in.From, r, in.Recorded, sent-recv, sent, recv)
				return
			}
			i, ok := recorded[in.From]
			if !ok {
				if in.Recorded != 0 {
					w.failf("cut %d: channel %d->%d: no channel state for %d recorded messages", m.Epoch, in.From, r, in.Recorded)
				}
				continue
			}
			cs := sh.Channels[i]
			if cs.FirstSeq != recv+1 || uint64(len(cs.Msgs)) != sent-recv {
				w.failf("cut %d: channel %d->%d: state of %d from seq %d, want %d from %d", m.Epoch, in.From, r, len(cs.Msgs), cs.FirstSeq, sent-recv, recv+1)
				return
			}
			for k, fb := range cs.Msgs {
				f, err := wire.DecodeFrame(fb)
				seq := recv + 1 + uint64(k)
				if err != nil || f.Data.Seq != seq || payloadKey(f.Data.Payload) != ref.Keys[c][seq-1] {
					w.failf("cut %d: channel %d->%d: recorded message %d is not the reference message %d (%v)", m.Epoch, in.From, r, k, seq, err)
					return
				}
			}
		}
	}
}
