package coordinator

import (
	"fmt"
	"slices"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// Mode says how a coordinator process starts.
type Mode uint8

const (
	// ModeNew: a new job; spawn every rank at incarnation 1 from step 0.
	ModeNew Mode = iota + 1
	// ModeRestore: the job was stopped or killed whole (`run --restore`);
	// respawn every rank from the latest committed cut.
	ModeRestore
	// ModeRejoin: this coordinator replaces one that crashed while the
	// ranks kept running; rebuild from the store and their Status (R15).
	ModeRejoin
)

// CommittedCut is a cut whose manifest is in the store.
type CommittedCut struct {
	Epoch uint64
	Step  int64
}

// Start is what the driver read from the store before New.
type Start struct {
	Mode Mode
	Now  int64
	// Record is the job record (nil only for ModeNew).
	Record *wire.JobRecord
	// Committed lists the job's committed cuts (any order).
	Committed []CommittedCut
	// Generation this coordinator claimed in the store by exclusive create
	// (it must exceed Record.Generation); 0: Record.Generation+1, or 1 for
	// a new job.
	Generation uint64
	// RestoreCut (ModeRestore only, 0: the newest intact one) is the cut
	// to restore, picked by hand; the job's newer cuts are marked bad (they
	// belong to the history the restore abandons).
	RestoreCut uint64
}

// Exit is how a rank process ended, as the launcher saw it.
type Exit struct {
	// Code is the exit status; negative, or above 128 (the shell's
	// convention), when the process died of a signal.
	Code int
	// Signal names the signal that killed it, if one did.
	Signal string
	// OOM: the launcher has evidence the kernel's OOM killer did it.
	OOM bool
	// Last is the process's last line of output (its own error, usually).
	Last string
	// World: the exit is a whole MPI world's (its launcher's), reported
	// for each rank of it; the first one processed is no more the failed
	// rank than any other, so the lines name the world, not the rank.
	World bool
}

// died reports whether the process was killed rather than exiting.
func (x Exit) died() bool { return x.Signal != "" || x.Code < 0 || x.Code > 128 }

func (x Exit) String() string {
	switch {
	case x.OOM:
		sig := x.Signal
		if sig == "" {
			sig = "SIGKILL"
		}
		return fmt.Sprintf("killed by %s (likely out of memory)", sig)
	case x.Signal != "":
		return "killed by " + x.Signal
	case x.Code < 0:
		return "killed by a signal"
	}
	return fmt.Sprintf("exited with code %d", x.Code)
}

// Stats are counters for metrics and the scale benchmark.
type Stats struct {
	Received   uint64 // rank messages decoded
	Malformed  uint64 // rank messages rejected
	Sent       uint64 // targeted messages
	Broadcasts uint64 // broadcast messages (one publish each)
	Epochs     uint64
	Commits    uint64
	Aborts     uint64
	Recoveries uint64
	// MaxSilence is the longest a running rank went unheard between two
	// of its messages (its heartbeats at least) as failure detection
	// counts it (a stall of the coordinator itself excluded): the margin
	// left under the failure timeout, e.g. on a loaded machine.
	MaxSilence time.Duration
	// Confirms counts silent ranks the launcher was asked about
	// (Ready.Confirm); Spared those of them that spoke again during the
	// grace their running process was given: losses the confirmation
	// avoided.
	Confirms uint64
	Spared   uint64
}

type phase uint8

const (
	phStarting   phase = iota + 1 // first launch: waiting for Ready(g) from all
	phRebuilding                  // ModeRejoin: collecting Status from all
	phRecovering                  // waiting for Ready(g) from all
	phRunning
	phStopped
)

// op is what to do when the job record write being awaited is durable.
type op uint8

const (
	opNone op = iota
	opLaunch
	opGo
)

type member struct {
	spawn     uint64 // the process we talk to (0: unknown)
	from      uint64 // the cut that process was spawned from (its first restore)
	alive     bool   // a process may be running for this rank
	heard     bool
	lastHeard int64
	probe     probe // confirmation of a silence by the launcher (confirm.go)
	state     wire.RankState
	g         uint64
	step      int64
	stepAt    int64
	rate      float64 // steps per second, smoothed
	sampled   bool    // rate measured since the last Go
	total     int64
	peers     []int
	finished  bool
	lost      bool // to be respawned by the next recovery
	unknown   bool // a process may run that this coordinator never heard (after a restart)
	settled   bool // rebuild: heard from a live process, or known lost
	ready     bool
	rbSent    int64 // last time a Rollback was (re)sent
	// what the rank last said about its epoch (used by the rebuild)
	epoch  uint64
	estep  int64
	ephase wire.EpochPhase
	ereas  wire.AbortReason
	cut    uint64
	report *wire.ShardReport
}

// failure identifies a rank failure, to tell a repeat from a new one.
type failure struct {
	rank  int
	epoch uint64 // the cut the failed process ran from
	how   string
}

type inflight struct {
	id         uint64
	step       int64
	final      bool
	issuedAt   int64
	reports    []*wire.ShardReport
	n          int
	committing bool
}

// Coordinator is the pure coordinator state machine. It is not safe for
// concurrent use: the driver calls it from one goroutine.
type Coordinator struct {
	cfg   Config
	now   int64
	ph    phase
	gen   uint64
	g     uint64
	ranks []member
	stats Stats
	rd    Ready // accumulates the next Ready
	// out is the Ready handed out and not yet acknowledged (handed);
	// readies numbers them, for Advance's check. writing: the seq of
	// out's job record whose write Execute started.
	out     Ready
	handed  bool
	readies uint64
	writing uint64

	rec          wire.JobRecord
	recAwait     uint64 // seq of the record write awaited, 0 none
	recThen      op
	recLimit     uint64 // EpochLimit of the awaited write
	durableLimit uint64 // epochs below it are reserved durably
	epochNext    uint64

	committed []CommittedCut // sorted by epoch
	cur       *inflight
	abandoned *inflight // was committing when a recovery began

	// for Beat
	lastBeat      int64
	beatEpoch     uint64
	beatStep      int64
	beatState     wire.EpochState
	lastCommitted uint64

	// scheduling
	demand, final    bool
	finalCommitted   bool
	cuttingStopped   bool
	factor           int
	lastCutAt        int64
	lastCutStep      int64
	maxStep          int64
	blockedFrom      int
	blockedTo        int
	blockedRun       int
	nFinished        int
	recoveries       int
	recoveryStart    int64
	inRecovery       bool
	starting         bool
	deadline         int64
	launched         bool
	nReady           int
	peersChecked     bool
	lastFailureCheck int64
	goStep           int64 // the step of the last Go

	// fallback and classification
	bad      map[uint64]bool // cuts a restore found damaged (durable in rec.BadCuts)
	lastFail failure         // the failure that started the current recovery
	launchAt int64           // a launch held back by the respawn backoff (0: none)
	causes   map[string]int  // recoveries per cause since the last commit
	silentX  int64           // failure timeout multiplier after silent losses (1..8)
	backoffs int             // respawn backoffs since the last commit
	outageAt int64           // first transient exit since the last Go (0: none)
	natsDown bool            // the driver lost its NATS connection

	// loud failure of cutting
	failRun         int
	failReason      wire.AbortReason
	nextCutAt       int64 // earliest next cut after failed ones
	unprotected     bool
	unprotectedStep int64
	lastRates       int64
	rmax            float64 // fastest step rate, steps per second (refreshRates)
	minTot          int64   // smallest declared last step, 0 none (refreshRates)
	nSampled        int     // ranks whose rate was measured since the last Go
	nSettled        int     // rebuild: ranks settled (see member.settled)
}

// New returns a coordinator for cfg starting as st says. Its first Ready
// holds the job record write that claims this coordinator's generation
// (the driver must have claimed it by exclusive create first).
func New(cfg Config, st Start) (*Coordinator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, now: st.Now, ranks: make([]member, cfg.World), factor: 1,
		blockedFrom: -1, blockedTo: -1, lastBeat: st.Now, lastCutAt: st.Now, lastFailureCheck: st.Now}
	c.bad = map[uint64]bool{}
	if st.Record != nil {
		for _, e := range st.Record.BadCuts {
			c.bad[e] = true
		}
	}
	for _, cc := range st.Committed {
		c.addCommitted(cc)
	}
	c.lastFail.rank = -1
	switch st.Mode {
	case ModeNew:
		if st.Record != nil {
			return nil, fmt.Errorf("%w: a new job with an existing job record (use restore)", ErrConfig)
		}
		c.gen = max(st.Generation, 1)
		c.epochNext = 1
		c.rec = wire.JobRecord{Job: cfg.Job, World: cfg.World, Generation: c.gen}
	case ModeRestore, ModeRejoin:
		r := st.Record
		if r == nil {
			return nil, fmt.Errorf("%w: restore or rejoin without a job record", ErrConfig)
		}
		if r.Job != cfg.Job || r.World != cfg.World {
			return nil, fmt.Errorf("%w: job record is %q with %d ranks, config says %q with %d", ErrConfig, r.Job, r.World, cfg.Job, cfg.World)
		}
		c.rec = *r
		c.rec.Recovery = cloneIntent(r.Recovery)
		c.gen = r.Generation + 1
		if st.Generation != 0 {
			if st.Generation <= r.Generation {
				return nil, fmt.Errorf("%w: claimed generation %d is not above the record's %d", ErrConfig, st.Generation, r.Generation)
			}
			c.gen = st.Generation
		}
		c.g = r.Incarnation
		c.epochNext = r.EpochLimit
		if n := len(c.committed); n > 0 && c.committed[n-1].Epoch >= c.epochNext {
			c.epochNext = c.committed[n-1].Epoch + 1
		}
		if c.epochNext == 0 {
			c.epochNext = 1
		}
		c.rec.Generation = c.gen
	default:
		return nil, fmt.Errorf("%w: start mode %d", ErrConfig, st.Mode)
	}
	c.rec.EpochLimit = c.epochNext + cfg.EpochBlock
	switch st.Mode {
	case ModeNew:
		c.ph = phStarting
		c.startRecovery(-1, "start", false)
	case ModeRestore:
		c.ph = phStarting
		for i := range c.ranks {
			c.ranks[i].lost = true
		}
		why := "restore"
		if e := st.RestoreCut; e != 0 {
			if c.stepOf(e) < 0 {
				return nil, fmt.Errorf("%w: cut %d is not a committed cut of job %q", ErrConfig, e, cfg.Job)
			}
			if c.bad[e] {
				return nil, fmt.Errorf("%w: cut %d of job %q was found damaged by an earlier restore", ErrConfig, e, cfg.Job)
			}
			// The newer cuts belong to the history this restore
			// abandons: no later recovery may jump forward to them.
			for _, cc := range c.committed {
				if cc.Epoch > e {
					c.markBad(cc.Epoch)
				}
			}
			why = fmt.Sprintf("restore of cut %d (picked by hand)", e)
		}
		c.startRecovery(-1, why, false)
	case ModeRejoin:
		c.ph = phRebuilding
		c.deadline = c.now + c.rebuildWait()
		c.persist(opNone)
	}
	return c, nil
}

func cloneIntent(ri *wire.RecoveryIntent) *wire.RecoveryIntent {
	if ri == nil {
		return nil
	}
	cp := *ri
	cp.Lost = slices.Clone(ri.Lost)
	return &cp
}

func (c *Coordinator) addCommitted(cc CommittedCut) {
	i, found := slices.BinarySearchFunc(c.committed, cc.Epoch, func(a CommittedCut, e uint64) int {
		switch {
		case a.Epoch < e:
			return -1
		case a.Epoch > e:
			return 1
		}
		return 0
	})
	if !found {
		c.committed = slices.Insert(c.committed, i, cc)
	}
	if cc.Epoch > c.lastCommitted && !c.bad[cc.Epoch] {
		c.lastCommitted = cc.Epoch
	}
}

// latest is the newest committed cut not marked bad (the zero cut: none).
func (c *Coordinator) latest() CommittedCut {
	for i := len(c.committed) - 1; i >= 0; i-- {
		if !c.bad[c.committed[i].Epoch] {
			return c.committed[i]
		}
	}
	return CommittedCut{}
}

// stepOf returns the step of committed cut e, or -1.
func (c *Coordinator) stepOf(e uint64) int64 {
	for _, cc := range c.committed {
		if cc.Epoch == e {
			return cc.Step
		}
	}
	return -1
}

// markBad records cut e as unusable for this job; the record carries it
// (the caller persists).
func (c *Coordinator) markBad(e uint64) {
	if c.bad[e] {
		return
	}
	c.bad[e] = true
	i, _ := slices.BinarySearch(c.rec.BadCuts, e)
	if len(c.rec.BadCuts) >= wire.MaxBadCuts {
		c.rec.BadCuts = c.rec.BadCuts[1:] // the oldest: long gone by GC
		i--
	}
	c.rec.BadCuts = slices.Insert(c.rec.BadCuts, max(i, 0), e)
	c.lastCommitted = c.latest().Epoch
}

// BadCuts returns the cuts marked bad, ascending.
func (c *Coordinator) BadCuts() []uint64 { return slices.Clone(c.rec.BadCuts) }

// HasReady reports whether Ready has anything to execute.
func (c *Coordinator) HasReady() bool { return c.handed || !c.rd.IsEmpty() }

// Ready returns what the driver must do. Calling it again before Advance
// returns the same Ready; inputs in between go to the next one.
func (c *Coordinator) Ready() Ready {
	if !c.handed {
		c.readies++
		c.out, c.rd, c.handed = c.rd, Ready{}, true
		c.out.n = c.readies
	}
	return c.out
}

// Advance acknowledges rd, the Ready handed out, as executed. It panics
// when rd is not that Ready (Advance without Ready, twice, or with an
// older one): the driver broke the Ready loop's contract, and going on
// would lose or repeat actions.
func (c *Coordinator) Advance(rd Ready) {
	if !c.handed || rd.n != c.out.n {
		panic(fmt.Sprintf("coordinator: Advance of Ready #%d, but %s", rd.n, handedOut(c.handed, c.out.n)))
	}
	c.out, c.handed, c.writing = Ready{}, false, 0
}

// handedOut says which Ready is handed out, for Advance's panic.
func handedOut(handed bool, n uint64) string {
	if !handed {
		return "no Ready is handed out"
	}
	return fmt.Sprintf("Ready #%d is handed out", n)
}

// Stats returns the counters.
func (c *Coordinator) Stats() Stats { return c.stats }

// Incarnation returns the current incarnation g.
func (c *Coordinator) Incarnation() uint64 { return c.g }

// Generation returns this coordinator's generation.
func (c *Coordinator) Generation() uint64 { return c.gen }

// Committed returns the committed cuts known, oldest first.
func (c *Coordinator) Committed() []CommittedCut { return slices.Clone(c.committed) }

// Stopped reports whether the job is over (an Outcome was issued).
func (c *Coordinator) Stopped() bool { return c.ph == phStopped }

func (c *Coordinator) event(ev Event) {
	if ev.G == 0 {
		ev.G = c.g
	}
	c.rd.Events = append(c.rd.Events, ev)
}

func (c *Coordinator) ev(kind EventKind, format string, args ...any) Event {
	return Event{Kind: kind, Rank: -1, Peer: -1, Text: fmt.Sprintf(format, args...)}
}

func (c *Coordinator) hdr() wire.CoordHeader { return wire.CoordHeader{CGen: c.gen, G: c.g} }

func (c *Coordinator) broadcast(m wire.CoordMsg) {
	c.rd.Messages = append(c.rd.Messages, Message{To: Broadcast, Data: wire.EncodeCoord(m)})
	c.stats.Broadcasts++
}

func (c *Coordinator) send(to int, m wire.CoordMsg) {
	c.rd.Messages = append(c.rd.Messages, Message{To: to, Data: wire.EncodeCoord(m)})
	c.stats.Sent++
}

func (c *Coordinator) persist(then op) {
	c.rec.Seq++
	r := c.rec
	r.Recovery = cloneIntent(c.rec.Recovery)
	r.BadCuts = slices.Clone(c.rec.BadCuts)
	r.Format = wire.JobRecordFormat
	c.rd.JobRecord = &r
	c.recAwait, c.recThen, c.recLimit = r.Seq, then, r.EpochLimit
}

// JobRecordWritten acknowledges the durable write of the record with Seq
// seq. Acknowledgements of superseded writes are ignored.
func (c *Coordinator) JobRecordWritten(seq uint64) {
	if seq != c.recAwait || c.ph == phStopped {
		return
	}
	c.recAwait = 0
	c.durableLimit = c.recLimit
	then := c.recThen
	c.recThen = opNone
	switch then {
	case opLaunch:
		c.launchLater()
	case opGo:
		c.goRunning()
	}
	c.progress()
}

// JobRecordFailed: the record could not be written. Without it the
// coordinator cannot survive its own crash (R15); the job fails.
func (c *Coordinator) JobRecordFailed(seq uint64, err error) {
	if seq != c.recAwait {
		return
	}
	c.fail(fmt.Sprintf("job record write %d failed: %v", seq, err))
}

// Tick advances the clock: Beat broadcast, failure and progress detection,
// epoch timeout, deadlines, cut scheduling.
func (c *Coordinator) Tick(now int64) {
	if now > c.now {
		c.now = now
	}
	if c.ph == phStopped {
		return
	}
	hb := int64(c.cfg.HeartbeatInterval)
	if c.now-c.lastBeat >= hb {
		c.lastBeat = c.now
		c.beat()
	}
	if c.now-c.lastRates >= hb/2 {
		c.lastRates = c.now
		c.refreshRates()
	}
	if c.natsDown {
		// Nobody can be heard: silence proves nothing (NATSUp restarts
		// the clocks).
		c.progress()
		return
	}
	switch c.ph {
	case phRunning:
		if c.now-c.lastFailureCheck >= hb/2 {
			// O(N), so once per half heartbeat rather than every tick.
			c.lastFailureCheck = c.now
			c.checkFailures()
		}
		if e := c.cur; c.ph == phRunning && e != nil && !e.committing && c.now-e.issuedAt > int64(c.cfg.EpochTimeout) {
			c.abortCur(wire.ReasonTimeout, -1, -1, fmt.Sprintf("not committed after %v", time.Duration(c.now-e.issuedAt)))
		}
	case phStarting, phRecovering:
		if c.launchAt != 0 && c.now >= c.launchAt && c.recAwait == 0 {
			c.launchAt = 0
			c.launch()
		}
		if c.launched && c.now > c.deadline {
			var lost, silent []int
			for r := range c.ranks {
				if !c.ranks[r].ready {
					lost = append(lost, r)
					if !c.ranks[r].heard {
						silent = append(silent, r)
					}
				}
			}
			why := fmt.Sprintf("%d ranks not ready within %v", len(lost), c.cfg.StartTimeout)
			if len(silent) > 0 {
				// Name them: a process that never speaks is not a rank
				// of this job (a wrong executable, a hung start).
				why = fmt.Sprintf("rank %d did not join within %v (%d ranks not heard)", silent[0], c.cfg.StartTimeout, len(silent))
				c.event(Event{Kind: EvRankNotJoined, Rank: silent[0], Peer: -1, Text: why})
				if c.repeated(failure{rank: silent[0], epoch: c.rec.Recovery.Epoch, how: "did not join"}, why) {
					return
				}
			}
			c.recover(lost, why)
		}
	case phRebuilding:
		if c.recAwait == 0 && (c.now > c.deadline || c.nSettled == len(c.ranks)) {
			c.decideRebuild()
		}
	}
	c.progress()
}

func (c *Coordinator) beat() {
	var ph wire.JobPhase
	switch c.ph {
	case phStarting:
		ph = wire.JobStarting
	case phRunning:
		ph = wire.JobRunning
	default:
		ph = wire.JobRecovering
	}
	c.broadcast(&wire.Beat{CoordHeader: c.hdr(), Phase: ph, Epoch: c.beatEpoch, Step: c.beatStep, State: c.beatState,
		LastCommitted: c.lastCommitted})
}

func (c *Coordinator) checkFailures() {
	var lost, confirming []int
	anySilent := false
	for r := range c.ranks {
		m := &c.ranks[r]
		if !m.alive {
			continue
		}
		silent := c.now-m.lastHeard > int64(c.cfg.FailureTimeout)*max(c.silentX, 1)
		stuck := c.cfg.ProgressTimeout > 0 && !m.finished && c.now-m.stepAt > int64(c.cfg.ProgressTimeout)
		note := ""
		if !silent {
			m.probe = probe{}
		} else if wait, n := c.confirmSilent(r, m); wait {
			// Silent, but the launcher is asked first (confirm.go);
			// lost now only with another loss.
			if !stuck {
				confirming = append(confirming, r)
				continue
			}
		} else {
			note = n
		}
		if silent || stuck {
			lost = append(lost, r)
			anySilent = anySilent || silent
			why := "silent"
			if !silent {
				why = "no progress"
			}
			c.event(Event{Kind: EvRankLost, Rank: r, Peer: -1, Step: m.step, Text: fmt.Sprintf("%s for %v%s", why, time.Duration(c.now-m.lastHeard), note)})
		}
	}
	if len(lost) > 0 && len(confirming) > 0 {
		// A recovery rolls back the others: a rank silent past the
		// failure timeout would hold it up to the start timeout, so it is
		// respawned with the lost ones, as without confirmation.
		for _, r := range confirming {
			m := &c.ranks[r]
			c.event(Event{Kind: EvRankLost, Rank: r, Peer: -1, Step: m.step,
				Text: fmt.Sprintf("silent for %v, confirmation pending: lost with rank %d", time.Duration(c.now-m.lastHeard), lost[0])})
		}
		lost = append(lost, confirming...)
		slices.Sort(lost)
	}
	if len(lost) > 0 {
		c.recover(lost, fmt.Sprintf("%d ranks lost (first %d)", len(lost), lost[0]))
		// A loaded machine makes ranks look silent: each loss by silence
		// without a commit in between doubles the patience (up to 8x the
		// failure timeout), so false detections back off instead of
		// exhausting the recovery limit; a commit halves it again.
		if anySilent {
			c.silentX = min(2*max(c.silentX, 1), 8)
		}
	}
}

// progress runs whatever became possible: cuts. It is called after every
// input, so it must not cost O(N): the O(N) checks (rebuild complete,
// failures, step rates) run in Tick.
func (c *Coordinator) progress() {
	if c.ph == phRebuilding && c.recAwait == 0 && c.nSettled == len(c.ranks) {
		c.decideRebuild()
	}
	if c.ph == phRunning {
		c.maybeCut()
	}
}

// resettle keeps the count of ranks a rebuild no longer waits for.
func (c *Coordinator) resettle(m *member) {
	s := (m.heard && m.alive) || m.lost
	if s != m.settled {
		m.settled = s
		if s {
			c.nSettled++
		} else {
			c.nSettled--
		}
	}
}

// refreshRates recomputes the fastest step rate and the smallest declared
// last step. O(N), once per heartbeat interval and before a cut.
func (c *Coordinator) refreshRates() {
	var rmax float64
	var total int64
	sampled := 0
	for r := range c.ranks {
		m := &c.ranks[r]
		if m.rate > rmax {
			rmax = m.rate
		}
		if v := m.total; v > 0 && (total == 0 || v < total) {
			total = v
		}
		if m.sampled {
			sampled++
		}
	}
	c.rmax, c.minTot, c.nSampled = rmax, total, sampled
}

// RequestCut asks for a cut as soon as possible. final: the job is being
// preempted; once this cut commits, the coordinator stops the job with
// CodeStoppedWithCut.
func (c *Coordinator) RequestCut(final bool) {
	if c.ph == phStopped {
		return
	}
	c.demand = true
	if final {
		c.final = true
	}
	c.progress()
}

// StopNow stops the job at once (the grace period of a preemption ran
// out): CodeStoppedWithCut if the final cut committed, else
// CodeStoppedNoCut.
func (c *Coordinator) StopNow(reason string) {
	if c.ph == phStopped {
		return
	}
	code := CodeStoppedNoCut
	if c.finalCommitted {
		code = CodeStoppedWithCut
	}
	c.stop(code, reason, EvJobStopped)
}

func (c *Coordinator) stop(code int, reason string, kind EventKind) {
	if code == CodeFinished && c.unprotected {
		code = CodeUnprotected
		reason = fmt.Sprintf("%s, but cutting had stopped: the job ran unprotected from step %d (last cut %d)", reason, c.unprotectedStep, c.latest().Epoch)
	}
	c.ph = phStopped
	c.broadcast(&wire.Stop{CoordHeader: c.hdr(), Code: code, Reason: reason})
	c.rd.Outcome = &Outcome{Code: code, Reason: reason, Epoch: c.lastCommitted}
	c.event(c.ev(kind, "%s (exit %d, last cut %d)", reason, code, c.lastCommitted))
}

func (c *Coordinator) fail(reason string) {
	if c.ph != phStopped {
		c.stop(CodeFailed, reason, EvJobFailed)
	}
}

// RankExited: the launcher saw the process (Rank, Spawn) exit with code
// (negative or above 128: killed by a signal). See RankEnded.
func (c *Coordinator) RankExited(rank int, spawn uint64, code int) {
	c.RankEnded(rank, spawn, Exit{Code: code})
}

// RankEnded: the launcher saw the process (Rank, Spawn) end as x says. A
// rank that reported it finished and exits 0 is no failure. A process that
// exits by itself (not killed) before it completed a step of its
// incarnation, or that fails the same way twice in a row from the same
// cut (for OOM kills: any rank, twice in a row from the same cut), failed
// deterministically: the job stops with CodeDeterministic and the
// process's own last words. RankExitCutDamaged marks the recovery's
// cut bad and falls back; RankExitTransient respawns with backoff.
func (c *Coordinator) RankEnded(rank int, spawn uint64, x Exit) {
	if rank < 0 || rank >= len(c.ranks) || c.ph == phStopped {
		return
	}
	m := &c.ranks[rank]
	if c.ph == phRebuilding {
		if spawn >= m.spawn {
			m.alive, m.heard, m.lost = false, false, true
			c.resettle(m)
		}
		return
	}
	if spawn != m.spawn || !m.alive {
		return // a process already replaced (or killed by us)
	}
	m.alive = false
	if m.finished && x.Code == 0 {
		return
	}
	if m.lost {
		return // the pending recovery respawns it already
	}
	how := x.String()
	text, why := "process "+how, fmt.Sprintf("rank %d %s", rank, how)
	if x.World {
		text = fmt.Sprintf("the MPI world of %d ranks %s (its launcher's exit: the failed rank is in the launcher's output)", len(c.ranks), how)
		why = "the MPI world " + how
	}
	if x.Last != "" {
		text += ": " + x.Last
	}
	c.event(Event{Kind: EvRankLost, Rank: rank, Peer: -1, Step: m.step, Text: text})
	from := c.goStepFor()
	ri := c.rec.Recovery
	restoring := c.ph != phRunning && ri != nil
	switch {
	case x.died():
	case x.Code == RankExitCutDamaged && restoring && !m.ready && ri.Epoch != 0:
		// A process that never spoke failed its first restore, of the
		// cut it was spawned from, which an earlier recovery may have
		// abandoned already; one that spoke failed the rollback of this
		// recovery. Marking the wrong cut bad would throw an intact cut
		// away (cutDamaged of a cut marked already only respawns).
		e := ri.Epoch
		if m.g == 0 && m.from != 0 {
			e = m.from
		}
		c.cutDamaged(rank, e, "the rank's restore found it damaged (exit code 3)"+lastWords(x))
		return
	case x.Code == RankExitTransient:
		if c.outageAt == 0 {
			c.outageAt = c.now
		}
		if c.now-c.outageAt > int64(c.cfg.OutageLimit) {
			c.fail(fmt.Sprintf("%s (NATS or the store unreachable) for more than %v", why, c.cfg.OutageLimit) + lastWords(x))
			return
		}
		c.recoverAs([]int{rank}, why+" (NATS or the store unreachable); respawning with backoff", false)
		return
	case x.Code != 0 && (restoring || (c.ph == phRunning && m.step <= from)):
		c.deterministic(fmt.Sprintf("%s before it completed a step (from cut %d)", why, c.runningFrom()), x)
		return
	}
	// A kill is no verdict on the job (a node failure, an operator, a
	// test), so it never counts as repeated, except an OOM kill: the
	// kernel enforcing a memory limit the job does not fit in does the same
	// again after every respawn. Which rank the OOM killer picks varies, so
	// two OOM kills in a row from the same cut match whatever the rank.
	f := failure{rank: rank, epoch: c.runningFrom(), how: how}
	if x.OOM {
		f.rank = -1
	}
	if (!x.died() || x.OOM) && c.repeated(f, why+lastWords(x)) {
		return
	}
	c.recover([]int{rank}, why)
}

func lastWords(x Exit) string {
	if x.Last == "" {
		return ""
	}
	return ": " + x.Last
}

// goStepFor is the step the running incarnation started from.
func (c *Coordinator) goStepFor() int64 { return c.goStep }

// runningFrom is the cut the current (or starting) incarnation runs from.
func (c *Coordinator) runningFrom() uint64 {
	if ri := c.rec.Recovery; ri != nil {
		return ri.Epoch
	}
	return c.latest().Epoch
}

// repeated notes f as the failure behind the next recovery; the same
// failure twice in a row (same rank, same cut, same way, no commit in
// between) is deterministic and stops the job (true).
func (c *Coordinator) repeated(f failure, why string) bool {
	if f == c.lastFail {
		c.deterministic(fmt.Sprintf("%s, the second time in a row from cut %d", why, f.epoch), Exit{})
		return true
	}
	c.lastFail = f
	return false
}

// deterministic stops the job: no recovery can fix this failure.
func (c *Coordinator) deterministic(why string, x Exit) {
	if c.ph == phStopped {
		return
	}
	c.stop(CodeDeterministic, "deterministic failure: "+why+lastWords(x), EvJobFailed)
}

// cutDamaged marks cut e bad (durably, with the next record write) and
// rolls every rank back to the newest older intact cut.
func (c *Coordinator) cutDamaged(rank int, e uint64, detail string) {
	if c.bad[e] {
		// Already marked (a second report): the rank still needs a
		// process restored from an intact cut.
		c.recoverAs([]int{rank}, fmt.Sprintf("rank %d: cut %d damaged (known)", rank, e), false)
		return
	}
	c.markBad(e)
	older := c.latest()
	c.event(Event{Kind: EvCutDamaged, Epoch: e, Rank: rank, Peer: -1,
		Text: fmt.Sprintf("job %s cut %d: %s; cut %d marked bad, falling back to cut %d (step %d)", c.cfg.Job, e, detail, e, older.Epoch, older.Step)})
	if c.lastFail.epoch == e {
		c.lastFail = failure{rank: -1}
	}
	c.recoverAs([]int{rank}, fmt.Sprintf("cut %d damaged (rank %d)", e, rank), false)
}

// Receive handles a message from a rank. Malformed, stale or misdirected
// messages are dropped (the error says why, for the log); a stale process
// is told to exit.
func (c *Coordinator) Receive(b []byte) error {
	m, err := wire.DecodeRank(b)
	if err != nil {
		c.stats.Malformed++
		return err
	}
	h := m.Header()
	if h.Rank >= c.cfg.World {
		c.stats.Malformed++
		return fmt.Errorf("coordinator: message from rank %d of a world of %d", h.Rank, c.cfg.World)
	}
	c.stats.Received++
	if c.ph == phStopped {
		return nil
	}
	mem := &c.ranks[h.Rank]
	if c.ph == phRebuilding {
		if h.Spawn < mem.spawn {
			c.fence(h.Rank, h.Spawn, fmt.Sprintf("rank %d runs as spawn %d", h.Rank, mem.spawn))
			return nil
		}
		if h.Spawn > mem.spawn {
			if mem.spawn != 0 {
				c.fence(h.Rank, mem.spawn, fmt.Sprintf("rank %d runs as spawn %d", h.Rank, h.Spawn))
			}
			if mem.settled {
				c.nSettled--
			}
			*mem = member{spawn: h.Spawn}
		}
		mem.alive = true
		mem.heard = true
		c.resettle(mem)
	} else if h.Spawn != mem.spawn || !mem.alive {
		c.fence(h.Rank, h.Spawn, fmt.Sprintf("rank %d runs as spawn %d", h.Rank, mem.spawn))
		return nil
	}
	mem.heard = true
	if c.ph == phRunning && mem.alive && mem.lastHeard > 0 {
		c.stats.MaxSilence = max(c.stats.MaxSilence, time.Duration(c.now-mem.lastHeard))
	}
	mem.lastHeard = c.now
	c.heardAgain(mem)
	switch m := m.(type) {
	case *wire.Status:
		c.onStatus(h.Rank, mem, m)
	case *wire.ShardReport:
		c.onReport(h.Rank, mem, m)
	case *wire.EpochAbort:
		c.onRankAbort(h.Rank, mem, m)
	case *wire.Alarm:
		c.onAlarm(h.Rank, m)
	}
	c.progress()
	return nil
}

func (c *Coordinator) fence(rank int, spawn uint64, reason string) {
	c.send(rank, &wire.Fence{CoordHeader: c.hdr(), Rank: rank, Spawn: spawn, Reason: reason})
	c.event(Event{Kind: EvFenced, Rank: rank, Peer: -1, Text: fmt.Sprintf("spawn %d: %s", spawn, reason)})
}

func (c *Coordinator) noteStep(m *member, step int64) {
	if step > m.step {
		if m.stepAt > 0 && c.now > m.stepAt {
			sample := float64(step-m.step) / (float64(c.now-m.stepAt) / 1e9)
			if m.rate == 0 {
				m.rate = sample
			} else {
				m.rate = 0.5*m.rate + 0.5*sample
			}
			if !m.sampled {
				m.sampled = true
				c.nSampled++
			}
		}
		m.step = step
		m.stepAt = c.now
		if step > c.maxStep {
			c.maxStep = step
		}
	}
}

func (c *Coordinator) onStatus(rank int, m *member, s *wire.Status) {
	if c.ph == phRebuilding {
		m.g, m.state, m.step, m.stepAt, m.total = s.G, s.State, s.Step, c.now, s.Total
		m.epoch, m.estep, m.ephase, m.ereas, m.cut = s.Epoch, s.EStep, s.Phase, s.Reason, s.Cut
		m.finished = s.State == wire.StateFinished
		if s.Hello != nil {
			m.peers = s.Hello.Peers
		}
		return
	}
	if s.Hello != nil && !c.notePeers(rank, m, s.Hello.Peers) {
		return
	}
	m.total = s.Total
	switch {
	case s.G < c.g:
		if (c.ph == phRecovering || c.ph == phStarting) && c.launched && !m.ready && c.now-m.rbSent >= int64(c.cfg.HeartbeatInterval) {
			// A survivor that missed its Rollback (control messages are
			// at most once): say it again.
			c.sendRollback(rank)
			return
		}
		if c.ph == phRunning && m.ready {
			// This process (the spawn was checked above) already said it
			// is ready at c.g, and one publisher's messages arrive in
			// order: an older incarnation's status from it is a replay
			// (anyone on the job's subjects can resend a real message),
			// not a stale process, and fencing it would let a replay
			// cost a recovery each.
			c.event(Event{Kind: EvProtocol, Rank: rank, Peer: -1, Text: fmt.Sprintf("status of incarnation %d from a process ready at %d (replayed): ignored", s.G, c.g)})
			return
		}
		if c.ph == phRunning {
			c.fence(rank, m.spawn, fmt.Sprintf("incarnation %d is stale, the job runs at %d", s.G, c.g))
			c.recover([]int{rank}, fmt.Sprintf("rank %d fenced", rank))
		}
		return
	case s.G > c.g:
		c.event(Event{Kind: EvProtocol, Rank: rank, Peer: -1, Text: fmt.Sprintf("status at incarnation %d > %d", s.G, c.g)})
		return
	}
	m.state = s.State
	switch c.ph {
	case phStarting, phRecovering:
		if !c.launched || s.State != wire.StateWaitGo || m.ready {
			return
		}
		ri := c.rec.Recovery
		if ri == nil || s.Cut != ri.Epoch {
			c.event(Event{Kind: EvProtocol, Rank: rank, Peer: -1, Text: fmt.Sprintf("ready from cut %d, recovery restores %v", s.Cut, ri)})
			return
		}
		m.ready = true
		m.step, m.stepAt = s.Step, c.now
		c.nReady++
		if c.nReady == len(c.ranks) {
			c.allReady()
		}
	case phRunning:
		c.noteStep(m, s.Step)
		if s.State == wire.StateFinished && !m.finished {
			m.finished = true
			c.nFinished++
			if c.nFinished == len(c.ranks) {
				c.stop(CodeFinished, "every rank finished", EvJobFinished)
				return
			}
		}
		if e := c.cur; e != nil && s.Epoch == e.id && s.Phase == wire.PhaseAborted && s.Reason != wire.ReasonNone {
			c.abortCur(s.Reason, rank, s.Peer, "reported in status")
		}
	}
}

// notePeers records the declared peers and, once all are known, checks
// they are symmetric (a channel needs markers both ways, R10).
func (c *Coordinator) notePeers(rank int, m *member, peers []int) bool {
	if m.peers != nil {
		if !slices.Equal(m.peers, peers) {
			c.fail(fmt.Sprintf("rank %d declared peers %v, earlier %v: the topology must not change", rank, peers, m.peers))
			return false
		}
		return true
	}
	if peers == nil {
		peers = []int{}
	}
	for _, p := range peers {
		if p >= len(c.ranks) {
			c.fail(fmt.Sprintf("rank %d declared peer %d in a world of %d", rank, p, len(c.ranks)))
			return false
		}
	}
	m.peers = peers
	return true
}

func (c *Coordinator) checkPeers() bool {
	if c.peersChecked {
		return true
	}
	for r := range c.ranks {
		if c.ranks[r].peers == nil {
			return true // not all known (a rebuilt coordinator learns them lazily)
		}
	}
	for r := range c.ranks {
		for _, p := range c.ranks[r].peers {
			if _, ok := slices.BinarySearch(c.ranks[p].peers, r); !ok {
				c.fail(fmt.Sprintf("rank %d declares peer %d, but rank %d does not declare %d: peer sets must be symmetric", r, p, p, r))
				return false
			}
		}
	}
	c.peersChecked = true
	return true
}

func (c *Coordinator) onReport(rank int, m *member, s *wire.ShardReport) {
	if c.ph == phRebuilding {
		if s.G == m.g || m.g == 0 {
			m.report = s
		}
		return
	}
	e := c.cur
	if c.ph != phRunning || s.G != c.g || e == nil || s.Epoch != e.id || e.committing || e.reports[rank] != nil {
		return // stale or a repeat
	}
	if s.Step != e.step {
		c.event(Event{Kind: EvProtocol, Epoch: e.id, Rank: rank, Peer: -1, Text: fmt.Sprintf("report at step %d for S=%d", s.Step, e.step)})
		return
	}
	e.reports[rank] = s
	e.n++
	if e.n == len(c.ranks) {
		c.tryCommit()
	}
}

func (c *Coordinator) onRankAbort(rank int, m *member, a *wire.EpochAbort) {
	if c.ph == phRebuilding {
		if a.Epoch >= m.epoch {
			m.epoch, m.ephase, m.ereas = a.Epoch, wire.PhaseAborted, a.Reason
		}
		return
	}
	if c.ph == phRunning && a.G == c.g {
		c.noteStep(m, a.Step) // a late rank says how far it is: the next S starts there
		if e := c.cur; e != nil && a.Epoch == e.id {
			c.abortCur(a.Reason, rank, a.Peer, a.Detail)
		}
	}
}

func (c *Coordinator) onAlarm(rank int, a *wire.Alarm) {
	if a.G != c.g {
		return
	}
	switch a.Kind {
	case wire.AlarmAlignment:
		c.event(Event{Kind: EvAlignment, Rank: rank, Peer: a.Peer, Step: a.RecvStep,
			Text: fmt.Sprintf("rank %d received from rank %d a message sent at step %d before its own SafePoint(%d): "+
				"SafePoints are misaligned (R7); cuts may never commit", rank, a.Peer, a.SendStep, a.RecvStep+1)})
	case wire.AlarmChannelFault:
		if c.ph == phRunning {
			c.recover(nil, fmt.Sprintf("channel %d->%d broken: %s", a.Peer, rank, a.Detail))
		}
	case wire.AlarmCutDamaged:
		if ri := c.rec.Recovery; ri != nil && c.ph != phRunning && ri.Epoch == a.Cut {
			c.cutDamaged(rank, a.Cut, a.Detail)
		}
	case wire.AlarmRestoreFailed:
		if ri := c.rec.Recovery; ri != nil && c.ph != phRunning && ri.Epoch == a.Cut {
			c.deterministic(fmt.Sprintf("rank %d cannot restore cut %d: %s", rank, a.Cut, a.Detail), Exit{})
		}
	}
}

// NATSDown tells the coordinator its driver lost (down) or regained its
// NATS connection. While down nothing is heard, so no rank is declared
// lost, no start deadline and no epoch timeout fires; on the way up every
// clock restarts.
func (c *Coordinator) NATSDown(down bool) {
	if c.natsDown == down {
		return
	}
	c.natsDown = down
	if down {
		return
	}
	c.restartClocks()
}

// Stalled tells the coordinator, before the Tick(now) that ends the
// stall, that its driver did not run for d (its
// process was not scheduled: an overloaded machine, a stop signal).
// Whatever the ranks sent meanwhile may still wait unread in buffers, so
// the stall does not count as the ranks' silence: their failure clocks
// are moved forward by d (never past now). Only the stall is forgiven,
// so a rank that is really silent is still found when stalls repeat.
func (c *Coordinator) Stalled(now int64, d time.Duration) {
	if c.ph == phStopped || d <= 0 {
		return
	}
	if now > c.now {
		c.now = now
	}
	for r := range c.ranks {
		m := &c.ranks[r]
		m.lastHeard = min(m.lastHeard+int64(d), c.now)
		m.stepAt = min(m.stepAt+int64(d), c.now)
		if m.probe.at != 0 {
			m.probe.at = min(m.probe.at+int64(d), c.now) // the grace, too, excludes the stall
		}
	}
}

func (c *Coordinator) restartClocks() {
	for r := range c.ranks {
		c.ranks[r].lastHeard = c.now
		c.ranks[r].stepAt = c.now
	}
	if c.launched && (c.ph == phStarting || c.ph == phRecovering) {
		c.deadline = c.now + int64(c.cfg.StartTimeout)
	}
	if c.ph == phRebuilding {
		c.deadline = c.now + c.rebuildWait()
	}
	if e := c.cur; e != nil {
		e.issuedAt = c.now
	}
}

// rebuildWait is how long a coordinator restart waits to hear every rank.
// Live ranks send a status every heartbeat whoever coordinates, so a rank
// not heard within two failure timeouts is as silent as a lost one: most
// likely it died with the previous coordinator's host. Waiting the whole
// start timeout for it would hold every survivor (blocked on its halos)
// for a minute.
func (c *Coordinator) rebuildWait() int64 {
	return int64(min(c.cfg.StartTimeout, 2*c.cfg.FailureTimeout))
}

// Unprotected reports whether cutting has stopped (cutting-stopped and no
// commit since) and the step of the last commit before.
func (c *Coordinator) Unprotected() (bool, int64) { return c.unprotected, c.unprotectedStep }

// Running reports whether the job runs (Go sent, no recovery in progress).
func (c *Coordinator) Running() bool { return c.ph == phRunning }
