package coordinator

import (
	"fmt"
	"time"
)

// Liveness is what the launcher can tell of a silent rank's process
// (Confirmed).
type Liveness uint8

const (
	// LiveUnknown: the launcher cannot tell (the ranks are started
	// elsewhere, or its child is only a wrapper such as ssh in front of
	// the remote process, or the process is not its own).
	LiveUnknown Liveness = iota
	// LiveGone: the process has exited (a zombie, reaped, its srun task
	// ended, its node failed); its exit report may still be on its way.
	LiveGone
	// LiveStopped: the process exists but does not run (SIGSTOP, traced):
	// it will not speak by itself, so it gets no grace.
	LiveStopped
	// LiveRunning: the process exists and runs (or sleeps, as a rank
	// waiting on the network does): a machine loaded beyond its cores
	// delays heartbeats, so it gets one more failure timeout.
	LiveRunning
)

var livenessNames = [...]string{"unknown", "gone", "stopped", "running"}

func (l Liveness) String() string {
	if int(l) < len(livenessNames) {
		return livenessNames[l]
	}
	return fmt.Sprintf("liveness(%d)", uint8(l))
}

// probe is the confirmation of one rank's silence: asked once per
// silence, answered at most once.
type probe struct {
	at       int64 // when the launcher was asked (0: not during this silence)
	answered bool
	live     Liveness
}

// confirmSilent decides for a running rank silent past the failure
// timeout, when Config.ConfirmSilence is set: wait (true) while the
// launcher's answer is awaited or while a process it says runs has its
// grace; else the rank is lost now, and note says what the launcher said.
// The first silence past the timeout asks (Ready.Confirm). An answer other
// than LiveRunning is final at the next failure check. LiveRunning buys
// one more failure timeout from the question, once: a stopped or hung
// process, or one on a host cut off from NATS, must still be replaced
// (and is fenced by its spawn id, R13). No answer within that failure
// timeout counts as LiveUnknown, so a launcher that never answers delays
// detection by one failure timeout at most.
func (c *Coordinator) confirmSilent(r int, m *member) (wait bool, note string) {
	if !c.cfg.ConfirmSilence {
		return false, ""
	}
	p := &m.probe
	switch {
	case p.at == 0:
		p.at = c.now
		c.stats.Confirms++
		c.rd.Confirm = append(c.rd.Confirm, Process{Rank: r, Spawn: m.spawn})
		return true, ""
	case p.answered && p.live != LiveRunning:
		return false, "; launcher: process " + p.live.String()
	case c.now-p.at < int64(c.cfg.FailureTimeout):
		return true, ""
	case p.answered:
		return false, fmt.Sprintf("; launcher: process running, still silent %v later (hung, or cut off from NATS)", c.cfg.FailureTimeout)
	default:
		return false, fmt.Sprintf("; launcher: no answer within %v", c.cfg.FailureTimeout)
	}
}

// Confirmed is the launcher's answer to Ready.Confirm for process (Rank,
// Spawn): whether it still exists and runs. LiveRunning gives a silent
// rank one more failure timeout; any other answer lets it be declared lost
// at the next Tick (with the other ranks silent by then, in one recovery).
// An answer for a process the coordinator no longer asks about (it spoke
// again, was replaced, or the job is recovering) is ignored.
func (c *Coordinator) Confirmed(rank int, spawn uint64, l Liveness) {
	if rank < 0 || rank >= len(c.ranks) || c.ph != phRunning {
		return
	}
	m := &c.ranks[rank]
	p := &m.probe
	if !m.alive || m.spawn != spawn || p.at == 0 || p.answered {
		return
	}
	p.answered, p.live = true, l
	if l == LiveRunning {
		c.event(Event{Kind: EvRankSilentRunning, Rank: rank, Peer: -1, Step: m.step,
			Text: fmt.Sprintf("silent for %v but its process runs: lost if still silent %v from now", time.Duration(c.now-m.lastHeard), time.Duration(p.at+int64(c.cfg.FailureTimeout)-c.now))})
		return
	}
	// Decide at the next Tick, after every answer of this Ready is in.
	c.lastFailureCheck = 0
}

// heardAgain ends the confirmation of a rank that spoke: counted as
// spared when its process had been found running (a loss the grace
// avoided).
func (c *Coordinator) heardAgain(m *member) {
	if m.probe.at == 0 {
		return
	}
	if m.probe.answered && m.probe.live == LiveRunning && c.ph == phRunning {
		c.stats.Spared++
	}
	m.probe = probe{}
}
