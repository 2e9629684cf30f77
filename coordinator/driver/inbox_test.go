package driver

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

func status(rank int) []byte {
	return wire.EncodeRank(&wire.Status{RankHeader: wire.RankHeader{Rank: rank, Spawn: 1, G: 1}, State: wire.StateRunning, Peer: -1})
}

func alarm(rank int) []byte {
	return wire.EncodeRank(&wire.Alarm{RankHeader: wire.RankHeader{Rank: rank, Spawn: 1, G: 1}, Kind: wire.AlarmAlignment, Peer: 2, Detail: "junk"})
}

// TestInboxFakeRanksDropped: 10,000 fake ranks heartbeating take no slot
// of the inbox; they are dropped and counted, and the warning is one line.
func TestInboxFakeRanksDropped(t *testing.T) {
	in := newInbox(4, 100)
	for r := 4; r < 10004; r++ {
		if kind := in.offer(status(r)); kind != dropRank {
			t.Fatalf("rank %d of a world of 4: drop kind %d", r, kind)
		}
	}
	if kind := in.offer([]byte("junk")); kind != dropMalformed {
		t.Fatalf("junk: drop kind %d", kind)
	}
	if len(in.ch) != 0 || in.dropped(dropRank) != 10000 {
		t.Fatalf("inbox holds %d, dropped %d", len(in.ch), in.dropped(dropRank))
	}
	var log bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&log, nil))
	now := time.Now()
	for k := range 100 {
		in.warn(lg, dropRank, now.Add(time.Duration(k)*time.Millisecond))
	}
	if n := strings.Count(log.String(), "\n"); n != 1 {
		t.Fatalf("%d warnings for one burst, want 1:\n%s", n, log.String())
	}
	in.warn(lg, dropRank, now.Add(11*time.Second))
	if n := strings.Count(log.String(), "\n"); n != 2 {
		t.Fatalf("no second warning 11 s later:\n%s", log.String())
	}
}

// TestInboxStatusesNotStarved: a flood of other messages fills only their
// share; every real rank's status still gets in.
func TestInboxStatusesNotStarved(t *testing.T) {
	const world = 300
	in := newInbox(world, 100)
	for range 10000 {
		in.offer(alarm(1))
	}
	if in.dropped(dropFull) != 10000-100 {
		t.Fatalf("dropped %d alarms, want %d", in.dropped(dropFull), 10000-100)
	}
	for r := range world {
		if kind := in.offer(status(r)); kind >= 0 {
			t.Fatalf("rank %d's status dropped (kind %d) behind a flood", r, kind)
		}
	}
	// Order is kept: the flood first, then the statuses.
	for range 100 {
		<-in.ch
	}
	for r := range world {
		m, err := wire.DecodeRank(<-in.ch)
		if err != nil || m.Header().Rank != r {
			t.Fatalf("status #%d: %v %v", r, m, err)
		}
	}
}

// TestResultOnlyRankZero: results are kept from rank 0 only.
func TestResultOnlyRankZero(t *testing.T) {
	in := newInbox(4, 10)
	if !in.admitResult(wire.Result{Rank: 0, G: 1}, nil) {
		t.Fatal("rank 0's result refused")
	}
	for _, r := range []int{1, 3, 4, 1 << 19} {
		if in.admitResult(wire.Result{Rank: r, G: 1}, nil) {
			t.Fatalf("rank %d's result admitted", r)
		}
	}
	if in.dropped(dropResult) != 4 {
		t.Fatalf("dropped %d results, want 4", in.dropped(dropResult))
	}
}
