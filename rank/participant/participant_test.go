package participant

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

func cfg(rank int, peers ...int) Config {
	return Config{Rank: rank, World: 4, Peers: peers, Spawn: 1, Incarnation: 1, HeartbeatInterval: 10 * time.Millisecond}
}

func mustNew(t *testing.T, c Config) *Participant {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	discard(p)
	return p
}

func ctl(m wire.CoordMsg) []byte { return wire.EncodeCoord(m) }

func started(t *testing.T, c Config) *Participant {
	t.Helper()
	p := mustNew(t, c)
	if err := p.HandleControl(ctl(&wire.Go{CoordHeader: wire.CoordHeader{CGen: 1, G: c.Incarnation}})); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("not running after Go")
	}
	discard(p)
	return p
}

func controlKinds(t *testing.T, rd Ready) []string {
	t.Helper()
	var out []string
	for _, b := range rd.Control {
		m, err := wire.DecodeRank(b)
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *wire.Status:
			out = append(out, "status")
		case *wire.EpochAbort:
			out = append(out, "abort:"+m.Reason.String())
		case *wire.Alarm:
			out = append(out, "alarm:"+m.Kind.String())
		case *wire.ShardReport:
			out = append(out, "report")
		}
	}
	return out
}

func TestConfigRejected(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		text string
	}{
		{func(c *Config) { c.World = 0 }, "world"},
		{func(c *Config) { c.Rank = 4 }, "rank 4"},
		{func(c *Config) { c.Peers = []int{0} }, "peer 0"},
		{func(c *Config) { c.Peers = []int{1, 1} }, "peer 1"},
		{func(c *Config) { c.Peers = []int{9} }, "peer 9"},
		{func(c *Config) { c.Spawn = 2 }, "spawn 2"},
		{func(c *Config) { c.HeartbeatInterval = 0 }, "heartbeat"},
		{func(c *Config) { c.HoldBudget = -1 }, "hold budget"},
	} {
		k := cfg(0, 1)
		c.mut(&k)
		_, err := New(k)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("want ErrConfig mentioning %q, got %v", c.text, err)
		}
	}
}

func TestCallsBeforeGoAndErrors(t *testing.T) {
	p := mustNew(t, cfg(0, 1))
	if err := p.Send(1, nil); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Send before Go: %v", err)
	}
	if _, err := p.SafePoint(1, 0); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("SafePoint before Go: %v", err)
	}
	p = started(t, cfg(0, 1))
	if err := p.Send(2, nil); !errors.Is(err, ErrNotPeer) {
		t.Fatalf("Send to undeclared: %v", err)
	}
	if _, _, err := p.Recv(3); !errors.Is(err, ErrNotPeer) {
		t.Fatalf("Recv from undeclared: %v", err)
	}
	// R5: refused, nothing changes.
	if _, err := p.SafePoint(1, 2); !errors.Is(err, ErrPendingRequests) || p.Step() != 0 {
		t.Fatalf("SafePoint with pending requests: %v, step %d", err, p.Step())
	}
	if _, err := p.SafePoint(1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SafePoint(1, 0); !errors.Is(err, ErrStepOrder) {
		t.Fatalf("repeated step: %v", err)
	}
}

func TestChannelFaults(t *testing.T) {
	p := started(t, Config{Rank: 0, World: 5, Peers: []int{1, 2, 3}, Spawn: 1, Incarnation: 1, HeartbeatInterval: time.Millisecond})
	if err := p.Deliver(4, wire.AppendData(nil, wire.Data{G: 1, Seq: 1})); !errors.Is(err, ErrNotPeer) {
		t.Fatalf("frame from undeclared peer: %v", err)
	}
	if err := p.Deliver(1, []byte{1, 2, 3}); err == nil {
		t.Fatal("malformed frame accepted")
	}
	// A gap on another channel: one alarm per channel.
	if err := p.Deliver(2, wire.AppendData(nil, wire.Data{G: 1, Seq: 2})); err == nil {
		t.Fatal("gap accepted")
	}
	if err := p.Deliver(2, wire.AppendData(nil, wire.Data{G: 1, Seq: 3})); err == nil {
		t.Fatal("gap accepted")
	}
	got := strings.Join(controlKinds(t, pending(p)), " ")
	if got != "alarm:channel-fault alarm:channel-fault" {
		t.Fatalf("alarms: %s", got)
	}
	discard(p)
	p.ChannelFault(3, "unrepairable gap")
	p.ChannelFault(3, "again")
	if got := strings.Join(controlKinds(t, pending(p)), " "); got != "alarm:channel-fault" {
		t.Fatalf("transport fault: %s", got)
	}
	discard(p)
	// Another incarnation's frame is dropped silently (R11).
	if err := p.Deliver(1, wire.AppendData(nil, wire.Data{G: 7, Seq: 1})); err != nil || p.HasReady() || p.Stats().StaleDropped != 1 {
		t.Fatalf("stale frame: %v, ready %v, stats %+v", err, p.HasReady(), p.Stats())
	}
}

func TestStaleCoordinatorIgnored(t *testing.T) {
	p := started(t, cfg(0, 1))
	if err := p.HandleControl(ctl(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 3, G: 1}, Epoch: 5, Step: 4})); err != nil {
		t.Fatal(err)
	}
	discard(p)
	// A message of an older coordinator generation is ignored (R15).
	if err := p.HandleControl(ctl(&wire.Abort{CoordHeader: wire.CoordHeader{CGen: 2, G: 1}, Epoch: 5})); err != nil {
		t.Fatal(err)
	}
	if act, _ := p.SafePoint(4, 0); !act.Capture || act.Epoch != 5 {
		t.Fatalf("epoch 5 aborted by a stale coordinator: %+v", act)
	}
	if err := p.HandleControl([]byte("junk")); err == nil {
		t.Fatal("junk control accepted")
	}
}

// TestRecordsUndeliveredAtCapture is R1 (C1 in the review): a message that
// arrived before capture and was not consumed is in the channel state.
func TestRecordsUndeliveredAtCapture(t *testing.T) {
	p := started(t, cfg(1, 0))
	p.HandleControl(ctl(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Epoch: 1, Step: 1}))
	discard(p)
	h := wire.AppendData(nil, wire.Data{G: 1, Seq: 1, Step: 0, Payload: []byte("h10")})
	if err := p.Deliver(0, h); err != nil {
		t.Fatal(err)
	}
	p.Deliver(0, wire.EncodeMarker(wire.Marker{G: 1, Epoch: 1, Step: 1, Sent: 1}))
	discard(p)
	act, err := p.SafePoint(1, 0)
	if err != nil || !act.Capture {
		t.Fatalf("%+v %v", act, err)
	}
	rd := pending(p)
	if rd.Seal == nil || len(rd.Seal.Channels) != 1 || string(rd.Seal.Channels[0].Msgs[0]) != string(h) {
		t.Fatalf("channel state %+v", rd.Seal)
	}
	meta, err := wire.DecodeShardMeta(rd.Seal.Meta)
	if err != nil || meta.Counts.In[0] != (wire.InCount{From: 0, Delivered: 0, First: 1, Recorded: 1}) {
		t.Fatalf("meta %+v %v", meta, err)
	}
	// Restoring from it delivers h10 first.
	p2, err := New(Config{Rank: 1, World: 4, Peers: []int{0}, Spawn: 2, Incarnation: 2, HeartbeatInterval: time.Millisecond,
		Restore: &Restore{Epoch: 1, Step: 1, Meta: rd.Seal.Meta, Channels: rd.Seal.Channels}})
	if err != nil {
		t.Fatal(err)
	}
	p2.HandleControl(ctl(&wire.Go{CoordHeader: wire.CoordHeader{CGen: 1, G: 2}}))
	if b, ok, err := p2.Recv(0); !ok || err != nil || string(b) != "h10" {
		t.Fatalf("replay: %q %v %v", b, ok, err)
	}
}

func TestRestoreRejected(t *testing.T) {
	p := started(t, cfg(1, 0, 2))
	p.HandleControl(ctl(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Epoch: 1, Step: 1}))
	p.Deliver(0, wire.AppendData(nil, wire.Data{G: 1, Seq: 1, Payload: []byte("x")}))
	p.Deliver(0, wire.EncodeMarker(wire.Marker{G: 1, Epoch: 1, Step: 1, Sent: 1}))
	p.Deliver(2, wire.EncodeMarker(wire.Marker{G: 1, Epoch: 1, Step: 1, Sent: 0}))
	discard(p)
	p.SafePoint(1, 0)
	seal := pending(p).Seal
	if seal == nil {
		t.Fatal("no seal")
	}
	base := Config{Rank: 1, World: 4, Peers: []int{0, 2}, Spawn: 2, Incarnation: 2, HeartbeatInterval: time.Millisecond}
	for _, c := range []struct {
		mut  func(*Config, *Restore)
		text string
	}{
		{func(c *Config, r *Restore) { c.Rank = 3; c.Peers = []int{0, 2} }, "meta is rank 1"},
		{func(c *Config, r *Restore) { c.Peers = []int{0} }, "topology"},
		{func(c *Config, r *Restore) { r.Epoch = 9 }, "epoch 1"},
		{func(c *Config, r *Restore) { r.Meta = r.Meta[:len(r.Meta)-1] }, "meta"},
		{func(c *Config, r *Restore) { r.Channels = nil }, "none given"},
		{func(c *Config, r *Restore) {
			r.Channels = []ChannelState{{From: 0, FirstSeq: 1, Msgs: [][]byte{wire.AppendData(nil, wire.Data{G: 1, Seq: 5})}}}
		}, "seq 5"},
		{func(c *Config, r *Restore) { r.Channels = append(r.Channels, r.Channels[0]) }, "twice"},
	} {
		k := base
		r := Restore{Epoch: 1, Step: 1, Meta: seal.Meta, Channels: seal.Channels}
		c.mut(&k, &r)
		k.Restore = &r
		if _, err := New(k); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("want ErrConfig mentioning %q, got %v", c.text, err)
		}
	}
}

// TestFenceAndRollback: a Fence for another spawn is ignored; a Rollback
// for this process ends the participant; a Fence for it exits.
func TestFenceAndRollback(t *testing.T) {
	p := started(t, cfg(0, 1))
	p.HandleControl(ctl(&wire.Fence{CoordHeader: wire.CoordHeader{CGen: 1, G: 2}, Rank: 0, Spawn: 9}))
	if pending(p).Exit != nil {
		t.Fatal("fenced for another spawn")
	}
	p.HandleControl(ctl(&wire.Rollback{CoordHeader: wire.CoordHeader{CGen: 1, G: 2}, Rank: 0, Spawn: 1, Epoch: 3, Step: 30}))
	rb := pending(p).Rollback
	if rb == nil || *rb != (Rollback{G: 2, Epoch: 3, Step: 30}) {
		t.Fatalf("rollback %+v", rb)
	}
	if err := p.Send(1, nil); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("Send after rollback: %v", err)
	}
	p.HandleControl(ctl(&wire.Fence{CoordHeader: wire.CoordHeader{CGen: 1, G: 2}, Rank: 0, Spawn: 1, Reason: "x"}))
	if x := pending(p).Exit; x == nil || x.Code != 1 || x.Kind != ExitFenced {
		t.Fatalf("exit %+v", x)
	}
}

// TestStopIsNotAFence: a Stop is a stop whatever its reason says (the
// reason text used to be parsed; a coordinator's "fenced: ..." reason must
// not turn a stop into a fence).
func TestStopIsNotAFence(t *testing.T) {
	p := started(t, cfg(0, 1))
	p.HandleControl(ctl(&wire.Stop{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Code: 3, Reason: "fenced: not really"}))
	if x := pending(p).Exit; x == nil || x.Kind != ExitStopped || x.Code != 3 {
		t.Fatalf("exit %+v, want a stop with code 3", x)
	}
}

// FuzzInputs: arbitrary bytes as frames and control messages never panic
// the participant (hostile input rule).
func FuzzInputs(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, wire.EncodeMarker(wire.Marker{G: 1, Epoch: 1, Step: 1}),
		ctl(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Epoch: 1, Step: 1}))
	f.Add([]byte{}, []byte{1}, ctl(&wire.Rollback{CoordHeader: wire.CoordHeader{CGen: 1, G: 2}, Rank: 0, Spawn: 1}))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		p, err := New(cfg(0, 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		p.HandleControl(ctl(&wire.Go{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}}))
		for i, in := range [][]byte{c, a, b, c, a} {
			p.Deliver(1+i%2, in)
			p.HandleControl(in)
			p.Recv(1)
			p.SafePoint(int64(i+1), 0)
			p.Tick(int64(i) * int64(time.Second))
			discard(p)
		}
	})
}

// TestHeldCreditedOnArrival is R8: a message held back after its channel's
// marker is credited when it arrives (the sender never waits on a holding
// receiver); a normal one when the job consumes it; none twice.
func TestHeldCreditedOnArrival(t *testing.T) {
	p := started(t, cfg(1, 0))
	p.HandleControl(ctl(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Epoch: 1, Step: 2}))
	discard(p)
	pre := wire.AppendData(nil, wire.Data{G: 1, Seq: 1, Payload: []byte("pre")})
	post := wire.AppendData(nil, wire.Data{G: 1, Seq: 2, Step: 2, Payload: []byte("post")})
	p.Deliver(0, pre)
	if c := pending(p).Credits; len(c) != 0 {
		t.Fatalf("deliverable message credited on arrival: %+v", c)
	}
	marker := wire.EncodeMarker(wire.Marker{G: 1, Epoch: 1, Step: 2, Sent: 1})
	p.Deliver(0, marker)
	p.Deliver(0, post)
	if c := pending(p).Credits; len(c) != 2 || c[0] != (Credit{From: 0, Bytes: len(marker)}) || c[1] != (Credit{From: 0, Bytes: len(post)}) {
		t.Fatalf("marker and held message: credits %+v", c)
	}
	if u := p.Uncredited(0); u != len(pre) {
		t.Fatalf("uncredited %d, want %d", u, len(pre))
	}
	if dl := pending(p).Deliverable; len(dl) != 1 {
		t.Fatalf("held message made deliverable: %v", dl)
	}
	discard(p)
	if b, _, _ := p.Recv(0); string(b) != "pre" {
		t.Fatalf("got %q", b)
	}
	if c := pending(p).Credits; len(c) != 1 || c[0].Bytes != len(pre) {
		t.Fatalf("consumed message: credits %+v", c)
	}
	discard(p)
	p.SafePoint(1, 0)
	p.SafePoint(2, 0)
	discard(p)
	if b, _, _ := p.Recv(0); string(b) != "post" {
		t.Fatalf("got %q", b)
	}
	if c := pending(p).Credits; len(c) != 0 || p.Uncredited(0) != 0 {
		t.Fatalf("held message credited twice: %+v, %d uncredited", c, p.Uncredited(0))
	}
}

// TestLateWhenLearned is R6: a rank already at S when it learns of the cut
// answers late at once and never holds for it (a marker of that epoch
// does not make later messages held).
func TestLateWhenLearned(t *testing.T) {
	p := started(t, cfg(1, 0))
	p.SafePoint(1, 0)
	p.SafePoint(2, 0)
	discard(p)
	p.Deliver(0, wire.EncodeMarker(wire.Marker{G: 1, Epoch: 4, Step: 2}))
	if got := strings.Join(controlKinds(t, pending(p)), " "); got != "abort:late" {
		t.Fatalf("control: %s", got)
	}
	discard(p)
	p.Deliver(0, wire.AppendData(nil, wire.Data{G: 1, Seq: 1, Step: 2, Payload: []byte("x")}))
	if b, ok, _ := p.Recv(0); !ok || string(b) != "x" {
		t.Fatalf("message after the marker of a late epoch held: %q %v", b, ok)
	}
}

// pending is what the next Ready will hold (the tests inspect a machine's
// output between inputs without executing it).
func pending(p *Participant) Ready { return p.rd }

// discard takes the next Ready and acknowledges it unexecuted.
func discard(p *Participant) { p.Advance(p.Ready()) }

// TestAdvanceContract: Advance acknowledges only the Ready handed out;
// inputs while a Ready is executed go to the next one.
func TestAdvanceContract(t *testing.T) {
	p := started(t, cfg(0, 1))
	mustPanic(t, "Advance before Ready", func() { p.Advance(Ready{}) })
	if err := p.Send(1, []byte("a")); err != nil {
		t.Fatal(err)
	}
	rd := p.Ready()
	if err := p.Send(1, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if again := p.Ready(); again.n != rd.n || len(again.Frames) != 1 {
		t.Fatalf("Ready changed before Advance: %d frames", len(again.Frames))
	}
	mustPanic(t, "Advance of another Ready", func() { p.Advance(Ready{n: rd.n + 1}) })
	p.Advance(rd)
	mustPanic(t, "Advance twice", func() { p.Advance(rd) })
	if next := p.Ready(); len(next.Frames) != 1 {
		t.Fatalf("the frame sent while a Ready was executed: %d frames in the next", len(next.Frames))
	}
}

// TestExecuteBrokenChannel: a frame the transport refuses as broken
// becomes a channel fault (an alarm) in the next Ready, not this one.
func TestExecuteBrokenChannel(t *testing.T) {
	p := started(t, cfg(0, 1))
	if err := p.Send(1, []byte("a")); err != nil {
		t.Fatal(err)
	}
	x := &logPorts{broken: errors.New("broken")}
	Execute(p, x)
	if got := strings.Join(x.log, " "); got != "enqueue" {
		t.Fatalf("executed %q", got)
	}
	x.broken, x.log = nil, nil
	Execute(p, x)
	if got := strings.Join(x.log, " "); got != "report" {
		t.Fatalf("executed %q, want the alarm reported", got)
	}
	if k := strings.Join(controlKinds(t, Ready{Control: x.reported}), " "); k != "alarm:channel-fault" {
		t.Fatalf("reported %s", k)
	}
}

type logPorts struct {
	broken   error
	log      []string
	reported [][]byte
}

func (x *logPorts) Enqueue(int, []byte) error { x.log = append(x.log, "enqueue"); return x.broken }
func (x *logPorts) Credit([]Credit)           { x.log = append(x.log, "credit") }
func (x *logPorts) Wake([]int, bool)          { x.log = append(x.log, "wake") }
func (x *logPorts) Report(m []byte) {
	x.log = append(x.log, "report")
	x.reported = append(x.reported, m)
}
func (x *logPorts) Event(Event)       {}
func (x *logPorts) Seal(*Seal)        { x.log = append(x.log, "seal") }
func (x *logPorts) Cancel(uint64)     { x.log = append(x.log, "cancel") }
func (x *logPorts) Committed(uint64)  { x.log = append(x.log, "committed") }
func (x *logPorts) Rollback(Rollback) { x.log = append(x.log, "rollback") }
func (x *logPorts) Exit(Exit)         { x.log = append(x.log, "exit") }

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}
