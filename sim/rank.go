package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/participant"
	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// rankProc is one rank process: the job (a deterministic program), the
// participant, and the runtime glue between them, the transport and the
// store. Its drain method is the reference for how a rank runtime executes
// a participant's Ready.
type rankProc struct {
	w     *World
	rank  int
	spawn uint64
	g     uint64 // the transport's incarnation
	alive bool   // the process exists
	hung  bool   // exists, but does nothing (a lost node)
	part  *participant.Participant
	// tm is the process's transport: the real channel machine, which the
	// Endpoint drives in production.
	tm *channel.Machine
	// oldG, oldUntil: the previous incarnation's subjects stay subscribed
	// until then (see network.arrive).
	oldG     uint64
	oldUntil int64
	ackAt    int64 // a Tick for the machine's delayed ack is scheduled then (0: none)

	// the job
	st       uint64
	step     int64 // last completed step
	pc       int
	ops      []Op
	finished bool
	appGen   uint64 // bumped on rollback: stale scheduled job events do nothing
	appSched bool
	waitRecv int
	waitCred bool

	writers map[uint64]*writer
}

// writer is the fake shard writer: captured buffers are written in the
// background while the job runs; the channel state arrives with Seal.
type writer struct {
	epoch     uint64
	step      int64
	st        uint64
	bufDone   bool
	seal      *participant.Seal
	cancelled bool
	part      *participant.Participant
}

func (w *World) newRankProc(rank int, spawn uint64) *rankProc {
	r := &rankProc{w: w, rank: rank, spawn: spawn, g: spawn, alive: true, waitRecv: -1, writers: map[uint64]*writer{}}
	tm, err := channel.New(w.transportConfig(rank), spawn, w.session(), w.now())
	if err != nil {
		w.failf("rank %d: channel.New: %v", rank, err)
		r.alive = false
		return r
	}
	// Open subscribes, then greets: the machine hellos every peer.
	r.tm = tm
	tm.Subscribed()
	return r
}

// transportConfig is the Endpoint's configuration of the machine, on the
// simulation's time scale.
func (w *World) transportConfig(rank int) channel.Config {
	return channel.Config{Self: rank, Peers: w.prog.Peers(rank), Window: int(w.cfg.Window), MaxMessage: 1 << 20,
		FragPayload: w.cfg.FragPayload, AckTimeout: time.Duration(w.cfg.AckTimeout),
		MaxBackoff: time.Duration(w.cfg.MaxBackoff), AckDelay: time.Duration(w.cfg.AckDelay)}
}

// session is a transport session id (the Endpoint draws a random one).
func (w *World) session() uint64 {
	for {
		if s := w.eng.rng.Uint64(); s != 0 {
			return s
		}
	}
}

// load builds the participant at incarnation g from cut epoch (0: step 0),
// as a respawned process or a survivor rolling back does.
func (r *rankProc) load(g uint64, epoch uint64, step int64) {
	w := r.w
	cfg := participant.Config{Rank: r.rank, World: w.cfg.N, Peers: w.prog.Peers(r.rank), Spawn: r.spawn,
		Incarnation: g, TotalSteps: w.cfg.Steps, HoldBudget: w.cfg.HoldBudget, HeartbeatInterval: w.cfg.hb(),
		Now: w.now()}
	st := w.prog.Initial(r.rank)
	if epoch != 0 {
		man := w.store.manifests[epoch]
		if man == nil {
			w.failf("rank %d restores cut %d, which is not in the store (GC removed it: %v)", r.rank, epoch, w.store.gcd[epoch])
			return
		}
		sh := w.store.shards[string(man.Shards[r.rank])]
		if sh == nil || sh.Step != step {
			w.failf("rank %d restores cut %d: shard %q missing or at another step", r.rank, epoch, man.Shards[r.rank])
			return
		}
		if sh.damaged {
			// As the rank runtime does: say what is damaged, then exit.
			w.toCoord(r.rank, wire.EncodeRank(&wire.Alarm{RankHeader: wire.RankHeader{Rank: r.rank, Spawn: r.spawn, G: g},
				Kind: wire.AlarmCutDamaged, Peer: -1, Cut: epoch, Detail: fmt.Sprintf("rank %d shard of cut %d: checksum mismatch", r.rank, epoch)}))
			w.stats.DamageFound++
			r.exit(coordinator.RankExitCutDamaged, "restore found the cut damaged")
			return
		}
		cfg.Restore = &participant.Restore{Epoch: epoch, Step: step, Meta: sh.Meta, Channels: sh.Channels}
		st = sh.State
	}
	p, err := participant.New(cfg)
	if err != nil {
		w.failf("rank %d: participant.New at g=%d from cut %d: %v", r.rank, g, epoch, err)
		return
	}
	r.part, r.g = p, g
	r.st, r.step, r.pc, r.finished = st, step, 0, false
	r.ops = w.prog.Ops(r.rank, step+1)
	r.waitRecv, r.waitCred = -1, false
	w.eng.tracef("rank %d spawn %d: g=%d loaded cut %d (step %d)", r.rank, r.spawn, g, epoch, step)
	r.drain()
}

func (r *rankProc) active() bool { return r.alive && !r.hung && r.part != nil }

// drain executes what the two machines of the process ask for, the
// participant's Ready and the transport's, until neither has more (here
// the runtime's lock is the simulation's single thread).
func (r *rankProc) drain() {
	for r.alive && !r.hung && r.tm != nil {
		switch {
		case r.part != nil && r.part.HasReady():
			r.execParticipant()
		case r.tm.HasReady():
			r.execTransport()
		default:
			r.armAck()
			return
		}
	}
}

// execParticipant executes one participant Ready with
// participant.Execute, the rank runtime's executor, through the process's
// ports (rankPorts).
func (r *rankProc) execParticipant() {
	participant.Execute(r.part, rankPorts{r, r.part})
}

// rankPorts are participant.Execute's ports over the simulated process.
// A process that dies while a Ready is executed (a fault fired at Seal)
// does nothing more.
type rankPorts struct {
	r *rankProc
	p *participant.Participant // the participant whose Ready it is
}

func (x rankPorts) Enqueue(to int, frame []byte) error {
	r := x.r
	if !r.active() {
		return nil
	}
	err := r.tm.Enqueue(to, frame)
	if err != nil && !errors.Is(err, channel.ErrBroken) {
		r.w.failf("rank %d: enqueue to %d: %v", r.rank, to, err)
		return nil
	}
	return err
}

func (x rankPorts) Credit(cs []participant.Credit) {
	r := x.r
	if !r.active() {
		return
	}
	r.tm.Tick(r.w.now()) // as the Endpoint does: a delayed ack is due AckDelay from now
	for _, c := range cs {
		r.tm.Credit(c.From, c.Bytes)
	}
}

func (x rankPorts) Wake(deliverable []int, started bool) {
	r := x.r
	if started || (r.waitRecv >= 0 && slices.Contains(deliverable, r.waitRecv)) {
		r.wake()
	}
}

func (x rankPorts) Report(m []byte) {
	if x.r.active() {
		x.r.w.toCoord(x.r.rank, m)
	}
}

func (x rankPorts) Seal(s *participant.Seal) {
	r := x.r
	if !r.active() {
		return
	}
	wr := r.writers[s.Epoch]
	if wr == nil || wr.part != x.p {
		r.w.failf("rank %d: Seal for epoch %d without a writer", r.rank, s.Epoch)
		return
	}
	wr.seal = s
	r.w.trigger(OnSealed, r.rank)
	if r.active() {
		r.finishWrite(wr)
	}
}

func (x rankPorts) Cancel(e uint64) {
	if wr := x.r.writers[e]; wr != nil && x.r.active() {
		wr.cancelled = true
		delete(x.r.writers, e)
	}
}

func (x rankPorts) Committed(uint64) {}

func (x rankPorts) Event(ev participant.Event) {
	r := x.r
	if !r.active() {
		return
	}
	r.w.eng.tracef("rank %d: %s", r.rank, ev)
	switch ev.Kind {
	case participant.EvAlignment:
		r.w.stats.Alignment++
	case participant.EvAborted:
		r.w.stats.RankAborts[ev.Reason.String()]++
	}
}

func (x rankPorts) Rollback(rb participant.Rollback) {
	if x.r.active() {
		x.r.rollback(rb)
	}
}

func (x rankPorts) Exit(e participant.Exit) {
	if x.r.active() {
		x.r.exit(e.Code, e.Reason)
	}
}

// execTransport executes one transport Ready with channel.Execute, the
// Endpoint's executor, through the process's ports (transportPorts),
// after moving the machine's clock as the Endpoint does.
func (r *rankProc) execTransport() {
	r.tm.Tick(r.w.now())
	channel.Execute(r.tm, transportPorts{r})
}

// transportPorts are channel.Execute's ports over the simulated process:
// frames go on the simulated network, deliveries straight to the
// participant (here the Endpoint's deliverer is the simulation's single
// thread), gaps to the participant as the runtime reports them.
type transportPorts struct{ r *rankProc }

func (x transportPorts) Publish(f *channel.Out) { x.r.w.net.publish(x.r, f) }

func (x transportPorts) Deliver(d channel.Delivery) {
	r := x.r
	if !r.active() || d.G != r.tm.G() || d.G != r.part.Incarnation() {
		return // the Endpoint drops deliveries of an older incarnation
	}
	if err := r.part.Deliver(d.From, d.Msg); err != nil {
		r.w.eng.tracef("rank %d: deliver from %d: %v", r.rank, d.From, err)
	}
}

func (x transportPorts) Event(ev channel.Event) {
	r := x.r
	r.w.eng.tracef("rank %d: transport event %d peer %d g %d: %v", r.rank, ev.Kind, ev.Peer, ev.G, ev.Err)
	switch ev.Kind {
	case channel.EventGap:
		r.w.stats.Gaps++
		r.w.failf("rank %d, channel with %d at g=%d: %v: %v", r.rank, ev.Peer, ev.G, errGap, ev.Err)
		if r.active() && ev.G == r.part.Incarnation() {
			r.part.ChannelFault(ev.Peer, fmt.Sprint(ev.Err)) // what the runtime does (R14)
		}
	case channel.EventStale:
		r.w.stats.Stale++
	}
}

func (x transportPorts) Wake() {
	if x.r.waitCred {
		x.r.wake()
	}
}

// armAck schedules a Tick for the machine's delayed ack (the Endpoint's
// ack timer).
func (r *rankProc) armAck() {
	due := r.tm.NextAck()
	if due == 0 || (r.ackAt != 0 && r.ackAt <= due) {
		return
	}
	r.ackAt = due
	tm := r.tm
	r.w.eng.at(due, func() {
		if r.ackAt == due {
			r.ackAt = 0
		}
		if r.alive && !r.hung && r.tm == tm {
			tm.Tick(r.w.now())
			r.drain()
		}
	})
}

// wake schedules the job to continue (once).
func (r *rankProc) wake() {
	if r.appSched || !r.active() {
		return
	}
	r.appSched = true
	gen := r.appGen
	r.w.eng.after(0, func() {
		if r.appGen != gen {
			return
		}
		r.appSched = false
		r.runJob()
	})
}

// runJob runs the job until it must wait.
func (r *rankProc) runJob() {
	w := r.w
	for r.active() && !r.finished {
		p := r.part
		if !p.Running() {
			return // waits for Started
		}
		if r.step >= w.cfg.Steps {
			r.finish()
			return
		}
		if r.pc == len(r.ops) {
			if !r.safePoint() {
				return
			}
			continue
		}
		op := r.ops[r.pc]
		k := r.step + 1
		switch op.Kind {
		case OpSend:
			if op.Peer != r.rank {
				// Rank.Send's Acquire: wait while the window is full.
				if err := r.tm.Room(op.Peer, wire.DataHeaderLen+op.Size); errors.Is(err, channel.ErrWait) {
					r.waitCred = true
					return // the transport's Wake calls us again
				} else if err != nil {
					r.jobError("Send", err)
					return
				}
			}
			r.waitCred = false
			if err := p.Send(op.Peer, w.prog.Payload(r.st, r.rank, k, r.pc, op.Size)); err != nil {
				r.jobError("Send", err)
				return
			}
			r.drain()
		case OpRecv:
			payload, ok, err := p.Recv(op.Peer)
			r.drain()
			if err != nil {
				r.jobError("Recv", err)
				return
			}
			if !ok {
				r.waitRecv = op.Peer
				return
			}
			r.waitRecv = -1
			r.st = Absorb(r.st, payload)
		case OpCompute:
			r.st = Compute(r.st, k)
			r.pc++
			gen := r.appGen
			r.appSched = true
			w.eng.after(w.computeTime(r.rank), func() {
				if r.appGen == gen {
					r.appSched = false
					r.runJob()
				}
			})
			return
		}
		r.pc++
	}
}

func (r *rankProc) jobError(call string, err error) {
	if errors.Is(err, participant.ErrRolledBack) || errors.Is(err, participant.ErrExited) || errors.Is(err, participant.ErrNotStarted) {
		return
	}
	r.w.failf("rank %d: %s: %v", r.rank, call, err)
}

func (r *rankProc) safePoint() bool {
	w := r.w
	k := r.step + 1
	act, err := r.part.SafePoint(k, 0)
	if err != nil {
		r.jobError("SafePoint", err)
		return false
	}
	if want := w.ref.State[r.rank][k]; r.st != want {
		w.failf("rank %d at g=%d: state after step %d is %x, the reference says %x", r.rank, r.g, k, r.st, want)
		return false
	}
	r.step = k
	if w.halfAt == 0 && k >= w.startStep+(w.cfg.Steps-w.startStep)/2 {
		w.halfAt = w.now()
	}
	if act.Capture {
		// The runtime captures under its lock, before the markers (in
		// this Ready) are enqueued.
		wr := &writer{epoch: act.Epoch, step: act.Step, st: r.st, part: r.part}
		r.writers[act.Epoch] = wr
		w.trigger(OnCapture, r.rank)
		if !r.active() {
			return false
		}
		gen := r.part
		w.eng.after(w.between(w.cfg.WriteMin, w.cfg.WriteMax), func() {
			if r.active() && r.part == gen && !wr.cancelled {
				wr.bufDone = true
				r.finishWrite(wr)
			}
		})
	}
	r.drain()
	if !r.active() {
		return false
	}
	r.ops = w.prog.Ops(r.rank, r.step+1)
	r.pc = 0
	return true
}

// finishWrite completes a shard once its buffers are written and its
// channel state sealed: write, fsync, then report (persist before send).
func (r *rankProc) finishWrite(wr *writer) {
	if !wr.bufDone || wr.seal == nil || wr.cancelled {
		return
	}
	w := r.w
	w.eng.after(w.between(w.cfg.WriteMin/4, w.cfg.WriteMax/4), func() {
		if !r.active() || r.part != wr.part || wr.cancelled {
			return
		}
		ref := fmt.Sprintf("g%d-r%d-s%d-e%d", r.g, r.rank, r.spawn, wr.epoch)
		w.store.shards[ref] = &shard{Rank: r.rank, Epoch: wr.epoch, Step: wr.step, G: r.g, State: wr.st,
			Meta: wr.seal.Meta, Channels: wr.seal.Channels}
		delete(r.writers, wr.epoch)
		if err := r.part.ShardDurable(wr.epoch, []byte(ref), uint64(wr.seal.Bytes)+64, uint64(wr.seal.Bytes)/2+32); err != nil {
			w.eng.tracef("rank %d: %v", r.rank, err)
		}
		r.drain()
		w.trigger(OnReported, r.rank)
	})
}

func (r *rankProc) finish() {
	if r.finished {
		return
	}
	r.finished = true
	if want := r.w.ref.State[r.rank][r.w.cfg.Steps]; r.st != want {
		r.w.failf("rank %d finished with state %x, the reference says %x", r.rank, r.st, want)
	}
	r.w.finals[r.rank] = r.st
	if err := r.part.Finish(); err != nil {
		r.jobError("Finish", err)
	}
	r.drain()
	if r.w.cfg.ExitAfterFinish {
		r.exitWhenFlushed(r.appGen)
	}
}

// exitWhenFlushed ends a finished process two heartbeats on, once its
// transport holds nothing unacknowledged. A finished rank's exit 0 is no
// failure to the coordinator, so nothing would respawn it to resend a
// last message the network lost: its peer would wait for ever. (Rank.Finish
// waits for Stop, which comes once every rank finished, so a real rank
// exits only after its peers received everything.)
func (r *rankProc) exitWhenFlushed(gen uint64) {
	r.w.eng.after(2*r.w.cfg.HB, func() {
		if !r.alive || r.hung || r.appGen != gen {
			return
		}
		if r.tm.Unacked() > 0 {
			r.exitWhenFlushed(gen)
			return
		}
		r.w.eng.tracef("rank %d spawn %d exits 0 after finishing", r.rank, r.spawn)
		r.die(0)
	})
}

func (r *rankProc) control(b []byte) {
	if !r.active() {
		return
	}
	if err := r.part.HandleControl(b); err != nil {
		r.w.failf("rank %d: control message: %v", r.rank, err)
	}
	r.drain()
}

func (r *rankProc) tick() {
	if !r.alive {
		return
	}
	if !r.hung {
		if r.part != nil {
			r.part.Tick(r.w.now())
		}
		r.tm.Tick(r.w.now())
		r.drain()
	}
	r.w.eng.after(r.w.cfg.Tick+r.w.between(0, r.w.cfg.Tick/4), r.tick)
}

// rollback is the runtime's side of R12: stop the job, cancel writers,
// reset the transport to G, reload the cut, build a new participant.
func (r *rankProc) rollback(rb participant.Rollback) {
	w := r.w
	w.eng.tracef("rank %d: rollback to g=%d cut %d", r.rank, rb.G, rb.Epoch)
	r.part = nil
	r.appGen++
	r.appSched = false
	for _, wr := range r.writers {
		wr.cancelled = true
	}
	r.writers = map[uint64]*writer{}
	// Endpoint.Reset: the machine starts g with a new session, subscribes
	// to g's subjects (the old ones linger a moment) and greets.
	r.oldG, r.oldUntil = r.g, w.now()+w.between(0, w.cfg.CtlDelayMax)
	r.g = rb.G
	if err := r.tm.Reset(rb.G, w.session()); err != nil {
		w.failf("rank %d: transport Reset(%d): %v", r.rank, rb.G, err)
		return
	}
	r.tm.Subscribed()
	r.drain()
	w.trigger(OnRestore, r.rank)
	if !r.alive || r.hung {
		return
	}
	gen := r.appGen
	w.eng.after(w.between(w.cfg.SpawnMin/2, w.cfg.SpawnMax/2), func() {
		if r.alive && !r.hung && r.appGen == gen {
			r.load(rb.G, rb.Epoch, rb.Step)
		}
	})
}

func (r *rankProc) exit(code int, reason string) {
	r.w.eng.tracef("rank %d spawn %d exits %d: %s", r.rank, r.spawn, code, reason)
	r.die(code)
}

// die ends the process; the launcher reports the exit.
func (r *rankProc) die(code int) {
	if !r.alive {
		return
	}
	r.alive, r.hung, r.part = false, false, nil
	r.appGen++
	for _, wr := range r.writers {
		wr.cancelled = true
	}
	rank, spawn := r.rank, r.spawn
	r.w.eng.after(r.w.between(10_000, 200_000), func() { r.w.launcherExit(rank, spawn, code) })
}
