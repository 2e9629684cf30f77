package participant

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cutpoint/cutpoint/internal/exitcode"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// Errors returned to the job's calls (through the runtime) and to the
// runtime itself.
var (
	// ErrNotStarted: Send, Recv or SafePoint before Go(g). The runtime
	// waits for Ready.Started and calls again.
	ErrNotStarted = errors.New("participant: job not started (waiting for Go)")
	// ErrRolledBack: the coordinator ordered a rollback; the job's current
	// step is void. The runtime returns it from every blocked or later call
	// until the job restarts from the restored step.
	ErrRolledBack = errors.New("participant: rolled back")
	// ErrExited: the process was told to exit (fenced or job stopped).
	ErrExited = errors.New("participant: exited")
	// ErrFinished: Send or SafePoint after Finish.
	ErrFinished = errors.New("participant: job finished")
	// ErrNotPeer: Send to, Recv from or a frame from a rank that is not a
	// declared peer (R10).
	ErrNotPeer = errors.New("participant: not a declared peer")
	// ErrPendingRequests: SafePoint while requests are outstanding (R5).
	ErrPendingRequests = errors.New("participant: SafePoint with outstanding requests")
	// ErrStepOrder: SafePoint steps must strictly increase.
	ErrStepOrder = errors.New("participant: SafePoint step does not increase")
	// ErrTooLarge: a payload over wire.MaxPayload.
	ErrTooLarge = errors.New("participant: payload too large")
	// ErrConfig: invalid Config or Restore.
	ErrConfig = errors.New("participant: invalid configuration")
)

// DefaultHoldBudget is used when Config.HoldBudget is 0.
const DefaultHoldBudget = 256 << 20

// Config configures a Participant. Instants (Now, and the argument of
// Tick) are nanoseconds of a monotonic clock the runtime owns.
type Config struct {
	Rank  int
	World int
	// Peers the rank exchanges messages with, in both directions (R10).
	// Markers go to and are awaited from exactly these. The coordinator
	// checks that the declaration is symmetric.
	Peers []int
	// Spawn is the incarnation this process was spawned at (the launcher
	// passes it); Incarnation the one it runs at (>= Spawn; larger after a
	// rollback in place).
	Spawn       uint64
	Incarnation uint64
	// TotalSteps is the job's last step if known (0: unknown); the
	// coordinator never cuts past it.
	TotalSteps int64
	// HoldBudget bounds held plus recorded payload bytes per epoch; over
	// it the epoch aborts (hold-overflow).
	HoldBudget int64
	// HeartbeatInterval between Status messages (> 0).
	HeartbeatInterval time.Duration
	// CoordinatorSilence: after this long without any coordinator message
	// the rank aborts an epoch it has not reported (R15). 0: 10 heartbeats.
	CoordinatorSilence time.Duration
	// Now is the clock at construction.
	Now int64
	// Restore is the committed cut to start from; nil: step 0.
	Restore *Restore
}

// Restore is what the runtime loaded from the store for cut Epoch: the
// participant's meta and the recorded channel state of this rank's shard.
type Restore struct {
	Epoch    uint64
	Step     int64
	Meta     []byte
	Channels []ChannelState
}

// SafePointAction tells the runtime what to do at a safe point.
type SafePointAction struct {
	// Capture is true when the runtime must capture the protected buffers
	// now, before releasing its lock, for epoch Epoch at Step, and start
	// that epoch's shard writer. The markers are already in Ready.Frames,
	// behind every data frame sent before (R2).
	Capture bool
	Epoch   uint64
	Step    int64
}

// Stats are counters for metrics.
type Stats struct {
	Delivered     uint64 // messages returned by Recv
	Held          uint64 // messages held back after a marker (R1)
	Recorded      uint64 // messages recorded into channel state
	StaleDropped  uint64 // frames or control messages of another incarnation or coordinator
	Malformed     uint64 // frames or control messages that failed to decode
	Captures      uint64
	Aborts        uint64
	Commits       uint64
	AlignmentErrs uint64
	CGenRefused   uint64 // control messages whose coordinator generation jumps past MaxCGenJump
}

// MaxCGenJump bounds how far a coordinator generation may be ahead of the
// one a rank follows: each coordinator that takes over the job claims the
// next generation in the store, so only a forged message jumps further.
const MaxCGenJump = 64

type state uint8

const (
	stWaitGo state = iota + 1
	stRunning
	stFinished
	stRollingBack
	stExited
)

type msg struct {
	frame   []byte
	payload []byte
	seq     uint64
	step    int64
	credit  int // bytes still to credit when consumed; 0 once credited
}

type inChan struct {
	from      int
	delivered uint64 // seq of the last message returned by Recv
	arrived   uint64 // seq of the last message that arrived
	q         []msg  // deliverable, not yet delivered, from index head
	head      int
	held      []msg // arrived after this channel's marker, before capture
	// per epoch
	markerIn   bool
	markerSent uint64
	recording  bool
	rec        []msg
	recFirst   uint64
	faulted    bool
}

func (c *inChan) pending() int { return len(c.q) - c.head }

func (c *inChan) push(m msg) { c.q = append(c.q, m) }

func (c *inChan) pop() msg {
	m := c.q[c.head]
	c.q[c.head] = msg{}
	c.head++
	if c.head == len(c.q) {
		c.q, c.head = c.q[:0], 0
	} else if c.head > 64 && c.head*2 > len(c.q) {
		n := copy(c.q, c.q[c.head:])
		clear(c.q[n:])
		c.q, c.head = c.q[:n], 0
	}
	return m
}

type epoch struct {
	id        uint64
	step      int64
	phase     wire.EpochPhase
	reason    wire.AbortReason
	peer      int
	markersIn int
	budget    int64
	counts    wire.Counts
	report    []byte // encoded ShardReport, repeated with heartbeats until resolved
}

// Participant is the Chandy-Lamport participant of one rank. It is not safe
// for concurrent use: the runtime calls it under one mutex.
type Participant struct {
	cfg       Config
	rd        Ready // accumulates the next Ready
	out       Ready // handed out, not yet acknowledged (handed)
	handed    bool
	readies   uint64 // Readys handed out, for Advance's check
	g         uint64
	st        state
	now       int64
	lastBeat  int64
	lastHeard int64
	cgen      uint64
	step      int64
	cut       uint64 // restored cut
	chans     []int  // sorted peers plus self
	selfIdx   int
	in        []inChan
	sent      []uint64 // per channel index
	cur       *epoch
	maxEpoch  uint64
	committed uint64
	recvWait  int // channel index the job waits on in Recv, -1 none
	aligned   bool
	stats     Stats
}

// New returns a participant at incarnation cfg.Incarnation, waiting for Go.
// Its first Ready carries the Status (Ready(g), with the declared peers)
// for the coordinator.
func New(cfg Config) (*Participant, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	p := &Participant{cfg: cfg, g: cfg.Incarnation, st: stWaitGo, now: cfg.Now, lastHeard: cfg.Now,
		lastBeat: cfg.Now, recvWait: -1}
	p.chans = append(slices.Clone(cfg.Peers), cfg.Rank)
	slices.Sort(p.chans)
	p.selfIdx, _ = slices.BinarySearch(p.chans, cfg.Rank)
	p.in = make([]inChan, len(p.chans))
	p.sent = make([]uint64, len(p.chans))
	for i, r := range p.chans {
		p.in[i].from = r
	}
	if cfg.Restore != nil {
		if err := p.restore(cfg.Restore); err != nil {
			return nil, err
		}
	}
	p.sendStatus()
	return p, nil
}

func checkConfig(cfg *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if cfg.World < 1 || cfg.World > wire.MaxWorld {
		return bad("world %d out of 1..%d", cfg.World, wire.MaxWorld)
	}
	if cfg.Rank < 0 || cfg.Rank >= cfg.World {
		return bad("rank %d out of 0..%d", cfg.Rank, cfg.World-1)
	}
	peers := slices.Clone(cfg.Peers)
	slices.Sort(peers)
	for i, q := range peers {
		if q < 0 || q >= cfg.World || q == cfg.Rank || (i > 0 && q == peers[i-1]) {
			return bad("peer %d: peers must be distinct ranks in 0..%d other than %d", q, cfg.World-1, cfg.Rank)
		}
	}
	cfg.Peers = peers
	if cfg.Incarnation == 0 || cfg.Spawn == 0 || cfg.Spawn > cfg.Incarnation {
		return bad("spawn %d and incarnation %d: need 1 <= spawn <= incarnation", cfg.Spawn, cfg.Incarnation)
	}
	if cfg.TotalSteps < 0 {
		return bad("total steps %d < 0", cfg.TotalSteps)
	}
	if cfg.HeartbeatInterval <= 0 {
		return bad("heartbeat interval %d <= 0", cfg.HeartbeatInterval)
	}
	if cfg.HoldBudget < 0 {
		return bad("hold budget %d < 0", cfg.HoldBudget)
	}
	if cfg.HoldBudget == 0 {
		cfg.HoldBudget = DefaultHoldBudget
	}
	if cfg.CoordinatorSilence < 0 {
		return bad("coordinator silence %d < 0", cfg.CoordinatorSilence)
	}
	if cfg.CoordinatorSilence == 0 {
		cfg.CoordinatorSilence = 10 * cfg.HeartbeatInterval
	}
	return nil
}

func (p *Participant) restore(r *Restore) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: restore of cut %d: %s", ErrConfig, r.Epoch, fmt.Sprintf(format, args...))
	}
	meta, err := wire.DecodeShardMeta(r.Meta)
	if err != nil {
		return bad("meta: %v", err)
	}
	if meta.Rank != p.cfg.Rank || meta.World != p.cfg.World || meta.Epoch != r.Epoch || meta.Step != r.Step {
		return bad("meta is rank %d of %d, epoch %d, step %d", meta.Rank, meta.World, meta.Epoch, meta.Step)
	}
	if !slices.Equal(meta.Peers, p.cfg.Peers) {
		return bad("peers %v at the cut, %v now: the topology must not change", meta.Peers, p.cfg.Peers)
	}
	seen := make(map[int]bool, len(r.Channels))
	for _, cs := range r.Channels {
		i, ok := slices.BinarySearch(p.chans, cs.From)
		if !ok || seen[cs.From] {
			return bad("channel state from %d: not a channel, or listed twice", cs.From)
		}
		seen[cs.From] = true
		cnt := meta.Counts.In[i]
		if cs.FirstSeq != cnt.First || uint64(len(cs.Msgs)) != cnt.Recorded {
			return bad("channel from %d: %d messages from seq %d, meta says %d from %d",
				cs.From, len(cs.Msgs), cs.FirstSeq, cnt.Recorded, cnt.First)
		}
		for k, fb := range cs.Msgs {
			f, err := wire.DecodeFrame(fb)
			if err != nil || f.Kind != wire.KindData {
				return bad("channel from %d, message %d: not a data frame: %v", cs.From, k, err)
			}
			if f.Data.Seq != cs.FirstSeq+uint64(k) {
				return bad("channel from %d: message %d has seq %d, want %d", cs.From, k, f.Data.Seq, cs.FirstSeq+uint64(k))
			}
			p.in[i].push(msg{frame: fb, payload: f.Data.Payload, seq: f.Data.Seq, step: f.Data.Step})
		}
	}
	for i := range p.chans {
		cnt := meta.Counts.In[i]
		if !seen[p.chans[i]] && cnt.Recorded != 0 {
			return bad("channel from %d: meta says %d recorded messages, none given", p.chans[i], cnt.Recorded)
		}
		p.in[i].delivered = cnt.Delivered
		p.in[i].arrived = cnt.Delivered + cnt.Recorded
		p.sent[i] = meta.Counts.Out[i].Sent
	}
	// The self-channel's restored sent count must match what it recorded.
	if s := p.selfIdx; p.sent[s] != p.in[s].arrived {
		return bad("self-channel sent %d, delivered+recorded %d", p.sent[s], p.in[s].arrived)
	}
	p.step = r.Step
	p.cut = r.Epoch
	p.maxEpoch = r.Epoch
	p.committed = r.Epoch
	return nil
}

// Rank returns the rank this participant runs.
func (p *Participant) Rank() int { return p.cfg.Rank }

// Incarnation returns g.
func (p *Participant) Incarnation() uint64 { return p.g }

// Step returns the last completed SafePoint step (the restored step before
// the first one).
func (p *Participant) Step() int64 { return p.step }

// Running reports whether the job's calls may proceed (Go received, not
// finished, rolled back or exited).
func (p *Participant) Running() bool { return p.st == stRunning }

// Stats returns the counters.
func (p *Participant) Stats() Stats { return p.stats }

// HasReady reports whether Ready has anything to execute.
func (p *Participant) HasReady() bool { return p.handed || !p.rd.IsEmpty() }

// Ready returns what the runtime must do; the slices stay valid until
// Advance. Calling Ready again before Advance returns the same Ready;
// inputs in between go to the next one.
func (p *Participant) Ready() Ready {
	if !p.handed {
		p.readies++
		p.out, p.rd, p.handed = p.rd, Ready{}, true
		p.out.n = p.readies
	}
	return p.out
}

// Advance acknowledges rd, the Ready handed out, as executed in full. It
// panics when rd is not that Ready (Advance without Ready, twice, or with
// an older one): the runtime broke the Ready loop's contract, and going
// on would lose or repeat frames.
func (p *Participant) Advance(rd Ready) {
	if !p.handed || rd.n != p.out.n {
		what := "no Ready is handed out"
		if p.handed {
			what = fmt.Sprintf("Ready #%d is handed out", p.out.n)
		}
		panic(fmt.Sprintf("participant: Advance of Ready #%d, but %s", rd.n, what))
	}
	p.out, p.handed = Ready{}, false
}

func (p *Participant) hdr() wire.RankHeader {
	return wire.RankHeader{Rank: p.cfg.Rank, Spawn: p.cfg.Spawn, G: p.g}
}

func (p *Participant) control(m wire.RankMsg) {
	p.rd.Control = append(p.rd.Control, wire.EncodeRank(m))
}

func (p *Participant) event(k EventKind, e uint64, peer int, reason wire.AbortReason, format string, args ...any) {
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	p.rd.Events = append(p.rd.Events, Event{Kind: k, Epoch: e, Peer: peer, Reason: reason, Text: text})
}

func (p *Participant) wireState() wire.RankState {
	switch p.st {
	case stWaitGo:
		return wire.StateWaitGo
	case stFinished:
		return wire.StateFinished
	case stRollingBack, stExited:
		return wire.StateRollingBack
	}
	return wire.StateRunning
}

func (p *Participant) sendStatus() {
	s := &wire.Status{RankHeader: p.hdr(), State: p.wireState(), Step: p.step, Peer: -1, Cut: p.cut, Total: p.cfg.TotalSteps}
	if e := p.cur; e != nil {
		s.Epoch, s.EStep, s.Phase, s.Reason, s.Peer = e.id, e.step, e.phase, e.reason, e.peer
	}
	if p.st == stWaitGo {
		s.Hello = &wire.Hello{Peers: p.cfg.Peers}
	}
	p.control(s)
	p.lastBeat = p.now
}

// Tick advances the clock: heartbeats (with a repeat of an unresolved
// shard report) and the coordinator-silence rule (R15).
func (p *Participant) Tick(now int64) {
	if now > p.now {
		p.now = now
	}
	if p.st == stExited || p.st == stRollingBack {
		return
	}
	if e := p.cur; e != nil && e.phase >= wire.PhasePending && e.phase <= wire.PhaseSealed &&
		p.now-p.lastHeard >= int64(p.cfg.CoordinatorSilence) {
		p.abort(wire.ReasonCoordinatorSilent, -1, true, "no coordinator message for %dms", (p.now-p.lastHeard)/1e6)
	}
	if p.now-p.lastBeat >= int64(p.cfg.HeartbeatInterval) {
		p.sendStatus()
		if e := p.cur; e != nil && e.phase == wire.PhaseReported {
			p.rd.Control = append(p.rd.Control, e.report)
		}
	}
}

func (p *Participant) callErr() error {
	switch p.st {
	case stWaitGo:
		return ErrNotStarted
	case stRollingBack:
		return ErrRolledBack
	case stExited:
		return ErrExited
	case stFinished:
		return ErrFinished
	}
	return nil
}

func (p *Participant) chanIdx(r int) (int, bool) { return slices.BinarySearch(p.chans, r) }

// Send numbers payload for the channel to rank to and puts the frame in
// Ready.Frames (a send to this rank itself goes to the in-memory
// self-channel, R9). The caller acquired wire.DataHeaderLen+len(payload)
// bytes of credit on that channel first (not for the self-channel). The
// payload is copied.
func (p *Participant) Send(to int, payload []byte) error {
	if err := p.callErr(); err != nil {
		return err
	}
	i, ok := p.chanIdx(to)
	if !ok {
		return fmt.Errorf("%w: send to %d", ErrNotPeer, to)
	}
	if len(payload) > wire.MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	p.sent[i]++
	d := wire.Data{G: p.g, Seq: p.sent[i], Step: p.step, Payload: payload}
	frame := wire.AppendData(make([]byte, 0, wire.DataHeaderLen+len(payload)), d)
	if i == p.selfIdx {
		c := &p.in[i]
		c.arrived = d.Seq
		c.push(msg{frame: frame, payload: frame[wire.DataHeaderLen:], seq: d.Seq, step: d.Step})
		p.rd.Deliverable = append(p.rd.Deliverable, to)
		return nil
	}
	p.rd.Frames = append(p.rd.Frames, Frame{To: to, Data: frame})
	return nil
}

// Recv returns the next message on the channel from rank from, or ok ==
// false when none is deliverable yet: the runtime then waits for from in
// Ready.Deliverable (or a rollback/exit) and calls again. A Recv that can
// never succeed before this rank's capture (the channel's marker is in and
// nothing deliverable is left) aborts the epoch as blocked (R8), which
// releases the held messages.
func (p *Participant) Recv(from int) (payload []byte, ok bool, err error) {
	if p.st != stRunning && p.st != stFinished {
		return nil, false, p.callErr()
	}
	i, found := p.chanIdx(from)
	if !found {
		return nil, false, fmt.Errorf("%w: recv from %d", ErrNotPeer, from)
	}
	c := &p.in[i]
	if c.pending() == 0 {
		p.recvWait = i
		if e := p.cur; e != nil && e.phase == wire.PhasePending && c.markerIn {
			p.abort(wire.ReasonBlocked, from, true, "Recv(%d) at step %d waits on held messages for S=%d", from, p.step, e.step)
		}
		if c.pending() == 0 {
			return nil, false, nil
		}
	}
	p.recvWait = -1
	m := c.pop()
	c.delivered = m.seq
	p.stats.Delivered++
	p.credit(from, m.credit)
	if m.step > p.step && !p.aligned {
		// R7: received before SafePoint(p.step+1) but sent after the
		// sender's SafePoint(m.step) >= p.step+1.
		p.aligned = true
		p.stats.AlignmentErrs++
		p.control(&wire.Alarm{RankHeader: p.hdr(), Kind: wire.AlarmAlignment, Peer: from, SendStep: m.step, RecvStep: p.step,
			Detail: fmt.Sprintf("rank %d received from rank %d a message sent after its SafePoint(%d), before its own SafePoint(%d)",
				p.cfg.Rank, from, m.step, p.step+1)})
		p.event(EvAlignment, 0, from, wire.ReasonNone, "sent at step %d, received at step %d", m.step, p.step)
	}
	return m.payload, true, nil
}

// SafePoint is called by the job after it finished step (steps strictly
// increase). pendingRequests is the number of the job's outstanding
// requests; a SafePoint with any is refused (R5) and changes nothing. When
// the result says Capture, the runtime captures before releasing its lock.
func (p *Participant) SafePoint(step int64, pendingRequests int) (SafePointAction, error) {
	if err := p.callErr(); err != nil {
		return SafePointAction{}, err
	}
	if pendingRequests > 0 {
		return SafePointAction{}, fmt.Errorf("%w: %d at step %d", ErrPendingRequests, pendingRequests, step)
	}
	if step <= p.step {
		return SafePointAction{}, fmt.Errorf("%w: %d after %d", ErrStepOrder, step, p.step)
	}
	p.step = step
	e := p.cur
	if e == nil || e.phase != wire.PhasePending || step < e.step {
		return SafePointAction{}, nil
	}
	if step > e.step {
		p.abort(wire.ReasonLate, -1, true, "SafePoint(%d) skipped S=%d", step, e.step)
		return SafePointAction{}, nil
	}
	if !p.capture(e) {
		return SafePointAction{}, nil
	}
	return SafePointAction{Capture: true, Epoch: e.id, Step: e.step}, nil
}

// capture records the channel state start (R1), releases held messages,
// queues the markers behind all earlier frames (R2), and seals at once
// when every marker is already in.
func (p *Participant) capture(e *epoch) bool {
	var budget int64
	for i := range p.in {
		c := &p.in[i]
		for _, m := range c.q[c.head:] {
			budget += int64(len(m.payload))
		}
	}
	if budget > p.cfg.HoldBudget {
		p.abort(wire.ReasonHoldOverflow, -1, true, "%d undelivered bytes at capture > budget %d", budget, p.cfg.HoldBudget)
		return false
	}
	e.budget = budget
	e.counts = wire.Counts{Out: make([]wire.OutCount, len(p.chans)), In: make([]wire.InCount, len(p.chans))}
	for i := range p.in {
		c := &p.in[i]
		c.rec = append([]msg(nil), c.q[c.head:]...)
		c.recFirst = c.delivered + 1
		e.counts.Out[i] = wire.OutCount{To: c.from, Sent: p.sent[i]}
		e.counts.In[i] = wire.InCount{From: c.from, Delivered: c.delivered, First: c.recFirst}
		c.recording = i != p.selfIdx && !c.markerIn
		if len(c.held) > 0 {
			c.q = append(c.q, c.held...)
			c.held = nil
			p.rd.Deliverable = append(p.rd.Deliverable, c.from)
		}
		if i != p.selfIdx && c.markerIn && !p.checkMarkerCount(e, c) {
			return false
		}
	}
	e.phase = wire.PhaseCaptured
	p.stats.Captures++
	for i, r := range p.chans {
		if i == p.selfIdx {
			continue
		}
		p.rd.Frames = append(p.rd.Frames, Frame{To: r, Data: wire.EncodeMarker(wire.Marker{G: p.g, Epoch: e.id, Step: e.step, Sent: p.sent[i]})})
	}
	p.event(EvCaptured, e.id, -1, wire.ReasonNone, "step %d", e.step)
	if e.markersIn == len(p.chans)-1 {
		p.seal(e)
	}
	return true
}

// checkMarkerCount is the local half of R4: the marker says how many
// messages the peer sent before it; delivered before capture plus recorded
// must be exactly that.
func (p *Participant) checkMarkerCount(e *epoch, c *inChan) bool {
	got := c.recFirst - 1 + uint64(len(c.rec))
	if got == c.markerSent {
		return true
	}
	p.abort(wire.ReasonCounts, c.from, true, "channel from %d: marker says %d sent, %d delivered+recorded", c.from, c.markerSent, got)
	return false
}

func (p *Participant) seal(e *epoch) {
	s := &Seal{Epoch: e.id, Step: e.step}
	for i := range p.in {
		c := &p.in[i]
		e.counts.In[i].Recorded = uint64(len(c.rec))
		if len(c.rec) > 0 {
			cs := ChannelState{From: c.from, FirstSeq: c.recFirst, Msgs: make([][]byte, len(c.rec))}
			for k, m := range c.rec {
				cs.Msgs[k] = m.frame
				s.Bytes += int64(len(m.payload))
			}
			s.Channels = append(s.Channels, cs)
		}
		c.rec = nil
		c.recording = false
	}
	s.Meta = wire.EncodeShardMeta(wire.ShardMeta{Rank: p.cfg.Rank, World: p.cfg.World, Epoch: e.id, Step: e.step,
		G: p.g, Peers: p.cfg.Peers, Counts: e.counts})
	e.phase = wire.PhaseSealed
	e.budget = 0
	p.rd.Seal = s
	p.event(EvSealed, e.id, -1, wire.ReasonNone, "%d recorded bytes", s.Bytes)
}

// Deliver hands the participant a frame that arrived on the channel from
// rank from (the transport's Deliver, in channel order). The participant
// keeps frame (it must not be reused). Errors are for logging; a frame
// that breaks the channel raises an Alarm for the coordinator itself.
func (p *Participant) Deliver(from int, frame []byte) error {
	if p.st == stExited || p.st == stRollingBack {
		return nil
	}
	i, ok := p.chanIdx(from)
	if !ok || i == p.selfIdx {
		p.stats.Malformed++
		return fmt.Errorf("%w: frame from %d", ErrNotPeer, from)
	}
	c := &p.in[i]
	f, err := wire.DecodeFrame(frame)
	if err != nil {
		p.stats.Malformed++
		p.credit(from, len(frame))
		p.channelFault(c, "malformed frame: %v", err)
		return err
	}
	g := f.Data.G
	if f.Kind == wire.KindMarker {
		g = f.Marker.G
	}
	if g != p.g {
		// Credit belongs to an incarnation: none for an older one.
		p.stats.StaleDropped++
		return nil
	}
	if f.Kind == wire.KindMarker {
		// The transport charged the marker to the window like any
		// message; nothing waits to consume it.
		p.credit(from, len(frame))
		p.onMarker(c, f.Marker)
		return nil
	}
	d := f.Data
	if d.Seq != c.arrived+1 {
		p.credit(from, len(frame))
		p.channelFault(c, "seq %d after %d", d.Seq, c.arrived)
		return fmt.Errorf("participant: channel from %d: seq %d after %d", from, d.Seq, c.arrived)
	}
	c.arrived = d.Seq
	m := msg{frame: frame, payload: d.Payload, seq: d.Seq, step: d.Step, credit: len(frame)}
	e := p.cur
	switch {
	case e != nil && e.phase == wire.PhasePending && c.markerIn:
		// After the channel's marker, before this rank's capture: the
		// message belongs after the cut (R1). Credit it now so the sender
		// never blocks on a holding receiver (R8).
		p.credit(from, m.credit)
		m.credit = 0
		c.held = append(c.held, m)
		p.stats.Held++
		if p.charge(e, len(m.payload)) {
			return nil
		}
	case e != nil && e.phase == wire.PhaseCaptured && c.recording:
		c.rec = append(c.rec, m)
		p.stats.Recorded++
		c.push(m)
		p.rd.Deliverable = append(p.rd.Deliverable, from)
		p.charge(e, len(m.payload))
	default:
		c.push(m)
		p.rd.Deliverable = append(p.rd.Deliverable, from)
	}
	return nil
}

func (p *Participant) credit(from, n int) {
	if n > 0 {
		p.rd.Credits = append(p.rd.Credits, Credit{From: from, Bytes: n})
	}
}

// Uncredited returns the bytes of frames from rank from that sit in the
// participant waiting for the job and are not yet credited back: exactly
// what the sender's window still owes to this receiver (for metrics, and
// to check the credit accounting).
func (p *Participant) Uncredited(from int) int {
	i, ok := p.chanIdx(from)
	if !ok || p.in == nil {
		return 0
	}
	c := &p.in[i]
	n := 0
	for _, m := range c.q[c.head:] {
		n += m.credit
	}
	for _, m := range c.held {
		n += m.credit
	}
	return n
}

// charge counts bytes against the hold budget; true when the epoch is still
// alive afterwards.
func (p *Participant) charge(e *epoch, n int) bool {
	e.budget += int64(n)
	if e.budget > p.cfg.HoldBudget {
		p.abort(wire.ReasonHoldOverflow, -1, true, "%d held and recorded bytes > budget %d", e.budget, p.cfg.HoldBudget)
		return false
	}
	return true
}

// ChannelFault reports that the transport cannot repair the channel from
// or to rank peer (an unrepairable gap, a broken connection): the
// coordinator starts a recovery (R14). Reported once per channel.
func (p *Participant) ChannelFault(peer int, reason string) {
	if p.st == stExited || p.st == stRollingBack {
		return
	}
	if i, ok := p.chanIdx(peer); ok && i != p.selfIdx {
		p.channelFault(&p.in[i], "%s", reason)
	}
}

func (p *Participant) channelFault(c *inChan, format string, args ...any) {
	if c.faulted {
		return
	}
	c.faulted = true
	text := fmt.Sprintf(format, args...)
	p.control(&wire.Alarm{RankHeader: p.hdr(), Kind: wire.AlarmChannelFault, Peer: c.from, Detail: text})
	p.event(EvChannelFault, 0, c.from, wire.ReasonNone, "%s", text)
}

func (p *Participant) onMarker(c *inChan, m wire.Marker) {
	e := p.learn(m.Epoch, m.Step)
	if e == nil || e.id != m.Epoch {
		return // stale epoch (R3)
	}
	if e.step != m.Step {
		p.event(EvProtocol, e.id, c.from, wire.ReasonNone, "marker for S=%d, epoch is at S=%d", m.Step, e.step)
		return
	}
	if e.phase != wire.PhasePending && e.phase != wire.PhaseCaptured {
		return
	}
	if c.markerIn {
		p.event(EvProtocol, e.id, c.from, wire.ReasonNone, "second marker")
		return
	}
	c.markerIn = true
	c.markerSent = m.Sent
	e.markersIn++
	if e.phase == wire.PhasePending {
		i, _ := p.chanIdx(c.from)
		if p.recvWait == i && c.pending() == 0 {
			p.abort(wire.ReasonBlocked, c.from, true, "Recv(%d) at step %d waits past the marker for S=%d", c.from, p.step, e.step)
		}
		return
	}
	c.recording = false
	if !p.checkMarkerCount(e, c) {
		return
	}
	if e.markersIn == len(p.chans)-1 {
		p.seal(e)
	}
}

// learn makes epoch id (cut at step) known. It returns the current epoch
// when id is it, nil for an older one.
func (p *Participant) learn(id uint64, step int64) *epoch {
	if id <= p.maxEpoch {
		if p.cur != nil && p.cur.id == id {
			return p.cur
		}
		return nil
	}
	if e := p.cur; e != nil && e.phase >= wire.PhasePending && e.phase <= wire.PhaseSealed {
		// The coordinator starts an epoch only after the previous one was
		// resolved; this rank missed the abort.
		p.abort(wire.ReasonSuperseded, -1, false, "epoch %d seen", id)
	}
	p.maxEpoch = id
	for i := range p.in {
		p.in[i].markerIn = false
		p.in[i].markerSent = 0
	}
	e := &epoch{id: id, step: step, phase: wire.PhasePending, peer: -1}
	p.cur = e
	p.event(EvEpoch, id, -1, wire.ReasonNone, "cut at step %d", step)
	switch {
	case p.step >= step:
		// R6: past S already; never hold for this epoch.
		p.abort(wire.ReasonLate, -1, true, "at step %d when S=%d became known", p.step, step)
	case p.st == stFinished:
		p.abort(wire.ReasonFinished, -1, true, "job finished at step %d before S=%d", p.step, step)
	}
	return e
}

// abort drops the current epoch: held messages become deliverable, the
// recording stops, a started shard write is cancelled.
func (p *Participant) abort(reason wire.AbortReason, peer int, report bool, format string, args ...any) {
	e := p.cur
	if e == nil || e.phase == wire.PhaseAborted || e.phase == wire.PhaseCommitted {
		return
	}
	if e.phase == wire.PhaseCaptured || e.phase == wire.PhaseSealed {
		p.rd.Cancel = append(p.rd.Cancel, e.id)
	}
	e.phase, e.reason, e.peer, e.budget = wire.PhaseAborted, reason, peer, 0
	e.report = nil
	for i := range p.in {
		c := &p.in[i]
		if len(c.held) > 0 {
			c.q = append(c.q, c.held...)
			c.held = nil
			p.rd.Deliverable = append(p.rd.Deliverable, c.from)
		}
		c.rec = nil
		c.recording = false
	}
	p.stats.Aborts++
	text := fmt.Sprintf(format, args...)
	if report {
		p.control(&wire.EpochAbort{RankHeader: p.hdr(), Epoch: e.id, Reason: reason, Peer: peer, Step: p.step, Detail: text})
	}
	p.event(EvAborted, e.id, peer, reason, "%s", text)
}

// ShardDurable: the shard of epoch e is durable (fsynced) under ref; bytes
// and stored are its logical and written sizes. The report goes to the
// coordinator. A call for an epoch that is no longer current returns an
// error (the runtime logs it and leaves the shard to GC).
func (p *Participant) ShardDurable(e uint64, ref []byte, bytes, stored uint64) error {
	c := p.cur
	if c == nil || c.id != e || c.phase != wire.PhaseSealed {
		return fmt.Errorf("participant: shard of epoch %d durable, but that epoch is not awaiting it", e)
	}
	if len(ref) > wire.MaxRefLen {
		p.abort(wire.ReasonWriteFailed, -1, true, "shard reference of %d bytes > %d", len(ref), wire.MaxRefLen)
		return fmt.Errorf("%w: shard reference of %d bytes", ErrTooLarge, len(ref))
	}
	c.phase = wire.PhaseReported
	c.report = wire.EncodeRank(&wire.ShardReport{RankHeader: p.hdr(), Epoch: e, Step: c.step, Ref: ref,
		Bytes: bytes, Stored: stored, Counts: c.counts})
	p.rd.Control = append(p.rd.Control, c.report)
	p.event(EvReported, e, -1, wire.ReasonNone, "")
	return nil
}

// ShardFailed: writing the shard of epoch e failed; the epoch aborts.
func (p *Participant) ShardFailed(e uint64, err error) {
	if c := p.cur; c != nil && c.id == e {
		p.abort(wire.ReasonWriteFailed, -1, true, "%v", err)
	}
}

// CaptureFailed: the runtime could not capture for epoch e after SafePoint
// said Capture; the epoch aborts.
func (p *Participant) CaptureFailed(e uint64, err error) {
	if c := p.cur; c != nil && c.id == e {
		p.abort(wire.ReasonCaptureFailed, -1, true, "%v", err)
	}
}

// Finish is called when the job's code returned after its last step. A
// cut the rank has not captured is aborted (the job ends with it in
// flight); a captured one is completed. The rank then waits for Stop,
// serving Recv of messages still queued and its shard writer.
func (p *Participant) Finish() error {
	if err := p.callErr(); err != nil {
		return err
	}
	p.st = stFinished
	if e := p.cur; e != nil && e.phase == wire.PhasePending {
		p.abort(wire.ReasonFinished, -1, true, "job finished at step %d before S=%d", p.step, e.step)
	}
	p.sendStatus()
	return nil
}

// HandleControl applies a message from the coordinator. Malformed or stale
// messages are dropped; the error says why (for the log).
func (p *Participant) HandleControl(b []byte) error {
	if p.st == stExited {
		return nil
	}
	m, err := wire.DecodeCoord(b)
	if err != nil {
		p.stats.Malformed++
		return err
	}
	h := m.Header()
	if h.CGen < p.cgen {
		p.stats.StaleDropped++
		return nil
	}
	if p.cgen != 0 && h.CGen-p.cgen > MaxCGenJump {
		// Generations grow by one per coordinator that claims the job:
		// a jump this large is forged, and adopting it would make this
		// rank drop the real coordinator's messages from now on.
		p.stats.CGenRefused++
		return fmt.Errorf("%w: coordinator generation %d, this rank follows %d (more than %d ahead): dropped",
			wire.ErrMalformed, h.CGen, p.cgen, MaxCGenJump)
	}
	p.cgen = h.CGen
	p.lastHeard = p.now
	switch m := m.(type) {
	case *wire.Fence:
		if m.Rank == p.cfg.Rank && m.Spawn == p.cfg.Spawn {
			p.exit(ExitFenced, exitcode.Failure, "fenced: "+m.Reason)
		}
		return nil
	case *wire.Stop:
		if m.G >= p.g {
			p.exit(ExitStopped, m.Code, m.Reason)
		}
		return nil
	case *wire.Rollback:
		if m.Rank != p.cfg.Rank || m.Spawn != p.cfg.Spawn || m.G <= p.g || p.st == stRollingBack {
			p.stats.StaleDropped++
			return nil
		}
		if e := p.cur; e != nil && (e.phase == wire.PhaseCaptured || e.phase == wire.PhaseSealed) {
			p.rd.Cancel = append(p.rd.Cancel, e.id)
		}
		p.st = stRollingBack
		p.in, p.cur = nil, nil
		p.rd.Frames, p.rd.Credits, p.rd.Seal = nil, nil, nil
		p.rd.Rollback = &Rollback{G: m.G, Epoch: m.Epoch, Step: m.Step}
		return nil
	}
	if h.G != p.g || p.st == stRollingBack {
		p.stats.StaleDropped++
		return nil
	}
	switch m := m.(type) {
	case *wire.Go:
		p.start()
	case *wire.Cut:
		p.learn(m.Epoch, m.Step)
	case *wire.Abort:
		p.coordAbort(m.Epoch)
	case *wire.Commit:
		p.commit(m.Epoch)
	case *wire.Beat:
		if m.Phase == wire.JobRunning {
			p.start()
		}
		if m.Epoch != 0 {
			switch m.State {
			case wire.EpochInFlight:
				p.learn(m.Epoch, m.Step)
			case wire.EpochAborted:
				p.coordAbort(m.Epoch)
			case wire.EpochCommitted:
				p.commit(m.Epoch)
			}
		}
		if e := p.cur; e != nil && m.LastCommitted >= e.id && e.phase == wire.PhaseReported {
			p.commit(e.id)
		}
	}
	return nil
}

func (p *Participant) start() {
	if p.st == stWaitGo {
		p.st = stRunning
		p.rd.Started = true
		p.sendStatus()
	}
}

func (p *Participant) coordAbort(id uint64) {
	if e := p.cur; e != nil && e.id == id {
		p.abort(wire.ReasonNone, -1, false, "by the coordinator")
		return
	}
	if id > p.maxEpoch {
		// Never seen: remember it as dead so that its markers are ignored.
		p.learnDead(id)
	}
}

func (p *Participant) learnDead(id uint64) {
	if e := p.cur; e != nil && e.phase >= wire.PhasePending && e.phase <= wire.PhaseSealed {
		p.abort(wire.ReasonSuperseded, -1, false, "epoch %d seen", id)
	}
	p.maxEpoch = id
	p.cur = &epoch{id: id, phase: wire.PhaseAborted, peer: -1}
}

func (p *Participant) commit(id uint64) {
	e := p.cur
	if e == nil || e.id != id {
		return
	}
	if e.phase != wire.PhaseReported {
		if e.phase != wire.PhaseCommitted {
			p.event(EvProtocol, id, -1, wire.ReasonNone, "commit of an epoch in phase %s", e.phase)
		}
		return
	}
	e.phase = wire.PhaseCommitted
	e.report = nil
	p.committed = id
	p.rd.Committed = id
	p.stats.Commits++
	p.event(EvCommitted, id, -1, wire.ReasonNone, "")
}

func (p *Participant) exit(kind ExitKind, code int, reason string) {
	if e := p.cur; e != nil && (e.phase == wire.PhaseCaptured || e.phase == wire.PhaseSealed) {
		p.rd.Cancel = append(p.rd.Cancel, e.id)
	}
	p.st = stExited
	p.rd.Exit = &Exit{Kind: kind, Code: code, Reason: reason}
}
