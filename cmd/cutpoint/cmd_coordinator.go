package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank"
)

type coordinatorOptions struct {
	jobOptions
	workloadOptions
	hosts           hostsOptions
	Spawn           string
	SrunArgs        string
	Rejoin          bool
	RestoreIfExists bool
	Standby         bool
}

func newCoordinatorCommand(g *GlobalOptions) *cobra.Command {
	var o coordinatorOptions
	cmd := &cobra.Command{
		Use:   "coordinator --nats URL [flags] [-- EXECUTABLE ARGS...]",
		Short: "Run a job's coordinator on its own (the Slurm script and split deployments)",
		Long: `Run the coordinator of one job as its own process, against an external NATS
server (--nats; see "cutpoint nats"). Who starts the rank processes:

  --spawn local  this coordinator, as its children; unlike under "run" they
                 outlive it, so that --rejoin finds them computing. With
                 --hosts, each through --spawn-cmd on a host (block
                 placement, spares for the ranks of a lost host)
  --spawn srun   Slurm job steps of the allocation it runs in (the batch
                 script slurm/cutpoint.sbatch): all ranks as one step
                 "srun --ntasks=N" (rank = SLURM_PROCID), a lost rank as a
                 step of its own; --ranks defaults to SLURM_NTASKS and --job
                 to slurm-$SLURM_JOB_ID; --srun-args adds site options
  --spawn none   someone else; a rank that must be restarted fails the job
                 with a clear message

--restore resumes a stopped or killed job from its latest committed cut;
--restore-if-exists does so when the store holds the job and starts it
otherwise (a requeued or resubmitted batch job). --rejoin replaces a
coordinator that died while the ranks kept running: the new one rebuilds
its state from the store and the ranks' reports. --standby, on another
host with the same flags, watches the job's lease in the store and does
that by itself when the lease expires (the coordinator or its host died):
ranks it does not hear within two failure timeouts are respawned through
its own --spawn/--hosts/--spawn-cmd; when the job ends under its
coordinator, the standby exits 0. It must hold the job key the ranks hold:
give every coordinator (standbys too) the same CUTPOINT_JOB_KEY (64 hex
digits, in the environment); --spawn none needs it too, for this
coordinator and every rank.

Signals and exit codes as for "run".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCoordinator(cmd.Context(), g, cmd.Flags(), o, args)
		},
	}
	o.nats.AddFlags(cmd.Flags(), "NATS URL (required)")
	o.jobOptions.AddFlags(cmd.Flags())
	o.workloadOptions.AddFlags(cmd.Flags())
	o.hosts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.Spawn, "spawn", "local", "who starts rank processes: local (this coordinator), srun (Slurm job steps) or none")
	cmd.Flags().StringVar(&o.SrunArgs, "srun-args", "", "--spawn srun: extra srun options for every step, space-separated (e.g. \"--gpus-per-task=1\")")
	cmd.Flags().BoolVar(&o.Rejoin, "rejoin", false, "take over a running job whose coordinator died")
	cmd.Flags().BoolVar(&o.RestoreIfExists, "restore-if-exists", false, "restore when the store holds the job, else start it")
	cmd.Flags().BoolVar(&o.Standby, "standby", false, "stand by for the job's coordinator (same flags, another host): take the job over (as --rejoin) when its lease expires")
	return cmd
}

func runCoordinator(ctx context.Context, g *GlobalOptions, fs *pflag.FlagSet, o coordinatorOptions, args []string) error {
	if o.nats.URL == "" {
		return usageError(errors.New("--nats URL is required (start a server with `cutpoint nats`)"))
	}
	switch o.Spawn {
	case "local", "none", "srun":
	default:
		return usageError(fmt.Errorf("--spawn %q: want local, srun or none", o.Spawn))
	}
	hosts, err := o.hosts.parse(o.Ranks)
	if err != nil {
		return usageError(err)
	}
	if hosts != nil && o.Spawn != "local" {
		return usageError(fmt.Errorf("--hosts needs --spawn local (the coordinator runs --spawn-cmd for each rank), not --spawn %s", o.Spawn))
	}
	if o.SrunArgs != "" && o.Spawn != "srun" {
		return usageError(errors.New("--srun-args needs --spawn srun"))
	}
	if o.Rejoin && (o.Restore || o.RestoreIfExists) {
		return usageError(errors.New("--rejoin excludes --restore and --restore-if-exists"))
	}
	if o.Standby && (o.Rejoin || o.Restore || o.RestoreIfExists) {
		return usageError(errors.New("--standby excludes --rejoin, --restore and --restore-if-exists (it rejoins by itself when it takes over)"))
	}
	if o.Standby && o.Spawn == "srun" {
		// Under Slurm the batch host's loss ends in a requeue and a
		// --restore-if-exists from the latest cut (docs/slurm.md).
		return usageError(errors.New("--standby needs --spawn local or none: under Slurm a lost batch host is requeued (--restore-if-exists)"))
	}
	var tasks int
	if o.Spawn == "srun" {
		var err error
		if tasks, err = slurmAllocation(); err != nil {
			return usageError(err)
		}
		if !fs.Changed("ranks") {
			o.Ranks = tasks
		}
		if o.Ranks > tasks {
			return usageError(fmt.Errorf("--ranks %d but the allocation has %d tasks (SLURM_NTASKS): submit with sbatch -n %d", o.Ranks, tasks, o.Ranks))
		}
		// Stable across requeues, new for every submission: a job of the
		// same executable submitted again must not restore this one.
		if o.Job == "" {
			o.Job = "slurm-" + os.Getenv("SLURM_JOB_ID")
		}
	}
	if o.Job == "" {
		o.Job = defaultJobName(args)
	}
	if o.RestoreIfExists && !o.Restore {
		found, err := jobInStore(ctx, g, o.Store, o.Job)
		if err != nil {
			return err
		}
		// The record without a cut (requeued before the first commit)
		// restores from step 0.
		o.Restore, o.RestoreIfAny = found, found
		if found {
			g.Logger.Info("the store holds the job: restoring it", "job", o.Job, "store", o.Store)
		} else if n := os.Getenv("SLURM_RESTART_COUNT"); o.Spawn == "srun" && n != "" && n != "0" {
			g.Logger.Warn("requeued batch job but the store holds no record of the job: starting it from step 0",
				"job", o.Job, "store", o.Store, "restart_count", n)
		}
	}
	jr := jobRun{
		job: o.jobOptions, workload: o.workloadOptions, args: args, progress: "never",
		spawn: o.Spawn, rejoin: o.Rejoin, srunArgs: strings.Fields(o.SrunArgs),
		hosts: hosts, spawnCmd: o.hosts.SpawnCmd, detached: true,
	}
	if o.Standby {
		if err := ckpt.ValidJobName(o.Job); err != nil {
			return usageError(fmt.Errorf("--job: %w", err))
		}
		// The flags are checked now, not after a wait of hours (on a
		// copy: check reads the token file into the options).
		c := jr.job
		if err := c.check(); err != nil {
			return usageError(err)
		}
		// The key too: a takeover without the ranks' key could only fail.
		if v, ok := os.LookupEnv(rank.EnvJobKey); !ok || v == "" {
			return usageError(errors.New("--standby needs the job key the running ranks hold: set " + rank.EnvJobKey + " (in the environment, never on the command line) to the value the coordinator has"))
		} else if _, err := wire.ParseJobKey(v); err != nil {
			return usageError(fmt.Errorf("%s: %w", rank.EnvJobKey, err))
		}
		jr.rejoin = true
		return runStandby(ctx, g, o.Store, o.Job, o.LeaseTTL, func() error { return runJob(ctx, g, jr) })
	}
	err = runJob(ctx, g, jr)
	if o.Spawn == "srun" && errors.Is(err, driver.ErrWorldMismatch) {
		return withCode(exitCode(err), fmt.Errorf("%w (the allocation has %d tasks: submit with as many tasks as the job has ranks)", err, tasks))
	}
	return err
}

// slurmAllocation returns the number of tasks of the Slurm allocation this
// process runs in.
func slurmAllocation() (int, error) {
	if os.Getenv("SLURM_JOB_ID") == "" {
		return 0, errors.New("--spawn srun: not inside a Slurm allocation (SLURM_JOB_ID is unset); run it from a batch script (slurm/cutpoint.sbatch) or salloc")
	}
	v := os.Getenv("SLURM_NTASKS")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--spawn srun: SLURM_NTASKS=%q: submit with a task count (sbatch -n N)", v)
	}
	return n, nil
}

// jobInStore says whether the store at dir holds a record of job. A
// directory that is no store yet holds no job.
func jobInStore(ctx context.Context, g *GlobalOptions, dir, job string) (bool, error) {
	if err := ckpt.ValidJobName(job); err != nil {
		return false, usageError(fmt.Errorf("--job: %w", err))
	}
	s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Logger: g.Logger})
	if errors.Is(err, ckpt.ErrNoStore) {
		return false, nil
	}
	if err != nil {
		return false, usageError(fmt.Errorf("--store: %w", err))
	}
	defer s.Close()
	_, err = s.GetJobFile(ctx, job, driver.JobRecordFile)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ckpt.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("job %q: read %s: %w", job, driver.JobRecordFile, err)
}
