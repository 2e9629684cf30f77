package sim

import (
	"errors"
	"fmt"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// The data plane is the real transport: every rank process runs a
// channel.Machine (the one rank/transport's Endpoint drives over NATS),
// and its frames cross a seeded network that delays, reorders, drops,
// duplicates and partitions them. What the participant sees is only what
// the machine delivers, so the protocol is proven over the transport as
// built, not over an ideal channel.

// NetFaults are the data network's misbehaviour in one run.
type NetFaults struct {
	Drop, Dup float64 // per frame
	// Reorder: every frame takes its own delay; otherwise frames from one
	// publisher to one subscriber keep their order (as NATS keeps them).
	Reorder bool
	// Partitions cut the data frames between two ranks (both ways) for a
	// while.
	Partitions []Partition
	// Disconnects take a rank's connection down for a while: its frames
	// and the frames for it are lost, and the machine is told
	// (Disconnected, Reconnected), as the Endpoint tells it.
	Disconnects []Disconnect
}

// Partition cuts ranks A and B apart during [From, To).
type Partition struct {
	A, B     int
	From, To int64
}

// Disconnect takes rank's connection down during [From, To).
type Disconnect struct {
	Rank     int
	From, To int64
}

func (f NetFaults) String() string {
	s := fmt.Sprintf("drop=%.3f dup=%.3f reorder=%v", f.Drop, f.Dup, f.Reorder)
	for _, p := range f.Partitions {
		s += fmt.Sprintf(" partition(%d|%d %.1f-%.1fms)", p.A, p.B, float64(p.From)/1e6, float64(p.To)/1e6)
	}
	for _, d := range f.Disconnects {
		s += fmt.Sprintf(" disconnect(%d %.1f-%.1fms)", d.Rank, float64(d.From)/1e6, float64(d.To)/1e6)
	}
	return s
}

type ctlKey struct{ from, to int }

const coordKey = -1

type network struct {
	w     *World
	order map[ctlKey]int64 // FIFO: latest arrival per publisher and subscriber
	ctl   map[ctlKey]int64
}

func newNetwork(w *World) *network {
	return &network{w: w, order: map[ctlKey]int64{}, ctl: map[ctlKey]int64{}}
}

func (n *network) cut(a, b int) bool {
	now := n.w.now()
	for _, p := range n.w.cfg.Net.Partitions {
		if ((p.A == a && p.B == b) || (p.A == b && p.B == a)) && now >= p.From && now < p.To {
			return true
		}
	}
	return false
}

func (n *network) down(r int) bool {
	now := n.w.now()
	for _, d := range n.w.cfg.Net.Disconnects {
		if d.Rank == r && now >= d.From && now < d.To {
			return true
		}
	}
	return false
}

// publish puts frame f of rank process from on the network: encoded as
// the Endpoint encodes it, then lost, duplicated, delayed.
func (n *network) publish(from *rankProc, f *channel.Out) {
	w := n.w
	if n.down(from.rank) || n.cut(from.rank, f.To) || w.eng.chance(w.cfg.Net.Drop) {
		w.stats.FramesLost++
		return
	}
	b := channel.AppendFrame(nil, &f.Header, f.Payload)
	copies := 1
	if w.eng.chance(w.cfg.Net.Dup) {
		copies = 2
	}
	for range copies {
		at := w.now() + w.between(w.cfg.DataDelayMin, w.cfg.DataDelayMax)
		if !w.cfg.Net.Reorder {
			k := ctlKey{from.rank, f.To}
			at = max(at, n.order[k])
			n.order[k] = at
		}
		frame := b
		if copies > 1 {
			frame = append([]byte(nil), b...) // the machine owns what it receives
		}
		to, sub, src, g := f.To, f.Sub, from.rank, f.Header.G
		w.eng.at(at, func() { n.arrive(src, to, sub, g, frame) })
	}
}

// arrive hands a frame to the process of rank to, if it is subscribed to
// the frame's subject: its current incarnation's, or the previous one's
// for a moment after a Reset (the Endpoint unsubscribes the old subjects
// only once the new ones are registered, so frames still in flight on
// them arrive and are dropped as stale).
func (n *network) arrive(src, to int, sub channel.Sub, g uint64, frame []byte) {
	w := n.w
	p := w.procs[to]
	if p == nil || !p.alive || p.hung || p.tm == nil || n.down(to) || n.cut(src, to) {
		return
	}
	if sub == channel.DataSub && g > p.g && p.part != nil && len(frame) > channel.CommonHeaderLen && frame[1] == channel.TypeData {
		// R12: nobody sends data at g before every rank is Ready(g).
		w.failf("data frame of incarnation %d reached rank %d at incarnation %d (sent before Go?)", g, to, p.g)
		return
	}
	if g != p.g && (g != p.oldG || w.now() >= p.oldUntil) {
		return // not subscribed to that subject
	}
	p.tm.Receive(w.now(), sub, frame)
	p.drain()
}

// auditCredit checks, on every live rank, that the transport and the
// participant agree on the window: what the machine accepted in order on
// a channel and was not credited back is exactly what the participant
// holds uncredited plus the message being reassembled. A frame credited
// twice, or never (a marker, say), shows.
func (n *network) auditCredit() {
	for _, r := range n.w.procs {
		if r == nil || !r.active() || r.tm.G() != r.part.Incarnation() {
			continue
		}
		for _, from := range append(n.w.prog.Peers(r.rank), r.rank) {
			var held uint64
			if from == r.rank {
				held = uint64(r.tm.Outstanding(from))
			} else {
				held, _ = r.tm.Uncredited(from)
				_, _, asm := r.tm.Held(from)
				held -= uint64(asm)
			}
			if want := uint64(r.part.Uncredited(from)); held != want {
				n.w.failf("credit on %d->%d: the transport holds %d bytes uncredited, the participant %d", from, r.rank, held, want)
			}
		}
	}
}

// control delivers a control message from -> to (rank or coordKey), at
// most once (it may be lost), in order per pair.
func (n *network) control(from, to int, deliver func()) {
	if n.w.eng.chance(n.w.cfg.CtlLoss) || (from >= 0 && n.down(from)) || (to >= 0 && n.down(to)) {
		n.w.stats.CtlLost++
		return
	}
	k := ctlKey{from, to}
	at := max(n.w.now()+n.w.between(n.w.cfg.CtlDelayMin, n.w.cfg.CtlDelayMax), n.ctl[k])
	n.ctl[k] = at
	n.w.eng.at(at, deliver)
}

// errGap is how the simulation names a gap the transport reported: with
// every process restart a new incarnation, a whole-stack run never loses
// a channel's state within one, so a gap is a transport bug.
var errGap = errors.New("the transport reported an unrepairable gap, which no fault of this simulation makes")
