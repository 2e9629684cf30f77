package rank

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/ckpt/backend/fault"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/levels"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// levelsPair: a shared store, a NATS server, and the node-local levels
// of one rank on each host of hosts (rank i on host i), each serving its
// host's store to the others over NATS: the copies never touch another
// host's directory by path.
func levelsPair(t *testing.T, flushEvery int, redundancy, hosts string, world int) (*nodeLevels, []*nodeLevels, *ckpt.Store, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shared, err := ckpt.OpenDir(ctx, filepath.Join(dir, "shared"), ckpt.Options{Create: true, ChunkSize: 4096, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	ns := natstest.Run(t)
	cfg := levels.Config{Local: filepath.Join(dir, "{host}"), Redundancy: redundancy, FlushEvery: flushEvery, Hosts: hosts, World: world}
	hl, err := launch.ParseHosts(hosts)
	if err != nil {
		t.Fatal(err)
	}
	var all []*nodeLevels
	for i, h := range hl {
		nc, err := nats.Connect(ns.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		l, err := openLevels(ctx, Options{Job: "j", Rank: i, Host: h.Name, Levels: cfg}, nc, shared, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.close)
		l.t0 = time.Now().Add(-time.Minute) // a host with no rank fails at once
		all = append(all, l)
	}
	return all[0], all[1:], shared, dir
}

func writeLocal(t *testing.T, s *ckpt.Store, epoch uint64) ckpt.ShardRef {
	t.Helper()
	ctx := context.Background()
	w, err := s.NewShard(ctx, ckpt.ShardSpec{Job: "j", Epoch: epoch, Rank: 0, Incarnation: 1, Step: int64(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte(i * int(epoch))
	}
	if err := w.AddBuffer(ctx, "u", ckpt.BytesSource(data, 8)); err != nil {
		t.Fatal(err)
	}
	ref, err := w.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestProtectCommitRule: a shard goes to the partner's store (over NATS,
// written by the partner host's rank into its own directory); to the
// shared store too before it is reported only on a final cut or when the
// partner copy fails; never reported with a local copy alone.
func TestProtectCommitRule(t *testing.T) {
	ctx := context.Background()
	l, others, shared, dir := levelsPair(t, 3, levels.RedundancyPartner, "a:1,b:1", 2)
	partnerStore := func() *ckpt.Store {
		s, err := l.store(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	ref := writeLocal(t, l.local, 1)
	c, err := l.protect(ctx, ref, l.isFinal(1))
	p, f := c.partner, c.flushed
	if err != nil || p == 0 || f != 0 || c.fallback || c.moved != 0 {
		t.Fatalf("epoch 1: partner %d flushed %d, %v", p, f, err)
	}
	if err := partnerStore().HasShard(ctx, ref); err != nil {
		t.Fatalf("partner copy: %v", err)
	}
	// The copy is in b's own directory, written there by b's rank.
	if err := others[0].local.HasShard(ctx, ref); err != nil {
		t.Fatalf("partner copy in b's directory %s: %v", dir, err)
	}
	if err := shared.HasShard(ctx, ref); !errors.Is(err, ckpt.ErrNotFound) {
		t.Fatalf("epoch 1 in the shared store: %v", err)
	}

	if c := l.candidates(ctx); len(c) != 3 || c[0].level != ckpt.LevelLocal || c[1].level != ckpt.LevelPartner || c[1].host != "b" || c[2].level != ckpt.LevelShared {
		t.Fatalf("candidates %+v: want local a, partner b, shared", c)
	}

	// A flush epoch is not flushed before it is reported: the flush runs
	// in the background once the cut commits (TestBackgroundFlush).
	ref = writeLocal(t, l.local, 3)
	if c, err := l.protect(ctx, ref, l.isFinal(3)); err != nil || c.flushed != 0 || shared.HasShard(ctx, ref) == nil {
		t.Fatalf("flush epoch 3: flushed %d before the commit, %v", c.flushed, err)
	}

	l.noteFinal(wire.EncodeCoord(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Epoch: 4, Step: 4, Final: true}))
	l.noteFinal([]byte("not a message"))
	ref = writeLocal(t, l.local, 4)
	if !l.isFinal(4) || l.isFinal(5) {
		t.Fatal("final flag not remembered")
	}
	if c, err := l.protect(ctx, ref, l.isFinal(4)); err != nil || c.flushed == 0 || c.fallback {
		t.Fatalf("final epoch 4: %+v, %v", c, err)
	}

	// No rank serves b's store any more (its host is gone): the partner
	// copy fails and the shard goes to the shared store.
	l.mu.Lock()
	for h, s := range l.stores {
		s.Close()
		delete(l.stores, h)
	}
	l.mu.Unlock()
	others[0].serve.close()
	others[0].serve = nil
	ref = writeLocal(t, l.local, 5)
	c, err = l.protect(ctx, ref, false)
	if err != nil || c.partner != 0 || c.flushed == 0 || !c.fallback || shared.HasShard(ctx, ref) != nil {
		t.Fatalf("partner gone: %+v, %v", c, err)
	}

	// Restore order: own host, then the partner's, then the shared store.
	var order []string
	for _, c := range l.candidates(ctx) {
		order = append(order, c.level+":"+c.host)
	}
	if len(order) != 3 || order[0] != "local:a" || order[1] != "partner:b" || order[2] != "shared:" {
		t.Fatalf("candidates %v", order)
	}
	lc := l.candidates(ctx)[1]
	if _, err := lc.get(ctx); !errors.Is(err, ckpt.ErrNoStore) {
		t.Fatalf("b's store with no rank serving it: %v, want ErrNoStore", err)
	}
}

// commitLocal commits cut epoch of a two-rank job whose shards are refs,
// held at the node-local levels only (as the coordinator driver would).
func commitLocal(t *testing.T, shared *ckpt.Store, epoch uint64, refs ...ckpt.ShardRef) {
	t.Helper()
	_, err := shared.Commit(context.Background(), ckpt.CutSpec{Job: "j", Epoch: epoch, Step: int64(epoch), World: len(refs), Incarnation: 1,
		Shards: refs, Meta: map[string]string{ckpt.MetaLevels: "local,partner"}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBackgroundFlush: a committed flush epoch's shards reach the shared
// store after the commit, each rank's in the background; MarkShared then
// records the cut as held there too, and not before every shard is in.
// While the shared store fails the flush is retried, and it catches up
// with the latest flush epoch once the store is back.
func TestBackgroundFlush(t *testing.T) {
	ctx := context.Background()
	a, others, shared, _ := levelsPair(t, 2, levels.RedundancyPartner, "a:1,b:1", 2)
	b := others[0]
	write := func(l *nodeLevels, rank int, epoch uint64) ckpt.ShardRef {
		t.Helper()
		w, err := l.local.NewShard(ctx, ckpt.ShardSpec{Job: "j", Epoch: epoch, Rank: rank, Incarnation: 1, Step: int64(epoch)})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddBuffer(ctx, "u", ckpt.BytesSource(make([]byte, 50000), 8)); err != nil {
			t.Fatal(err)
		}
		ref, err := w.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := l.protect(ctx, ref, false); err != nil || c.flushed != 0 {
			t.Fatalf("protect: flushed %d, %v", c.flushed, err)
		}
		return ref
	}
	waitIn := func(refs ...ckpt.ShardRef) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !shared.ShardsPresent(ctx, refs) {
			if time.Now().After(deadline) {
				t.Fatal("the flush did not reach the shared store")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	r0, r1 := write(a, 0, 2), write(b, 1, 2)
	commitLocal(t, shared, 2, r0, r1)
	a.flush.committed(2)
	waitIn(r0)
	if ok, err := shared.MarkShared(ctx, "j", 2); ok || err != nil {
		t.Fatalf("marked with rank 1's shard missing: %v %v", ok, err)
	}
	b.flush.committed(2)
	waitIn(r1)
	if ok, err := shared.MarkShared(ctx, "j", 2); !ok || err != nil {
		t.Fatalf("MarkShared: %v %v", ok, err)
	}
	cut, err := shared.LoadCut(ctx, "j", 2)
	if err != nil || cut.Levels().String() != "local,partner,shared" {
		t.Fatalf("cut 2 after the flush: %+v %v", cut, err)
	}
	if _, err := shared.Verify(ctx, "j", 2, nil); err != nil {
		t.Fatalf("verify the flushed cut: %v", err)
	}

	// The shared store fails (every file a flush creates there fails, as
	// when it is unreachable): cut 4 commits at the node-local levels, the
	// flush is retried and catches up once the store is back.
	var down atomic.Bool
	down.Store(true)
	fb := fault.New(shared.Backend())
	fb.FailOn(func(op fault.Op, name string) error {
		if down.Load() && op == fault.OpCreate {
			return errors.New("shared store unreachable")
		}
		return nil
	})
	if a.flushTo, err = ckpt.Open(ctx, fb, ckpt.Options{}); err != nil {
		t.Fatal(err)
	}
	r0 = write(a, 0, 4)
	r1 = write(b, 1, 4)
	commitLocal(t, shared, 4, r0, r1)
	a.flush.committed(4)
	deadline := time.Now().Add(10 * time.Second)
	for fb.Calls(fault.OpCreate) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fb.Calls(fault.OpCreate) < 1 || shared.HasShard(ctx, r0) == nil {
		t.Fatalf("flush while the store is down: %d creates tried, in the store: %v", fb.Calls(fault.OpCreate), shared.HasShard(ctx, r0))
	}
	down.Store(false)
	waitIn(r0)
}

// A rank the launcher names no host for (srun) takes its Slurm node's
// name, the one the allocation's ring uses, over the machine's.
func TestOpenLevelsSlurmNodeName(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shared, err := ckpt.OpenDir(ctx, filepath.Join(dir, "shared"), ckpt.Options{Create: true, ChunkSize: 4096, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	ns := natstest.Run(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	t.Setenv("SLURMD_NODENAME", "node-b")
	cfg := levels.Config{Local: filepath.Join(dir, "{host}"), Redundancy: levels.RedundancyPartner, Hosts: "node-a:1,node-b:1", World: 2}
	l, err := openLevels(ctx, Options{Job: "j", Rank: 1, Levels: cfg}, nc, shared, log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if l.host != "node-b" {
		t.Errorf("host %q, want SLURMD_NODENAME's node-b", l.host)
	}
	if _, err := os.Stat(filepath.Join(dir, "node-b")); err != nil {
		t.Errorf("node-b's directory: %v", err)
	}
}
