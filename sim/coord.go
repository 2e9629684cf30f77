package sim

import (
	"errors"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// coordNode is the coordinator process: the machine and its driver. Its
// loop takes one input at a time and executes the resulting Ready in
// order; while a job record write is in flight (a synchronous fsync in a
// real driver) inputs queue up behind it.
type coordNode struct {
	w      *World
	c      *coordinator.Coordinator
	alive  bool
	busy   bool
	inbox  []func()
	record *pendingRecord
	// manifests being written, by epoch
	commits map[uint64]*coordinator.Manifest
}

type pendingRecord struct {
	bytes []byte
	seq   uint64
}

func (w *World) startCoordinator(mode coordinator.Mode) {
	rec, err := w.store.jobRecord()
	if err != nil {
		w.failf("%v", err)
		return
	}
	if rec == nil && mode == coordinator.ModeRejoin {
		// The first record never landed, so no rank was ever spawned.
		mode = coordinator.ModeNew
	}
	st := coordinator.Start{Mode: mode, Now: w.now(), Record: rec, Committed: w.store.committed(), Generation: w.store.claimGen()}
	c, err := coordinator.New(w.coordConfig(), st)
	if err != nil {
		w.failf("coordinator.New: %v", err)
		return
	}
	n := &coordNode{w: w, c: c, alive: true, commits: map[uint64]*coordinator.Manifest{}}
	w.coord = n
	w.eng.tracef("coordinator generation %d starts (%v)", c.Generation(), mode)
	n.drain()
	var tick func()
	tick = func() {
		if !n.alive {
			return
		}
		n.input(func() { n.c.Tick(w.now()) })
		w.eng.after(w.cfg.Tick, tick)
	}
	w.eng.after(w.cfg.Tick, tick)
}

// input runs fn on the machine now, or after the write in flight.
func (n *coordNode) input(fn func()) {
	if !n.alive {
		return
	}
	if n.busy {
		n.inbox = append(n.inbox, fn)
		return
	}
	fn()
	n.drain()
}

// drain executes the coordinator's Readys with coordinator.Execute, the
// production driver's executor, through this node's ports; a job record
// write takes simulated time (ErrInFlight), and its completion resumes
// the same Ready.
func (n *coordNode) drain() {
	for n.alive && !n.busy && n.c.HasReady() {
		o, err := coordinator.Execute(n.c, n)
		switch {
		case errors.Is(err, coordinator.ErrInFlight):
			return
		case err != nil:
			n.w.failf("coordinator: %v", err)
			return
		case o != nil && n.alive:
			n.w.outcome = o
			n.w.eng.tracef("outcome: exit %d: %s", o.Code, o.Reason)
		}
	}
}

// WriteRecord starts the durable write of the job record; inputs queue up
// behind it until it lands, and then the rest of the Ready runs.
func (n *coordNode) WriteRecord(rec wire.JobRecord) error {
	// The coordinator waits for the acknowledgement before acting on a
	// record; a driver that wrote it concurrently would be correct only
	// by luck.
	rd := n.c.Ready() // the Ready being executed
	for _, m := range rd.Messages {
		if cm, err := wire.DecodeCoord(m.Data); err == nil {
			switch cm.(type) {
			case *wire.Rollback, *wire.Go:
				n.w.failf("R15: %T in the same Ready as job record #%d", cm, rec.Seq)
			}
		}
	}
	if len(rd.Spawn) > 0 || len(rd.Kill) > 0 {
		n.w.failf("R15: kill or spawn in the same Ready as job record #%d", rec.Seq)
	}
	b, err := wire.EncodeJobRecord(rec)
	if err != nil {
		n.w.failf("job record does not encode: %v", err)
		return err
	}
	n.busy = true
	n.record = &pendingRecord{bytes: b, seq: rec.Seq}
	n.w.trigger(OnRecordWrite, -1)
	if !n.alive {
		return coordinator.ErrInFlight
	}
	n.w.eng.after(n.w.between(n.w.cfg.RecordMin, n.w.cfg.RecordMax), func() {
		if !n.alive {
			return
		}
		n.w.store.record = n.record.bytes
		seq := n.record.seq
		n.record = nil
		n.c.JobRecordWritten(seq)
		n.busy = false
		n.drain()
		for !n.busy && len(n.inbox) > 0 && n.alive {
			fn := n.inbox[0]
			n.inbox = n.inbox[1:]
			fn()
			n.drain()
		}
	})
	return coordinator.ErrInFlight
}

// Kill is the launcher's kill (R13: the old process is gone first).
func (n *coordNode) Kill(k coordinator.Process) {
	if n.alive {
		n.w.kill(k.Rank, k.Spawn)
	}
}

// Spawn asks the launcher to start each process.
func (n *coordNode) Spawn(spawns []coordinator.Spawn) error {
	for _, s := range spawns {
		if !n.alive {
			break
		}
		n.checkDurable(s.G, nil, &s)
		n.w.spawn(s)
	}
	return nil
}

// Publish sends a control message to one rank or all.
func (n *coordNode) Publish(m coordinator.Message) {
	w := n.w
	if !n.alive {
		return
	}
	cm, err := wire.DecodeCoord(m.Data)
	if err != nil {
		w.failf("coordinator sent a message that does not decode: %v", err)
		return
	}
	n.checkDurable(cm.Header().G, cm, nil)
	n.checkOutgoing(cm)
	if m.To == coordinator.Broadcast {
		for r := range w.cfg.N {
			w.toRank(r, m.Data)
		}
	} else {
		w.toRank(m.To, m.Data)
	}
}

// Commit starts the manifest write; its result comes back as an input.
func (n *coordNode) Commit(m coordinator.Manifest) {
	w := n.w
	if !n.alive {
		return
	}
	man := &m
	n.commits[man.Epoch] = man
	w.trigger(OnCommitStart, -1)
	if !n.alive {
		return
	}
	w.eng.after(w.between(w.cfg.CommitMin, w.cfg.CommitMax), func() {
		if !n.alive {
			return
		}
		delete(n.commits, man.Epoch)
		w.commitManifest(man)
		w.trigger(OnCommitRenamed, -1)
		n.input(func() { n.c.ManifestCommitted(man.Epoch) })
	})
}

// Confirm answers what a launcher that watches its own children would:
// a process that no longer exists (or is an older spawn) is gone, one
// that exists is running, also a hung one on a lost node (the grace it
// earns must still end in a loss). The answer comes back after a control
// delay, as the launcher's would.
func (n *coordNode) Confirm(ps []coordinator.Process) {
	w := n.w
	if !n.alive {
		return
	}
	for _, p := range ps {
		l := coordinator.LiveGone
		if pr := w.procs[p.Rank]; pr != nil && pr.alive && pr.spawn == p.Spawn {
			l = coordinator.LiveRunning
		}
		w.eng.after(w.between(0, w.cfg.CtlDelayMax), func() {
			n.input(func() { n.c.Confirmed(p.Rank, p.Spawn, l) })
		})
	}
}

// GC collects old cuts in the store.
func (n *coordNode) GC(gc coordinator.GC) {
	if n.alive {
		n.w.store.gc(gc.Keep, gc.Pins)
	}
}

// Event logs and counts.
func (n *coordNode) Event(ev coordinator.Event) {
	if n.alive {
		n.w.noteEvent(ev)
	}
}

// checkDurable is R15: an incarnation (and its recovery intent) is in the
// durable job record before anything of it leaves the coordinator: a
// message cm or a spawn s at incarnation g.
func (n *coordNode) checkDurable(g uint64, cm wire.CoordMsg, s *coordinator.Spawn) {
	w := n.w
	rec, err := w.store.jobRecord()
	if err != nil || rec == nil {
		w.failf("R15: the coordinator acts before any job record is durable (%v)", err)
		return
	}
	if s != nil {
		if ri := rec.Recovery; s.G > rec.Incarnation || ri == nil || ri.Epoch != s.Epoch {
			w.failf("R15: spawn of rank %d at g=%d from cut %d, the durable record says g=%d intent %+v", s.Rank, s.G, s.Epoch, rec.Incarnation, ri)
		}
		return
	}
	if g > rec.Incarnation {
		w.failf("R15: %T at g=%d sent while the durable record says g=%d", cm, g, rec.Incarnation)
	}
	if rb, ok := cm.(*wire.Rollback); ok && (rec.Recovery == nil || rec.Recovery.Epoch != rb.Epoch) {
		w.failf("R15: Rollback to cut %d sent while the durable intent is %+v", rb.Epoch, rec.Recovery)
	}
}

// checkOutgoing watches the coordinator's messages for R3.
func (n *coordNode) checkOutgoing(m wire.CoordMsg) {
	if cut, ok := m.(*wire.Cut); ok {
		if cut.Epoch <= n.w.maxEpoch {
			n.w.failf("R3: epoch %d issued after epoch %d", cut.Epoch, n.w.maxEpoch)
		}
		n.w.maxEpoch = cut.Epoch
		if cut.Step > n.w.cfg.Steps {
			n.w.failf("cut %d at step %d past the last step %d", cut.Epoch, cut.Step, n.w.cfg.Steps)
		}
	}
}

// crash kills the coordinator process. A job record write or manifest
// rename in flight lands or not (each is one atomic rename).
func (n *coordNode) crash() {
	w := n.w
	if !n.alive {
		return
	}
	n.alive = false
	w.stats.CoordCrashes++
	if n.record != nil && w.eng.chance(0.5) {
		w.store.record = n.record.bytes
	}
	for _, e := range sortedKeys(n.commits) {
		if w.eng.chance(0.5) {
			w.commitManifest(n.commits[e])
		}
	}
	w.eng.tracef("coordinator generation %d crashed", n.c.Generation())
	w.eng.after(w.between(w.cfg.RestartMin, w.cfg.RestartMax), func() {
		if w.outcome == nil && w.coord == n {
			w.startCoordinator(coordinator.ModeRejoin)
		}
	})
}

func (w *World) noteEvent(ev coordinator.Event) {
	w.eng.tracef("coordinator: %s", ev)
	switch ev.Kind {
	case coordinator.EvCutCommitted:
		w.stats.Commits++
	case coordinator.EvCutAborted:
		w.stats.Aborts++
		w.stats.AbortReasons[ev.Reason.String()]++
	case coordinator.EvRecoveryStarted:
		w.stats.Recoveries++
	case coordinator.EvJobRunning:
		if w.runningAt == 0 {
			w.runningAt = w.now()
		}
	case coordinator.EvCountsMismatch:
		w.failf("R4 failed at commit: %s", ev.Text)
	case coordinator.EvCuttingStopped:
		w.stats.CuttingStopped++
	case coordinator.EvJobFailed:
		w.failf("job failed: %s", ev.Text)
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
