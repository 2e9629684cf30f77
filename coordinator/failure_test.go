package coordinator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// restored starts a ModeRestore coordinator of n ranks (a ring) over the
// given committed cuts and record; nothing is acknowledged by the ranks.
func restored(t *testing.T, n int, cuts []CommittedCut, rec wire.JobRecord, pick uint64) *drive {
	t.Helper()
	rec.Job, rec.World = "t", n
	if rec.Generation == 0 {
		rec.Generation, rec.Incarnation, rec.EpochLimit = 1, 1, 64
	}
	c, err := New(baseConfig(n), Start{Mode: ModeRestore, Record: &rec, Committed: cuts, RestoreCut: pick})
	if err != nil {
		t.Fatal(err)
	}
	d := &drive{t: t, c: c}
	d.step()
	return d
}

// spawns returns the spawns of the Readies so far (rank -> cut).
func (d *drive) spawns() map[int]uint64 {
	out := map[int]uint64{}
	for _, rd := range d.rd {
		for _, s := range rd.Spawn {
			out[s.Rank] = s.Epoch
		}
	}
	return out
}

func (d *drive) outcome() *Outcome {
	for _, rd := range d.rd {
		if rd.Outcome != nil {
			return rd.Outcome
		}
	}
	return nil
}

func (d *drive) events(kind EventKind) []Event {
	var out []Event
	for _, rd := range d.rd {
		for _, ev := range rd.Events {
			if ev.Kind == kind {
				out = append(out, ev)
			}
		}
	}
	return out
}

func (d *drive) lastRecord() *wire.JobRecord {
	var rec *wire.JobRecord
	for _, rd := range d.rd {
		if rd.JobRecord != nil {
			rec = rd.JobRecord
		}
	}
	return rec
}

func ring(r, n int) []int {
	p := []int{(r + n - 1) % n, (r + 1) % n}
	slices.Sort(p)
	return slices.Compact(p)
}

var twoCuts = []CommittedCut{{Epoch: 1, Step: 10}, {Epoch: 2, Step: 20}}

func damagedAlarm(r int, g uint64, cut uint64) *wire.Alarm {
	return &wire.Alarm{RankHeader: wire.RankHeader{Rank: r, Spawn: g, G: g}, Kind: wire.AlarmCutDamaged, Peer: -1, Cut: cut,
		Detail: "job t cut 2 rank 1 buffer \"u\" chunk 0: file packs/x: hash mismatch"}
}

// TestRestoreFallsBackFromDamagedCut: a rank's restore of the latest cut
// reports damage; the cut is marked bad in the record (before anything of
// the new incarnation happens), the rank is respawned and the others are
// rolled back to the older cut, and the job runs from there.
func TestRestoreFallsBackFromDamagedCut(t *testing.T) {
	const n = 3
	d := restored(t, n, twoCuts, wire.JobRecord{}, 0)
	if got := d.spawns(); len(got) != n || got[0] != 2 {
		t.Fatalf("restore spawns %v, want all from cut 2", got)
	}
	g := d.c.Incarnation()
	d.rd = nil
	d.recv(damagedAlarm(1, g, 2))
	if ev := d.events(EvCutDamaged); len(ev) != 1 || !ev[0].Loud() || ev[0].Epoch != 2 || !strings.Contains(ev[0].Text, "chunk 0") {
		t.Fatalf("cut-damaged events %+v", ev)
	}
	if rec := d.lastRecord(); rec == nil || !slices.Equal(rec.BadCuts, []uint64{2}) || rec.Recovery == nil || rec.Recovery.Epoch != 1 {
		t.Fatalf("record %+v", rec)
	}
	if rd := d.rd[0]; rd.JobRecord == nil || len(rd.Spawn) != 0 {
		t.Fatalf("the bad cut must be durable before the respawn: %+v", rd)
	}
	if got := d.spawns(); len(got) != 1 || got[1] != 1 {
		t.Fatalf("spawns after the damage %v, want rank 1 from cut 1", got)
	}
	g2 := d.c.Incarnation()
	rolled := 0
	for _, m := range d.messages() {
		if rb, ok := m.(*wire.Rollback); ok && rb.Epoch == 1 && rb.Step == 10 {
			rolled++
		}
	}
	if rolled != n-1 {
		t.Fatalf("%d rollbacks to cut 1, want %d", rolled, n-1)
	}
	// The ranks come up from cut 1; the job runs.
	for r := range n {
		spawn := g
		if r == 1 {
			spawn = g2
		}
		d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: spawn, G: g2}, State: wire.StateWaitGo, Step: 10, Cut: 1, Peer: -1,
			Hello: &wire.Hello{Peers: ring(r, n)}})
	}
	for _, m := range d.messages() {
		if _, ok := m.(*wire.Go); ok {
			goto running
		}
	}
	t.Fatal("no Go after the fallback")
running:
	// The rank's exit (code 3) after its alarm changes nothing.
	d.c.RankExited(1, g, RankExitCutDamaged)
	d.step()
	if !d.c.Running() || d.outcome() != nil {
		t.Fatal("the exit of the process that reported the damage disturbed the job")
	}
	// A coordinator restarted from this record never picks cut 2 again.
	rec := d.c.rec // as written (the drive acknowledges every write)
	d2 := restored(t, n, twoCuts, rec, 0)
	if got := d2.spawns(); got[0] != 1 {
		t.Fatalf("restore after the fallback spawns from %v, want cut 1", got)
	}
}

// TestDamageExitOfAnOlderRestore: rank 1 reports cut 2 damaged and the
// job falls back to cut 1, rolling the other ranks back in place; rank 0,
// which was failing on cut 2 too, exits with code 3 before it ever spoke
// at the new incarnation. Its exit is about cut 2: cut 1 must stay intact
// (not marked bad), and rank 0 is respawned from cut 1.
func TestDamageExitOfAnOlderRestore(t *testing.T) {
	const n = 3
	d := restored(t, n, twoCuts, wire.JobRecord{}, 0)
	g := d.c.Incarnation()
	d.rd = nil
	d.recv(damagedAlarm(1, g, 2))
	if g2 := d.c.Incarnation(); g2 == g {
		t.Fatal("no new incarnation after the damage")
	}
	d.rd = nil
	d.c.RankExited(0, g, RankExitCutDamaged)
	d.step()
	if ev := d.events(EvCutDamaged); len(ev) != 0 {
		t.Fatalf("the exit of a process restoring cut 2 marked another cut bad: %+v", ev)
	}
	if rec := d.lastRecord(); rec != nil && slices.Contains(rec.BadCuts, 1) {
		t.Fatalf("cut 1 marked bad: %+v", rec)
	}
	for range 100 { // past any respawn backoff
		d.now += int64(100 * time.Millisecond)
		d.c.Tick(d.now)
		d.step()
	}
	if got := d.spawns(); got[0] != 1 {
		t.Fatalf("spawns after rank 0's exit %v, want rank 0 from cut 1", got)
	}
	if o := d.outcome(); o != nil {
		t.Fatalf("outcome %+v", o)
	}
}

// TestDamageExitCodeWithoutAlarm: the exit code alone (the alarm lost)
// falls back too; with no older cut the job restarts from step 0.
func TestDamageExitCodeWithoutAlarm(t *testing.T) {
	d := restored(t, 2, twoCuts[1:], wire.JobRecord{}, 0)
	g := d.c.Incarnation()
	d.rd = nil
	d.c.RankExited(0, g, RankExitCutDamaged)
	d.step()
	if len(d.events(EvCutDamaged)) != 1 {
		t.Fatal("no cut-damaged event")
	}
	if got := d.spawns(); len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Fatalf("spawns %v, want both from step 0", got)
	}
	if o := d.outcome(); o != nil {
		t.Fatalf("outcome %+v", o)
	}
}

// TestRestoreCutByHand: --restore --cut 1 restores cut 1 and marks the
// newer cut bad; a cut that is not committed is a configuration error.
func TestRestoreCutByHand(t *testing.T) {
	d := restored(t, 2, twoCuts, wire.JobRecord{}, 1)
	if got := d.spawns(); got[0] != 1 || got[1] != 1 {
		t.Fatalf("spawns %v", got)
	}
	if rec := d.lastRecord(); !slices.Equal(rec.BadCuts, []uint64{2}) {
		t.Fatalf("bad cuts %v", rec.BadCuts)
	}
	rec := wire.JobRecord{Job: "t", World: 2, Generation: 1, Incarnation: 1, EpochLimit: 64}
	if _, err := New(baseConfig(2), Start{Mode: ModeRestore, Record: &rec, Committed: twoCuts, RestoreCut: 7}); err == nil {
		t.Fatal("cut 7 accepted")
	}
}

// TestRestoreFailedIsDeterministic: a restore that fails for a reason no
// cut cures stops the job at once with the rank's own words.
func TestRestoreFailedIsDeterministic(t *testing.T) {
	d := restored(t, 2, twoCuts, wire.JobRecord{}, 0)
	g := d.c.Incarnation()
	d.recv(&wire.Alarm{RankHeader: wire.RankHeader{Rank: 1, Spawn: g, G: g}, Kind: wire.AlarmRestoreFailed, Peer: -1, Cut: 2,
		Detail: `rank 1: restore cut 2: buffer "u" has 532512 bytes in the cut, 135200 in the job (different sizes?)`})
	o := d.outcome()
	if o == nil || o.Code != CodeDeterministic || !strings.Contains(o.Reason, "532512 bytes in the cut") {
		t.Fatalf("outcome %+v", o)
	}
}

// TestExitBeforeFirstStepIsDeterministic: a process that exits by itself
// before it completed a step (/bin/false) stops the job with its last
// words; a SIGKILL at the same moment is recovered.
func TestExitBeforeFirstStepIsDeterministic(t *testing.T) {
	d := started(t, 2, [][]int{{1}, {0}})
	d.c.RankEnded(1, 1, Exit{Code: 1, Last: "no such buffer"})
	d.step()
	o := d.outcome()
	if o == nil || o.Code != CodeDeterministic || !strings.Contains(o.Reason, "rank 1 exited with code 1") || !strings.Contains(o.Reason, "no such buffer") {
		t.Fatalf("outcome %+v", o)
	}

	d = started(t, 2, [][]int{{1}, {0}})
	d.rd = nil
	d.c.RankEnded(1, 1, Exit{Code: -1, Signal: "SIGKILL", OOM: true})
	d.step()
	if o := d.outcome(); o != nil {
		t.Fatalf("a kill stopped the job: %+v", o)
	}
	ev := d.events(EvRankLost)
	if len(ev) != 1 || !strings.Contains(ev[0].Text, "killed by SIGKILL (likely out of memory)") {
		t.Fatalf("rank-lost %+v", ev)
	}
}

// TestSameFailureTwiceIsDeterministic: the same exit of the same rank from
// the same cut twice in a row (after it made progress) stops the job.
func TestSameFailureTwiceIsDeterministic(t *testing.T) {
	d := restored(t, 2, twoCuts, wire.JobRecord{}, 0)
	spawn0 := d.c.Incarnation()
	run := func() uint64 {
		g := d.c.Incarnation()
		for r := range 2 {
			spawn := g
			if r == 0 {
				spawn = spawn0 // rolled back in place
			}
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: spawn, G: g}, State: wire.StateWaitGo, Step: 20, Cut: 2, Peer: -1,
				Hello: &wire.Hello{Peers: []int{1 - r}}})
		}
		if !d.c.Running() {
			t.Fatal("not running")
		}
		d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 1, Spawn: g, G: g}, State: wire.StateRunning, Step: 23, Peer: -1})
		return g
	}
	g := run()
	d.c.RankEnded(1, g, Exit{Code: 2})
	d.step()
	if d.outcome() != nil {
		t.Fatal("the first failure stopped the job")
	}
	d.now += int64(time.Second)
	d.c.Tick(d.now) // past any respawn backoff
	d.step()
	g = run()
	d.c.RankEnded(1, g, Exit{Code: 2})
	d.step()
	if o := d.outcome(); o == nil || o.Code != CodeDeterministic || !strings.Contains(o.Reason, "second time") {
		t.Fatalf("outcome %+v", o)
	}
}

// TestOOMTwiceIsDeterministic: OOM kills twice in a row from the same cut
// stop the job naming memory, even when the OOM killer picked another rank
// the second time; two plain SIGKILLs in a row are recovered.
func TestOOMTwiceIsDeterministic(t *testing.T) {
	for _, oom := range []bool{true, false} {
		d := restored(t, 2, twoCuts, wire.JobRecord{}, 0)
		spawn0 := d.c.Incarnation()
		run := func() uint64 {
			g := d.c.Incarnation()
			for r := range 2 {
				spawn := g
				if r == 0 {
					spawn = spawn0 // rolled back in place
				}
				d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: spawn, G: g}, State: wire.StateWaitGo, Step: 20, Cut: 2, Peer: -1,
					Hello: &wire.Hello{Peers: []int{1 - r}}})
			}
			if !d.c.Running() {
				t.Fatal("not running")
			}
			for r := range 2 {
				spawn := g
				if r == 0 {
					spawn = spawn0
				}
				d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: spawn, G: g}, State: wire.StateRunning, Step: 23, Peer: -1})
			}
			return g
		}
		kill := Exit{Code: -1, Signal: "SIGKILL", OOM: oom}
		g := run()
		d.c.RankEnded(1, g, kill)
		d.step()
		if d.outcome() != nil {
			t.Fatalf("oom=%v: the first kill stopped the job", oom)
		}
		d.now += int64(time.Second)
		d.c.Tick(d.now)
		d.step()
		run()
		// The second time the OOM killer picks rank 0 (rolled back in
		// place: its process is still spawn0).
		d.c.RankEnded(0, spawn0, kill)
		d.step()
		o := d.outcome()
		if !oom {
			if o != nil {
				t.Fatalf("two SIGKILLs stopped the job: %+v", o)
			}
			continue
		}
		if o == nil || o.Code != CodeDeterministic || !strings.Contains(o.Reason, "likely out of memory") || !strings.Contains(o.Reason, "second time in a row from cut 2") {
			t.Fatalf("outcome %+v", o)
		}
	}
}

// TestCuttingStoppedLoudly: MaxFailedCuts write-failed aborts in a row
// raise cutting-stopped (loud) and the finished job exits CodeUnprotected;
// the cuts are retried with backoff meanwhile, and one that commits makes
// the job protected again.
func TestCuttingStoppedLoudly(t *testing.T) {
	for _, resume := range []bool{false, true} {
		d := started(t, 2, [][]int{{1}, {0}})
		d.c.RequestCut(false)
		d.step()
		attempts := 0
		var lastIssue, step int64
		var gaps []int64
		for attempts < 8 {
			var cut *wire.Cut
			for _, m := range d.messages() {
				if c, ok := m.(*wire.Cut); ok {
					cut = c
				}
			}
			if cut == nil {
				d.now += int64(time.Millisecond)
				step++
				for r := range 2 { // heartbeats
					d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, State: wire.StateRunning, Step: step, Peer: -1})
				}
				d.c.Tick(d.now)
				d.step()
				if d.now > int64(time.Minute) {
					t.Fatalf("resume=%v: %d cut attempts in a minute", resume, attempts)
				}
				continue
			}
			attempts++
			gaps = append(gaps, d.now-lastIssue)
			lastIssue = d.now
			if resume && attempts == 7 {
				for r := range 2 {
					d.recv(&wire.ShardReport{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, Epoch: cut.Epoch, Step: cut.Step, Ref: []byte{1},
						Counts: wire.Counts{Out: []wire.OutCount{{To: 1 - r}}, In: []wire.InCount{{From: 1 - r, First: 1}}}})
				}
				d.c.ManifestCommitted(cut.Epoch)
				d.step()
				break
			}
			d.recv(&wire.EpochAbort{RankHeader: wire.RankHeader{Rank: 1, Spawn: 1, G: 1}, Epoch: cut.Epoch, Reason: wire.ReasonWriteFailed,
				Peer: -1, Detail: "write pack: no space left on device"})
			if attempts == 5 {
				ev := d.events(EvCuttingStopped)
				if len(ev) != 1 || !ev[0].Loud() || !strings.Contains(ev[0].Text, "UNPROTECTED since step") {
					t.Fatalf("cutting-stopped events %+v", ev)
				}
				if u, _ := d.c.Unprotected(); !u {
					t.Fatal("Unprotected() false")
				}
			}
		}
		// Backoff: the gaps between attempts grow.
		if len(gaps) > 4 && !(gaps[4] > gaps[2] && gaps[2] > gaps[1]) {
			t.Fatalf("no backoff between cut attempts: %v", gaps)
		}
		for r := range 2 {
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, State: wire.StateFinished, Step: step, Peer: -1})
		}
		want := CodeUnprotected
		if resume {
			want = CodeFinished
			if len(d.events(EvCuttingResumed)) != 1 {
				t.Fatal("no cutting-resumed event")
			}
		}
		if o := d.outcome(); o == nil || o.Code != want {
			t.Fatalf("resume=%v: outcome %+v, want code %d", resume, o, want)
		}
	}
}

// TestSilenceBacksOff: a rank lost to silence twice without a commit in
// between is given twice the failure timeout the second time (a loaded
// machine, not a dead rank, is the likely cause), and repeated silent
// losses are one cause for the recovery limit.
func TestSilenceBacksOff(t *testing.T) {
	d := started(t, 2, [][]int{{1}, {0}})
	g := uint64(1)
	detect := func() int64 {
		start := d.now
		for i := 1; i <= 100; i++ {
			d.now += int64(10 * time.Millisecond)
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 0, Spawn: g, G: g}, State: wire.StateRunning, Step: int64(i), Peer: -1})
			d.c.Tick(d.now)
			d.step()
			if d.c.Incarnation() != g {
				return d.now - start
			}
		}
		t.Fatal("the silent rank was never declared lost")
		return 0
	}
	first := detect()
	// No cut yet: both respawned at g2 from step 0; both Ready, Go.
	g = d.c.Incarnation()
	d.now += int64(time.Second) // past any respawn backoff
	d.c.Tick(d.now)
	d.step()
	d.recv(hello(0, g, 1))
	d.recv(hello(1, g, 0))
	if !d.c.Running() {
		t.Fatal("not running after the first recovery")
	}
	second := detect()
	if second < 2*first-int64(20*time.Millisecond) {
		t.Fatalf("detection took %v the first time and %v the second: no backoff", time.Duration(first), time.Duration(second))
	}
}

// TestRankNotJoiningNamedThenStopped: a spawned process that never speaks
// (not a rank: `sleep 1000`) is named after the start timeout and
// respawned; the second time from the same cut the job stops.
func TestRankNotJoiningNamedThenStopped(t *testing.T) {
	c, err := New(baseConfig(2), Start{Mode: ModeNew, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := &drive{t: t, c: c}
	d.step()
	for range 2 {
		g := d.c.Incarnation()
		d.recv(hello(0, g, 1)) // rank 0 joins, rank 1 never does
		d.now += int64(61 * time.Second)
		d.c.Tick(d.now)
		d.step()
	}
	ev := d.events(EvRankNotJoined)
	if len(ev) != 2 || !ev[0].Loud() || !strings.Contains(ev[0].Text, "rank 1 did not join within 1m0s") {
		t.Fatalf("rank-not-joined events %+v", ev)
	}
	if o := d.outcome(); o == nil || o.Code != CodeDeterministic || !strings.Contains(o.Reason, "second time in a row") {
		t.Fatalf("outcome %+v", o)
	}
}

// TestProgressTimeout: both ranks heartbeat, only rank 0's step advances;
// with a progress timeout rank 1 is lost for "no progress" once the
// timeout passes (heartbeats prove liveness, not progress), without one it
// never is.
func TestProgressTimeout(t *testing.T) {
	for _, timeout := range []time.Duration{0, 200 * time.Millisecond} {
		cfg := baseConfig(2)
		cfg.ProgressTimeout = timeout
		c, err := New(cfg, Start{Mode: ModeNew, Generation: 1})
		if err != nil {
			t.Fatal(err)
		}
		d := &drive{t: t, c: c}
		d.step()
		d.recv(hello(0, 1, 1))
		d.recv(hello(1, 1, 0))
		d.rd = nil
		var lostAt int64
		for i := 1; i <= 60 && lostAt == 0; i++ {
			d.now += int64(10 * time.Millisecond)
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 0, Spawn: 1, G: 1}, State: wire.StateRunning, Step: int64(i), Peer: -1})
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 1, Spawn: 1, G: 1}, State: wire.StateRunning, Step: 1, Peer: -1})
			d.c.Tick(d.now)
			d.step()
			for _, ev := range d.events(EvRankLost) {
				if ev.Rank != 1 || !strings.Contains(ev.Text, "no progress") {
					t.Fatalf("timeout %v: lost %+v", timeout, ev)
				}
				lostAt = d.now
			}
		}
		switch {
		case timeout == 0 && lostAt != 0:
			t.Fatalf("no progress timeout, but rank 1 was lost at %v", time.Duration(lostAt))
		case timeout > 0 && (lostAt == 0 || lostAt < int64(timeout)):
			t.Fatalf("progress timeout %v: rank 1 lost at %v", timeout, time.Duration(lostAt))
		}
	}
}

// TestReplayedStaleStatusIgnored: a running process that is ready at the
// job's incarnation cannot send an older one's status, so one that arrives
// (a real message resent by anyone on the job's subjects) is ignored: no
// fence, no recovery.
func TestReplayedStaleStatusIgnored(t *testing.T) {
	d := started(t, 2, [][]int{{1}, {0}})
	d.rd = nil
	d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 0, Spawn: 1, G: 0}, State: wire.StateRunning, Step: 3, Peer: -1})
	for _, rd := range d.rd {
		if len(rd.Kill) > 0 || len(rd.Spawn) > 0 || (rd.JobRecord != nil && rd.JobRecord.Recovery != nil) {
			t.Fatalf("a replayed status started a recovery: %+v", rd)
		}
	}
	for _, m := range d.messages() {
		if _, ok := m.(*wire.Fence); ok {
			t.Fatalf("a replayed status fenced the rank")
		}
	}
}

// TestRebuildSilentRankRespawned: a coordinator that takes over hears one
// rank of two; the other died with the previous coordinator's host. The
// rebuild gives up on it after two failure timeouts, not the whole start
// timeout, and respawns only it from the latest cut; before that nothing
// is respawned.
func TestRebuildSilentRankRespawned(t *testing.T) {
	cfg := baseConfig(2) // failure timeout 50ms, start timeout 60s
	rec := &wire.JobRecord{Job: "t", World: 2, Generation: 1, Incarnation: 2, EpochLimit: 8}
	c, err := New(cfg, Start{Mode: ModeRejoin, Record: rec, Committed: []CommittedCut{{Epoch: 3, Step: 40}}, Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	d := &drive{t: t, c: c}
	d.step()
	hb := func(now int64) {
		c.Tick(now)
		d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 0, Spawn: 2, G: 2}, State: wire.StateRunning, Step: 45, Epoch: 3,
			Phase: wire.PhaseCommitted, Peer: -1})
	}
	ms := int64(time.Millisecond)
	for now := int64(0); now <= 95*ms; now += 10 * ms {
		hb(now)
	}
	if s := d.spawns(); len(s) != 0 {
		t.Fatalf("respawned %v before two failure timeouts", s)
	}
	hb(105 * ms)
	s := d.spawns()
	if e, ok := s[1]; !ok || e != 3 || len(s) != 1 {
		t.Fatalf("spawns %v, want rank 1 alone from cut 3", s)
	}
}

// TestStallNotSilence: both ranks heartbeat every 10ms; the coordinator
// itself does not run for 200ms (four failure timeouts). The stall is
// not counted as the ranks' silence (nor in MaxSilence), and
// a rank that really stops is still found one failure timeout later, also
// while the coordinator keeps stalling now and then.
func TestStallNotSilence(t *testing.T) {
	d := started(t, 2, [][]int{{1}, {0}})
	g := d.c.Incarnation()
	ms := int64(time.Millisecond)
	beat := func(ranks ...int) {
		for _, r := range ranks {
			d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: g, G: g}, State: wire.StateRunning, Step: d.now / ms, Peer: -1})
		}
	}
	for range 5 {
		d.now += 10 * ms
		d.c.Tick(d.now)
		beat(0, 1)
	}
	d.now += 200 * ms // the stall
	d.c.Stalled(d.now, 200*time.Millisecond)
	d.c.Tick(d.now)
	d.step()
	beat(0, 1)
	if len(d.events(EvRankLost)) != 0 || d.c.Incarnation() != g {
		t.Fatalf("ranks declared lost for the coordinator's own stall: %+v", d.events(EvRankLost))
	}
	if s := d.c.Stats().MaxSilence; s == 0 || s > 20*time.Millisecond {
		t.Fatalf("MaxSilence %v, want the ranks' 10ms (the stall excluded)", s)
	}
	// Rank 1 stops; the coordinator stalls 30ms every 40ms meanwhile.
	start := d.now
	for i := 0; len(d.events(EvRankLost)) == 0; i++ {
		if d.now-start > 500*ms {
			t.Fatal("the silent rank was never declared lost")
		}
		d.now += 10 * ms
		if i%4 == 3 {
			d.now += 30 * ms
			d.c.Stalled(d.now, 30*time.Millisecond)
		}
		d.c.Tick(d.now)
		d.step()
		beat(0)
	}
	if ev := d.events(EvRankLost); ev[0].Rank != 1 {
		t.Fatalf("lost %+v, want rank 1", ev)
	}
}
