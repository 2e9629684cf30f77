package main

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// TestHostileTokenHolder: while a job runs, a client with the job's NATS
// token heartbeats for 10,000 fake ranks, hands in results for fake ranks,
// sends a coordinator message of generation 2^62 and copies the ranks'
// data frames forged far ahead of their sequence numbers. The job ends
// with the undisturbed digest, and the coordinator says it dropped the
// fake ranks.
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
	var forged, near atomic.Int64
	rnd := rand.New(rand.NewPCG(1, 2))
	// Forged ahead: every tenth data frame seen comes again past its seq,
	// with a transmission id far ahead and a payload of its own: mostly
	// far past the window (dropped), three times just ahead (held, until
	// the real frame shows the conflict: a gap, and a rollback).
	var seen atomic.Int64
	dsub, err := nc.Subscribe("cp."+space+".*.d.>", func(m *nats.Msg) {
		n := seen.Add(1)
		if n%10 != 0 {
			return
		}
		h, p, err := channel.DecodeFrame(m.Data, 1<<30)
		if err != nil || h.Type != channel.TypeData {
			return
		}
		if n%1000 == 0 && near.Load() < 3 {
			near.Add(1)
			h.Seq += 2 + uint64(rnd.IntN(20))
		} else {
			h.Seq += 1 << 20
		}
		h.Tx += 1 << 30
		junk := make([]byte, len(p))
		for i := range junk {
			junk[i] = byte(rnd.Uint32())
		}
		if nc.Publish(m.Subject, channel.AppendFrame(nil, &h, junk)) == nil {
			forged.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dsub.Unsubscribe()
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		// A coordinator message of an absurd generation, once.
		_ = nc.Publish(subjects.ToAll(space), wire.EncodeCoord(&wire.Abort{CoordHeader: wire.CoordHeader{CGen: 1 << 62, G: 1}, Epoch: 1}))
		for r := range 1000 {
			res, _ := wire.EncodeResult(wire.Result{Rank: 4 + r, G: 1, Data: make([]byte, 1024)})
			_ = nc.Publish(subjects.Result(space), res)
		}
		for round := 0; ; round++ {
			for r := 4; r < 10004; r++ {
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
	r := result{stdout: out.String(), stderr: errb.String()}
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
	if !strings.Contains(errb.String(), "rank outside the world") {
		t.Fatalf("the coordinator did not report dropping the fake ranks\n%s", tail(errb.String(), 40))
	}
	if !strings.Contains(errb.String(), "past the next expected") {
		t.Fatalf("no rank warned about the frames forged far ahead\n%s", tail(errb.String(), 40))
	}
	if !strings.Contains(errb.String(), "coordinator generation") {
		t.Fatalf("no rank reported refusing the forged coordinator generation\n%s", tail(errb.String(), 40))
	}
	t.Logf("forged %d data frames (%d just ahead); %d rank-outside-the-world warnings, %d conflicting-fragment gaps, %d control-message warnings; epochs %d -> %d",
		forged.Load(), near.Load(), strings.Count(errb.String(), "rank outside the world"), strings.Count(errb.String(), "two different fragments"),
		strings.Count(errb.String(), "control message dropped"), cutsBefore, lastEpoch(t, store))
}

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
