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

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

// ringJob is a rank's whole job, as its main would run it after
// rank.OptionsFromEnv: Join, Protect, Start, the loop of Send, Recv and
// SafePoint, Finish. It returns the process's exit code.
func ringJob(ctx context.Context, opts rank.Options, steps int64) int {
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
	step, err := r.Start(ctx)
	for {
		for err == nil && step < steps {
			v := state[step%L]
			if err = r.Send(ctx, next, binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))); err == nil {
				var in []byte
				if in, err = r.Recv(ctx, prev); err == nil {
					state[(step+1)%L] = 0.5*v + 0.25*math.Float64frombits(binary.LittleEndian.Uint64(in)) + 1
					step++
					step, err = r.SafePoint(ctx, step)
				}
			}
			if errors.Is(err, rank.ErrRolledBack) {
				step, err = r.SafePoint(ctx, step)
			}
		}
		if err == nil {
			sum := 0.0
			for _, x := range state {
				sum += x
			}
			err = r.Finish(ctx, binary.LittleEndian.AppendUint64(nil, math.Float64bits(sum)))
		}
		if !errors.Is(err, rank.ErrRolledBack) {
			break
		}
		step, err = r.SafePoint(ctx, step)
	}
	var stop *rank.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &stop) && !errors.Is(err, rank.ErrFenced):
		return stop.Code
	}
	return 1
}

// inProcess starts ranks as goroutines running ringJob, in place of
// processes started by cutpoint run.
type inProcess struct {
	base  rank.Options
	steps int64
	exits chan launch.Exit
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
		s.exits <- launch.Exit{Rank: r, Spawn: spawn, Code: ringJob(context.Background(), o, s.steps)}
	}()
	return nil
}
func (s *inProcess) Kill(context.Context, int, uint64) error { return nil }
func (s *inProcess) Exits() <-chan launch.Exit               { return s.exits }

// Example runs a 3-rank ring job in this process: what cutpoint run does
// with an embedded NATS server, a store and a coordinator, and ranks that
// are goroutines here instead of processes. It prints what run prints.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "rank-example-")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	srv, err := natsutil.StartServer(natsutil.ServerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, err := natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	store, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Create: true, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	sp := &inProcess{steps: 2000, exits: make(chan launch.Exit, 8),
		base: rank.Options{NATS: srv.ClientURL(), Job: "ring", World: 3, Store: dir, Logger: quiet}}
	res, err := driver.Run(ctx, driver.Config{
		Coord: coordinator.Config{Job: "ring", World: 3, HeartbeatInterval: rank.DefaultHeartbeatInterval, CutEverySteps: 500},
		Mode:  coordinator.ModeNew, Store: store, NC: nc, Spawner: sp, Logger: quiet,
		RankEnv: func(s coordinator.Spawn) []string {
			return []string{fmt.Sprintf("%s=%d", rank.EnvRestoreEpoch, s.Epoch), fmt.Sprintf("%s=%d", rank.EnvRestoreStep, s.Step)}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("exit %d\nresult %x\n", res.Outcome.Code, res.JobResult)
	// Output:
	// exit 0
	// result ffffffffffff6f40
}
