package rank_test

// Cuts under a staging bound (Options.MaxStaging): the shard writer reads
// the job's buffer in place and SafePoint holds the job until it has.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/heat2d"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

// pattern fills b with the state rank r holds after step: a 4 KiB block
// of the step and the rank, copied over b, with each copy's offset in its
// first word (copies, not a loop over words, so the race detector's runs
// stay short).
func pattern(b []byte, step int64, r int) {
	var blk [4096]byte
	x := uint64(step)*0x9e3779b97f4a7c15 ^ uint64(r)<<56
	for i := 8; i < len(blk); i += 8 {
		binary.LittleEndian.PutUint64(blk[i:], x+uint64(i))
	}
	for off := 0; off < len(b); off += len(blk) {
		n := copy(b[off:], blk[:])
		if n >= 8 {
			binary.LittleEndian.PutUint64(b[off:], uint64(off)^x)
		}
	}
}

// patternJob is a two-rank job of one protected buffer of n bytes holding
// pattern(step) after each step, with a message each way per step. With
// mutate, the job overwrites the whole buffer the moment a SafePoint that
// took a cut returns, before the next step rewrites it: a shard that read
// the buffer after SafePoint returned holds those bytes. After every start
// and rollback it checks that the restored buffer is the pattern of the
// step it resumes from.
func patternJob(n int, steps int64, mutate bool) func(ctx context.Context, rk *rank.Rank) error {
	return func(ctx context.Context, rk *rank.Rank) error {
		r, peer := rk.ID(), 1-rk.ID()
		buf, err := kernels.CPUDevice().Alloc(int64(n), 8)
		if err != nil {
			return err
		}
		defer buf.Close()
		b := buf.(*kernels.HostBuffer).Bytes()
		pattern(b, 0, r)
		if err := rk.Protect("s", buf); err != nil {
			return err
		}
		want := make([]byte, n)
		resumed := func(step int64) error {
			pattern(want, step, r)
			if !bytes.Equal(b, want) {
				return fmt.Errorf("rank %d: the state restored at step %d is not the state of that step", r, step)
			}
			return nil
		}
		step, err := rk.Start(ctx)
		if err != nil {
			return err
		}
		if err := resumed(step); err != nil {
			return err
		}
		// back is SafePoint after a rollback interrupted a call.
		back := func() error {
			s, err := rk.SafePoint(ctx, step)
			if err != nil {
				return err
			}
			step = s
			return resumed(step)
		}
		msg := make([]byte, 64)
		for {
			for step < steps {
				if err := rk.Send(ctx, peer, msg); err != nil {
					if errors.Is(err, rank.ErrRolledBack) {
						if err := back(); err != nil {
							return err
						}
						continue
					}
					return err
				}
				if _, err := rk.Recv(ctx, peer); err != nil {
					if errors.Is(err, rank.ErrRolledBack) {
						if err := back(); err != nil {
							return err
						}
						continue
					}
					return err
				}
				pattern(b, step+1, r)
				before := rk.Stats().Captures
				got, err := rk.SafePoint(ctx, step+1)
				if err != nil {
					return err
				}
				if got != step+1 {
					step = got
					if err := resumed(step); err != nil {
						return err
					}
					continue
				}
				step = got
				if mutate && rk.Stats().Captures > before {
					for i := range b {
						b[i] = 0xa5
					}
				}
			}
			err := rk.Finish(ctx, []byte("done"))
			if errors.Is(err, rank.ErrRolledBack) {
				if err := back(); err != nil {
					return err
				}
				continue
			}
			return err
		}
	}
}

type holdJob struct {
	code  int
	log   string
	stats []rank.Stats
	store string
}

// runHoldJob runs patternJob on two ranks with cuts every everySteps and
// the buffer beyond MaxStaging. onHeld, when set, runs in a goroutine of
// its own with the spawner whenever heldCh delivers.
func runHoldJob(t *testing.T, n int, steps, everySteps int64, mutate bool, held <-chan struct{}, onHeld func(sp *goSpawner)) holdJob {
	t.Helper()
	dir := t.TempDir()
	var logb syncBuf
	log := slog.New(slog.NewTextHandler(&logb, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := natsutil.StartServer(natsutil.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	storeDir := filepath.Join(dir, "store")
	store, err := ckpt.OpenDir(ctx, storeDir, ckpt.Options{Create: true, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	nc, err := natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{Name: "test coordinator", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hb := 50 * time.Millisecond
	sp := &goSpawner{t: t, cfg: heat2d.Config{Steps: steps}, exits: make(chan launch.Exit, 64), procs: map[int]*goProc{},
		base: rank.Options{NATS: srv.ClientURL(), Job: "hold", World: 2, Store: storeDir,
			HeartbeatInterval: hb, Logger: log, MaxStaging: 1024},
		job:   patternJob(n, steps, mutate),
		peers: func(r int) []int { return []int{1 - r} },
	}
	if held != nil {
		go func() {
			for range held {
				onHeld(sp)
			}
		}()
	}
	res, err := driver.Run(ctx, driver.Config{
		Coord: coordinator.Config{Job: "hold", World: 2, HeartbeatInterval: hb, CutEverySteps: everySteps, Keep: 1000},
		Mode:  coordinator.ModeNew, Store: store, NC: nc, Spawner: sp, RankEnv: func(s coordinator.Spawn) []string {
			return []string{fmt.Sprintf("%s=%d", rank.EnvRestoreEpoch, s.Epoch), fmt.Sprintf("%s=%d", rank.EnvRestoreStep, s.Step)}
		},
		Logger: log,
	})
	if err != nil {
		t.Fatalf("driver: %v\n%s", err, tailLines(logb.String(), 80))
	}
	out := holdJob{code: res.Outcome.Code, store: storeDir}
	for r := range 2 {
		sp.mu.Lock()
		p := sp.procs[r]
		sp.mu.Unlock()
		if p != nil {
			<-p.done
			if p.rank != nil {
				out.stats = append(out.stats, p.rank.Stats())
			}
		}
	}
	out.log = logb.String()
	return out
}

// checkCuts reads every committed cut's shards back and compares each
// with the state of the cut's step; it returns the number of cuts.
func checkCuts(t *testing.T, dir string, n int) int {
	t.Helper()
	ctx := context.Background()
	st, err := ckpt.OpenDir(ctx, dir, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cuts, err := st.List(ctx, "hold")
	if err != nil {
		t.Fatal(err)
	}
	got, want := make([]byte, n), make([]byte, n)
	for _, c := range cuts {
		for r := range 2 {
			sr, err := st.OpenShard(ctx, "hold", c.Epoch, r)
			if err != nil {
				t.Fatalf("cut %d rank %d: %v", c.Epoch, r, err)
			}
			err = sr.ReadBuffer(ctx, "s", got)
			sr.Close()
			if err != nil {
				t.Fatalf("cut %d rank %d: %v", c.Epoch, r, err)
			}
			pattern(want, c.Step, r)
			if !bytes.Equal(got, want) {
				i := 0
				for i < n && got[i] == want[i] {
					i++
				}
				t.Fatalf("cut %d (step %d) rank %d: the shard is not the state at the cut's step (first difference at byte %d: %#x, want %#x): the job wrote the buffer while it was read",
					c.Epoch, c.Step, r, i, got[i], want[i])
			}
		}
	}
	return len(cuts)
}

// TestMaxStagingHoldsTheJob: with the buffer beyond the staging bound, a
// job that overwrites it the moment SafePoint returns still gets shards of
// the cut's step, because SafePoint returns only once the writer has read
// it. The writer is slowed before it reads, so that without the hold the
// overwrite would land first.
func TestMaxStagingHoldsTheJob(t *testing.T) {
	defer rank.SetInPlaceHook(func(ctx context.Context, _ int, _ uint64) {
		select {
		case <-time.After(30 * time.Millisecond):
		case <-ctx.Done():
		}
	})()
	const n = 1 << 20
	j := runHoldJob(t, n, 6000, 600, true, nil, nil)
	if j.code != 0 {
		t.Fatalf("job ended with %d\n%s", j.code, tailLines(j.log, 60))
	}
	if c := checkCuts(t, j.store, n); c < 2 {
		t.Fatalf("%d cuts committed, want >= 2\n%s", c, tailLines(j.log, 60))
	}
	if !strings.Contains(j.log, "buffer read in place at cuts") {
		t.Fatalf("the buffer was not read in place:\n%s", tailLines(j.log, 60))
	}
	for r, st := range j.stats {
		if st.Holds == 0 || st.Holds != st.Captures || st.HoldTime < time.Duration(st.Holds)*30*time.Millisecond || st.InPlaceBytes != int64(st.Captures)*n {
			t.Fatalf("rank %d: %d holds over %v for %d captures, %d bytes in place: want one hold of at least the writer's delay per capture, every byte in place",
				r, st.Holds, st.HoldTime, st.Captures, st.InPlaceBytes)
		}
	}
}

// TestMaxStagingRollbackDuringHold: a rank held at a cut gets a rollback
// (its peer is lost while the writer, blocked on purpose, has not read the
// buffer): the hold ends, the abandoned writer lets go of the buffer, the
// rollback restores it, and the job finishes with every restore and every
// committed cut right. A hold that waited for the writer alone would never
// end.
func TestMaxStagingRollbackDuringHold(t *testing.T) {
	var calls atomic.Int32
	held := make(chan struct{}, 1)
	var blocked atomic.Bool
	defer rank.SetInPlaceHook(func(ctx context.Context, r int, _ uint64) {
		// Rank 0's second cut: the first one has committed (cuts go one
		// at a time), so the loss rolls rank 0 back instead of
		// restarting it.
		if r != 0 || calls.Add(1) != 2 {
			return
		}
		held <- struct{}{}
		<-ctx.Done() // until the hold gives the writer up
		blocked.Store(true)
	})()
	const n = 256 << 10
	var once sync.Once
	j := runHoldJob(t, n, 20000, 2000, false, held, func(sp *goSpawner) {
		once.Do(func() { sp.crash(1) })
	})
	close(held)
	if j.code != 0 {
		t.Fatalf("job ended with %d\n%s", j.code, tailLines(j.log, 80))
	}
	if !blocked.Load() {
		t.Fatalf("rank 0's writer was never released by the end of its hold\n%s", tailLines(j.log, 80))
	}
	ended := false
	for _, l := range strings.Split(j.log, "\n") {
		if strings.Contains(l, "cut's hold ended before the writer read the buffers") && strings.Contains(l, " rank=0") && strings.Contains(l, "why=rollback") {
			ended = true
		}
	}
	if !ended {
		t.Fatalf("rank 0's hold did not end with the rollback:\n%s", tailLines(j.log, 80))
	}
	if !strings.Contains(j.log, "recovery-finished") {
		t.Fatalf("no recovery:\n%s", tailLines(j.log, 80))
	}
	if c := checkCuts(t, j.store, n); c < 2 {
		t.Fatalf("%d cuts committed, want >= 2\n%s", c, tailLines(j.log, 60))
	}
}
