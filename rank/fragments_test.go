package rank

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

// TestFragmentsMove: rs:2+1, hosts a to f with a rank each, the ranks'
// hosts at launch a to d (e and f spares): a's fragments go to b, c and d.
// When b's ranks are gone, fragment 0 goes to e instead, not the whole
// shard to the shared store; the cuts after go to e directly, without
// trying b again. With c lost as well, a's shard whose own copy is gone
// is rebuilt from the fragment on e (re-placed) and the one on d; the
// next cut's fragment 1 goes to f. With d lost too, fewer live hosts than
// K+M remain: only then does the shard go to the shared store. b back,
// fragment 0 returns to it once its backoff ran out. Each placement that
// changes hosts is logged once and counted per fragment.
func TestFragmentsMove(t *testing.T) {
	ctx := context.Background()
	a, others, shared, _ := levelsPair(t, 1000, "rs:2+1", "a:1,b:1,c:1,d:1,e:1,f:1", 4)
	host := map[string]*nodeLevels{}
	for _, l := range others {
		host[l.host] = l
	}
	// down: the host's ranks are gone (their connections closed: nobody
	// serves its store, the NATS server says so at once).
	down := func(h string) {
		host[h].serve.close()
		host[h].serve = nil
	}
	var logb lockedBuf
	a.log = slog.New(slog.NewTextHandler(&logb, nil))
	logged := func() int { return strings.Count(logb.String(), "erasure fragments go to other hosts") }
	// on: the hosts holding fragment i of ref's pack.
	on := func(ref ckpt.ShardRef, i int) []string {
		var hs []string
		for _, l := range others {
			if _, err := l.local.Backend().Stat(ctx, ckpt.FragmentName(ref.Pack(), i, 2, 1)); err == nil {
				hs = append(hs, l.host)
			}
		}
		return hs
	}
	protect := func(epoch uint64, wantMoves int, where ...string) (ckpt.ShardRef, time.Duration) {
		t.Helper()
		ref := writeLocal(t, a.local, epoch)
		t0 := time.Now()
		cp, err := a.protect(ctx, ref, false)
		took := time.Since(t0)
		if err != nil || cp.partner == 0 || cp.flushed != 0 || cp.fallback || cp.fragMoves != wantMoves {
			t.Fatalf("epoch %d: %+v, %v; want fragments on other hosts (%d moved), nothing in the shared store\n%s", epoch, cp, err, wantMoves, logb.String())
		}
		if err := shared.HasShard(ctx, ref); !errors.Is(err, ckpt.ErrNotFound) {
			t.Fatalf("epoch %d in the shared store: %v", epoch, err)
		}
		for i, h := range where {
			if got := on(ref, i); !slices.Equal(got, []string{h}) {
				t.Fatalf("epoch %d: fragment %d on %v, want %s\n%s", epoch, i, got, h, logb.String())
			}
		}
		if cur := a.frags.Current(); !slices.Equal(cur, where) {
			t.Fatalf("epoch %d: the slots' hosts %v, want %v", epoch, cur, where)
		}
		return ref, took
	}

	protect(1, 0, "b", "c", "d")
	if logged() != 0 {
		t.Fatalf("a move logged with every first choice up\n%s", logb.String())
	}

	// b's ranks are gone.
	down("b")
	_, took := protect(2, 1, "e", "c", "d")
	if logged() != 1 || !strings.Contains(logb.String(), "fragment 0: b to e") {
		t.Fatalf("%d moves logged, want 1 (fragment 0: b to e)\n%s", logged(), logb.String())
	}
	t.Logf("fragments with b's ranks gone: the failed try and the encode to e took %v", took)
	r3, took := protect(3, 0, "e", "c", "d")
	if logged() != 1 || took > 3*time.Second {
		t.Fatalf("epoch 3: %d moves logged, took %v; want no new move, no wait on b", logged(), took)
	}

	// c is lost too, and a's own copy of epoch 3: the rebuild needs the
	// fragment that went to e (b holds none of epoch 3, c is gone). As in
	// a rank just respawned (its start grace running, no store opened
	// yet), the dead hosts cost nothing: d and e hold enough.
	down("c")
	if err := a.local.Backend().Remove(ctx, r3.Pack()); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	for h, s := range a.stores {
		s.Close()
		delete(a.stores, h)
	}
	a.mu.Unlock()
	a.t0 = time.Now()
	t0 := time.Now()
	if err := a.rebuild(ctx, r3); err != nil {
		t.Fatalf("rebuild of epoch 3 from the fragments on e and d: %v", err)
	}
	took = time.Since(t0)
	t.Logf("rebuild within the start grace, b and c gone: %v", took)
	if took > startGrace/2 {
		t.Errorf("the rebuild took %v: it waited for the dead hosts (start grace %v)", took, startGrace)
	}
	a.t0 = time.Now().Add(-time.Minute)
	if _, err := a.local.VerifyShard(ctx, r3); err != nil {
		t.Fatalf("rebuilt epoch 3: %v", err)
	}
	protect(4, 1, "e", "f", "d")

	// d as well: two live hosts besides a's, three needed. The shard goes
	// to the shared store (loudly), counted as a fallback.
	down("d")
	ref := writeLocal(t, a.local, 5)
	cp, err := a.protect(ctx, ref, false)
	if err != nil || cp.flushed == 0 || !cp.fallback || shared.HasShard(ctx, ref) != nil {
		t.Fatalf("epoch 5 with two live hosts: %+v, %v; want it in the shared store, a fallback", cp, err)
	}
	if !strings.Contains(logb.String(), "erasure fragments failed: this shard goes to the shared store") {
		t.Fatalf("the fallback was not logged as an error\n%s", logb.String())
	}
	for i := range 3 {
		for _, h := range on(ref, i) {
			if h == "b" || h == "c" || h == "d" {
				t.Fatalf("epoch 5: fragment %d on %s, which is gone", i, h)
			}
		}
	}

	// b is back (a rank serves its store again): once the backoffs ran
	// out, fragment 0 goes back to it; c and d are tried and fail, their
	// fragments go to e and f.
	srv, err := serveStore(host["b"].nc, "j", "", "b", host["b"].local.Backend(), host["b"].log)
	if err != nil {
		t.Fatal(err)
	}
	host["b"].serve = srv
	a.mu.Lock()
	a.frags.Retry, a.frags.RetryMax = time.Millisecond, time.Millisecond
	for _, h := range []string{"b", "c", "d"} {
		a.frags.Failed(h, time.Now()) // as failures long ago: backoffs over
	}
	a.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	protect(6, 3, "b", "e", "f")
}
