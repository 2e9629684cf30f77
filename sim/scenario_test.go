package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/participant"
)

// TestScenarios runs the readable scenario scripts in testdata/. Nothing
// moves unless a command says so: messages wait in queues until delivered,
// shard writes until "durable", manifest writes until "manifest".
// Regenerate expected output with -rewrite.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := s.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type sproc struct {
	rank  int
	spawn uint64
	p     *participant.Participant
	dead  bool
	hung  bool // alive but silent
	// unkillable: on a node the launcher cannot reach; a kill does not
	// stop it (a zombie that may speak again)
	unkillable bool
	// captured state of the epochs being written, the seal once it came
	writing map[uint64]*participant.Seal
	states  map[uint64]int64
}

type smsg struct {
	from, to int // coordKey for the coordinator
	data     []byte
}

type scenario struct {
	n       int
	peers   [][]int
	now     int64
	hb      time.Duration
	steps   int64
	cfg     coordinator.Config
	c       *coordinator.Coordinator
	cdead   bool
	store   *store
	procs   []*sproc
	old     []*sproc            // the process a respawn replaced (a zombie if it was not killed)
	ctl     []smsg              // control messages in flight, in send order
	data    map[[2]int][][]byte // frames in flight per channel
	pending *coordinator.Manifest
	out     strings.Builder
	budget  int64
}

func (s *scenario) printf(format string, args ...any) { fmt.Fprintf(&s.out, format, args...) }

func intArg(d *datadriven.TestData, key string, def int) int {
	if a, ok := d.Arg(key); ok {
		v, err := strconv.Atoi(a.Vals[0])
		if err == nil {
			return v
		}
	}
	return def
}

func durArg(d *datadriven.TestData, key string, def time.Duration) time.Duration {
	if a, ok := d.Arg(key); ok {
		v, err := time.ParseDuration(a.Vals[0])
		if err == nil {
			return v
		}
	}
	return def
}

func (s *scenario) run(d *datadriven.TestData) (string, error) {
	s.out.Reset()
	var err error
	switch d.Cmd {
	case "init":
		err = s.init(d)
	case "tick":
		who := "all"
		if a, ok := d.Arg("only"); ok {
			who = a.Vals[0]
		}
		for range intArg(d, "times", 1) {
			s.now += int64(durArg(d, "d", s.hb))
			if who == "all" || who == "coord" {
				if !s.cdead {
					s.c.Tick(s.now)
					s.drainCoord()
				}
			}
			for _, pr := range s.procs {
				if pr != nil && !pr.dead && !pr.hung && (who == "all" || who == "ranks" || who == strconv.Itoa(pr.rank)) {
					pr.p.Tick(s.now)
					s.drainRank(pr)
				}
			}
			if d.HasArg("deliver") {
				for len(s.ctl) > 0 {
					s.deliverCtl(0)
				}
			}
		}
	case "deliver":
		err = s.deliver(d)
	case "stabilize":
		for i := 0; i < 100 && (len(s.ctl) > 0 || s.dataPending()); i++ {
			for len(s.ctl) > 0 {
				s.deliverCtl(0)
			}
			for _, k := range s.dataKeys() {
				for len(s.data[k]) > 0 {
					s.deliverData(k)
				}
			}
		}
	case "send":
		pr := s.proc(intArg(d, "rank", 0))
		to := intArg(d, "to", 0)
		payload := "m"
		if a, ok := d.Arg("payload"); ok {
			payload = a.Vals[0]
		}
		if e := pr.p.Send(to, []byte(payload)); e != nil {
			s.printf("rank %d: Send(%d): %v\n", pr.rank, to, e)
		}
		s.drainRank(pr)
	case "recv":
		pr := s.proc(intArg(d, "rank", 0))
		from := intArg(d, "from", 0)
		b, ok, e := pr.p.Recv(from)
		switch {
		case e != nil:
			s.printf("rank %d: Recv(%d): %v\n", pr.rank, from, e)
		case !ok:
			s.printf("rank %d: Recv(%d) would block\n", pr.rank, from)
		default:
			s.printf("rank %d: Recv(%d) = %q\n", pr.rank, from, b)
		}
		s.drainRank(pr)
	case "safepoint":
		pr := s.proc(intArg(d, "rank", 0))
		step := int64(intArg(d, "step", 1))
		act, e := pr.p.SafePoint(step, intArg(d, "pending", 0))
		switch {
		case e != nil:
			s.printf("rank %d: SafePoint(%d): %v\n", pr.rank, step, e)
		case act.Capture:
			s.printf("rank %d: SafePoint(%d): capture e=%d S=%d\n", pr.rank, step, act.Epoch, act.Step)
			pr.states[act.Epoch] = step
		default:
			s.printf("rank %d: SafePoint(%d)\n", pr.rank, step)
		}
		s.drainRank(pr)
	case "advance":
		// SafePoints up to step to, printing only those that do something.
		pr := s.proc(intArg(d, "rank", 0))
		to := int64(intArg(d, "to", 1))
		for k := pr.p.Step() + 1; k <= to; k++ {
			act, e := pr.p.SafePoint(k, 0)
			switch {
			case e != nil:
				s.printf("rank %d: SafePoint(%d): %v\n", pr.rank, k, e)
				k = to
			case act.Capture:
				s.printf("rank %d: SafePoint(%d): capture e=%d S=%d\n", pr.rank, k, act.Epoch, act.Step)
			}
			s.drainRank(pr)
		}
		if s.out.Len() == 0 {
			s.printf("rank %d: at step %d\n", pr.rank, pr.p.Step())
		}
	case "finish":
		pr := s.proc(intArg(d, "rank", 0))
		if e := pr.p.Finish(); e != nil {
			s.printf("rank %d: Finish: %v\n", pr.rank, e)
		}
		s.drainRank(pr)
	case "durable":
		pr := s.proc(intArg(d, "rank", 0))
		e := uint64(intArg(d, "epoch", 1))
		seal := pr.writing[e]
		if seal == nil {
			return "", fmt.Errorf("rank %d has no sealed shard for epoch %d", pr.rank, e)
		}
		ref := fmt.Sprintf("r%d-e%d-g%d", pr.rank, e, pr.p.Incarnation())
		s.store.shards[ref] = &shard{Rank: pr.rank, Epoch: e, Step: seal.Step, G: pr.p.Incarnation(), Meta: seal.Meta, Channels: seal.Channels}
		delete(pr.writing, e)
		if err := pr.p.ShardDurable(e, []byte(ref), uint64(seal.Bytes), uint64(seal.Bytes)); err != nil {
			s.printf("rank %d: ShardDurable: %v\n", pr.rank, err)
		}
		s.drainRank(pr)
	case "request-cut":
		s.c.RequestCut(d.HasArg("final"))
		s.drainCoord()
	case "stop-now":
		s.c.StopNow("grace period over")
		s.drainCoord()
	case "manifest":
		m := s.pending
		if m == nil {
			return "", fmt.Errorf("no manifest write in flight")
		}
		s.pending = nil
		if d.HasArg("fail") {
			s.c.ManifestFailed(m.Epoch, fmt.Errorf("disk full"))
		} else {
			s.store.manifests[m.Epoch] = m
			s.printf("store: cut %d at step %d committed\n", m.Epoch, m.Step)
			if !d.HasArg("crash") {
				s.c.ManifestCommitted(m.Epoch)
			}
		}
		if d.HasArg("crash") {
			s.crashCoord()
			break
		}
		s.drainCoord()
	case "crash":
		if d.HasArg("coord") {
			s.crashCoord()
			break
		}
		pr := s.proc(intArg(d, "rank", 0))
		if d.HasArg("hang") {
			pr.hung = true
			pr.unkillable = d.HasArg("unkillable")
			s.printf("rank %d spawn %d hangs\n", pr.rank, pr.spawn)
			break
		}
		pr.dead = true
		s.printf("rank %d spawn %d dies\n", pr.rank, pr.spawn)
		if !s.cdead {
			s.c.RankExited(pr.rank, pr.spawn, 139)
			s.drainCoord()
		}
	case "restart":
		err = s.restartCoord()
	case "drop":
		n := 0
		for len(s.ctl) > 0 && (intArg(d, "n", 1) > n) {
			m := s.ctl[0]
			s.ctl = s.ctl[1:]
			s.printf("dropped %s\n", s.describeCtl(m))
			n++
		}
	case "status":
		s.status()
	case "zombie":
		// The replaced process of a rank was not killed after all and
		// speaks (its next heartbeat).
		pr := s.old[intArg(d, "rank", 0)]
		if pr == nil {
			return "", fmt.Errorf("no replaced process")
		}
		pr.dead, pr.hung = false, false
		s.printf("rank %d spawn %d is still alive\n", pr.rank, pr.spawn)
		pr.p.Tick(s.now + int64(s.hb))
		s.drainRank(pr)
	default:
		return "", fmt.Errorf("unknown command %q", d.Cmd)
	}
	if err != nil {
		return "", err
	}
	out := s.out.String()
	if d.HasArg("quiet") {
		// Only what the coordinator decides and processes ending or
		// rolling back: heartbeats and their answers are left out.
		var kept []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "coord: ") && !strings.HasPrefix(l, "coord: broadcast Beat") ||
				strings.Contains(l, ": exit ") || strings.Contains(l, ": rollback ") || strings.Contains(l, " dies") {
				kept = append(kept, l)
			}
		}
		out = strings.Join(kept, "\n")
		if out != "" {
			out += "\n"
		}
	}
	if out == "" {
		return "ok\n", nil
	}
	return out, nil
}

func (s *scenario) proc(r int) *sproc {
	if r < 0 || r >= len(s.procs) || s.procs[r] == nil {
		panic(fmt.Sprintf("scenario: no rank %d", r))
	}
	return s.procs[r]
}

func (s *scenario) init(d *datadriven.TestData) error {
	s.n = intArg(d, "n", 2)
	s.hb = durArg(d, "hb", 10*time.Millisecond)
	s.steps = int64(intArg(d, "steps", 0))
	s.budget = int64(intArg(d, "budget", 0))
	s.peers = make([][]int, s.n)
	topo := "line"
	if a, ok := d.Arg("topology"); ok {
		topo = a.Vals[0]
	}
	for r := range s.n {
		switch topo {
		case "line":
			if r > 0 {
				s.peers[r] = append(s.peers[r], r-1)
			}
			if r+1 < s.n {
				s.peers[r] = append(s.peers[r], r+1)
			}
		case "none":
		default:
			return fmt.Errorf("topology %q", topo)
		}
	}
	s.cfg = coordinator.Config{Job: "scenario", World: s.n, HeartbeatInterval: s.hb,
		CutEverySteps: int64(intArg(d, "every", 0)), CutInterval: durArg(d, "interval", 0),
		MaxBlockedAborts: intArg(d, "k", 3), EpochBlock: uint64(intArg(d, "block", 100)),
		StartTimeout: durArg(d, "start-timeout", 0)}
	s.store = newStore()
	s.data = map[[2]int][][]byte{}
	s.procs = make([]*sproc, s.n)
	s.old = make([]*sproc, s.n)
	c, err := coordinator.New(s.cfg, coordinator.Start{Mode: coordinator.ModeNew, Now: s.now, Generation: s.store.claimGen()})
	if err != nil {
		return err
	}
	s.c = c
	s.drainCoord()
	return nil
}

func (s *scenario) crashCoord() {
	s.cdead = true
	s.pending = nil
	s.printf("coordinator dies\n")
	// Messages to it are lost with it.
	kept := s.ctl[:0]
	for _, m := range s.ctl {
		if m.to != coordKey {
			kept = append(kept, m)
		}
	}
	s.ctl = kept
}

func (s *scenario) restartCoord() error {
	rec, err := s.store.jobRecord()
	if err != nil {
		return err
	}
	c, err := coordinator.New(s.cfg, coordinator.Start{Mode: coordinator.ModeRejoin, Now: s.now, Record: rec,
		Committed: s.store.committed(), Generation: s.store.claimGen()})
	if err != nil {
		return err
	}
	s.c, s.cdead = c, false
	s.printf("coordinator generation %d starts from the store: g=%d, committed %v\n", c.Generation(), c.Incarnation(), s.store.committed())
	s.drainCoord()
	return nil
}

// drainCoord executes the coordinator's Readys with coordinator.Execute,
// through the scenario's ports (scoord), which print what they do. The
// job record is written and acknowledged at once; the manifest write
// waits for "manifest".
func (s *scenario) drainCoord() {
	for !s.cdead && s.c.HasReady() {
		o, err := coordinator.Execute(s.c, scoord{s})
		if err != nil {
			s.printf("coord: %v\n", err)
			return
		}
		if o != nil {
			s.printf("coord: outcome exit %d: %s\n", o.Code, o.Reason)
		}
	}
}

// scoord is the scenario's coordinator ports.
type scoord struct{ s *scenario }

func (p scoord) WriteRecord(r wire.JobRecord) error {
	s := p.s
	b, err := wire.EncodeJobRecord(r)
	if err != nil {
		return err
	}
	s.store.record = b
	intent := ""
	if ri := r.Recovery; ri != nil {
		intent = fmt.Sprintf(" recovery{cut %d, respawn %v}", ri.Epoch, ri.Lost)
	}
	s.printf("coord: job record #%d: generation %d, g=%d, epochs < %d%s\n", r.Seq, r.Generation, r.Incarnation, r.EpochLimit, intent)
	return nil
}

func (p scoord) Kill(k coordinator.Process) {
	s := p.s
	s.printf("coord: kill rank %d spawn %d\n", k.Rank, k.Spawn)
	if pr := s.procs[k.Rank]; pr != nil && (k.Spawn == 0 || pr.spawn == k.Spawn) && !pr.unkillable {
		pr.dead = true
	}
}

func (p scoord) Spawn(spawns []coordinator.Spawn) error {
	for _, sp := range spawns {
		p.s.printf("coord: spawn rank %d at g=%d from cut %d (step %d)\n", sp.Rank, sp.G, sp.Epoch, sp.Step)
		p.s.spawn(sp)
	}
	return nil
}

func (p scoord) Publish(m coordinator.Message) {
	s := p.s
	if m.To == coordinator.Broadcast {
		for r := range s.n {
			s.ctl = append(s.ctl, smsg{from: coordKey, to: r, data: m.Data})
		}
		s.printf("coord: broadcast %s\n", describeCoord(m.Data))
	} else {
		s.ctl = append(s.ctl, smsg{from: coordKey, to: m.To, data: m.Data})
		s.printf("coord: to %d %s\n", m.To, describeCoord(m.Data))
	}
}

func (p scoord) Commit(m coordinator.Manifest) {
	p.s.pending = &m
	refs := make([]string, len(m.Shards))
	for i, b := range m.Shards {
		refs[i] = string(b)
	}
	p.s.printf("coord: write manifest e=%d S=%d g=%d shards=%v\n", m.Epoch, m.Step, m.G, refs)
}

func (p scoord) GC(gc coordinator.GC)       { p.s.printf("coord: gc keep=%d pins=%v\n", gc.Keep, gc.Pins) }
func (p scoord) Event(ev coordinator.Event) { p.s.printf("coord: event %s\n", ev) }

// Confirm is never asked: the scenarios run without ConfirmSilence.
func (p scoord) Confirm(ps []coordinator.Process) { p.s.printf("coord: confirm %v\n", ps) }

func (s *scenario) spawn(sp coordinator.Spawn) {
	cfg := participant.Config{Rank: sp.Rank, World: s.n, Peers: s.peers[sp.Rank], Spawn: sp.G, Incarnation: sp.G,
		TotalSteps: s.steps, HeartbeatInterval: s.hb, Now: s.now, HoldBudget: s.budget}
	s.load(&cfg, sp.Epoch, sp.Step)
	p, err := participant.New(cfg)
	if err != nil {
		s.printf("rank %d: %v\n", sp.Rank, err)
		return
	}
	s.old[sp.Rank] = s.procs[sp.Rank]
	s.procs[sp.Rank] = &sproc{rank: sp.Rank, spawn: sp.G, p: p, writing: map[uint64]*participant.Seal{}, states: map[uint64]int64{}}
	s.drainRank(s.procs[sp.Rank])
}

func (s *scenario) load(cfg *participant.Config, epoch uint64, step int64) {
	if epoch == 0 {
		return
	}
	m := s.store.manifests[epoch]
	sh := s.store.shards[string(m.Shards[cfg.Rank])]
	cfg.Restore = &participant.Restore{Epoch: epoch, Step: step, Meta: sh.Meta, Channels: sh.Channels}
}

// drainRank executes a participant's Readys with participant.Execute,
// through the scenario's ports (srank), which print what they do.
func (s *scenario) drainRank(pr *sproc) {
	for !pr.dead && pr.p.HasReady() {
		participant.Execute(pr.p, srank{s, pr})
	}
}

// srank is the scenario's participant ports.
type srank struct {
	s  *scenario
	pr *sproc
}

func (x srank) Enqueue(to int, frame []byte) error {
	k := [2]int{x.pr.rank, to}
	x.s.data[k] = append(x.s.data[k], frame)
	x.s.printf("rank %d: frame to %d: %s\n", x.pr.rank, to, describeFrame(frame))
	return nil
}

func (x srank) Credit(cs []participant.Credit) {
	for _, c := range cs {
		x.s.printf("rank %d: credit %d bytes to %d\n", x.pr.rank, c.Bytes, c.From)
	}
}

func (x srank) Report(b []byte) {
	x.s.ctl = append(x.s.ctl, smsg{from: x.pr.rank, to: coordKey, data: b})
	x.s.printf("rank %d: to coord %s\n", x.pr.rank, describeRank(b))
}

func (x srank) Seal(sl *participant.Seal) {
	x.pr.writing[sl.Epoch] = sl
	var chans []string
	for _, cs := range sl.Channels {
		var msgs []string
		for _, fb := range cs.Msgs {
			f, _ := wire.DecodeFrame(fb)
			msgs = append(msgs, fmt.Sprintf("%d:%q", f.Data.Seq, f.Data.Payload))
		}
		chans = append(chans, fmt.Sprintf("from %d [%s]", cs.From, strings.Join(msgs, " ")))
	}
	x.s.printf("rank %d: seal e=%d S=%d channel state {%s}\n", x.pr.rank, sl.Epoch, sl.Step, strings.Join(chans, "; "))
}

func (x srank) Cancel(e uint64) {
	delete(x.pr.writing, e)
	x.s.printf("rank %d: cancel shard e=%d\n", x.pr.rank, e)
}

func (x srank) Committed(e uint64) { x.s.printf("rank %d: committed e=%d\n", x.pr.rank, e) }

func (x srank) Wake(deliverable []int, started bool) {
	if started {
		x.s.printf("rank %d: started\n", x.pr.rank)
	}
	if len(deliverable) > 0 {
		dl := slices.Compact(slices.Sorted(slices.Values(deliverable)))
		x.s.printf("rank %d: deliverable from %v\n", x.pr.rank, dl)
	}
}

func (x srank) Event(ev participant.Event) { x.s.printf("rank %d: event %s\n", x.pr.rank, ev) }

func (x srank) Exit(e participant.Exit) {
	x.s.printf("rank %d: exit %d: %s\n", x.pr.rank, e.Code, e.Reason)
	x.pr.dead = true
}

func (x srank) Rollback(rb participant.Rollback) {
	s, pr := x.s, x.pr
	s.printf("rank %d: rollback to cut %d (step %d) at g=%d\n", pr.rank, rb.Epoch, rb.Step, rb.G)
	cfg := participant.Config{Rank: pr.rank, World: s.n, Peers: s.peers[pr.rank], Spawn: pr.spawn, Incarnation: rb.G,
		TotalSteps: s.steps, HeartbeatInterval: s.hb, Now: s.now, HoldBudget: s.budget}
	s.load(&cfg, rb.Epoch, rb.Step)
	np, err := participant.New(cfg)
	if err != nil {
		s.printf("rank %d: %v\n", pr.rank, err)
		return
	}
	// Frames of the old incarnation still in flight stay in the
	// queues here (a transport's Reset drops them): the participant
	// drops them itself (R11).
	pr.p = np
}

func (s *scenario) dataPending() bool {
	for _, q := range s.data {
		if len(q) > 0 {
			return true
		}
	}
	return false
}

func (s *scenario) dataKeys() [][2]int {
	var keys [][2]int
	for k, q := range s.data {
		if len(q) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	return keys
}

func (s *scenario) deliverData(k [2]int) {
	f := s.data[k][0]
	s.data[k] = s.data[k][1:]
	pr := s.procs[k[1]]
	if pr == nil || pr.dead || pr.hung {
		s.printf("%d->%d: %s lost (rank %d is dead)\n", k[0], k[1], describeFrame(f), k[1])
		return
	}
	s.printf("%d->%d: %s\n", k[0], k[1], describeFrame(f))
	if err := pr.p.Deliver(k[0], f); err != nil {
		s.printf("rank %d: Deliver: %v\n", pr.rank, err)
	}
	s.drainRank(pr)
}

func (s *scenario) deliverCtl(i int) {
	m := s.ctl[i]
	s.ctl = slices.Delete(s.ctl, i, i+1)
	if m.to == coordKey {
		if s.cdead {
			return
		}
		s.printf("%s\n", s.describeCtl(m))
		if err := s.c.Receive(m.data); err != nil {
			s.printf("coord: %v\n", err)
		}
		s.drainCoord()
		return
	}
	// Every live process of the rank hears its subject (a zombie too).
	s.printf("%s\n", s.describeCtl(m))
	for _, pr := range []*sproc{s.old[m.to], s.procs[m.to]} {
		if pr == nil || pr.dead || pr.hung {
			continue
		}
		if err := pr.p.HandleControl(m.data); err != nil {
			s.printf("rank %d: %v\n", pr.rank, err)
		}
		s.drainRank(pr)
	}
}

// deliver: data from=A to=B [n=1], or control to=coord|R [from=R|coord] [n=all].
func (s *scenario) deliver(d *datadriven.TestData) error {
	if d.HasArg("data") {
		k := [2]int{intArg(d, "from", 0), intArg(d, "to", 0)}
		n := intArg(d, "n", len(s.data[k]))
		for i := 0; i < n && len(s.data[k]) > 0; i++ {
			s.deliverData(k)
		}
		return nil
	}
	to, from := -2, -2
	if a, ok := d.Arg("to"); ok {
		to = coordKey
		if a.Vals[0] != "coord" {
			to, _ = strconv.Atoi(a.Vals[0])
		}
	}
	if a, ok := d.Arg("from"); ok {
		from = coordKey
		if a.Vals[0] != "coord" {
			from, _ = strconv.Atoi(a.Vals[0])
		}
	}
	n := intArg(d, "n", 1<<30)
	for done := 0; done < n; done++ {
		i := slices.IndexFunc(s.ctl, func(m smsg) bool { return (to == -2 || m.to == to) && (from == -2 || m.from == from) })
		if i < 0 {
			break
		}
		s.deliverCtl(i)
	}
	return nil
}

func (s *scenario) describeCtl(m smsg) string {
	if m.to == coordKey {
		return fmt.Sprintf("%d->coord: %s", m.from, describeRank(m.data))
	}
	return fmt.Sprintf("coord->%d: %s", m.to, describeCoord(m.data))
}

func (s *scenario) status() {
	for _, pr := range s.procs {
		if pr == nil {
			continue
		}
		st := "running"
		switch {
		case pr.dead:
			st = "dead"
		case !pr.p.Running():
			st = "not running"
		}
		s.printf("rank %d: spawn %d g=%d step %d %s, %d stale frames dropped\n", pr.rank, pr.spawn, pr.p.Incarnation(), pr.p.Step(), st,
			pr.p.Stats().StaleDropped)
	}
	s.printf("store: committed %v\n", s.store.committed())
}

func describeFrame(b []byte) string {
	f, err := wire.DecodeFrame(b)
	if err != nil {
		return "malformed: " + err.Error()
	}
	if f.Kind == wire.KindMarker {
		m := f.Marker
		return fmt.Sprintf("marker g=%d e=%d S=%d sent=%d", m.G, m.Epoch, m.Step, m.Sent)
	}
	return fmt.Sprintf("data g=%d seq=%d step=%d %q", f.Data.G, f.Data.Seq, f.Data.Step, f.Data.Payload)
}

func describeRank(b []byte) string {
	m, err := wire.DecodeRank(b)
	if err != nil {
		return "malformed: " + err.Error()
	}
	switch m := m.(type) {
	case *wire.Status:
		s := fmt.Sprintf("status g=%d %s step=%d", m.G, m.State, m.Step)
		if m.Epoch != 0 {
			s += fmt.Sprintf(" e=%d %s", m.Epoch, m.Phase)
			if m.Reason != wire.ReasonNone {
				s += " (" + m.Reason.String() + ")"
			}
		}
		if m.Hello != nil {
			s += fmt.Sprintf(" hello peers=%v cut=%d", m.Hello.Peers, m.Cut)
		}
		return s
	case *wire.ShardReport:
		var in []string
		for _, c := range m.Counts.In {
			in = append(in, fmt.Sprintf("%d:%d+%d", c.From, c.Delivered, c.Recorded))
		}
		var out []string
		for _, c := range m.Counts.Out {
			out = append(out, fmt.Sprintf("%d:%d", c.To, c.Sent))
		}
		return fmt.Sprintf("shard e=%d S=%d ref=%s sent{%s} delivered+recorded{%s}", m.Epoch, m.Step, m.Ref,
			strings.Join(out, " "), strings.Join(in, " "))
	case *wire.EpochAbort:
		s := fmt.Sprintf("abort e=%d %s step=%d", m.Epoch, m.Reason, m.Step)
		if m.Peer >= 0 {
			s += fmt.Sprintf(" peer=%d", m.Peer)
		}
		return s
	case *wire.Alarm:
		return fmt.Sprintf("alarm %s peer=%d sent at %d, received at %d", m.Kind, m.Peer, m.SendStep, m.RecvStep)
	}
	return "?"
}

func describeCoord(b []byte) string {
	m, err := wire.DecodeCoord(b)
	if err != nil {
		return "malformed: " + err.Error()
	}
	switch m := m.(type) {
	case *wire.Go:
		return fmt.Sprintf("Go g=%d", m.G)
	case *wire.Cut:
		return fmt.Sprintf("Cut g=%d e=%d S=%d", m.G, m.Epoch, m.Step)
	case *wire.Abort:
		return fmt.Sprintf("Abort g=%d e=%d", m.G, m.Epoch)
	case *wire.Commit:
		return fmt.Sprintf("Commit g=%d e=%d", m.G, m.Epoch)
	case *wire.Rollback:
		return fmt.Sprintf("Rollback g=%d rank %d spawn %d to cut %d (step %d)", m.G, m.Rank, m.Spawn, m.Epoch, m.Step)
	case *wire.Beat:
		return fmt.Sprintf("Beat g=%d %s e=%d %s committed=%d", m.G, m.Phase, m.Epoch, m.State, m.LastCommitted)
	case *wire.Fence:
		return fmt.Sprintf("Fence rank %d spawn %d: %s", m.Rank, m.Spawn, m.Reason)
	case *wire.Stop:
		return fmt.Sprintf("Stop exit %d: %s", m.Code, m.Reason)
	}
	return "?"
}
