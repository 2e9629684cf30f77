package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/cutpoint/cutpoint/internal/jobname"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// ErrConfig wraps every configuration error New returns.
var ErrConfig = errors.New("coordinator: invalid configuration")

// Config configures a Coordinator. Durations are plain values; the machine
// reads no clock (the driver passes instants to Tick).
type Config struct {
	Job   string
	World int
	// HeartbeatInterval of the ranks' Status messages, and of the
	// coordinator's Beat broadcast. Required.
	HeartbeatInterval time.Duration
	// FailureTimeout: a running rank not heard from for this long is lost.
	// Default 5 heartbeats.
	FailureTimeout time.Duration
	// StartTimeout: after a launch or rollback, every rank must be Ready(g)
	// within this; after a coordinator restart, every rank must be heard
	// within this or two failure timeouts, whichever is shorter. Default
	// 60s.
	StartTimeout time.Duration
	// CutInterval starts a cut this long after the previous commit (or
	// start); 0 disables. CutEverySteps starts one every that many steps;
	// 0 disables. Both may be set.
	CutInterval   time.Duration
	CutEverySteps int64
	// EpochTimeout aborts an epoch that has not committed after this long.
	// Default 20 heartbeats.
	EpochTimeout time.Duration
	// RequestLatency (L) estimates how long a Cut takes to reach the ranks;
	// used in the margin S = max step + ceil(r_max*(L+H)) + 2. Default one
	// heartbeat.
	RequestLatency time.Duration
	// MaxMarginFactor caps the doubling of the margin after `late` aborts.
	// Default 64.
	MaxMarginFactor int
	// MaxBlockedAborts (K): after K consecutive aborts blocked on the same
	// channel, cutting stops and the job is told loudly (R7). Default 5.
	MaxBlockedAborts int
	// MaxFailedCuts (N): after N consecutive aborts for the same reason
	// (write failed, commit failed, timeout ...: the store cannot take
	// cuts), the job is told loudly that it runs unprotected; cutting
	// goes on with backoff, and a job that finishes without a commit
	// since then ends with CodeUnprotected. Default 5.
	MaxFailedCuts int
	// MaxCutBackoff caps the wait between cut attempts after failed
	// ones (doubling from one heartbeat). Default 30s.
	MaxCutBackoff time.Duration
	// MaxRespawnBackoff caps the wait before a respawn after recoveries
	// without a commit in between (doubling from one heartbeat, from the
	// second on). Default 10s.
	MaxRespawnBackoff time.Duration
	// OutageLimit bounds how long ranks may keep exiting with
	// RankExitTransient (NATS or store unreachable) before the job fails;
	// such exits are not counted as recoveries. Default 10m.
	OutageLimit time.Duration
	// Keep is the number of committed cuts a GC keeps. Default 2.
	Keep int
	// EpochBlock is how many epoch ids one job record write reserves.
	// Default 1024.
	EpochBlock uint64
	// MaxRecoveries: more recoveries than this without a commit in between
	// fail the job. Default 10.
	MaxRecoveries int
	// WholeWorld: the ranks share one fate, as the processes of one MPI
	// world do (a lost process ends the others, and no single process can
	// be replaced). Every recovery then respawns every rank from the cut,
	// killing those still running first, and rolls none back in place.
	WholeWorld bool
	// ConfirmSilence: the driver can ask the launcher whether a silent
	// rank's process still exists and runs (Ready.Confirm, Confirmed).
	// A rank silent past the failure timeout is then declared lost once
	// the launcher says its process is gone, stopped, or cannot tell; one
	// it says runs is given one more failure timeout first (confirm.go).
	ConfirmSilence bool
	// ProgressTimeout: a running rank whose step does not advance for this
	// long is lost (heartbeats prove liveness, this proves progress); 0
	// disables.
	ProgressTimeout time.Duration
}

func (cfg *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if err := jobname.Check(cfg.Job); err != nil {
		return bad("%v", err)
	}
	if cfg.World < 1 || cfg.World > wire.MaxWorld {
		return bad("world %d out of 1..%d", cfg.World, wire.MaxWorld)
	}
	if cfg.HeartbeatInterval <= 0 {
		return bad("heartbeat interval %v", cfg.HeartbeatInterval)
	}
	for name, d := range map[string]time.Duration{"failure timeout": cfg.FailureTimeout, "start timeout": cfg.StartTimeout,
		"cut interval": cfg.CutInterval, "epoch timeout": cfg.EpochTimeout, "request latency": cfg.RequestLatency,
		"progress timeout": cfg.ProgressTimeout, "max cut backoff": cfg.MaxCutBackoff,
		"max respawn backoff": cfg.MaxRespawnBackoff, "outage limit": cfg.OutageLimit} {
		if d < 0 {
			return bad("%s %v < 0", name, d)
		}
	}
	if cfg.CutEverySteps < 0 || cfg.MaxMarginFactor < 0 || cfg.MaxBlockedAborts < 0 || cfg.MaxFailedCuts < 0 || cfg.Keep < 0 || cfg.MaxRecoveries < 0 {
		return bad("negative count")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.FailureTimeout, 5*cfg.HeartbeatInterval)
	def(&cfg.StartTimeout, 60*time.Second)
	def(&cfg.EpochTimeout, 20*cfg.HeartbeatInterval)
	def(&cfg.RequestLatency, cfg.HeartbeatInterval)
	def(&cfg.MaxCutBackoff, 30*time.Second)
	def(&cfg.MaxRespawnBackoff, 10*time.Second)
	def(&cfg.OutageLimit, 10*time.Minute)
	if cfg.MaxFailedCuts == 0 {
		cfg.MaxFailedCuts = 5
	}
	if cfg.MaxMarginFactor == 0 {
		cfg.MaxMarginFactor = 64
	}
	if cfg.MaxBlockedAborts == 0 {
		cfg.MaxBlockedAborts = 5
	}
	if cfg.Keep == 0 {
		cfg.Keep = 2
	}
	if cfg.EpochBlock == 0 {
		cfg.EpochBlock = 1024
	}
	if cfg.MaxRecoveries == 0 {
		cfg.MaxRecoveries = 10
	}
	return nil
}
