package driver

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/coordinator"
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

// TestInboxAuthenticates: with the job key, a status tagged with its
// rank's report key is queued without its tag; the same status untagged,
// tagged by another rank's key (a rank passing for another), or tagged as
// a result is dropped as failing authentication, naming the rank claimed;
// a result is admitted only with rank 0's result tag.
func TestInboxAuthenticates(t *testing.T) {
	k := wire.NewJobKey()
	in := newInbox(4, 100)
	in.keys = &k
	st := status(1)
	if kind := in.offer(wire.NewMAC(k.ReportKey(1)).Seal(wire.DomainReport, append([]byte(nil), st...))); kind != -1 {
		t.Fatalf("genuine status: drop kind %d", kind)
	}
	if got := <-in.ch; !bytes.Equal(got, st) {
		t.Fatalf("queued %x, want the status without its tag", got)
	}
	for name, b := range map[string][]byte{
		"untagged":        st,
		"rank 2's key":    wire.NewMAC(k.ReportKey(2)).Seal(wire.DomainReport, append([]byte(nil), st...)),
		"a result's tag":  wire.NewMAC(k.ReportKey(1)).Seal(wire.DomainResult, append([]byte(nil), st...)),
		"another job key": wire.NewMAC(wire.NewJobKey().ReportKey(1)).Seal(wire.DomainReport, append([]byte(nil), st...)),
	} {
		if kind := in.offer(b); kind != dropAuth {
			t.Errorf("%s: drop kind %d, want %d", name, kind, dropAuth)
		}
	}
	if kind := in.offer(status(9)); kind != dropRank {
		t.Errorf("a rank outside the world: drop kind %d", kind)
	}
	if len(in.ch) != 0 || in.dropped(dropAuth) != 4 || in.claimed.Load() != 1 {
		t.Fatalf("inbox holds %d, auth drops %d, claimed %d", len(in.ch), in.dropped(dropAuth), in.claimed.Load())
	}
	var log bytes.Buffer
	in.warn(slog.New(slog.NewTextHandler(&log, nil)), dropAuth, time.Now())
	if !strings.Contains(log.String(), `reason="fails authentication"`) || !strings.Contains(log.String(), "claimed_rank=1") {
		t.Fatalf("warning: %s", log.String())
	}

	d := &driver{cfg: Config{Keys: &k, Coord: coordinator.Config{World: 4}}, inbox: in}
	res, _ := wire.EncodeResult(wire.Result{Rank: 0, G: 1, Data: []byte("digest")})
	if r, err := d.openResult(wire.NewMAC(k.ReportKey(0)).Seal(wire.DomainResult, append([]byte(nil), res...))); err != nil || !in.admitResult(r, err) {
		t.Fatalf("rank 0's genuine result: %v", err)
	}
	for name, b := range map[string][]byte{
		"untagged":     res,
		"rank 1's key": wire.NewMAC(k.ReportKey(1)).Seal(wire.DomainResult, append([]byte(nil), res...)),
		"a report tag": wire.NewMAC(k.ReportKey(0)).Seal(wire.DomainReport, append([]byte(nil), res...)),
	} {
		r, err := d.openResult(b)
		if in.admitResult(r, err) || !errors.Is(err, wire.ErrAuth) {
			t.Errorf("%s: admitted, or not an authentication failure: %v", name, err)
		}
	}
}
