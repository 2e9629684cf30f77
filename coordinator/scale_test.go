package coordinator

import (
	"fmt"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// grid2D returns the 4-neighbour peers of every rank on a px x py grid.
func grid2D(n int) [][]int {
	px := 1
	for px*px < n {
		px++
	}
	for n%px != 0 {
		px--
	}
	peers := make([][]int, n)
	for r := range n {
		x, y := r%px, r/px
		if y > 0 {
			peers[r] = append(peers[r], r-px)
		}
		if x > 0 {
			peers[r] = append(peers[r], r-1)
		}
		if x+1 < px {
			peers[r] = append(peers[r], r+1)
		}
		if r+px < n {
			peers[r] = append(peers[r], r+px)
		}
	}
	return peers
}

// scaleJob is a coordinator driven directly with encoded rank messages, as
// its driver would feed it: no participants, so only the coordinator's own
// cost is measured.
type scaleJob struct {
	c      *Coordinator
	n      int
	peers  [][]int
	now    int64
	out    int // publishes (a broadcast is one)
	in     int // rank messages handed to Receive
	deliv  int // messages delivered to ranks (a broadcast reaches all N)
	commit *Manifest
}

func newScaleJob(tb testing.TB, n int) *scaleJob {
	j := &scaleJob{n: n, peers: grid2D(n)}
	c, err := New(Config{Job: "scale", World: n, HeartbeatInterval: time.Second, EpochBlock: 1 << 20},
		Start{Mode: ModeNew, Now: 0})
	if err != nil {
		tb.Fatal(err)
	}
	j.c = c
	j.drain(tb)
	for r := range n {
		j.receive(tb, &wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, State: wire.StateWaitGo,
			Peer: -1, Hello: &wire.Hello{Peers: j.peers[r]}})
	}
	j.drain(tb)
	if !j.c.Running() {
		tb.Fatal("not running after every Ready(1)")
	}
	j.out, j.in, j.deliv = 0, 0, 0
	return j
}

func (j *scaleJob) receive(tb testing.TB, m wire.RankMsg) {
	if err := j.c.Receive(wire.EncodeRank(m)); err != nil {
		tb.Fatal(err)
	}
	j.in++
	j.drain(tb)
}

func (j *scaleJob) drain(tb testing.TB) {
	for j.c.HasReady() {
		rd := j.c.Ready()
		for _, m := range rd.Messages {
			j.out++
			if m.To == Broadcast {
				j.deliv += j.n
			} else {
				j.deliv++
			}
		}
		if rd.Commit != nil {
			j.commit = rd.Commit
		}
		if rd.JobRecord != nil {
			j.c.JobRecordWritten(rd.JobRecord.Seq)
		}
		if rd.Outcome != nil {
			tb.Fatalf("outcome: %+v", rd.Outcome)
		}
		j.c.Advance(rd)
	}
}

// reports encodes every rank's shard report for epoch e at step s: on each
// channel one message was delivered before the cut and one recorded.
func (j *scaleJob) reports(e uint64, s int64) [][]byte {
	out := make([][]byte, j.n)
	for r := range j.n {
		chans := append([]int(nil), j.peers[r]...)
		chans = append(chans, r)
		sortInts(chans)
		c := wire.Counts{Out: make([]wire.OutCount, len(chans)), In: make([]wire.InCount, len(chans))}
		for i, q := range chans {
			c.Out[i] = wire.OutCount{To: q, Sent: uint64(2 * e)}
			c.In[i] = wire.InCount{From: q, Delivered: uint64(2*e - 1), First: uint64(2 * e), Recorded: 1}
		}
		out[r] = wire.EncodeRank(&wire.ShardReport{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, Epoch: e, Step: s,
			Ref: []byte(fmt.Sprintf("pack-1-%d", r)), Bytes: 1 << 20, Stored: 1 << 19, Counts: c})
	}
	return out
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for k := i; k > 0 && a[k] < a[k-1]; k-- {
			a[k], a[k-1] = a[k-1], a[k]
		}
	}
}

// cut asks for a cut and returns its epoch and step.
func (j *scaleJob) cut(tb testing.TB) (uint64, int64) {
	j.c.RequestCut(false)
	j.drain(tb)
	if j.c.cur == nil {
		tb.Fatal("no cut started")
	}
	return j.c.cur.id, j.c.cur.step
}

// collect feeds the pre-encoded reports of epoch e and commits it.
func (j *scaleJob) collect(tb testing.TB, reports [][]byte, e uint64) {
	for _, b := range reports {
		if err := j.c.Receive(b); err != nil {
			tb.Fatal(err)
		}
		j.in++
	}
	j.drain(tb)
	if j.commit == nil || j.commit.Epoch != e {
		tb.Fatalf("epoch %d did not reach its manifest", e)
	}
	j.commit = nil
	j.c.ManifestCommitted(e)
	j.drain(tb)
}

// heartbeats runs one heartbeat round: a Status from every rank and a Tick.
func (j *scaleJob) heartbeats(tb testing.TB, statuses [][]byte) {
	j.now += int64(time.Second)
	for _, b := range statuses {
		if err := j.c.Receive(b); err != nil {
			tb.Fatal(err)
		}
		j.in++
	}
	j.c.Tick(j.now)
	j.drain(tb)
}

// TestScaleMessagesLinear: an epoch costs N rank messages in and a constant
// number of publishes out, whatever N (the deterministic half of the scale
// claim; BenchmarkCoordinator measures the CPU half).
func TestScaleMessagesLinear(t *testing.T) {
	for _, n := range []int{256, 1024, 4096} {
		j := newScaleJob(t, n)
		e, s := j.cut(t)
		j.collect(t, j.reports(e, s), e)
		if j.in != n || j.out != 2 || j.deliv != 2*n {
			t.Errorf("N=%d: %d in, %d publishes, %d deliveries per epoch; want %d, 2, %d", n, j.in, j.out, j.deliv, n, 2*n)
		}
	}
}

// BenchmarkCoordinator measures one epoch (Cut, N shard reports with their
// R4 counts, manifest, Commit) and one heartbeat round at N ranks on a 2-D
// grid. ns/rank staying flat as N grows is the linear claim.
func BenchmarkCoordinator(b *testing.B) {
	for _, n := range []int{1024, 4096, 16384, 65536} {
		b.Run(fmt.Sprintf("epoch/N=%d", n), func(b *testing.B) {
			j := newScaleJob(b, n)
			b.ReportAllocs()
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				j.in, j.out, j.deliv = 0, 0, 0
				b.StartTimer()
				e, s := j.cut(b)
				b.StopTimer()
				reps := j.reports(e, s) // the ranks' work, not timed
				b.StartTimer()
				j.collect(b, reps, e)
				b.StopTimer()
			}
			b.ReportMetric(float64(j.in), "msgs-in/epoch")
			b.ReportMetric(float64(j.out), "publishes/epoch")
			b.ReportMetric(float64(j.deliv), "deliveries/epoch")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rank")
		})
		b.Run(fmt.Sprintf("heartbeat/N=%d", n), func(b *testing.B) {
			j := newScaleJob(b, n)
			st := make([][]byte, n)
			for r := range n {
				st[r] = wire.EncodeRank(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, State: wire.StateRunning, Peer: -1})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j.heartbeats(b, st)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rank")
		})
	}
}
