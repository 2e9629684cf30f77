package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// TestHostileTokenHolder: while a job runs, a client with the job's NATS
// token (but none of its keys) heartbeats for 10,000 fake ranks, hands in
// results for fake ranks and a forged result of rank 0, sends "finished"
// statuses for every real rank, a coordinator message of generation 2^62,
// random bytes behind a valid Stop header and a well-formed Stop, and
// copies the ranks' data frames forged ahead of their sequence numbers.
// The job ends with the undisturbed digest (the forged one is never
// printed), cuts go on, no process grows past a bound, and every forgery
// is dropped, counted and logged: at the coordinator by the rank it
// claimed, at the ranks as failing authentication.
func TestHostileTokenHolder(t *testing.T) {
	want := reference(t)
	// Once a cut is committed every rank follows the real coordinator.
	j := startSplitJob(t)
	store, url, coord, out, errb := j.store, j.url, j.coord, &j.out, &j.errb

	nc, err := nats.Connect(url) // the token is in the URL: the attacker holds it
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cutsBefore := lastEpoch(t, store)
	// The token gives every subject of the server: the attacker learns
	// the job's id from the traffic (here, the store).
	space := jobSpace(t, store, "heat2d")
	var forged atomic.Int64
	rnd := rand.New(rand.NewPCG(1, 2))
	// Forged ahead: every tenth data frame seen comes again past its seq,
	// with a transmission id far ahead, a payload of its own and the tag
	// it had (or random bytes): without the pair key no tag fits.
	var seen atomic.Int64
	dsub, err := nc.Subscribe("cp."+space+".*.d.>", func(m *nats.Msg) {
		n := seen.Add(1)
		if n%10 != 0 || len(m.Data) < transport.TagLen {
			return
		}
		body, tag := m.Data[:len(m.Data)-transport.TagLen], m.Data[len(m.Data)-transport.TagLen:]
		h, p, err := channel.DecodeFrame(body, 1<<30)
		if err != nil || h.Type != channel.TypeData {
			return
		}
		if n%20 == 0 {
			h.Seq += 2 + uint64(rnd.IntN(20)) // just ahead: would be held
		} else {
			h.Seq += 1 << 20
		}
		h.Tx += 1 << 30
		junk := make([]byte, len(p))
		for i := range junk {
			junk[i] = byte(rnd.Uint32())
		}
		f := channel.AppendFrame(nil, &h, junk)
		if n%30 == 0 {
			f = append(f, tag...)
		} else {
			f = append(f, junk[:min(len(junk), transport.TagLen)]...)
		}
		if nc.Publish(m.Subject, f) == nil {
			forged.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dsub.Unsubscribe()

	// Memory of the coordinator and its ranks, sampled while the attack
	// runs.
	var peak atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for _, pid := range append(childPids(coord.Process.Pid), coord.Process.Pid) {
				if kb := rssKB(pid); kb > peak.Load() {
					peak.Store(kb)
				}
			}
			select {
			case <-stopSample:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	const forgedDigest = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		hdr := wire.CoordHeader{CGen: 1, G: 1}
		// A coordinator message of an absurd generation, a well-formed
		// Stop of the real generation, and random bytes behind a valid
		// Stop header (they decoded as a Stop before).
		_ = nc.Publish(subjects.ToAll(space), wire.EncodeCoord(&wire.Abort{CoordHeader: wire.CoordHeader{CGen: 1 << 62, G: 1}, Epoch: 1}))
		_ = nc.Publish(subjects.ToAll(space), wire.EncodeCoord(&wire.Stop{CoordHeader: hdr, Code: 0, Reason: "forged"}))
		for range 20 {
			junk := make([]byte, 8+rnd.IntN(120))
			for i := range junk {
				junk[i] = byte(rnd.Uint32())
			}
			junk[0], junk[1] = wire.Version, wire.KindStop
			_ = nc.Publish(subjects.ToAll(space), junk)
			_ = nc.Publish(subjects.ToRank(space, rnd.IntN(4)), junk)
		}
		// Rank 0's result with the attacker's digest, and every real rank
		// "finished" (five such messages ended a job with exit 0 before).
		res, _ := wire.EncodeResult(wire.Result{Rank: 0, G: 1, Data: []byte(forgedDigest)})
		for range 10 {
			_ = nc.Publish(subjects.Result(space), res)
		}
		for r := range 4 {
			st := wire.EncodeRank(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, State: wire.StateFinished, Step: 1 << 40, Peer: -1})
			_ = nc.Publish(subjects.ToCoordinator(space, r), st)
		}
		for r := range 1000 {
			res, _ := wire.EncodeResult(wire.Result{Rank: 4 + r, G: 1, Data: make([]byte, 1024)})
			_ = nc.Publish(subjects.Result(space), res)
		}
		for round := 0; ; round++ {
			for r := 0; r < 10004; r++ {
				st := wire.EncodeRank(&wire.Status{RankHeader: wire.RankHeader{Rank: r, Spawn: 1, G: 1}, State: wire.StateRunning, Step: int64(round), Peer: -1})
				_ = nc.Publish(subjects.ToCoordinator(space, r), st)
			}
			_ = nc.Flush()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- coord.Wait() }()
	select {
	case err := <-done:
		close(stop)
		<-flooded
		if err != nil {
			t.Fatalf("job under attack: %v\n%s", err, tail(errb.String(), 60))
		}
	case <-time.After(3 * time.Minute):
		close(stop)
		<-flooded
		t.Fatalf("job did not finish in 3 minutes under attack\n%s", tail(errb.String(), 60))
	}
	close(stopSample)
	<-sampled
	r := result{stdout: out.String(), stderr: errb.String()}
	if strings.Contains(r.stdout, forgedDigest) {
		t.Fatalf("the forged result was printed\n%s", r.stdout)
	}
	if got := r.digest(t); got != want {
		t.Fatalf("digest under attack %s, undisturbed %s", got, want)
	}
	// The real coordinator was followed after the forged generation:
	// cuts went on.
	if after := lastEpoch(t, store); after < cutsBefore+2 {
		t.Fatalf("cuts stopped under attack: last epoch %d before, %d at the end", cutsBefore, after)
	}
	if forged.Load() == 0 {
		t.Fatalf("no data frame was forged: the attack did not happen")
	}
	// Bounded: a flood of in-window frames grew a rank to 601 MB, fake
	// results the coordinator to 1.4 GB.
	if kb := peak.Load(); kb == 0 || kb > 400<<10 {
		t.Fatalf("peak resident memory of a process of the job %d KiB (bound 400 MiB; 0: not sampled)", kb)
	}
	log := errb.String()
	for _, w := range []struct{ what, text string }{
		{"the coordinator did not report dropping the fake ranks", "rank outside the world"},
		{"the coordinator did not report the forged rank messages and results", `reason="fails authentication"`},
		{"the coordinator's warning does not name a real rank as the claimed sender", "claimed_rank="},
		{"no rank reported the forged frames", "fails authentication under that pair's key"},
		{"no rank reported the forged control messages", "control message fails authentication"},
	} {
		if !strings.Contains(log, w.text) {
			t.Fatalf("%s (%q)\n%s", w.what, w.text, tail(log, 40))
		}
	}
	t.Logf("forged %d data frames; peak RSS %d MiB; %d coordinator drop warnings, %d frame warnings, %d control warnings; epochs %d -> %d",
		forged.Load(), peak.Load()>>10, strings.Count(log, "dropped at the coordinator's boundary"), strings.Count(log, "fails authentication under"),
		strings.Count(log, "control message fails authentication"), cutsBefore, lastEpoch(t, store))
}

// rssKB is the resident memory high-water mark of pid (0 if it is gone).
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// jobKeyEnv is the environment that gives a coordinator and the ranks
// started by hand one job key (--spawn none, --rejoin).
func jobKeyEnv() []string { return []string{"CUTPOINT_JOB_KEY=" + wire.NewJobKey().Hex()} }

// jobSpace is the subject space of the job's current run (its id is in
// the store once the coordinator holds the job's lease).
func jobSpace(t *testing.T, store, job string) string {
	t.Helper()
	s, err := ckpt.OpenDir(context.Background(), store, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := s.GetJobFile(context.Background(), job, driver.JobIDFile)
	if err != nil {
		t.Fatalf("job id: %v", err)
	}
	return subjects.Space(job, string(id))
}

func lastEpoch(t *testing.T, store string) uint64 {
	t.Helper()
	var e uint64
	for _, c := range committed(t, store, "heat2d") {
		e = max(e, c.Epoch)
	}
	return e
}
