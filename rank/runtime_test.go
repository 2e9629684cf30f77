package rank_test

// In-process jobs: the coordinator driver, an embedded nats-server and N
// ranks as goroutines of the test, so that the runtime's concurrency (the
// job's calls, arrivals, control messages, heartbeats, shard writers,
// rollbacks) runs under the race detector. A "killed" rank's goroutine has
// its context cancelled and its connection closed, as abruptly as a Go
// program can do to itself; real SIGKILLs are in cmd/cutpoint's tests.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// goSpawner runs ranks as goroutines.
type goSpawner struct {
	t     *testing.T
	base  rank.Options
	cfg   heat2d.Config
	exits chan launch.Exit
	// job, when set, runs instead of heat2d, with peers(r) as rank r's
	// peers.
	job   func(ctx context.Context, rk *rank.Rank) error
	peers func(r int) []int
	// dev runs heat2d (nil: the CPU device).
	dev heat2d.Device

	mu    sync.Mutex
	procs map[int]*goProc
}

type goProc struct {
	spawn  uint64
	cancel context.CancelFunc
	done   chan struct{}
	rank   *rank.Rank
}

func (s *goSpawner) Spawn(r int, spawn uint64, env []string) error {
	o := s.base
	o.Rank, o.Spawn = r, spawn
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case rank.EnvRestoreEpoch:
			o.RestoreEpoch, _ = strconv.ParseUint(v, 10, 64)
		case rank.EnvRestoreStep:
			o.RestoreStep, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	o.Peers = heat2d.NewLayout(r, o.World, s.cfg.Size).Peers()
	o.TotalSteps = s.cfg.Steps
	if s.peers != nil {
		o.Peers = s.peers(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &goProc{spawn: spawn, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.procs[r] = p
	s.mu.Unlock()
	go func() {
		defer close(p.done)
		code := 0
		rk, err := rank.Join(ctx, o)
		if err == nil {
			s.mu.Lock()
			p.rank = rk
			s.mu.Unlock()
			if s.job != nil {
				err = s.job(ctx, rk)
			} else {
				dev := s.dev
				if dev == nil {
					dev = kernels.CPUDevice()
				}
				_, err = heat2d.Run(ctx, rk, dev, s.cfg)
			}
			rk.Close()
		}
		var ee *rank.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.Code
		default:
			code = 1
		}
		s.exits <- launch.Exit{Rank: r, Spawn: spawn, Code: code, At: time.Now()}
	}()
	return nil
}

// crash ends rank r's goroutine abruptly (context cancelled, connection
// closed) without telling the coordinator.
func (s *goSpawner) crash(r int) {
	s.mu.Lock()
	p := s.procs[r]
	s.mu.Unlock()
	if p != nil {
		p.cancel()
		if p.rank != nil {
			p.rank.Close()
		}
	}
}

func (s *goSpawner) Kill(ctx context.Context, r int, spawn uint64) error {
	s.mu.Lock()
	p := s.procs[r]
	s.mu.Unlock()
	if p == nil || (spawn != 0 && p.spawn != spawn) {
		return nil
	}
	s.crash(r)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *goSpawner) Exits() <-chan launch.Exit { return s.exits }

type jobResult struct {
	digest string
	code   int
	log    string
	// stats: each rank's last process's counters.
	stats []rank.Stats
}

// runJob runs a 4-rank heat2d job in process; crashAt kills rank r when the
// job's progress passes step s.
func runJob(t *testing.T, cfg heat2d.Config, everySteps int64, crashAt map[int]int64) jobResult {
	t.Helper()
	return runJobOn(t, nil, cfg, everySteps, crashAt)
}

// runJobOn is runJob with heat2d on dev (nil: the CPU device).
func runJobOn(t *testing.T, dev heat2d.Device, cfg heat2d.Config, everySteps int64, crashAt map[int]int64) jobResult {
	t.Helper()
	dir := t.TempDir()
	var logb syncBuf
	log := slog.New(slog.NewTextHandler(&logb, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := natsutil.StartServer(natsutil.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	store, err := ckpt.OpenDir(ctx, filepath.Join(dir, "store"), ckpt.Options{Create: true, ChunkSize: 64 << 10})
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
	sp := &goSpawner{t: t, cfg: cfg, dev: dev, exits: make(chan launch.Exit, 64), procs: map[int]*goProc{},
		base: rank.Options{NATS: srv.ClientURL(), Job: "heat", World: 4, Store: filepath.Join(dir, "store"),
			HeartbeatInterval: hb, Logger: log}}
	var mu sync.Mutex
	crashed := map[int]bool{}
	res, err := driver.Run(ctx, driver.Config{
		Coord: coordinator.Config{Job: "heat", World: 4, HeartbeatInterval: hb, CutEverySteps: everySteps, Keep: 2},
		Mode:  coordinator.ModeNew, Store: store, NC: nc, Spawner: sp, RankEnv: func(s coordinator.Spawn) []string {
			return []string{fmt.Sprintf("%s=%d", rank.EnvRestoreEpoch, s.Epoch), fmt.Sprintf("%s=%d", rank.EnvRestoreStep, s.Step)}
		},
		OnProgress: func(p driver.Progress) {
			mu.Lock()
			defer mu.Unlock()
			for r, s := range crashAt {
				if !crashed[r] && p.Step >= s {
					crashed[r] = true
					go sp.crash(r)
				}
			}
		},
		Logger: log,
	})
	if err != nil {
		t.Fatalf("driver: %v\n%s", err, logb.String())
	}
	var stats []rank.Stats
	for r := range 4 {
		sp.mu.Lock()
		p := sp.procs[r]
		sp.mu.Unlock()
		if p != nil {
			<-p.done
			if p.rank != nil {
				stats = append(stats, p.rank.Stats())
			}
		}
	}
	return jobResult{digest: hex.EncodeToString(res.JobResult), code: res.Outcome.Code, log: logb.String(), stats: stats}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestJobInProcess(t *testing.T) {
	// Long enough (several heartbeats even on a fast machine) for cuts to
	// commit before the ranks finish: the coordinator learns the steps from
	// heartbeats.
	cfg := heat2d.Config{Size: 40, Steps: 8000, Alpha: heat2d.DefaultAlpha}
	plain := runJob(t, cfg, 0, nil)
	if plain.code != 0 || len(plain.digest) != 64 {
		t.Fatalf("undisturbed job: code %d digest %q\n%s", plain.code, plain.digest, plain.log)
	}
	cut := runJob(t, cfg, 25, nil)
	if cut.digest != plain.digest {
		t.Fatalf("digest with cuts %s, without %s\n%s", cut.digest, plain.digest, cut.log)
	}
	if !strings.Contains(cut.log, "cut committed") {
		t.Fatalf("no cut committed:\n%s", cut.log)
	}
	hurt := runJob(t, cfg, 25, map[int]int64{1: 500, 3: 1000})
	if hurt.code != 0 || hurt.digest != plain.digest {
		t.Fatalf("after crashes: code %d digest %s, undisturbed %s\n%s", hurt.code, hurt.digest, plain.digest, tailLines(hurt.log, 60))
	}
	if !strings.Contains(hurt.log, "recovery-finished") {
		t.Fatalf("no recovery:\n%s", tailLines(hurt.log, 60))
	}
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
