package rank

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/levels"
)

// lockedBuf is a log destination the test reads while ranks write.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestPartnerMoves: hosts a, b, c with a rank each (a's partner b). When
// b's store is gone, a's copy goes to c instead, not to the shared store;
// the cuts after go to c directly, without waiting on b again; a restore
// finds the copy on c; c's ranks collect it. A b that takes no request and
// never answers (its processes stopped, or the host lost while the NATS
// server still holds its subscriptions) costs a cut the probe's timeout,
// once per backoff, not the three retried requests of every call. Once b
// serves again its copies go back to it. Each move is logged once and
// counted.
func TestPartnerMoves(t *testing.T) {
	ctx := context.Background()
	a, others, shared, _ := levelsPair(t, 1000, levels.RedundancyPartner, "a:1,b:1,c:1", 3)
	b, c := others[0], others[1]
	var logb lockedBuf
	a.log = slog.New(slog.NewTextHandler(&logb, nil))
	moves := func() int { return strings.Count(logb.String(), "partner copies go to another host") }
	protect := func(epoch uint64, wantMoved int) (ckpt.ShardRef, time.Duration) {
		t.Helper()
		ref := writeLocal(t, a.local, epoch)
		t0 := time.Now()
		cp, err := a.protect(ctx, ref, false)
		took := time.Since(t0)
		if err != nil || cp.partner == 0 || cp.flushed != 0 || cp.fallback || cp.moved != wantMoved {
			t.Fatalf("epoch %d: %+v, %v; want a copy on another host (moved %d), nothing in the shared store\n%s", epoch, cp, err, wantMoved, logb.String())
		}
		if err := shared.HasShard(ctx, ref); !errors.Is(err, ckpt.ErrNotFound) {
			t.Fatalf("epoch %d in the shared store: %v", epoch, err)
		}
		return ref, took
	}
	in := func(l *nodeLevels, ref ckpt.ShardRef) bool { return l.local.HasShard(ctx, ref) == nil }

	r1, _ := protect(1, 0)
	if !in(b, r1) || in(c, r1) {
		t.Fatalf("epoch 1: on b %v, on c %v; want b, the first choice", in(b, r1), in(c, r1))
	}

	// b's ranks are gone (killed: their connections closed, so the NATS
	// server knows at once that nobody serves b's store).
	b.serve.close()
	r2, took := protect(2, 1)
	t.Logf("a copy with the partner's ranks gone: the failed try and the copy to the next host took %v", took)
	if !in(c, r2) || in(b, r2) || a.partners.Current() != "c" || moves() != 1 {
		t.Fatalf("epoch 2: on c %v, on b %v, partner %s, %d moves logged\n%s", in(c, r2), in(b, r2), a.partners.Current(), moves(), logb.String())
	}
	if took > 3*time.Second {
		t.Errorf("a partner whose ranks are gone cost %v", took)
	}
	r3, _ := protect(3, 0)
	if !in(c, r3) || moves() != 1 {
		t.Fatalf("epoch 3: on c %v, %d moves logged", in(c, r3), moves())
	}

	// A restore of a's rank finds the copy on c: a's own copy lost, b not
	// serving, c next.
	if err := a.local.Backend().Remove(ctx, r3.Pack()); err != nil {
		t.Fatal(err)
	}
	found := ""
	for _, lc := range a.candidates(ctx) {
		st, err := lc.get(ctx)
		if err == nil && st.HasShard(ctx, r3) == nil {
			found = lc.level + " " + lc.host
			break
		}
	}
	if found != ckpt.LevelPartner+" c" {
		t.Fatalf("restore of epoch 3 found its copy at %q, want partner c", found)
	}

	// b hangs: something holds its subject and never answers. The copy
	// would wait out every request's timeout: measure that with a short
	// timeout (a call is three tries), then a retry of b after its backoff
	// as protect does it: one probe timeout, then c.
	var asked atomic.Int64
	hung, err := a.nc.Subscribe(storeSubject("j", "", "b"), func(*nats.Msg) { asked.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rb, err := a.remote("b")
	if err != nil {
		t.Fatal(err)
	}
	rb.timeout = 200 * time.Millisecond
	t0 := time.Now()
	_, err = rb.Stat(ctx, "cutpoint-store.json")
	unprobed := time.Since(t0)
	t.Logf("one call to a host that never answers: %d tries, %v with a %v timeout (with the rank's %v: %v)", asked.Load(), unprobed, rb.timeout, remoteTimeout, 3*remoteTimeout)
	if err == nil || asked.Load() != 3 || unprobed < 3*rb.timeout {
		t.Fatalf("a call to a silent host: %v after %v and %d tries, want an error after three timeouts", err, unprobed, asked.Load())
	}
	a.mu.Lock()
	a.partners.Retry, a.partners.RetryMax = time.Millisecond, time.Millisecond
	a.partners.Failed("b", time.Now()) // as a failure of b long ago: backoff over
	a.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	_, took = protect(4, 0)
	t.Logf("a retry of a partner that never answers: %v (probe timeout %v)", took, probeTimeout)
	if took < probeTimeout || took > probeTimeout+5*time.Second {
		t.Errorf("a retry of a silent partner took %v, want about the probe timeout %v", took, probeTimeout)
	}
	if moves() != 1 || a.partners.Current() != "c" {
		t.Fatalf("after the failed retry: partner %s, %d moves logged", a.partners.Current(), moves())
	}
	_ = hung.Unsubscribe()

	// b is back (a rank serves its store again): after the backoff the
	// copies go back to b.
	srv, err := serveStore(b.nc, "j", "", "b", b.local.Backend(), b.log)
	if err != nil {
		t.Fatal(err)
	}
	b.serve = srv
	time.Sleep(5 * time.Millisecond)
	r5, _ := protect(5, 1)
	if !in(b, r5) || in(c, r5) || a.partners.Current() != "b" || moves() != 2 {
		t.Fatalf("epoch 5: on b %v, on c %v, partner %s, %d moves logged", in(b, r5), in(c, r5), a.partners.Current(), moves())
	}

	// c's rank collects the copies a left there once no cut holds them.
	commitLocal(t, shared, 5, r5)
	c.gc("j", 5)
	deadline := time.Now().Add(10 * time.Second)
	for in(c, r2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.gcBusy.Lock() // the gc is over
	defer c.gcBusy.Unlock()
	if in(c, r2) || in(c, r3) {
		t.Fatalf("c's gc kept copies of cuts no longer held: epoch 2 %v, epoch 3 %v", in(c, r2), in(c, r3))
	}
}
