package coordinator

import (
	"fmt"
	"math"
	"slices"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// margin is ceil(r_max*(L+H)) + 2, times the factor doubled after late (the
// whole margin: with no step rate known yet only the +2 would grow).
func (c *Coordinator) margin() int64 {
	window := (c.cfg.RequestLatency + c.cfg.HeartbeatInterval).Seconds()
	return int64(c.factor) * (int64(math.Ceil(c.rmax*window)) + 2)
}

func (c *Coordinator) maybeCut() {
	if c.cur != nil || c.cuttingStopped || c.nFinished > 0 || c.recAwait != 0 || !c.checkPeers() || c.ph != phRunning {
		return
	}
	if c.now < c.nextCutAt && !c.final {
		return // backing off after failed cuts
	}
	byTime := c.cfg.CutInterval > 0 && c.now-c.lastCutAt >= int64(c.cfg.CutInterval)
	byStep := c.cfg.CutEverySteps > 0 && c.maxStep+c.margin() >= c.lastCutStep+c.cfg.CutEverySteps
	if !c.demand && !byTime && !byStep {
		return
	}
	if !c.demand && c.nSampled < len(c.ranks) {
		// Scheduled cuts wait until every rank's step rate is known: with
		// stale steps and no rate the margin is a guess, and a late
		// abort doubles it for the rest of the job.
		return
	}
	if c.now != c.lastRates {
		// Fresh rates for the cut (O(N): at most once per instant, since
		// a cut that cannot start yet is retried on every input).
		c.lastRates = c.now
		c.refreshRates()
	}
	margin := c.margin()
	s := c.maxStep + margin
	if !c.demand && !byTime {
		// Every-steps schedule: aim at the next multiple, not earlier.
		s = max(s, c.lastCutStep+c.cfg.CutEverySteps)
	}
	if t := c.minTot; t > 0 && s > t {
		// Never cut past the job's last step. A margin grown by late
		// aborts may shrink back to find a step before the end.
		if c.factor > 1 {
			c.factor /= 2
		}
		return
	}
	if c.epochNext >= c.durableLimit {
		// Reserve the next block of ids durably before using one (R3).
		c.rec.EpochLimit = c.epochNext + c.cfg.EpochBlock
		c.persist(opNone)
		return
	}
	e := &inflight{id: c.epochNext, step: s, final: c.final, issuedAt: c.now, reports: make([]*wire.ShardReport, len(c.ranks))}
	c.epochNext++
	c.cur = e
	c.stats.Epochs++
	c.beatEpoch, c.beatStep, c.beatState = e.id, e.step, wire.EpochInFlight
	c.broadcast(&wire.Cut{CoordHeader: c.hdr(), Epoch: e.id, Step: e.step, Final: e.final})
	why := "interval"
	switch {
	case c.final:
		why = "final"
	case c.demand:
		why = "on demand"
	case byStep && !byTime:
		why = "every-steps"
	}
	c.event(Event{Kind: EvCutStarted, Epoch: e.id, Step: e.step, Rank: -1, Peer: -1,
		Text: fmt.Sprintf("%s; max step %d, margin %d (factor %d)", why, c.maxStep, margin, c.factor)})
}

// abortCur aborts the epoch in flight. rank and peer attribute it (-1 for
// none); a blocked abort is on the channel peer -> rank.
func (c *Coordinator) abortCur(reason wire.AbortReason, rank, peer int, detail string) {
	e := c.cur
	if e == nil {
		return
	}
	c.cur = nil
	c.stats.Aborts++
	c.beatState = wire.EpochAborted
	c.broadcast(&wire.Abort{CoordHeader: c.hdr(), Epoch: e.id})
	c.event(Event{Kind: EvCutAborted, Epoch: e.id, Step: e.step, Rank: rank, Peer: peer, Reason: reason, Text: detail})
	if reason == wire.ReasonLate && c.factor < c.cfg.MaxMarginFactor {
		c.factor = min(2*c.factor, c.cfg.MaxMarginFactor)
	}
	c.noteFailedCut(e, reason, rank, detail)
	if reason != wire.ReasonBlocked {
		c.blockedRun = 0
		return
	}
	if peer == c.blockedFrom && rank == c.blockedTo {
		c.blockedRun++
	} else {
		c.blockedFrom, c.blockedTo, c.blockedRun = peer, rank, 1
	}
	if c.blockedRun >= c.cfg.MaxBlockedAborts {
		c.cuttingStopped = true
		c.goUnprotected()
		c.event(Event{Kind: EvCuttingStopped, Epoch: e.id, Rank: rank, Peer: peer,
			Text: fmt.Sprintf("%d consecutive cuts aborted because rank %d waited in Recv on rank %d past its marker: "+
				"a message received before SafePoint(k) was sent after the sender's SafePoint(k) (alignment contract R7); "+
				"no cut can commit, cutting stopped", c.blockedRun, rank, peer)})
	}
}

// failingReason: an abort for this reason says the cut could not be
// taken (the store is full, gone or hung, a writer failed, a rank could
// not capture), not that it was ill-timed or the hold budget is small; a
// run of them is a loud failure.
func failingReason(r wire.AbortReason) bool {
	switch r {
	case wire.ReasonWriteFailed, wire.ReasonCommitFailed, wire.ReasonCaptureFailed, wire.ReasonTimeout:
		return true
	}
	return false
}

// noteFailedCut counts consecutive aborts for one failing reason: from the
// second on the next cut waits (one heartbeat, doubling up to
// MaxCutBackoff); at MaxFailedCuts the job is told loudly it runs
// unprotected. Cutting goes on, so it resumes when the cause goes away.
func (c *Coordinator) noteFailedCut(e *inflight, reason wire.AbortReason, rank int, detail string) {
	if !failingReason(reason) {
		if reason != wire.ReasonLate && reason != wire.ReasonSuperseded {
			c.failRun = 0
		}
		return
	}
	if reason == c.failReason {
		c.failRun++
	} else {
		c.failReason, c.failRun = reason, 1
	}
	if c.failRun >= 2 {
		d := int64(c.cfg.HeartbeatInterval) << min(c.failRun-2, 20)
		c.nextCutAt = c.now + min(d, int64(c.cfg.MaxCutBackoff))
	}
	if c.failRun == c.cfg.MaxFailedCuts {
		c.goUnprotected()
		c.event(Event{Kind: EvCuttingStopped, Epoch: e.id, Step: c.unprotectedStep, Rank: rank, Peer: -1, Reason: reason,
			Text: fmt.Sprintf("%d consecutive cuts aborted (%s; last: %s): the job runs UNPROTECTED since step %d (last cut %d); "+
				"cuts are retried with backoff", c.failRun, reason, detail, c.unprotectedStep, c.latest().Epoch)})
	}
}

func (c *Coordinator) goUnprotected() {
	if !c.unprotected {
		c.unprotected = true
		c.unprotectedStep = c.latest().Step
	}
}

// tryCommit checks R4 over all N reports and asks for the manifest.
func (c *Coordinator) tryCommit() {
	e := c.cur
	if err := checkCounts(e.reports); err != nil {
		c.event(Event{Kind: EvCountsMismatch, Epoch: e.id, Step: e.step, Rank: -1, Peer: -1, Text: err.Error()})
		c.abortCur(wire.ReasonCounts, -1, -1, err.Error())
		return
	}
	man := &Manifest{Job: c.cfg.Job, Epoch: e.id, Step: e.step, World: len(c.ranks), G: c.g, Final: e.final,
		Shards: make([][]byte, len(c.ranks))}
	for r, rep := range e.reports {
		man.Shards[r] = rep.Ref
		man.Bytes += rep.Bytes
		man.Stored += rep.Stored
	}
	e.committing = true
	c.rd.Commit = man
}

// checkCounts is R4: on every channel i->j, what i sent before its capture
// equals what j delivered before its capture plus what j recorded, and the
// recorded sequence numbers continue the delivered ones without a gap.
func checkCounts(reports []*wire.ShardReport) error {
	matched := 0
	total := 0
	for i, rep := range reports {
		total += len(rep.Counts.In)
		for _, o := range rep.Counts.Out {
			if o.To < 0 || o.To >= len(reports) {
				return fmt.Errorf("R4: rank %d counts a channel to rank %d outside the world", i, o.To)
			}
			in := reports[o.To].Counts.In
			k, ok := slices.BinarySearchFunc(in, i, func(x wire.InCount, r int) int { return x.From - r })
			if !ok {
				return fmt.Errorf("R4: channel %d->%d: rank %d sent %d, rank %d has no count for it", i, o.To, i, o.Sent, o.To)
			}
			got := in[k]
			if got.First != got.Delivered+1 {
				return fmt.Errorf("R4: channel %d->%d: recorded range starts at %d after %d delivered", i, o.To, got.First, got.Delivered)
			}
			if o.Sent != got.Delivered+got.Recorded {
				return fmt.Errorf("R4: channel %d->%d: sent %d, delivered %d + recorded %d", i, o.To, o.Sent, got.Delivered, got.Recorded)
			}
			matched++
		}
	}
	if matched != total {
		return fmt.Errorf("R4: %d incoming channel counts, %d outgoing: a channel is counted by its receiver only", total, matched)
	}
	return nil
}

// ManifestCommitted: the manifest of epoch e is durable (renamed into
// place). It is the truth even when the coordinator has moved on.
func (c *Coordinator) ManifestCommitted(epoch uint64) {
	e := c.cur
	if e == nil || e.id != epoch || !e.committing {
		// Committed after a recovery or restart abandoned it: still a
		// committed cut (store truth).
		if e2 := c.knownStep(epoch); e2 >= 0 {
			c.addCommitted(CommittedCut{Epoch: epoch, Step: e2})
		}
		return
	}
	c.cur = nil
	c.addCommitted(CommittedCut{Epoch: e.id, Step: e.step})
	c.stats.Commits++
	c.recoveries = 0
	c.causes = nil
	c.silentX = max(1, c.silentX/2)
	c.backoffs = 1
	c.lastFail = failure{rank: -1}
	c.blockedRun = 0
	c.failRun, c.failReason, c.nextCutAt = 0, wire.ReasonNone, 0
	if c.unprotected {
		c.unprotected = false
		c.event(Event{Kind: EvCuttingResumed, Epoch: e.id, Step: e.step, Rank: -1, Peer: -1,
			Text: fmt.Sprintf("cut %d committed: the job is protected again (unprotected from step %d)", e.id, c.unprotectedStep)})
	}
	c.factor = max(1, c.factor/2)
	c.lastCutAt = c.now
	c.lastCutStep = e.step
	c.demand = false
	c.beatState = wire.EpochCommitted
	c.broadcast(&wire.Commit{CoordHeader: c.hdr(), Epoch: e.id, Step: e.step})
	var bytes, stored uint64
	for _, r := range e.reports {
		bytes += r.Bytes
		stored += r.Stored
	}
	c.event(Event{Kind: EvCutCommitted, Epoch: e.id, Step: e.step, Rank: -1, Peer: -1, Bytes: bytes, Stored: stored,
		Duration: c.now - e.issuedAt})
	c.rd.GC = &GC{Keep: c.cfg.Keep, Pins: c.pins()}
	c.forgetCollected(c.rd.GC)
	if e.final {
		c.finalCommitted = true
		c.stop(CodeStoppedWithCut, fmt.Sprintf("preempted: final cut %d at step %d committed", e.id, e.step), EvJobStopped)
		return
	}
	c.progress()
}

// knownStep returns the step of epoch if this coordinator issued or adopted
// it, else -1.
func (c *Coordinator) knownStep(epoch uint64) int64 {
	if c.abandoned != nil && c.abandoned.id == epoch {
		return c.abandoned.step
	}
	return -1
}

// ManifestFailed: the manifest of epoch e could not be written; the epoch
// aborts.
func (c *Coordinator) ManifestFailed(epoch uint64, err error) {
	if e := c.cur; e != nil && e.id == epoch && e.committing {
		c.event(c.ev(EvCutAborted, "manifest of cut %d: %v", epoch, err))
		e.committing = false
		c.abortCur(wire.ReasonCommitFailed, -1, -1, err.Error())
		c.progress()
	}
}

// forgetCollected drops from the committed cuts those the GC g may
// delete (all but the newest Keep and the pins): a fallback from a damaged
// cut must never pick a cut that is gone (with --keep 1 nothing older is
// left, and the job restarts from step 0). A GC that fails keeps more than
// this view, never less.
func (c *Coordinator) forgetCollected(g *GC) {
	keep := map[uint64]bool{}
	for _, e := range g.Pins {
		keep[e] = true
	}
	for i := len(c.committed) - 1; i >= 0 && i >= len(c.committed)-g.Keep; i-- {
		keep[c.committed[i].Epoch] = true
	}
	c.committed = slices.DeleteFunc(c.committed, func(cc CommittedCut) bool { return !keep[cc.Epoch] })
}

func (c *Coordinator) pins() []uint64 {
	var pins []uint64
	if len(c.bad) > 0 {
		// A bad cut counts among the newest Keep: pin the newest intact
		// ones so that a fallback always finds one.
		n := 0
		for i := len(c.committed) - 1; i >= 0 && n < c.cfg.Keep; i-- {
			if e := c.committed[i].Epoch; !c.bad[e] {
				pins = append(pins, e)
				n++
			}
		}
	}
	if ri := c.rec.Recovery; ri != nil && ri.Epoch != 0 {
		pins = append(pins, ri.Epoch)
	}
	if c.cur != nil && c.lastCommitted != 0 {
		pins = append(pins, c.lastCommitted)
	}
	return pins
}
