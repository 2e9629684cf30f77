package channel_test

import (
	"bytes"
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

var (
	flagSeeds = flag.Int("seeds", 0, "number of seeds TestSim runs (seeds 1..N; 0: 2000, 200 with -race or -short)")
	flagSeed  = flag.Uint64("seed", 0, "run only this seed of TestSim (replay)")
	flagTrace = flag.Bool("simtrace", false, "log every step of TestSim (with -seed)")
)

// TestSim wires 2 to 4 machines over a simulated network that drops,
// duplicates, delays, reorders and partitions frames, with disconnects and
// reconnects, incarnation resets (staggered across ranks) and restarts of
// a rank within an incarnation (which make unrepairable gaps), all on
// injected time, and checks per channel: exactly-once FIFO delivery of
// every message of the final incarnation (or a gap, only on a channel of a
// restarted rank), the window bound on queued bytes, the reorder bound, and
// no delivery of an older incarnation's message. Each seed is one run,
// replayed exactly by -seed.
func TestSim(t *testing.T) {
	if *flagSeed != 0 {
		if err := runSim(*flagSeed, *flagTrace, t.Logf); err != nil {
			t.Fatalf("seed %d: %v", *flagSeed, err)
		}
		return
	}
	defer func() {
		// What the seeds exercised, so that a harmless-looking run is seen
		// to have covered the repairs.
		t.Logf("totals over the seeds: %+v", simTotals)
	}()
	n := *flagSeeds
	if n == 0 {
		n = defaultSeeds
		if testing.Short() {
			n = min(n, 200)
		}
	}
	simTotals, simHostileSeeds = channel.Stats{}, 0
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if err := runSim(seed, false, t.Logf); err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./rank/transport/channel -run 'TestSim$' -seed=%d -simtrace -v", seed, err, seed)
		}
	}
	// The hostile seeds must have hit the bounds, or they tested nothing.
	if simHostileSeeds > 0 && (simTotals.AheadDropped == 0 || simTotals.AckPastSent == 0 || simTotals.AckClamped == 0) {
		t.Fatalf("%d hostile seeds, yet ahead-dropped %d, acks past sent %d, acks clamped %d",
			simHostileSeeds, simTotals.AheadDropped, simTotals.AckPastSent, simTotals.AckClamped)
	}
}

var defaultSeeds = 2000

const ms = int64(time.Millisecond)

type evKind int

const (
	evArrive evKind = iota
	evTick
	evCredit
	evSubscribed
	evReset
	evDisconnect
	evReconnect
	evRestart
)

type simEvent struct {
	at    int64
	order uint64
	kind  evKind
	node  int
	sub   channel.Sub
	frame []byte
	from  int
	n     int
	g     uint64
}

type evHeap []*simEvent

func (h evHeap) Len() int { return len(h) }
func (h evHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].order < h[j].order
}
func (h evHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)   { *h = append(*h, x.(*simEvent)) }
func (h *evHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type chanKey struct {
	from, to int
	g        uint64
}

type chanState struct {
	sent      [][]byte // messages enqueued, in order
	delivered int
	relaxed   bool // a rank of this channel restarted within g: gaps allowed
}

type simNode struct {
	m          *channel.Machine
	g          uint64
	subs       map[uint64]bool // incarnations whose subjects it is subscribed to
	down       bool
	script     map[int][][]byte // per destination: messages still to send in g
	nextTick   int64
	tickArmed  bool
	sessionCtr uint64
}

type sim struct {
	rnd    *rand.Rand
	n      int
	now    int64
	order  uint64
	q      evHeap
	nodes  []*simNode
	cfg    channel.Config
	chans  map[chanKey]*chanState
	maxLen int
	trace  func(string, ...any)

	// network
	pDrop, pDup float64
	fifo        bool
	delay       int64
	jitter      int64
	healed      bool
	partUntil   map[[2]int]int64
	lastArrive  map[[3]int]int64
	tickEvery   int64
	msgsPerChan int

	// hostile: a third party with the server's token injects frames
	// copied from the honest ones and altered: data frames far past the
	// window (seq and tx), acks past what was sent, and acks with a
	// transmission id never used and credit never granted. None of it may
	// change what the honest streams deliver.
	hostile bool
}

func runSim(seed uint64, trace bool, logf func(string, ...any)) error {
	rnd := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 2 + rnd.IntN(3)
	frag := 8 + rnd.IntN(200)
	window := 64 + rnd.IntN(4096)
	s := &sim{
		rnd:         rnd,
		n:           n,
		chans:       map[chanKey]*chanState{},
		pDrop:       rnd.Float64() * 0.3,
		pDup:        rnd.Float64() * 0.2,
		fifo:        rnd.IntN(2) == 0,
		delay:       int64(rnd.IntN(2000)) * int64(time.Microsecond),
		jitter:      int64(rnd.IntN(5000)) * int64(time.Microsecond),
		partUntil:   map[[2]int]int64{},
		lastArrive:  map[[3]int]int64{},
		msgsPerChan: 3 + rnd.IntN(25),
	}
	s.hostile = rnd.IntN(3) == 0
	if s.hostile {
		simHostileSeeds++
	}
	s.maxLen = min(3*window, 4*frag+rnd.IntN(3*window))
	s.cfg = channel.Config{
		Window: window, MaxMessage: s.maxLen, FragPayload: frag,
		AckTimeout: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AckDelay: time.Millisecond,
	}
	s.tickEvery = int64(s.cfg.AckTimeout / 4)
	if trace {
		s.trace = logf
	} else {
		s.trace = func(string, ...any) {}
	}
	s.trace("seed %d: %d ranks, window %d, fragment %d, max message %d, %d msgs/channel, drop %.2f dup %.2f fifo %v delay %v+%v",
		seed, n, window, frag, s.maxLen, s.msgsPerChan, s.pDrop, s.pDup, s.fifo, time.Duration(s.delay), time.Duration(s.jitter))
	for i := range n {
		nd := &simNode{g: 1, subs: map[uint64]bool{1: true}}
		s.nodes = append(s.nodes, nd)
		m, err := channel.New(s.cfgFor(i), 1, s.session(i), 0)
		if err != nil {
			return err
		}
		nd.m = m
		m.Subscribed()
		s.newScript(i)
	}
	// Faults during the first faultEnd of simulated time.
	faultEnd := int64(200+rnd.IntN(800)) * ms
	resets := rnd.IntN(3)
	for k := range resets {
		at := int64(rnd.IntN(int(faultEnd/ms))) * ms
		g := uint64(k + 2)
		for i := range n {
			s.push(&simEvent{at: at + int64(rnd.IntN(30))*ms, kind: evReset, node: i, g: g})
		}
	}
	for range rnd.IntN(4) {
		at := int64(rnd.IntN(int(faultEnd/ms))) * ms
		i := rnd.IntN(n)
		s.push(&simEvent{at: at, kind: evDisconnect, node: i})
		s.push(&simEvent{at: at + int64(1+rnd.IntN(100))*ms, kind: evReconnect, node: i})
	}
	for range rnd.IntN(4) {
		at := int64(rnd.IntN(int(faultEnd/ms))) * ms
		a, b := rnd.IntN(n), rnd.IntN(n)
		if a != b {
			s.partUntil[[2]int{a, b}] = 0
			s.push(&simEvent{at: at, kind: evArrive, node: -1, from: a, n: b, g: uint64(at + int64(1+rnd.IntN(150))*ms)})
		}
	}
	if rnd.IntN(4) == 0 {
		s.push(&simEvent{at: int64(rnd.IntN(int(faultEnd/ms))) * ms, kind: evRestart, node: rnd.IntN(n)})
	}
	for i := range n {
		s.ready(i)
		s.armTick(i)
	}
	const deadline = 300 * int64(time.Second)
	for len(s.q) > 0 {
		e := heap.Pop(&s.q).(*simEvent)
		s.now = e.at
		if !s.healed && s.now >= faultEnd {
			s.heal()
		}
		if s.now > deadline {
			return fmt.Errorf("not quiescent after %v: %s", time.Duration(deadline), s.pending())
		}
		if err := s.step(e); err != nil {
			return fmt.Errorf("at %v: %w", time.Duration(s.now), err)
		}
		if s.healed && s.done() {
			s.total()
			return nil
		}
	}
	if !s.done() {
		return fmt.Errorf("queue ran dry: %s", s.pending())
	}
	return nil
}

func (s *sim) cfgFor(i int) channel.Config {
	c := s.cfg
	c.Self = i
	c.Peers = nil
	for p := range s.n {
		if p != i {
			c.Peers = append(c.Peers, p)
		}
	}
	return c
}

func (s *sim) session(i int) uint64 {
	nd := s.nodes[i]
	nd.sessionCtr++
	return uint64(i+1)<<32 | nd.sessionCtr
}

func (s *sim) push(e *simEvent) {
	s.order++
	e.order = s.order
	heap.Push(&s.q, e)
}

func (s *sim) ch(from, to int, g uint64) *chanState {
	k := chanKey{from, to, g}
	c := s.chans[k]
	if c == nil {
		c = &chanState{}
		s.chans[k] = c
	}
	return c
}

func (s *sim) newScript(i int) {
	nd := s.nodes[i]
	nd.script = map[int][][]byte{}
	for to := range s.nodes {
		var msgs [][]byte
		for range s.msgsPerChan {
			var l int
			switch r := s.rnd.IntN(20); {
			case r == 0:
				l = 0
			case r < 12:
				l = 1 + s.rnd.IntN(s.cfg.FragPayload)
			default:
				l = s.rnd.IntN(s.maxLen + 1)
			}
			b := make([]byte, l)
			for k := range b {
				b[k] = byte(s.rnd.Uint32())
			}
			msgs = append(msgs, b)
		}
		nd.script[to] = msgs
	}
}

// trySend sends what the windows allow, as a sender that waits in Acquire
// would, and checks the window bound after every Enqueue.
func (s *sim) trySend(i int) error {
	nd := s.nodes[i]
	for to := range s.nodes {
		for len(nd.script[to]) > 0 {
			msg := nd.script[to][0]
			err := nd.m.Room(to, len(msg))
			if err != nil {
				c := s.ch(i, to, nd.g)
				if !errors.Is(err, channel.ErrWait) && !(errors.Is(err, channel.ErrBroken) && c.relaxed) {
					return fmt.Errorf("Room(%d->%d): %v", i, to, err)
				}
				break
			}
			if err := nd.m.Enqueue(to, msg); err != nil {
				return fmt.Errorf("Enqueue(%d->%d): %v", i, to, err)
			}
			nd.script[to] = nd.script[to][1:]
			c := s.ch(i, to, nd.g)
			c.sent = append(c.sent, msg)
			// Room let it pass: the window had room for it, or nothing was
			// outstanding and it goes alone.
			if out := nd.m.Outstanding(to); out > int64(max(s.cfg.Window, len(msg))) {
				return fmt.Errorf("channel %d->%d: %d bytes outstanding after a %d-byte message, over window %d", i, to, out, len(msg), s.cfg.Window)
			}
		}
	}
	return nil
}

// ready executes node i's Ready until it has none.
func (s *sim) ready(i int) error {
	nd := s.nodes[i]
	if err := s.trySend(i); err != nil {
		return err
	}
	nd.m.Tick(s.now) // as the driver does before taking a Ready
	x := &simPorts{s: s, i: i}
	for x.err == nil && nd.m.HasReady() {
		channel.Execute(nd.m, x)
	}
	if x.err != nil {
		return x.err
	}
	if from, b, f := s.heldOver(i); from >= 0 {
		return fmt.Errorf("node %d holds %d bytes, %d frames out of order from %d: over the bound", i, b, f, from)
	}
	for p := range s.nodes {
		if held, limit := nd.m.Uncredited(p); held > limit {
			return fmt.Errorf("node %d holds %d bytes from %d delivered and not credited, over the %d it granted", i, held, p, limit)
		}
	}
	if at := nd.m.NextAck(); at != 0 {
		s.armTickAt(i, at)
	}
	return nil
}

// simPorts are channel.Execute's ports over node i of the simulation;
// the first violation they see is kept in err.
type simPorts struct {
	s   *sim
	i   int
	err error
}

func (x *simPorts) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

func (x *simPorts) Publish(f *channel.Out) {
	s, i := x.s, x.i
	if g := s.nodes[i].g; int(f.Header.From) != i || f.Header.G != g {
		x.fail(fmt.Errorf("node %d (g=%d) publishes %+v", i, g, f.Header))
		return
	}
	s.publish(i, *f)
}

func (x *simPorts) Deliver(d channel.Delivery) {
	if err := x.s.delivered(x.i, d); err != nil {
		x.fail(err)
	}
}

func (x *simPorts) Event(ev channel.Event) {
	s, i := x.s, x.i
	s.trace("node %d event %d peer %d g %d: %v", i, ev.Kind, ev.Peer, ev.G, ev.Err)
	// Only a restart within g makes a gap.
	if ev.Kind == channel.EventGap && !s.ch(ev.Peer, i, ev.G).relaxed {
		x.fail(fmt.Errorf("node %d: gap with %d in g=%d, and neither rank restarted: %v", i, ev.Peer, ev.G, ev.Err))
	}
}

// Wake: the woken senders enqueue at once, so their frames go in the
// next Ready.
func (x *simPorts) Wake() {
	if err := x.s.trySend(x.i); err != nil {
		x.fail(err)
	}
}

func (s *sim) heldOver(i int) (int, int, int) {
	nd := s.nodes[i]
	lb, lf := nd.m.Limits()
	for p := range s.nodes {
		if b, f, asm := nd.m.Held(p); b > lb || f > lf || asm > s.maxLen {
			return p, b, f
		}
	}
	return -1, 0, 0
}

func (s *sim) delivered(i int, d channel.Delivery) error {
	nd := s.nodes[i]
	if d.G != nd.g {
		return fmt.Errorf("node %d at g=%d delivers a message of g=%d from %d", i, nd.g, d.G, d.From)
	}
	c := s.ch(d.From, i, d.G)
	s.trace("node %d delivers #%d from %d (g=%d, %d bytes)", i, c.delivered, d.From, d.G, len(d.Msg))
	if !c.relaxed {
		if c.delivered >= len(c.sent) {
			return fmt.Errorf("channel %d->%d g=%d: delivery #%d, only %d sent", d.From, i, d.G, c.delivered, len(c.sent))
		}
		if want := c.sent[c.delivered]; !bytes.Equal(want, d.Msg) {
			return fmt.Errorf("channel %d->%d g=%d: delivery #%d is not message #%d (%d bytes, want %d)", d.From, i, d.G, c.delivered, c.delivered, len(d.Msg), len(want))
		}
	}
	c.delivered++
	s.push(&simEvent{at: s.now + int64(s.rnd.IntN(5000))*int64(time.Microsecond), kind: evCredit, node: i, from: d.From, n: len(d.Msg), g: d.G})
	return nil
}

func (s *sim) publish(i int, f channel.Out) {
	frame := channel.AppendFrame(nil, &f.Header, f.Payload)
	kind := "data"
	if f.Sub == channel.AckSub {
		kind = "ack"
	}
	if s.nodes[i].down || s.nodes[f.To].down || s.parted(i, f.To) {
		s.trace("node %d -> %d %s %+v: lost (down or partitioned)", i, f.To, kind, f.Header)
		return
	}
	copies := 1
	if !s.healed {
		if s.rnd.Float64() < s.pDrop {
			copies = 0
		} else if s.rnd.Float64() < s.pDup {
			copies = 2
		}
	}
	s.trace("node %d -> %d %s type %d seq %d tx %d cum %d gapEnd %d flags %d: %d copies", i, f.To, kind, f.Header.Type, f.Header.Seq, f.Header.Tx, f.Header.Cum, f.Header.GapEnd, f.Header.Flags, copies)
	if s.hostile {
		s.forge(i, f)
	}
	for range copies {
		at := s.now + s.delay + s.rnd.Int64N(s.jitter+1)
		if s.fifo {
			k := [3]int{i, f.To, int(f.Sub)}
			at = max(at, s.lastArrive[k])
			s.lastArrive[k] = at
		}
		s.push(&simEvent{at: at, kind: evArrive, node: f.To, sub: f.Sub, frame: slices.Clone(frame), g: f.Header.G})
	}
}

// forge injects, now and then, an altered copy of honest frame f from i.
func (s *sim) forge(i int, f channel.Out) {
	h := f.Header
	var payload []byte
	switch {
	case f.Sub == channel.DataSub && h.Type == channel.TypeData && s.rnd.IntN(4) == 0:
		// Forged ahead: far past any window, with a tx far past the
		// sender's, and a payload of its own.
		h.Seq += 1<<20 + uint64(s.rnd.IntN(1000))
		h.Tx += 1 << 30
		payload = make([]byte, len(f.Payload))
		for k := range payload {
			payload[k] = byte(s.rnd.Uint32())
		}
	case f.Sub == channel.AckSub && h.Type == channel.TypeAck && s.rnd.IntN(20) == 0:
		if s.rnd.IntN(2) == 0 {
			h.Cum += 1 << 30 // past what was sent
			if h.GapEnd != 0 {
				h.GapEnd += 1 << 30
			}
		} else {
			h.LastTx += 1 << 30 // never transmitted
			h.Credited += 1 << 30
		}
	default:
		return
	}
	b := channel.AppendFrame(nil, &h, payload)
	s.trace("forged %d -> %d type %d seq %d tx %d cum %d", i, f.To, h.Type, h.Seq, h.Tx, h.Cum)
	s.push(&simEvent{at: s.now + s.rnd.Int64N(s.jitter+s.delay+1), kind: evArrive, node: f.To, sub: f.Sub, frame: b, g: h.G})
}

func (s *sim) parted(a, b int) bool {
	return s.partUntil[[2]int{a, b}] > s.now || s.partUntil[[2]int{b, a}] > s.now
}

func (s *sim) heal() {
	s.healed = true
	s.trace("heal")
	for k := range s.partUntil {
		s.partUntil[k] = 0
	}
	for i, nd := range s.nodes {
		if nd.down {
			nd.down = false
			nd.m.Reconnected()
			_ = s.ready(i)
		}
	}
}

func (s *sim) armTick(i int) { s.armTickAt(i, s.now+s.tickEvery) }

func (s *sim) armTickAt(i int, at int64) {
	nd := s.nodes[i]
	if nd.tickArmed && nd.nextTick <= at {
		return
	}
	nd.tickArmed, nd.nextTick = true, at
	s.push(&simEvent{at: at, kind: evTick, node: i})
}

func (s *sim) step(e *simEvent) error {
	if e.node < 0 { // a partition starts; g holds its end
		s.partUntil[[2]int{e.from, e.n}] = int64(e.g)
		s.trace("partition %d-%d until %v", e.from, e.n, time.Duration(e.g))
		return nil
	}
	i := e.node
	nd := s.nodes[i]
	switch e.kind {
	case evArrive:
		// A frame reaches a rank subscribed to its incarnation's
		// subjects; now and then one of another incarnation does too
		// (forged or misrouted onto the current subjects).
		if nd.down || (!nd.subs[e.g] && s.rnd.IntN(8) != 0) {
			return nil
		}
		nd.m.Receive(s.now, e.sub, e.frame)
	case evTick:
		if nd.nextTick != s.now {
			return nil // superseded by an earlier one
		}
		nd.tickArmed = false
		nd.m.Tick(s.now)
		s.armTick(i)
	case evCredit:
		if e.g == nd.g {
			nd.m.Tick(s.now) // as the driver does
			nd.m.Credit(e.from, e.n)
		}
	case evReset:
		if e.g <= nd.g {
			return nil
		}
		s.trace("node %d resets to g=%d", i, e.g)
		if err := nd.m.Reset(e.g, s.session(i)); err != nil {
			return err
		}
		nd.g = e.g
		nd.subs[e.g] = true
		s.newScript(i)
		s.push(&simEvent{at: s.now + int64(s.rnd.IntN(3000))*int64(time.Microsecond), kind: evSubscribed, node: i, g: e.g})
	case evSubscribed:
		if e.g != nd.g {
			return nil
		}
		for g := range nd.subs {
			if g != e.g {
				delete(nd.subs, g)
			}
		}
		nd.m.Subscribed()
	case evDisconnect:
		if nd.down || s.healed {
			return nil
		}
		s.trace("node %d disconnected", i)
		nd.down = true
		nd.m.Disconnected()
	case evReconnect:
		if !nd.down {
			return nil
		}
		s.trace("node %d reconnected", i)
		nd.down = false
		nd.m.Reconnected()
	case evRestart:
		// The process loses its channel state within g (no recovery):
		// every channel it is on may now report an unrepairable gap.
		s.trace("node %d restarts within g=%d", i, nd.g)
		for p := range s.nodes {
			s.ch(i, p, nd.g).relaxed = true
			s.ch(p, i, nd.g).relaxed = true
		}
		m, err := channel.New(s.cfgFor(i), nd.g, s.session(i), s.now)
		if err != nil {
			return err
		}
		nd.m = m
		nd.down = false
		m.Subscribed()
		s.newScript(i)
	}
	return s.ready(i)
}

var (
	simTotals       channel.Stats
	simHostileSeeds int
)

func (s *sim) total() {
	for _, nd := range s.nodes {
		st := nd.m.Stats()
		t := &simTotals
		t.Fragmented += st.Fragmented
		t.FramesSent += st.FramesSent
		t.FramesReceived += st.FramesReceived
		t.Retransmits += st.Retransmits
		t.Timeouts += st.Timeouts
		t.Probes += st.Probes
		t.AcksSent += st.AcksSent
		t.AcksReceived += st.AcksReceived
		t.Duplicates += st.Duplicates
		t.ReorderDropped += st.ReorderDropped
		t.StaleDropped += st.StaleDropped
		t.FutureDropped += st.FutureDropped
		t.Malformed += st.Malformed
		t.Gaps += st.Gaps
		t.MsgsSent += st.MsgsSent
		t.BytesSent += st.BytesSent
		t.MsgsReadied += st.MsgsReadied
		t.BytesReadied += st.BytesReadied
		t.Resets += st.Resets
		t.AheadDropped += st.AheadDropped
		t.WindowDropped += st.WindowDropped
		t.Conflicts += st.Conflicts
		t.AckPastSent += st.AckPastSent
		t.AckClamped += st.AckClamped
	}
}

// done: every message of each rank's current incarnation was sent and,
// on channels without a restart, delivered.
func (s *sim) done() bool {
	for i, nd := range s.nodes {
		for to := range s.nodes {
			c := s.ch(i, to, nd.g)
			if !c.relaxed && (len(nd.script[to]) > 0 || s.nodes[to].g != nd.g || c.delivered < len(c.sent)) {
				return false
			}
		}
	}
	return true
}

func (s *sim) pending() string {
	var b bytes.Buffer
	for i, nd := range s.nodes {
		for to := range s.nodes {
			c := s.ch(i, to, nd.g)
			fmt.Fprintf(&b, "\n  %d->%d g=%d: %d to send, %d sent, %d delivered (receiver g=%d, relaxed %v), outstanding %d, unacked %d",
				i, to, nd.g, len(nd.script[to]), len(c.sent), c.delivered, s.nodes[to].g, c.relaxed, nd.m.Outstanding(to), nd.m.Unacked())
		}
	}
	return b.String()
}

// TestReadyAdvance: Ready is stable until Advance, and inputs in between
// go to the next Ready.
func TestReadyAdvance(t *testing.T) {
	cfg := channel.Config{Self: 0, Peers: []int{1}, Window: 1 << 10, MaxMessage: 1 << 12, FragPayload: 100,
		AckTimeout: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AckDelay: time.Millisecond}
	m, err := channel.New(cfg, 1, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.HasReady() {
		t.Fatalf("a new machine has a Ready before Subscribed: %+v", m.Ready())
	}
	m.Subscribed()
	if err := m.Enqueue(1, make([]byte, 250)); err != nil {
		t.Fatal(err)
	}
	r1 := m.Ready()
	if len(r1.Frames) != 1+3 { // the hello, then three fragments
		t.Fatalf("Ready has %d frames, want 4: %+v", len(r1.Frames), r1.Frames)
	}
	for k, f := range r1.Frames[1:] {
		if f.Header.Seq != uint64(k+1) || f.Header.Offset != uint64(100*k) || f.Header.MsgLen != 250 {
			t.Errorf("fragment %d: %+v", k, f.Header)
		}
	}
	if err := m.Enqueue(0, []byte("self")); err != nil {
		t.Fatal(err)
	}
	if r2 := m.Ready(); len(r2.Frames) != len(r1.Frames) || len(r2.Deliver) != 0 {
		t.Fatalf("Ready changed before Advance: %+v", r2)
	}
	mustPanic(t, "Advance of a Ready not handed out", func() { m.Advance(channel.Ready{}) })
	m.Advance(r1)
	mustPanic(t, "Advance twice", func() { m.Advance(r1) })
	r3 := m.Ready()
	if len(r3.Frames) != 0 || len(r3.Deliver) != 1 || string(r3.Deliver[0].Msg) != "self" {
		t.Fatalf("next Ready: %+v", r3)
	}
	mustPanic(t, "Advance of the Ready before", func() { m.Advance(r1) })
	m.Advance(r3)
	if m.HasReady() {
		t.Fatalf("still a Ready: %+v", m.Ready())
	}
	if err := m.Room(1, 1<<10); !errors.Is(err, channel.ErrWait) {
		t.Fatalf("Room with 250 of 1024 bytes outstanding for 1024 more: %v", err)
	}
	if err := m.Room(2, 1); !errors.Is(err, channel.ErrUnknownPeer) {
		t.Fatalf("Room to an undeclared rank: %v", err)
	}
}

// mustPanic: Advance out of the contract (Ready, execute, Advance of that
// Ready) is a bug of the caller, never silently accepted.
func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}
