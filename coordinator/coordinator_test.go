package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

func baseConfig(n int) Config {
	return Config{Job: "t", World: n, HeartbeatInterval: 10 * time.Millisecond, EpochBlock: 8}
}

func TestConfigRejected(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		text string
	}{
		{func(c *Config) { c.Job = "a/b" }, "job name"},
		{func(c *Config) { c.World = 0 }, "world 0"},
		{func(c *Config) { c.HeartbeatInterval = 0 }, "heartbeat"},
		{func(c *Config) { c.EpochTimeout = -1 }, "epoch timeout"},
		{func(c *Config) { c.Keep = -1 }, "negative"},
	} {
		k := baseConfig(2)
		c.mut(&k)
		if _, err := New(k, Start{Mode: ModeNew}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("want ErrConfig mentioning %q, got %v", c.text, err)
		}
	}
	rec := &wire.JobRecord{Job: "t", World: 2, Generation: 3, Incarnation: 2, EpochLimit: 64}
	for _, st := range []Start{
		{Mode: ModeNew, Record: rec},
		{Mode: ModeRejoin},
		{Mode: ModeRejoin, Record: rec, Generation: 3},
		{Mode: ModeRejoin, Record: &wire.JobRecord{Job: "u", World: 2, Generation: 1, Incarnation: 1}},
		{Mode: 9},
	} {
		if _, err := New(baseConfig(2), st); !errors.Is(err, ErrConfig) {
			t.Errorf("start %+v: want ErrConfig, got %v", st, err)
		}
	}
}

// drive runs a coordinator with scripted rank messages, acknowledging job
// record writes at once.
type drive struct {
	t   *testing.T
	c   *Coordinator
	rd  []Ready
	now int64
}

func (d *drive) step() {
	for d.c.HasReady() {
		rd := d.c.Ready()
		d.rd = append(d.rd, rd)
		if rd.JobRecord != nil {
			d.c.JobRecordWritten(rd.JobRecord.Seq)
		}
		d.c.Advance(rd)
	}
}

func (d *drive) recv(m wire.RankMsg) {
	if err := d.c.Receive(wire.EncodeRank(m)); err != nil {
		d.t.Fatal(err)
	}
	d.step()
}

func (d *drive) messages() []wire.CoordMsg {
	var out []wire.CoordMsg
	for _, rd := range d.rd {
		for _, m := range rd.Messages {
			cm, err := wire.DecodeCoord(m.Data)
			if err != nil {
				d.t.Fatal(err)
			}
			out = append(out, cm)
		}
	}
	d.rd = nil
	return out
}

func hello(r int, g uint64, peers ...int) *wire.Status {
	return &wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: g, G: g}, State: wire.StateWaitGo, Peer: -1,
		Hello: &wire.Hello{Peers: peers}}
}

func started(t *testing.T, n int, peers [][]int) *drive {
	c, err := New(baseConfig(n), Start{Mode: ModeNew, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := &drive{t: t, c: c}
	d.step()
	for r := range n {
		d.recv(hello(r, 1, peers[r]...))
	}
	return d
}

func TestAsymmetricPeersFailLoudly(t *testing.T) {
	d := started(t, 2, [][]int{{1}, {}})
	var out *Outcome
	for _, rd := range d.rd {
		if rd.Outcome != nil {
			out = rd.Outcome
		}
	}
	if out == nil || out.Code != CodeFailed || !strings.Contains(out.Reason, "symmetric") {
		t.Fatalf("outcome %+v", out)
	}
}

// TestEpochIDsNeverReused: a coordinator restarted from a record starts
// issuing at the record's limit (R3), and reserves more durably before it
// runs out.
func TestEpochIDsNeverReused(t *testing.T) {
	rec := &wire.JobRecord{Job: "t", World: 1, Generation: 4, Incarnation: 3, EpochLimit: 40}
	c, err := New(baseConfig(1), Start{Mode: ModeRejoin, Record: rec, Committed: []CommittedCut{{Epoch: 35, Step: 9}}, Generation: 5})
	if err != nil {
		t.Fatal(err)
	}
	d := &drive{t: t, c: c}
	d.step()
	d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 0, Spawn: 3, G: 3}, State: wire.StateRunning, Step: 9, Epoch: 35,
		Phase: wire.PhaseCommitted, Peer: -1})
	var epochs []uint64
	for i := 0; i < 20; i++ {
		c.RequestCut(false)
		d.step()
		for _, m := range d.messages() {
			if cut, ok := m.(*wire.Cut); ok {
				epochs = append(epochs, cut.Epoch)
				d.recv(&wire.EpochAbort{RankHeader: wire.RankHeader{Rank: 0, Spawn: 3, G: 3}, Epoch: cut.Epoch, Reason: wire.ReasonLate,
					Peer: -1, Step: 9})
			}
		}
	}
	if len(epochs) != 20 || epochs[0] != 40 {
		t.Fatalf("epochs %v", epochs)
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] != epochs[i-1]+1 {
			t.Fatalf("epochs %v", epochs)
		}
	}
	if c.Generation() != 5 {
		t.Fatalf("generation %d", c.Generation())
	}
}

func TestCheckCounts(t *testing.T) {
	rep := func(r int, out []wire.OutCount, in []wire.InCount) *wire.ShardReport {
		return &wire.ShardReport{RankHeader: wire.RankHeader{Rank: r}, Counts: wire.Counts{Out: out, In: in}}
	}
	ok := []*wire.ShardReport{
		rep(0, []wire.OutCount{{To: 0, Sent: 1}, {To: 1, Sent: 5}}, []wire.InCount{{From: 0, Delivered: 1, First: 2}, {From: 1, Delivered: 2, First: 3, Recorded: 1}}),
		rep(1, []wire.OutCount{{To: 0, Sent: 3}, {To: 1}}, []wire.InCount{{From: 0, Delivered: 4, First: 5, Recorded: 1}, {From: 1, First: 1}}),
	}
	if err := checkCounts(ok); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		mut  func([]*wire.ShardReport)
		text string
	}{
		{func(r []*wire.ShardReport) { r[1].Counts.In[0].Recorded = 0 }, "channel 0->1: sent 5, delivered 4 + recorded 0"},
		{func(r []*wire.ShardReport) { r[1].Counts.In[0].First = 7 }, "recorded range starts at 7"},
		{func(r []*wire.ShardReport) { r[1].Counts.In = r[1].Counts.In[1:] }, "has no count"},
		{func(r []*wire.ShardReport) { r[0].Counts.Out = r[0].Counts.Out[:1] }, "counted by its receiver only"},
		{func(r []*wire.ShardReport) { r[0].Counts.Out[1].To = 7 }, "outside the world"},
	}
	for _, b := range bad {
		rs := make([]*wire.ShardReport, len(ok))
		for i, r := range ok {
			cp := *r
			cp.Counts.Out = append([]wire.OutCount(nil), r.Counts.Out...)
			cp.Counts.In = append([]wire.InCount(nil), r.Counts.In...)
			rs[i] = &cp
		}
		b.mut(rs)
		if err := checkCounts(rs); err == nil || !strings.Contains(err.Error(), b.text) {
			t.Errorf("want %q, got %v", b.text, err)
		}
	}
}

// TestFailureDetection: a silent rank is lost after FailureTimeout; the
// recovery intent is written before the Kill, Spawn and Rollback.
func TestFailureDetection(t *testing.T) {
	d := started(t, 2, [][]int{{1}, {0}})
	d.rd = nil
	// Only rank 0 keeps talking.
	for i := 1; i <= 6; i++ {
		d.now += int64(10 * time.Millisecond)
		d.recv(&wire.Status{RankHeader: wire.RankHeader{Rank: 0, Spawn: 1, G: 1}, State: wire.StateRunning, Step: int64(i), Peer: -1})
		d.c.Tick(d.now)
		d.step()
	}
	var order []string
	for _, rd := range d.rd {
		if rd.JobRecord != nil && rd.JobRecord.Recovery != nil {
			order = append(order, "record")
		}
		for _, k := range rd.Kill {
			order = append(order, "kill", string(rune('0'+k.Rank)))
		}
		for _, s := range rd.Spawn {
			order = append(order, "spawn", string(rune('0'+s.Rank)))
		}
		for _, m := range rd.Messages {
			if cm, _ := wire.DecodeCoord(m.Data); cm != nil {
				if _, ok := cm.(*wire.Rollback); ok {
					order = append(order, "rollback", string(rune('0'+m.To)))
				}
			}
		}
	}
	// No cut was committed: both restart from step 0 in new processes.
	if got := strings.Join(order, " "); got != "record kill 0 kill 1 spawn 0 spawn 1" {
		t.Fatalf("recovery order: %s", got)
	}
}

// FuzzReceive: arbitrary bytes from a "rank" never panic the coordinator,
// whatever phase it is in.
func FuzzReceive(f *testing.F) {
	f.Add(wire.EncodeRank(hello(0, 1, 1)), wire.EncodeRank(&wire.ShardReport{RankHeader: wire.RankHeader{Rank: 1, Spawn: 1, G: 1}, Epoch: 1}))
	f.Add([]byte{1, 0x12, 0, 1, 1, 1, 1, 0, 0, 0}, []byte{1, 0x13, 1, 1, 1, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		c, err := New(baseConfig(2), Start{Mode: ModeNew})
		if err != nil {
			t.Fatal(err)
		}
		d := &drive{t: t, c: c}
		d.step()
		for i, in := range [][]byte{a, wire.EncodeRank(hello(0, 1, 1)), b, wire.EncodeRank(hello(1, 1, 0)), a, b} {
			c.Receive(in)
			c.Tick(int64(i) * int64(time.Millisecond))
			c.RankExited(int(uint(len(in))%3), 1, len(in))
			d.step()
			c.RequestCut(i == 3)
			d.step()
		}
	})
}
