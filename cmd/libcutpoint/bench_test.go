package main

// Per-call cost of the C ABI against the Go API, on a one-rank job run in
// process (embedded nats-server, the coordinator driver, a real store): a
// safe point where no cut is taken, and a send plus a receive on the
// rank's self-channel (no network in the way, so the figures are the
// calls' own cost). The C variants loop in C (bench.c), so every iteration
// crosses from C into Go as a C program's call does.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

// oneRank is a running one-rank job.
type oneRank struct {
	r      *rank.Rank
	h      int64
	step   int64
	finish func()
}

type benchSpawner struct {
	base  rank.Options
	exits chan launch.Exit
	ready chan *rank.Rank
	errs  chan error
	done  chan struct{}
}

func (s *benchSpawner) Spawn(r int, spawn uint64, env []string) error {
	o := s.base
	o.Rank, o.Spawn = r, spawn
	go func() {
		code := 0
		defer func() { s.exits <- launch.Exit{Rank: r, Spawn: spawn, Code: code, At: time.Now()} }()
		rk, err := rank.Join(context.Background(), o)
		if err != nil {
			code = 1
			s.errs <- err
			return
		}
		defer rk.Close()
		state := make([]float64, 1024)
		if err := rk.Protect("state", kernels.HostFloat64(state)); err != nil {
			code = 1
			s.errs <- err
			return
		}
		if _, err := rk.Start(context.Background()); err != nil {
			code = 1
			s.errs <- err
			return
		}
		s.ready <- rk
		<-s.done
		if err := rk.Finish(context.Background(), nil); err != nil {
			code = 1
		}
	}()
	return nil
}

func (s *benchSpawner) Kill(context.Context, int, uint64) error { return nil }
func (s *benchSpawner) Exits() <-chan launch.Exit               { return s.exits }

func startOneRank(b *testing.B) *oneRank {
	b.Helper()
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := natsutil.StartServer(natsutil.ServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	storeDir := filepath.Join(dir, "store")
	store, err := ckpt.OpenDir(ctx, storeDir, ckpt.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	nc, err := natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{Name: "bench coordinator", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	sp := &benchSpawner{
		base:  rank.Options{NATS: srv.ClientURL(), Job: "bench", World: 1, Store: storeDir, Logger: log},
		exits: make(chan launch.Exit, 4), ready: make(chan *rank.Rank, 1), errs: make(chan error, 1), done: make(chan struct{}),
	}
	ran := make(chan error, 1)
	go func() {
		// No cut schedule: every safe point is one where nothing is taken.
		_, err := driver.Run(ctx, driver.Config{
			Coord: coordinator.Config{Job: "bench", World: 1, HeartbeatInterval: rank.DefaultHeartbeatInterval, Keep: 2},
			Mode:  coordinator.ModeNew, Store: store, NC: nc, Spawner: sp, Logger: log,
		})
		ran <- err
	}()
	var r *rank.Rank
	select {
	case r = <-sp.ready:
	case err := <-sp.errs:
		b.Fatal(err)
	case err := <-ran:
		b.Fatalf("driver ended before the rank started: %v", err)
	case <-time.After(30 * time.Second):
		b.Fatal("rank did not start in 30s")
	}
	id, _ := register(r, false)
	o := &oneRank{r: r, h: id}
	o.finish = func() {
		handles.Delete(o.h)
		close(sp.done)
		select {
		case err := <-ran:
			if err != nil {
				b.Errorf("driver: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Error("job did not end in 30s")
		}
		nc.Close()
		store.Close()
		srv.Shutdown()
	}
	return o
}

func BenchmarkSafePoint(b *testing.B) {
	o := startOneRank(b)
	defer o.finish()
	b.Run("go", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			o.step++
			if _, err := o.r.SafePoint(ctx, o.step); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("c", func(b *testing.B) {
		b.ResetTimer()
		if rc := benchSafePoints(o.h, o.step+1, int64(b.N)); rc != 0 {
			b.Fatalf("status %d: %s", rc, lastError())
		}
		o.step += int64(b.N)
	})
}

func BenchmarkSendRecv(b *testing.B) {
	o := startOneRank(b)
	defer o.finish()
	me := o.r.ID()
	for _, size := range []int{64, 64 << 10} {
		b.Run(fmt.Sprintf("go/%dB", size), func(b *testing.B) {
			ctx := context.Background()
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := o.r.Send(ctx, me, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := o.r.Recv(ctx, me); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("c/%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ResetTimer()
			if rc := benchSendRecv(o.h, me, size, int64(b.N)); rc != 0 {
				b.Fatalf("status %d: %s", rc, lastError())
			}
		})
	}
}
