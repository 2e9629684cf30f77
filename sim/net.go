package sim

// dataChan is the reliable FIFO channel from one rank to a peer (what
// rank/transport provides): delivery in order, exactly once within an
// incarnation, with a byte credit window.
type dataChan struct {
	lastAt    int64
	used      int64  // charged at Enqueue, not yet credited back
	inflight  int64  // bytes of this incarnation's frames on the wire
	crediting int64  // credit on its way back to the sender
	g         uint64 // incarnation the credit accounting belongs to
	waiting   bool   // the sender's job waits in Acquire
}

type ctlKey struct{ from, to int }

const coordKey = -1

type network struct {
	w     *World
	chans []dataChan // by reference channel index
	ctl   map[ctlKey]int64
}

func newNetwork(w *World) *network {
	return &network{w: w, chans: make([]dataChan, len(w.ref.SentAt)), ctl: map[ctlKey]int64{}}
}

func (n *network) ch(from, to int) *dataChan {
	c, ok := n.w.ref.Chan(from, to)
	if !ok {
		n.w.failf("frame on channel %d->%d, which is not declared", from, to)
		return &dataChan{}
	}
	return &n.chans[c]
}

// acquire waits until the window has room for bytes more (it charges
// nothing: the transport charges at Enqueue), or reports false (the caller
// waits). A frame larger than the window passes on an idle channel.
func (n *network) acquire(from, to int, bytes int64, g uint64) bool {
	c := n.ch(from, to)
	if c.g != g {
		n.resetChan(c, g)
	}
	if c.used > 0 && c.used+bytes > n.w.cfg.Window {
		c.waiting = true
		return false
	}
	return true
}

func (n *network) resetChan(c *dataChan, g uint64) {
	*c = dataChan{lastAt: c.lastAt, g: g}
}

// send is Enqueue: it charges the frame to the window and puts it on
// from->to; it arrives after a random delay, in order.
func (n *network) send(from *rankProc, to int, frame []byte) {
	c := n.ch(from.rank, to)
	if c.g != from.g {
		n.resetChan(c, from.g)
	}
	c.used += int64(len(frame))
	c.inflight += int64(len(frame))
	at := max(n.w.now()+n.w.between(n.w.cfg.DataDelayMin, n.w.cfg.DataDelayMax), c.lastAt)
	c.lastAt = at
	g := from.g
	src := from.rank
	n.w.eng.at(at, func() {
		if c.g == g {
			c.inflight -= int64(len(frame))
		}
		p := n.w.procs[to]
		if p == nil || !p.alive || p.hung {
			return
		}
		if g > p.g && p.part != nil {
			// R12: nobody sends at g before every rank is Ready(g).
			n.w.failf("data frame of incarnation %d reached rank %d at incarnation %d (sent before Go?)", g, to, p.g)
			return
		}
		if g != p.g || p.part == nil {
			return // the transport drops other incarnations (R11)
		}
		p.deliver(src, frame)
	})
}

// credit returns bytes on from->to (sent by the receiver to); it reaches
// the sender after a delay.
func (n *network) credit(from, to int, bytes int64, g uint64) {
	d := n.w.between(n.w.cfg.DataDelayMin, n.w.cfg.DataDelayMax)
	c := n.ch(from, to)
	if c.g == g {
		c.crediting += bytes
	}
	n.w.eng.after(d, func() {
		if c.g != g {
			return
		}
		c.crediting -= bytes
		c.used -= bytes
		if c.used < 0 {
			n.w.failf("credit on %d->%d below zero", from, to)
		}
		if c.waiting {
			c.waiting = false
			if p := n.w.procs[from]; p != nil {
				p.wake()
			}
		}
	})
}

// reset is transport.Reset(g) of rank r: its outgoing accounting starts over.
func (n *network) reset(r int, g uint64) {
	for _, q := range n.w.prog.Peers(r) {
		if c, ok := n.w.ref.Chan(r, q); ok {
			n.resetChan(&n.chans[c], g)
		}
	}
}

// auditCredit checks the window accounting of every channel whose two ends
// run at the same incarnation: what the sender has outstanding is exactly
// what is on the wire, what the receiver holds uncredited, and credit on
// its way back. A frame credited twice, or never (a marker, say), shows.
func (n *network) auditCredit() {
	for i := range n.w.procs {
		for _, q := range n.w.prog.Peers(i) {
			s, r := n.w.procs[i], n.w.procs[q]
			if s == nil || r == nil || !s.active() || !r.active() || s.g != r.g {
				continue
			}
			ci, _ := n.w.ref.Chan(i, q)
			c := &n.chans[ci]
			if c.g != s.g {
				continue // nothing sent at this incarnation yet
			}
			held := int64(r.part.Uncredited(i))
			if c.used != c.inflight+held+c.crediting {
				n.w.failf("credit on %d->%d: %d outstanding, but %d in flight + %d uncredited at the receiver + %d credit on its way",
					i, q, c.used, c.inflight, held, c.crediting)
			}
		}
	}
}

// control delivers a control message from -> to (rank or coordKey), at
// most once (it may be lost), in order per pair.
func (n *network) control(from, to int, deliver func()) {
	if n.w.eng.chance(n.w.cfg.CtlLoss) {
		n.w.stats.CtlLost++
		return
	}
	k := ctlKey{from, to}
	at := max(n.w.now()+n.w.between(n.w.cfg.CtlDelayMin, n.w.cfg.CtlDelayMax), n.ctl[k])
	n.ctl[k] = at
	n.w.eng.at(at, deliver)
}
