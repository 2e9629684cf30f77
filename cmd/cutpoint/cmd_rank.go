package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/internal/heat2d"
	"github.com/cutpoint/cutpoint/internal/jobstats"
	"github.com/cutpoint/cutpoint/internal/levels"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank"
)

type rankOptions struct {
	nats      natsOptions
	workload  workloadOptions
	Job       string
	Store     string
	Rank      int
	World     int
	Heartbeat time.Duration
	Codec     string
	StoreIO   string
	StatsDir  string
}

func (o *rankOptions) AddFlags(f *pflag.FlagSet) {
	o.nats.AddFlags(f, "NATS URL (set by the launcher)")
	o.workload.AddFlags(f)
	f.StringVar(&o.Job, "job", "", "job name (set by the launcher)")
	f.StringVar(&o.Store, "store", "", "checkpoint store directory (set by the launcher)")
	f.IntVar(&o.Rank, "rank", -1, "this rank (default: CUTPOINT_RANK, or SLURM_PROCID under srun)")
	f.IntVar(&o.World, "world", 0, "number of ranks (default: CUTPOINT_WORLD, or SLURM_NTASKS under srun)")
	f.DurationVar(&o.Heartbeat, "heartbeat-interval", 0, "heartbeat interval (must match the coordinator's)")
	f.StringVar(&o.Codec, "codec", "", "compression of this rank's shards (default: the store's)")
	f.StringVar(&o.StoreIO, "store-io", "", "how packs are written: direct or buffered (default: CUTPOINT_STORE_IO, else direct)")
	f.StringVar(&o.StatsDir, "stats-dir", "", "write this process's figures (cut stalls, restores, step times, peak RSS) as JSON into this directory at exit (default: "+jobstats.EnvDir+")")
}

func newRankCommand(g *GlobalOptions) *cobra.Command {
	var o rankOptions
	cmd := &cobra.Command{
		Use:   "rank [flags]",
		Short: "Run one rank of the built-in heat2d workload (started by run, the coordinator or srun)",
		Long: `Run one rank of the built-in heat2d workload. The launcher (cutpoint run, a
coordinator's spawner, or srun in the Slurm script) sets the rank's identity
and the job's NATS URL, store and restore point in the environment
(CUTPOINT_*; under srun SLURM_PROCID and SLURM_NTASKS give the rank and the
world size); flags override them.

Exit codes: 0 the job finished; the coordinator's code when it stopped the
job (5 after a final cut); 1 failure or this process was fenced;
2 usage error; 3 the cut to restore is damaged (the coordinator falls back
to an older one); 4 --device cuda without the cuda build; 75 NATS stayed
unreachable for all of CUTPOINT_NATS_WAIT (default 2m), or the store could
not be opened (not: does not exist).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRank(cmd.Context(), g, cmd.Flags(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runRank(ctx context.Context, g *GlobalOptions, fs *pflag.FlagSet, o rankOptions) error {
	started := time.Now()
	ro, err := rank.OptionsFromEnv()
	if err != nil {
		return usageError(err)
	}
	if fs.Changed("nats") {
		ro.NATS = o.nats.URL
	}
	if fs.Changed("nats-token") {
		ro.Auth.Token = o.nats.Token
	}
	if fs.Changed("nats-token-file") {
		o.nats.Token = ""
		if err := o.nats.readTokenFile(); err != nil {
			return usageError(err)
		}
		ro.Auth.Token = o.nats.Token
	}
	if fs.Changed("nats-nkey") {
		ro.Auth.NkeySeedFile = o.nats.Nkey
	}
	if fs.Changed("nats-password-file") {
		if err := o.nats.readTokenFile(); err != nil {
			return usageError(err)
		}
		ro.Auth.User, ro.Auth.Password = o.nats.User, o.nats.Password
	}
	for flag, dst := range map[string]*string{"nats-tls-ca": &ro.Auth.TLS.CA, "nats-tls-cert": &ro.Auth.TLS.Cert, "nats-tls-key": &ro.Auth.TLS.Key} {
		if f := fs.Lookup(flag); f != nil && f.Changed {
			*dst = f.Value.String()
		}
	}
	if fs.Changed("job") {
		ro.Job = o.Job
	}
	if fs.Changed("store") {
		ro.Store = o.Store
	}
	if fs.Changed("rank") {
		ro.Rank = o.Rank
	}
	if fs.Changed("nats-users") && o.nats.Users != "" {
		// After --rank: the directory holds one user per rank.
		u, p, err := natsutil.RankLogin(o.nats.Users, ro.Rank)
		if err != nil {
			return usageError(fmt.Errorf("--nats-users: %w", err))
		}
		ro.Auth.User, ro.Auth.Password = u, p
	}
	if fs.Changed("world") {
		ro.World = o.World
	}
	if fs.Changed("heartbeat-interval") {
		ro.HeartbeatInterval = o.Heartbeat
	}
	if fs.Changed("codec") {
		ro.Codec = o.Codec
	}
	if fs.Changed("store-io") {
		if err := rank.CheckStoreIO(o.StoreIO); err != nil {
			return usageError(fmt.Errorf("--store-io: %w", err))
		}
		ro.StoreIO = o.StoreIO
	}
	if err := o.workload.check(); err != nil {
		return usageError(err)
	}
	if err := checkDevice(o.workload.Device); err != nil {
		return err
	}
	if ro.World < 1 || ro.Rank < 0 || ro.Rank >= ro.World {
		return usageError(fmt.Errorf("rank %d of %d: set --rank/--world or CUTPOINT_RANK/CUTPOINT_WORLD", ro.Rank, ro.World))
	}
	if v := os.Getenv(levels.EnvFlushOnly); v != "" {
		// In place of a rank that died during its final flush: flush its
		// shard of the job's last cut, nothing else.
		e, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return usageError(fmt.Errorf("%s=%q: %w", levels.EnvFlushOnly, v, err))
		}
		ro.Logger = g.Logger
		return rank.FlushOnly(ctx, ro, e)
	}
	dev, err := kernels.Open(o.workload.Device)
	if err != nil {
		return err
	}
	defer dev.Close()
	hdev, ok := dev.(heat2d.Device)
	if !ok { // both built-in devices have the kernels; a new one must too
		return fmt.Errorf("--device %s: the device has no heat2d kernels", o.workload.Device)
	}

	ro.Logger = g.Logger
	ro.Peers = heat2d.NewLayout(ro.Rank, ro.World, o.workload.Size).Peers()
	ro.TotalSteps = o.workload.Steps
	statsDir := o.StatsDir
	if !fs.Changed("stats-dir") {
		statsDir = os.Getenv(jobstats.EnvDir)
	}
	var r *rank.Rank
	var rec *jobstats.Recorder
	// A failed restore alarms the coordinator, which kills this process
	// at once: the stats file (damaged copies, bytes read) goes first.
	ro.BeforeAlarm = func(err error) {
		if rec != nil && r != nil {
			if werr := writeRankStats(statsDir, r, rec, err); werr != nil {
				g.Logger.Warn("stats file not written", "err", werr)
			}
		}
	}
	r, err = rank.Join(ctx, ro)
	if errors.Is(err, natsutil.ErrUnreachable) || errors.Is(err, rank.ErrStoreUnavailable) {
		return withCode(exitTransient, err)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	var comm heat2d.Comm = r
	if statsDir != "" {
		rec = jobstats.NewRecorder(ro.Rank, r.Options().Spawn, dev.Name(), started)
		comm = &statsComm{Rank: r, rec: rec}
	}
	_, err = heat2d.Run(ctx, comm, hdev, o.workload.config())
	if rec != nil {
		if werr := writeRankStats(statsDir, r, rec, err); werr != nil {
			g.Logger.Warn("stats file not written", "err", werr)
		}
	}
	if errors.Is(err, rank.ErrCutDamaged) {
		return withCode(exitDamaged, err)
	}
	var ee *rank.ExitError
	if errors.As(err, &ee) {
		if errors.Is(err, rank.ErrFenced) {
			return withCode(exitFailure, err)
		}
		if ee.Code == 0 {
			return nil
		}
		return withCode(ee.Code, err)
	}
	return err
}
