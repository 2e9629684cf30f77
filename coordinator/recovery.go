package coordinator

import (
	"fmt"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// recover starts (or restarts) a recovery with the given ranks lost.
func (c *Coordinator) recover(lost []int, why string) { c.recoverAs(lost, why, true) }

// recoverAs is recover; counted says whether it counts against
// MaxRecoveries (a fallback from a damaged cut or an outage does not: the
// cause is not the job's).
func (c *Coordinator) recoverAs(lost []int, why string, counted bool) {
	if c.ph == phStopped {
		return
	}
	for _, r := range lost {
		c.ranks[r].lost = true
	}
	first := -1
	if len(lost) > 0 {
		first = lost[0]
	}
	c.startRecovery(first, why, counted)
	if !counted && c.ph != phStopped {
		c.stats.Recoveries++
	}
}

// causeKey is why with every number replaced by '#': "rank 3 exited with
// code 1" and "rank 0 exited with code 2" are one cause.
func causeKey(why string) string {
	b := []byte(why)
	out := b[:0]
	for i := 0; i < len(b); i++ {
		if b[i] >= '0' && b[i] <= '9' {
			if len(out) == 0 || out[len(out)-1] != '#' {
				out = append(out, '#')
			}
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

// respawnBackoff is the wait before the next launch: none for the first
// recovery since a commit, then one heartbeat doubling per recovery (or
// outage respawn) up to MaxRespawnBackoff.
func (c *Coordinator) respawnBackoff() int64 {
	if c.backoffs <= 1 {
		return 0 // the first launch, or the first recovery since a commit
	}
	d := int64(c.cfg.HeartbeatInterval) << min(c.backoffs-2, 20)
	return min(d, int64(c.cfg.MaxRespawnBackoff))
}

// startRecovery chooses the target (the latest committed cut, R12), the
// ranks to respawn, the next incarnation, and asks for the job record with
// the intent; the rest happens when it is durable (launch).
func (c *Coordinator) startRecovery(rank int, why string, counted bool) {
	if e := c.cur; e != nil {
		c.cur = nil
		c.stats.Aborts++
		if e.committing {
			c.abandoned = e // its manifest may still land: store truth
		}
		c.event(Event{Kind: EvCutAborted, Epoch: e.id, Step: e.step, Rank: rank, Peer: -1, Reason: wire.ReasonRankFailed, Text: why})
	}
	if counted {
		// The limit is per cause: recoveries that have the same cause
		// (the same words, rank numbers and codes aside) without a
		// commit in between. Different causes in a row are bounded too,
		// more loosely, so that no mix of them loops for ever.
		c.recoveries++
		c.stats.Recoveries++
		if c.causes == nil {
			c.causes = map[string]int{}
		}
		k := causeKey(why)
		c.causes[k]++
		switch {
		case c.causes[k] > c.cfg.MaxRecoveries:
			c.fail(fmt.Sprintf("%d recoveries for the same cause without a commit in between (last: %s)", c.causes[k], why))
			return
		case c.recoveries > 4*c.cfg.MaxRecoveries:
			c.fail(fmt.Sprintf("%d recoveries without a commit in between (last: %s)", c.recoveries, why))
			return
		}
	}
	target := c.latest()
	var lost []int
	for r := range c.ranks {
		m := &c.ranks[r]
		// No committed cut: everyone restarts from step 0 in a fresh
		// process (a rank cannot rebuild its initial state in place).
		// Finished ranks have left their job loop: respawn them too.
		// WholeWorld: one lost rank is all of them lost.
		if c.ph == phRebuilding && !m.heard {
			m.unknown = true
		}
		if target.Epoch == 0 || c.cfg.WholeWorld || m.lost || !m.alive || m.finished || m.unknown {
			m.lost = true
			lost = append(lost, r)
		}
	}
	c.g++
	c.rec.Incarnation = c.g
	c.launchAt = 0
	c.rec.Recovery = &wire.RecoveryIntent{Epoch: target.Epoch, Step: target.Step, Lost: lost}
	if c.ph != phStarting {
		c.ph = phRecovering
	}
	c.launched = false
	c.nReady = 0
	if !c.inRecovery {
		c.inRecovery = true
		c.recoveryStart = c.now
	}
	c.beatEpoch, c.beatStep, c.beatState = 0, 0, wire.EpochNone
	c.persist(opLaunch)
	kind := EvRecoveryStarted
	if c.ph == phStarting && !c.starting && rank < 0 {
		kind = EvJobStarting
		c.starting = true
	}
	c.event(Event{Kind: kind, Epoch: target.Epoch, Step: target.Step, Rank: rank, Peer: -1,
		Text: fmt.Sprintf("%s; incarnation %d, %d ranks to spawn", why, c.g, len(lost))})
}

// launchLater launches at once, or after the respawn backoff (Tick).
func (c *Coordinator) launchLater() {
	d := c.respawnBackoff()
	c.backoffs++
	if d == 0 {
		c.launch()
		return
	}
	c.launchAt = c.now + d
	c.event(Event{Kind: EvRecoveryStarted, Rank: -1, Peer: -1, Duration: d,
		Text: fmt.Sprintf("respawn in %v (backoff: %d recoveries since the last commit)", time.Duration(d), c.backoffs-1)})
}

// launch runs once the recovery intent is durable: kill, respawn, roll back.
func (c *Coordinator) launch() {
	ri := c.rec.Recovery
	for _, r := range ri.Lost {
		m := &c.ranks[r]
		if m.alive || m.unknown {
			// R13: the suspected process is gone before its replacement
			// starts (Spawn 0: whatever may run for the rank).
			spawn := m.spawn
			if m.unknown {
				spawn = 0
			}
			c.rd.Kill = append(c.rd.Kill, Process{Rank: r, Spawn: spawn})
		}
	}
	for _, r := range ri.Lost {
		m := &c.ranks[r]
		c.rd.Spawn = append(c.rd.Spawn, Spawn{Rank: r, G: c.g, Epoch: ri.Epoch, Step: ri.Step})
		*m = member{spawn: c.g, from: ri.Epoch, alive: true, lastHeard: c.now, peers: m.peers, total: m.total}
	}
	for r := range c.ranks {
		m := &c.ranks[r]
		m.ready = false
		m.lastHeard = c.now
		if m.lost {
			m.lost = false
			continue
		}
		if m.spawn != c.g {
			c.sendRollback(r)
		}
	}
	c.launched = true
	c.deadline = c.now + int64(c.cfg.StartTimeout)
}

func (c *Coordinator) sendRollback(r int) {
	ri := c.rec.Recovery
	m := &c.ranks[r]
	m.rbSent = c.now
	c.send(r, &wire.Rollback{CoordHeader: c.hdr(), Rank: r, Spawn: m.spawn, Epoch: ri.Epoch, Step: ri.Step})
}

// allReady: every rank is Ready(g); clear the intent durably, then Go.
func (c *Coordinator) allReady() {
	if !c.checkPeers() {
		return
	}
	c.rec.Recovery = nil
	c.persist(opGo)
}

func (c *Coordinator) goRunning() {
	target := c.latest()
	c.ph = phRunning
	c.broadcast(&wire.Go{CoordHeader: c.hdr()})
	c.maxStep = target.Step
	for r := range c.ranks {
		m := &c.ranks[r]
		m.state = wire.StateRunning
		m.lastHeard = c.now
		m.step, m.stepAt = target.Step, c.now
		m.sampled = false
		m.finished = false
	}
	c.nSampled = 0
	c.nFinished = 0
	c.lastCutAt = c.now
	c.lastCutStep = target.Step
	c.lastFailureCheck = c.now
	c.goStep = target.Step
	c.outageAt = 0
	c.inRecovery = false
	kind := EvRecoveryFinished
	if c.starting {
		kind, c.starting = EvJobRunning, false
	}
	c.event(Event{Kind: kind, Epoch: target.Epoch, Step: target.Step, Rank: -1, Peer: -1,
		Duration: c.now - c.recoveryStart, Text: fmt.Sprintf("incarnation %d running", c.g)})
}

// decideRebuild ends a coordinator restart (R15): adopt the running job
// when every rank answered at the recorded incarnation with no recovery in
// progress, else recover again with g+1.
func (c *Coordinator) decideRebuild() {
	if c.recAwait != 0 || c.ph != phRebuilding {
		return
	}
	var missing []int
	consistent := c.rec.Recovery == nil
	for r := range c.ranks {
		m := &c.ranks[r]
		if !m.heard || !m.alive {
			missing = append(missing, r)
			consistent = false
			continue
		}
		if m.g != c.g || m.state == wire.StateRollingBack {
			consistent = false
		}
	}
	if !consistent {
		why := "coordinator restart: "
		switch {
		case len(missing) > 0:
			why += fmt.Sprintf("%d ranks not heard (first %d)", len(missing), missing[0])
		case c.rec.Recovery != nil:
			why += "a recovery was in progress"
		default:
			why += "ranks at different incarnations"
		}
		c.recover(missing, why)
		return
	}
	c.ph = phRunning
	defer func() {
		if c.ph == phRunning && c.nFinished == len(c.ranks) {
			c.stop(CodeFinished, "every rank finished", EvJobFinished)
		}
	}()
	waiting := false
	var top uint64
	var topStep int64
	for r := range c.ranks {
		m := &c.ranks[r]
		m.lastHeard, m.stepAt = c.now, c.now
		if m.step > c.maxStep {
			c.maxStep = m.step
		}
		if m.finished {
			c.nFinished++
		}
		if m.state == wire.StateWaitGo {
			waiting = true
		}
		if m.epoch > top {
			top, topStep = m.epoch, m.estep
		}
	}
	c.lastCutStep = c.latest().Step
	c.lastCutAt = c.now
	c.event(Event{Kind: EvRebuilt, Rank: -1, Peer: -1, Epoch: top,
		Text: fmt.Sprintf("adopted incarnation %d, %d ranks, latest epoch %d", c.g, len(c.ranks), top)})
	if waiting {
		c.broadcast(&wire.Go{CoordHeader: c.hdr()})
	}
	if top == 0 || top <= c.latest().Epoch {
		if top != 0 && top == c.latest().Epoch {
			c.beatEpoch, c.beatStep, c.beatState = top, c.latest().Step, wire.EpochCommitted
			c.broadcast(&wire.Commit{CoordHeader: c.hdr(), Epoch: top, Step: c.latest().Step})
		}
		return
	}
	// An epoch of the previous generation: complete it if it can still
	// commit (every shard durable and R4 holds), else abort it.
	e := &inflight{id: top, step: topStep, issuedAt: c.now, reports: make([]*wire.ShardReport, len(c.ranks))}
	c.cur = e
	c.beatEpoch, c.beatStep, c.beatState = top, topStep, wire.EpochInFlight
	for r := range c.ranks {
		m := &c.ranks[r]
		if m.epoch == top && m.ephase == wire.PhaseAborted {
			reason := m.ereas
			if reason == wire.ReasonNone {
				reason = wire.ReasonCoordinatorRestart
			}
			c.abortCur(reason, r, -1, "aborted by the rank while the coordinator was away")
			return
		}
		if m.report != nil && m.report.Epoch == top && m.report.Step == topStep {
			e.reports[r] = m.report
			e.n++
		}
		m.report = nil
	}
	if e.n == len(c.ranks) {
		c.tryCommit()
	}
}
