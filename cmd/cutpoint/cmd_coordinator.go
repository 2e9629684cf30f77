package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

type coordinatorOptions struct {
	jobOptions
	workloadOptions
	Spawn  string
	Rejoin bool
}

func newCoordinatorCommand(g *GlobalOptions) *cobra.Command {
	var o coordinatorOptions
	cmd := &cobra.Command{
		Use:   "coordinator --nats URL [flags] [-- EXECUTABLE ARGS...]",
		Short: "Run a job's coordinator on its own (the Slurm script and split deployments)",
		Long: `Run the coordinator of one job as its own process, against an external NATS
server (--nats; see "cutpoint nats"). With --spawn local it starts the ranks
itself, like "run"; with --spawn none the ranks are started by someone else
("cutpoint rank" under srun) and a rank that must be restarted fails the job
with a clear message.

--restore resumes a stopped or killed job from its latest committed cut.
--rejoin replaces a coordinator that died while the ranks kept running: the
new one rebuilds its state from the store and the ranks' reports.

Signals and exit codes as for "run".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCoordinator(cmd.Context(), g, o, args)
		},
	}
	o.nats.AddFlags(cmd.Flags(), "NATS URL (required)")
	o.jobOptions.AddFlags(cmd.Flags())
	o.workloadOptions.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.Spawn, "spawn", "local", "who starts rank processes: local (this coordinator) or none")
	cmd.Flags().BoolVar(&o.Rejoin, "rejoin", false, "take over a running job whose coordinator died")
	return cmd
}

func runCoordinator(ctx context.Context, g *GlobalOptions, o coordinatorOptions, args []string) error {
	if o.nats.URL == "" {
		return usageError(errors.New("--nats URL is required (start a server with `cutpoint nats`)"))
	}
	switch o.Spawn {
	case "local", "none":
	default:
		return usageError(fmt.Errorf("--spawn %q: want local or none", o.Spawn))
	}
	if o.Rejoin && o.Restore {
		return usageError(errors.New("--rejoin and --restore exclude each other"))
	}
	if o.Job == "" {
		o.Job = defaultJobName(args)
	}
	return runJob(ctx, g, jobRun{
		job: o.jobOptions, workload: o.workloadOptions, args: args, progress: "never",
		spawn: o.Spawn, rejoin: o.Rejoin,
	})
}
