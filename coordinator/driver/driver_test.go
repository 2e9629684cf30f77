package driver

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/natsutil"
)

// slowSpawner takes a while per rank, as forking thousands of processes
// on a loaded machine does; it starts nothing.
type slowSpawner struct {
	mu      sync.Mutex
	spawned int
	exits   chan launch.Exit
}

func (s *slowSpawner) Spawn(int, uint64, []string) error {
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	s.spawned++
	s.mu.Unlock()
	return nil
}
func (s *slowSpawner) Kill(context.Context, int, uint64) error { return nil }
func (s *slowSpawner) Exits() <-chan launch.Exit               { return s.exits }
func (s *slowSpawner) Close() error                            { return nil }

// TestStopWhileSpawning: a stop request is acted on between two spawns,
// not once the whole world is started.
func TestStopWhileSpawning(t *testing.T) {
	ctx := context.Background()
	srv, err := natsutil.StartServer(natsutil.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := ckpt.OpenDir(ctx, t.TempDir(), ckpt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const world = 500 // 10 s of spawning
	sp := &slowSpawner{exits: make(chan launch.Exit)}
	reqs := make(chan Request, 4)
	go func() {
		time.Sleep(200 * time.Millisecond)
		reqs <- Request{Final: true}
		reqs <- Request{Stop: true}
	}()
	t0 := time.Now()
	res, err := Run(ctx, Config{
		Coord: coordinator.Config{Job: "j", World: world, HeartbeatInterval: 100 * time.Millisecond},
		Mode:  coordinator.ModeNew, Store: store, NC: nc, Spawner: sp, Requests: reqs,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	took := time.Since(t0)
	sp.mu.Lock()
	n := sp.spawned
	sp.mu.Unlock()
	if res.Outcome.Code != coordinator.CodeStoppedNoCut || n >= world || took > 5*time.Second {
		t.Fatalf("outcome %+v after %v with %d of %d ranks spawned; want a stop without a cut long before every rank is spawned", res.Outcome, took, n, world)
	}
}

// TestLagWarning: cuts much further apart than CutEverySteps asks are
// warned about, once.
func TestLagWarning(t *testing.T) {
	var b strings.Builder
	d := &driver{cfg: Config{Coord: coordinator.Config{CutEverySteps: 10}}, log: slog.New(slog.NewTextHandler(&b, nil))}
	d.checkLag(2, 100, 115) // 15 apart: within 2 N
	d.checkLag(1, -1, 500)  // the first cut
	if b.Len() != 0 {
		t.Fatalf("warned without a lag: %s", b.String())
	}
	d.checkLag(3, 115, 400)
	d.checkLag(4, 400, 900)
	if n := strings.Count(b.String(), "cannot keep up"); n != 1 || !strings.Contains(b.String(), "steps_between_cuts=285") {
		t.Fatalf("want one warning naming 285 steps, got %d:\n%s", n, b.String())
	}
}
