package coordinator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// confirming starts a running job of n ranks with ConfirmSilence set (or
// not); the failure timeout is the default 5 heartbeats (50ms).
func confirming(t *testing.T, n int, confirm bool) *drive {
	t.Helper()
	cfg := baseConfig(n)
	cfg.ConfirmSilence = confirm
	c, err := New(cfg, Start{Mode: ModeNew, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := &drive{t: t, c: c}
	d.step()
	for r := range n {
		d.recv(hello(r, 1, ring(r, n)...))
	}
	if !d.c.Running() {
		t.Fatal("not running")
	}
	d.rd = nil
	return d
}

// silence advances time in 5ms steps with only the ranks in talking
// heard, answering every Ready.Confirm with answer(rank) (nil: not at
// all), until a recovery starts or limit passes. It returns how long the
// silence lasted and the ranks asked about.
func (d *drive) silence(limit time.Duration, answer func(r int) *Liveness, talking ...int) (time.Duration, []int) {
	d.t.Helper()
	g := d.c.Incarnation()
	start := d.now
	var asked []int
	for d.now-start < int64(limit) {
		d.now += int64(5 * time.Millisecond)
		for _, r := range talking {
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: g, G: g}, State: wire.StateRunning, Step: d.now / int64(time.Millisecond), Peer: -1})
		}
		d.c.Tick(d.now)
		for d.c.HasReady() {
			rd := d.c.Ready()
			d.c.Advance(rd)
			d.rd = append(d.rd, rd)
			if rd.JobRecord != nil {
				d.c.JobRecordWritten(rd.JobRecord.Seq)
			}
			for _, p := range rd.Confirm {
				if p.Spawn != g {
					d.t.Fatalf("asked about spawn %d of rank %d, the running one is %d", p.Spawn, p.Rank, g)
				}
				asked = append(asked, p.Rank)
				if l := answer(p.Rank); l != nil {
					d.c.Confirmed(p.Rank, p.Spawn, *l)
				}
			}
		}
		if d.c.Incarnation() != g {
			break
		}
	}
	return time.Duration(d.now - start), asked
}

func live(l Liveness) func(int) *Liveness { return func(int) *Liveness { return &l } }

func lostRanks(d *drive) []int {
	var out []int
	for _, rd := range d.rd {
		if rec := rd.JobRecord; rec != nil && rec.Recovery != nil {
			out = rec.Recovery.Lost
		}
	}
	return out
}

const ft = 50 * time.Millisecond // the default failure timeout of baseConfig

// TestConfirmGoneLostAtOnce: a silent rank whose process the launcher
// says is gone (or stopped, or that it cannot tell about) is lost at the
// failure timeout, with no grace, and the launcher was asked once.
func TestConfirmGoneLostAtOnce(t *testing.T) {
	for _, l := range []Liveness{LiveGone, LiveStopped, LiveUnknown} {
		t.Run(l.String(), func(t *testing.T) {
			d := confirming(t, 2, true)
			took, asked := d.silence(time.Second, live(l), 0)
			if !slices.Equal(asked, []int{1}) {
				t.Fatalf("asked about %v, want [1] once", asked)
			}
			if took <= ft || took > ft+10*time.Millisecond {
				t.Fatalf("lost after %v of silence, want just past the failure timeout %v (no grace)", took, ft)
			}
			ev := d.events(EvRankLost)
			if len(ev) != 1 || ev[0].Rank != 1 || !strings.Contains(ev[0].Text, "launcher: process "+l.String()) {
				t.Fatalf("rank-lost events %+v", ev)
			}
			if len(d.events(EvRankSilentRunning)) != 0 {
				t.Fatal("a grace for a process that does not run")
			}
		})
	}
}

// TestConfirmRunningGrace: a silent rank whose process runs gets one more
// failure timeout, once; still silent then, it is lost (a hung process or
// one cut off from NATS is replaced all the same).
func TestConfirmRunningGrace(t *testing.T) {
	d := confirming(t, 3, true)
	took, asked := d.silence(time.Second, live(LiveRunning), 0, 2)
	if !slices.Equal(asked, []int{1}) {
		t.Fatalf("asked about %v, want [1] once", asked)
	}
	if took <= 2*ft || took > 2*ft+10*time.Millisecond {
		t.Fatalf("lost after %v of silence, want just past twice the failure timeout %v", took, 2*ft)
	}
	if ev := d.events(EvRankSilentRunning); len(ev) != 1 || ev[0].Rank != 1 {
		t.Fatalf("silent-running events %+v", ev)
	}
	ev := d.events(EvRankLost)
	if len(ev) != 1 || !strings.Contains(ev[0].Text, "still silent") {
		t.Fatalf("rank-lost events %+v", ev)
	}
	if got := lostRanks(d); !slices.Equal(got, []int{0, 1, 2}) { // no cut yet: all restart
		t.Fatalf("recovery lost %v", got)
	}
}

// TestConfirmRunningSpared: a rank that speaks again during its grace is
// not lost (a loss the confirmation avoided: Stats.Spared), and a later
// silence asks again.
func TestConfirmRunningSpared(t *testing.T) {
	d := confirming(t, 2, true)
	_, asked := d.silence(ft+30*time.Millisecond, live(LiveRunning), 0)
	if !slices.Equal(asked, []int{1}) || len(d.events(EvRankLost)) != 0 {
		t.Fatalf("asked %v, lost %+v", asked, d.events(EvRankLost))
	}
	d.silence(20*time.Millisecond, live(LiveRunning), 0, 1) // it speaks again
	if s := d.c.Stats(); s.Spared != 1 || s.Confirms != 1 || len(d.events(EvRankLost)) != 0 {
		t.Fatalf("stats %+v, lost %+v", s, d.events(EvRankLost))
	}
	took, asked := d.silence(time.Second, live(LiveGone), 0)
	if !slices.Equal(asked, []int{1}) || took > ft+10*time.Millisecond {
		t.Fatalf("second silence: asked %v, lost after %v", asked, took)
	}
}

// TestConfirmNoAnswer: a launcher that never answers delays the loss by
// one failure timeout at most.
func TestConfirmNoAnswer(t *testing.T) {
	d := confirming(t, 2, true)
	took, _ := d.silence(time.Second, func(int) *Liveness { return nil }, 0)
	if took <= 2*ft || took > 2*ft+10*time.Millisecond {
		t.Fatalf("lost after %v of silence, want just past %v", took, 2*ft)
	}
	if ev := d.events(EvRankLost); len(ev) != 1 || !strings.Contains(ev[0].Text, "no answer") {
		t.Fatalf("rank-lost events %+v", ev)
	}
}

// TestConfirmOff: without ConfirmSilence nothing is asked and a silent
// rank is lost at the failure timeout, as it always was.
func TestConfirmOff(t *testing.T) {
	d := confirming(t, 2, false)
	took, asked := d.silence(time.Second, live(LiveRunning), 0)
	if len(asked) != 0 || d.c.Stats().Confirms != 0 {
		t.Fatalf("asked about %v without ConfirmSilence", asked)
	}
	if took <= ft || took > ft+10*time.Millisecond {
		t.Fatalf("lost after %v of silence, want just past %v", took, ft)
	}
}

// TestConfirmPendingJoinsRecovery: a rank in its grace when another rank
// is lost is respawned in the same recovery (a rollback it cannot answer
// would hold the others up to the start timeout).
func TestConfirmPendingJoinsRecovery(t *testing.T) {
	d := confirming(t, 4, true)
	// Ranks 1 and 2 fall silent: 1 runs, 2 is gone. Rank 2 is answered
	// a tick later than rank 1 (its own silence began later).
	g := d.c.Incarnation()
	for range 2 {
		d.now += int64(5 * time.Millisecond)
		d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 2, Spawn: g, G: g}, State: wire.StateRunning, Step: 1, Peer: -1})
	}
	answer := func(r int) *Liveness {
		l := LiveRunning
		if r == 2 {
			l = LiveGone
		}
		return &l
	}
	d.silence(time.Second, answer, 0, 3)
	if got := lostRanks(d); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("recovery lost %v", got)
	}
	var lost []int
	for _, ev := range d.events(EvRankLost) {
		lost = append(lost, ev.Rank)
	}
	slices.Sort(lost)
	if !slices.Equal(lost, []int{1, 2}) {
		t.Fatalf("rank-lost events for %v, want [1 2]", lost)
	}
	if ev := d.events(EvRecoveryStarted); len(ev) != 1 {
		t.Fatalf("%d recoveries, want one for both", len(ev))
	}
}

// TestConfirmStaleAnswer: an answer for a process that is not asked about
// (another spawn, a rank that spoke) changes nothing.
func TestConfirmStaleAnswer(t *testing.T) {
	d := confirming(t, 2, true)
	d.c.Confirmed(1, 1, LiveGone) // never asked
	d.c.Confirmed(1, 7, LiveGone) // another spawn
	d.c.Confirmed(5, 1, LiveGone) // no such rank
	d.silence(30*time.Millisecond, live(LiveGone), 0, 1)
	if len(d.events(EvRankLost)) != 0 || d.c.Stats().Confirms != 0 {
		t.Fatalf("lost %+v", d.events(EvRankLost))
	}
}
