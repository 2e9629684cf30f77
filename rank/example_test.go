package rank_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

// ringJob is a rank's whole job, as its main would run it after
// rank.OptionsFromEnv: Join, Protect, then Run (Start, the loop of Send,
// Recv and SafePoint, Finish, rollbacks handled in one place). It returns
// the process's exit code.
func ringJob(ctx context.Context, opts rank.Options, steps int64, crash func(rank int, step int64) bool) int {
	me, n := opts.Rank, opts.World
	next, prev := (me+1)%n, (me+n-1)%n
	opts.Peers, opts.TotalSteps = []int{next, prev}, steps
	r, err := rank.Join(ctx, opts)
	if err != nil {
		return 1
	}
	defer r.Close()
	state := make([]float64, 64)
	state[0] = float64(me)
	if err := r.Protect("state", kernels.HostFloat64(state)); err != nil {
		return 1
	}
	L := int64(len(state))
	err = r.Run(ctx, steps, func(ctx context.Context, step int64) error {
		if crash != nil && crash(me, step) {
			return errCrash
		}
		v := state[step%L]
		if err := r.Send(ctx, next, binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))); err != nil {
			return err
		}
		in, err := r.Recv(ctx, prev)
		if err != nil {
			return err
		}
		state[(step+1)%L] = 0.5*v + 0.25*math.Float64frombits(binary.LittleEndian.Uint64(in)) + 1
		return nil
	}, func() []byte {
		sum := 0.0
		for _, x := range state {
			sum += x
		}
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(sum))
	})
	var stop *rank.ExitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errCrash):
		return 137 // as if killed: the deferred Close leaves without a Finish
	case errors.As(err, &stop) && !errors.Is(err, rank.ErrFenced):
		return stop.Code
	}
	return 1
}

// errCrash makes ringJob end as a killed process would.
var errCrash = errors.New("crash planted by the test")

// inProcess starts ranks as goroutines running ringJob, in place of
// processes started by cutpoint run.
type inProcess struct {
	base  rank.Options
	steps int64
	exits chan launch.Exit
	crash func(rank int, step int64) bool
}

func (s *inProcess) Spawn(r int, spawn uint64, env []string) error {
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
	go func() {
		s.exits <- launch.Exit{Rank: r, Spawn: spawn, Code: ringJob(context.Background(), o, s.steps, s.crash)}
	}()
	return nil
}
func (s *inProcess) Kill(context.Context, int, uint64) error { return nil }
func (s *inProcess) Exits() <-chan launch.Exit               { return s.exits }

// Example runs a 3-rank ring job in this process: what cutpoint run does
// with an embedded NATS server, a store and a coordinator, and ranks that
// are goroutines here instead of processes. It prints what run prints.
func Example() {
	code, result, err := runRing(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("exit %d\nresult %x\n", code, result)
	// Output:
	// exit 0
	// result ffffffffffff6f40
}

// TestRunRollsBack: rank 1 dies once at step 1300, after a cut; the
// coordinator respawns it from the cut and the survivors' Run rolls them
// back to it; the job ends with the result of a run without the crash.
func TestRunRollsBack(t *testing.T) {
	var mu sync.Mutex
	crashed := false
	code, result, err := runRing(func(r int, step int64) bool {
		mu.Lock()
		defer mu.Unlock()
		if r == 1 && step == 1300 && !crashed {
			crashed = true
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if !crashed || code != 0 || fmt.Sprintf("%x", result) != "ffffffffffff6f40" {
		t.Fatalf("crashed %v, exit %d, result %x; want a crash, exit 0, result ffffffffffff6f40", crashed, code, result)
	}
}

// runRing runs the 3-rank ring job of 2000 steps, cut every 500, with the
// crash hook, and returns the job's exit code and result.
func runRing(crash func(rank int, step int64) bool) (int, []byte, error) {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "rank-example-")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	srv, err := natsutil.StartServer(natsutil.ServerOptions{})
	if err != nil {
		return 0, nil, err
	}
	defer srv.Shutdown()
	nc, err := natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{Logger: quiet})
	if err != nil {
		return 0, nil, err
	}
	defer nc.Close()
	store, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Create: true, Logger: quiet})
	if err != nil {
		return 0, nil, err
	}
	defer store.Close()
	sp := &inProcess{steps: 2000, exits: make(chan launch.Exit, 8), crash: crash,
		base: rank.Options{NATS: srv.ClientURL(), Job: "ring", World: 3, Store: dir, Logger: quiet}}
	res, err := driver.Run(ctx, driver.Config{
		Coord: coordinator.Config{Job: "ring", World: 3, HeartbeatInterval: rank.DefaultHeartbeatInterval, CutEverySteps: 500},
		Mode:  coordinator.ModeNew, Store: store, NC: nc, Spawner: sp, Logger: quiet,
		RankEnv: func(s coordinator.Spawn) []string {
			return []string{fmt.Sprintf("%s=%d", rank.EnvRestoreEpoch, s.Epoch), fmt.Sprintf("%s=%d", rank.EnvRestoreStep, s.Step)}
		},
	})
	if err != nil {
		return 0, nil, err
	}
	return res.Outcome.Code, res.JobResult, nil
}
