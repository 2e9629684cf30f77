package sim

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/participant"
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
	return &rankProc{w: w, rank: rank, spawn: spawn, g: spawn, alive: true, waitRecv: -1, writers: map[uint64]*writer{}}
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

// drain executes the participant's Ready, in order, as a runtime must
// (here the "lock" is the simulation's single thread):
//  1. Frames: enqueue on the channels in order (markers behind data, R2);
//  2. Credits: return window credit;
//  3. Control: publish to the coordinator;
//  4. Seal / Cancel: hand channel state to the epoch's writer, or stop it;
//  5. Advance, then act on Exit and Rollback (which end this participant);
//  6. wake the job if what it waits for arrived.
func (r *rankProc) drain() {
	for r.active() && r.part.HasReady() {
		p := r.part
		rd := p.Ready()
		for _, f := range rd.Frames {
			r.w.net.send(r, f.To, f.Data)
		}
		for _, c := range rd.Credits {
			r.w.net.credit(c.From, r.rank, int64(c.Bytes), r.g)
		}
		for _, b := range rd.Control {
			r.w.toCoord(r.rank, b)
		}
		if s := rd.Seal; s != nil {
			if wr := r.writers[s.Epoch]; wr != nil && wr.part == p {
				wr.seal = s
				r.w.trigger(OnSealed, r.rank)
				if !r.active() {
					return
				}
				r.finishWrite(wr)
			} else {
				r.w.failf("rank %d: Seal for epoch %d without a writer", r.rank, s.Epoch)
			}
		}
		for _, e := range rd.Cancel {
			if wr := r.writers[e]; wr != nil {
				wr.cancelled = true
				delete(r.writers, e)
			}
		}
		for _, ev := range rd.Events {
			r.w.eng.tracef("rank %d: %s", r.rank, ev)
			switch ev.Kind {
			case participant.EvAlignment:
				r.w.stats.Alignment++
			case participant.EvAborted:
				r.w.stats.RankAborts[ev.Reason.String()]++
			}
		}
		p.Advance()
		if rd.Exit != nil {
			r.exit(rd.Exit.Code, rd.Exit.Reason)
			return
		}
		if rd.Rollback != nil {
			r.rollback(*rd.Rollback)
			return
		}
		if rd.Started || (r.waitRecv >= 0 && slices.Contains(rd.Deliverable, r.waitRecv)) {
			r.wake()
		}
	}
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
			if op.Peer != r.rank && !w.net.acquire(r.rank, op.Peer, int64(wire.DataHeaderLen+op.Size), r.g) {
				r.waitCred = true
				return // the transport wakes us with credit
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
		gen := r.appGen
		r.w.eng.after(2*r.w.cfg.HB, func() {
			if r.alive && !r.hung && r.appGen == gen {
				r.w.eng.tracef("rank %d spawn %d exits 0 after finishing", r.rank, r.spawn)
				r.die(0)
			}
		})
	}
}

// deliver is the transport's Deliver (in channel order).
func (r *rankProc) deliver(from int, frame []byte) {
	if err := r.part.Deliver(from, frame); err != nil {
		r.w.eng.tracef("rank %d: deliver from %d: %v", r.rank, from, err)
	}
	r.drain()
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
	if r.active() {
		r.part.Tick(r.w.now())
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
	r.g = rb.G
	w.net.reset(r.rank, rb.G)
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
