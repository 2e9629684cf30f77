package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

type rmOptions struct {
	storeOptions
}

func newRmCommand(g *GlobalOptions) *cobra.Command {
	var o rmOptions
	cmd := &cobra.Command{
		Use:   "rm --store DIR --job NAME",
		Short: "Delete a job and everything the store holds of it",
		Long: `Delete one job from the store: its committed cuts, every pack, its job
record and the coordinator's small files, so that its name can be used
again. It asks nothing: --job is required and names exactly one job.

rm takes the job's lease first, so no coordinator can start on the job while
it deletes; a job with a live owner (a running coordinator, gc or rm; the
message names its host and pid) is refused. The cuts go first, each removal
durable before the next, so an rm killed half-way leaves no cut naming a
missing file; run it again to finish.

Exit codes: 0 deleted; 2 bad flags, no such store or job, or the job has a
live owner; 1 the store could not be written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRm(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runRm(ctx context.Context, g *GlobalOptions, o rmOptions) error {
	if o.Job == "" {
		return usageError(errors.New("--job NAME is required (rm deletes exactly one job)"))
	}
	s, err := o.openStore(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := o.jobs(ctx, s); err != nil {
		return err
	}
	lease, err := acquireToolLease(ctx, s, o.Job, "rm")
	if err != nil {
		return err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	n, err := s.RemoveJob(ctx, o.Job, lease)
	if err != nil {
		return fmt.Errorf("rm: %w (%d files removed; run rm again to finish)", err, n)
	}
	fmt.Fprintf(g.Stdout, "job %s: removed (%d files)\n", o.Job, n)
	return nil
}
