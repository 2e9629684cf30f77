package coordinator

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// TestWholeWorldRecovery: with WholeWorld (an MPI world), one lost rank
// after a committed cut kills the others and respawns every rank from the
// cut, with no rollback in place; without it only the lost rank is
// respawned and the others roll back. The ranks declare no peers, as MPI
// codes on cutpoint do, so the cut's shard reports carry only the
// self-channel.
func TestWholeWorldRecovery(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(fmt.Sprint("whole=", whole), func(t *testing.T) {
			const n = 3
			cfg := baseConfig(n)
			cfg.WholeWorld = whole
			c, err := New(cfg, Start{Mode: ModeNew, Generation: 1})
			if err != nil {
				t.Fatal(err)
			}
			d := &drive{t: t, c: c}
			d.step()
			for r := range n {
				d.recv(hello(r, 1))
			}
			if !c.Running() {
				t.Fatal("not running")
			}
			c.RequestCut(false)
			d.step()
			var cut *wire.Cut
			for _, m := range d.messages() {
				if x, ok := m.(*wire.Cut); ok {
					cut = x
				}
			}
			if cut == nil {
				t.Fatal("no cut issued")
			}
			var commit *Manifest
			for r := range n {
				self := wire.Counts{Out: []wire.OutCount{{To: r}}, In: []wire.InCount{{From: r, First: 1}}}
				d.recv(&wire.ShardReport{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, Epoch: cut.Epoch, Step: cut.Step,
					Ref: []byte(fmt.Sprintf("ref-%d", r)), Bytes: 8, Stored: 8, Counts: self})
			}
			for _, rd := range d.rd {
				if rd.Commit != nil {
					commit = rd.Commit
				}
			}
			if commit == nil || commit.Epoch != cut.Epoch {
				t.Fatalf("no manifest for epoch %d with empty peer sets", cut.Epoch)
			}
			c.ManifestCommitted(cut.Epoch)
			d.step()
			d.rd = nil

			d.now += int64(time.Millisecond)
			c.Tick(d.now)
			// An MPI world's launcher reports its exit for every rank
			// (launch.MPI); the first one processed is not the failed
			// rank, so the lines name the world.
			c.RankEnded(1, 1, Exit{Code: -1, Signal: "SIGKILL", World: whole})
			d.step()
			var kills, spawns, rollbacks []int
			var texts []string
			for _, rd := range d.rd {
				for _, ev := range rd.Events {
					if ev.Kind == EvRankLost || ev.Kind == EvRecoveryStarted {
						texts = append(texts, ev.Text)
					}
				}
				for _, k := range rd.Kill {
					kills = append(kills, k.Rank)
				}
				for _, s := range rd.Spawn {
					if s.Epoch != cut.Epoch || s.Step != cut.Step || s.G != 2 {
						t.Fatalf("spawn %+v, want cut %d step %d incarnation 2", s, cut.Epoch, cut.Step)
					}
					spawns = append(spawns, s.Rank)
				}
				for _, m := range rd.Messages {
					if cm, _ := wire.DecodeCoord(m.Data); cm != nil {
						if _, ok := cm.(*wire.Rollback); ok {
							rollbacks = append(rollbacks, m.To)
						}
					}
				}
			}
			wantKills, wantSpawns, wantRollbacks := []int{0, 2}, []int{0, 1, 2}, []int(nil)
			if !whole {
				wantKills, wantSpawns, wantRollbacks = nil, []int{1}, []int{0, 2}
			}
			if !slices.Equal(kills, wantKills) || !slices.Equal(spawns, wantSpawns) || !slices.Equal(rollbacks, wantRollbacks) {
				t.Fatalf("kills %v spawns %v rollbacks %v, want %v %v %v", kills, spawns, rollbacks, wantKills, wantSpawns, wantRollbacks)
			}
			if len(texts) != 2 {
				t.Fatalf("loss and recovery lines %q, want two", texts)
			}
			for _, text := range texts {
				if world := strings.Contains(text, "MPI world"); world != whole || whole && strings.Contains(text, "rank 1") {
					t.Errorf("line %q: names the world %v, want %v", text, world, whole)
				}
			}
			if !whole {
				return
			}
			// The old world's other exits arrive late: stale, ignored.
			d.rd = nil
			c.RankExited(0, 1, -1)
			c.RankExited(2, 1, -1)
			d.step()
			for _, rd := range d.rd {
				if len(rd.Spawn) > 0 || len(rd.Kill) > 0 {
					t.Fatalf("a stale exit caused %+v", rd)
				}
			}
			for r := range n {
				h := hello(r, 2)
				h.Cut, h.Step = cut.Epoch, cut.Step
				d.recv(h)
			}
			if !c.Running() {
				t.Fatal("not running after the relaunch")
			}
		})
	}
}
