package sim

// dataChan is the reliable FIFO channel from one rank to a peer (what
// rank/transport provides): delivery in order, exactly once within an
// incarnation, with a byte credit window.
type dataChan struct {
	lastAt  int64
	used    int64
	g       uint64 // incarnation the credit accounting belongs to
	waiting bool   // the sender's job waits in Acquire
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

// acquire takes n bytes of credit on from->to, or reports false (the
// caller waits). A frame larger than the window passes on an idle channel.
func (n *network) acquire(from, to int, bytes int64, g uint64) bool {
	c := n.ch(from, to)
	if c.g != g {
		c.g, c.used = g, 0
	}
	if c.used > 0 && c.used+bytes > n.w.cfg.Window {
		c.waiting = true
		return false
	}
	c.used += bytes
	return true
}

// send puts a frame on from->to; it arrives after a random delay, in order.
func (n *network) send(from *rankProc, to int, frame []byte) {
	c := n.ch(from.rank, to)
	at := max(n.w.now()+n.w.between(n.w.cfg.DataDelayMin, n.w.cfg.DataDelayMax), c.lastAt)
	c.lastAt = at
	g := from.g
	src := from.rank
	n.w.eng.at(at, func() {
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
	n.w.eng.after(d, func() {
		c := n.ch(from, to)
		if c.g != g {
			return
		}
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
	for _, q := range append(n.w.prog.Peers(r), r) {
		if c, ok := n.w.ref.Chan(r, q); ok {
			n.chans[c] = dataChan{lastAt: n.chans[c].lastAt, g: g}
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
