package sim

import "fmt"

// FaultKind is what fails.
type FaultKind uint8

const (
	RankExit  FaultKind = iota + 1 // the process dies; the launcher sees the exit
	RankHang                       // the process stops dead; only heartbeats tell
	CoordDies                      // the coordinator process dies and is restarted
	CutDamage                      // rank's shard of the latest committed cut is damaged, then the rank dies
)

// Trigger is when a fault fires.
type Trigger uint8

const (
	AtTime          Trigger = iota + 1
	OnCapture               // rank: SafePoint said Capture; dies before its markers leave (mid-capture)
	OnSealed                // rank: channel state handed to the writer (mid-write)
	OnReported              // rank: shard reported, cut not yet committed
	OnRestore               // rank: while reloading in a rollback
	OnRecordWrite           // coordinator: job record write in flight (lands or not)
	OnCommitStart           // coordinator: manifest write started, before the rename
	OnCommitRenamed         // coordinator: after the rename, before the acknowledgement
)

var triggerNames = map[Trigger]string{AtTime: "at", OnCapture: "capture", OnSealed: "sealed", OnReported: "reported",
	OnRestore: "restore", OnRecordWrite: "record-write", OnCommitStart: "commit-start", OnCommitRenamed: "commit-renamed"}

// Fault is one planned failure.
type Fault struct {
	Kind    FaultKind
	Trigger Trigger
	At      int64 // AtTime: when
	Rank    int   // rank faults: which rank (-1 any)
	Nth     int   // trigger faults: fire at the nth matching occurrence
	seen    int
	fired   bool
}

func (f Fault) String() string {
	who := "coordinator"
	switch f.Kind {
	case RankExit:
		who = fmt.Sprintf("exit(rank %d)", f.Rank)
	case RankHang:
		who = fmt.Sprintf("hang(rank %d)", f.Rank)
	case CutDamage:
		who = fmt.Sprintf("damage(rank %d)", f.Rank)
	}
	if f.Trigger == AtTime {
		return fmt.Sprintf("%s@%.2fms", who, float64(f.At)/1e6)
	}
	return fmt.Sprintf("%s@%s#%d", who, triggerNames[f.Trigger], f.Nth)
}

func randomFaults(e *engine, c Config) []Fault {
	n := int(e.between(1, 3))
	// The job runs about Steps x compute time; faults land inside it.
	span := c.Steps * (c.ComputeMin + c.ComputeMax) / 2
	var out []Fault
	for range n {
		f := Fault{Rank: e.rng.IntN(c.N), Nth: int(e.between(1, 3))}
		switch x := e.rng.IntN(12); {
		case x >= 10:
			// Damage in the latest cut, found by the restore that the
			// rank's death makes necessary: the job falls back.
			f.Kind, f.Trigger = CutDamage, AtTime
		case x < 6:
			f.Kind = RankExit
			if e.chance(0.25) {
				f.Kind = RankHang
			}
			f.Trigger = []Trigger{AtTime, AtTime, OnCapture, OnSealed, OnReported, OnRestore}[e.rng.IntN(6)]
		default:
			f.Kind = CoordDies
			f.Rank = -1
			f.Trigger = []Trigger{AtTime, AtTime, OnRecordWrite, OnCommitStart, OnCommitRenamed}[e.rng.IntN(5)]
		}
		f.At = e.between(0, span+10*ms)
		out = append(out, f)
	}
	return out
}

func (w *World) scheduleFaults() {
	for _, d := range w.cfg.Net.Disconnects {
		// The Endpoint tells the machine when NATS reports the connection
		// down and back (the network drops the frames meanwhile).
		w.eng.at(d.From, func() {
			if p := w.procs[d.Rank]; p != nil && p.alive && p.tm != nil {
				p.tm.Disconnected()
			}
		})
		w.eng.at(d.To, func() {
			if p := w.procs[d.Rank]; p != nil && p.alive && p.tm != nil {
				p.tm.Reconnected()
				p.drain()
			}
		})
	}
	for i := range w.cfg.Faults {
		f := &w.cfg.Faults[i]
		if f.Trigger == AtTime {
			w.eng.at(f.At, func() { w.fire(f) })
		}
	}
}

// trigger fires the planned faults waiting for this point (rank -1: the
// coordinator's points).
func (w *World) trigger(t Trigger, rank int) {
	for i := range w.cfg.Faults {
		f := &w.cfg.Faults[i]
		if f.fired || f.Trigger != t || (rank >= 0 && f.Rank >= 0 && f.Rank != rank) {
			continue
		}
		if (f.Kind == CoordDies) != (rank < 0) {
			continue
		}
		f.seen++
		if f.seen == f.Nth {
			if rank >= 0 {
				f.Rank = rank
			}
			w.fire(f)
		}
	}
}

func (w *World) fire(f *Fault) {
	if f.fired || w.outcome != nil {
		return
	}
	f.fired = true
	w.eng.tracef("fault: %s", f)
	switch f.Kind {
	case CoordDies:
		if w.coord != nil {
			w.coord.crash()
		}
	case CutDamage:
		cuts := w.store.committed()
		if len(cuts) == 0 || w.coord == nil || !w.coord.c.Running() {
			// Nothing to damage yet, or a recovery in progress: try again
			// a little later.
			f.fired = false
			w.eng.after(ms, func() { w.fire(f) })
			return
		}
		{
			man := w.store.manifests[cuts[len(cuts)-1].Epoch]
			if sh := w.store.shards[string(man.Shards[f.Rank])]; sh != nil && !sh.damaged {
				sh.damaged = true
				w.stats.CutsDamaged++
				w.eng.tracef("fault: rank %d's shard of cut %d damaged", f.Rank, man.Epoch)
			}
		}
		if p := w.procs[f.Rank]; p != nil && p.alive {
			w.stats.RankCrashes++
			p.die(139)
		}
	case RankExit, RankHang:
		p := w.procs[f.Rank]
		if p == nil || !p.alive {
			return
		}
		w.stats.RankCrashes++
		if f.Kind == RankHang {
			// A lost node: no exit is ever seen until the launcher kills it.
			p.hung = true
			p.appGen++
			return
		}
		p.die(139)
	}
}
