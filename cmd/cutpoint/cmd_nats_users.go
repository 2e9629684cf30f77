package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cutpoint/cutpoint/internal/jobname"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
)

// newNatsUsersCommand is `cutpoint nats users`: a job's users, with the
// permissions `run` gives its embedded server's, for servers the job does
// not start itself (`cutpoint nats --auth-file`, slurm/cutpoint.sbatch's
// one server per node). With a token every process of the job may publish
// anything, also the coordinator's control messages; with these users a
// rank may publish only its own frames and reports.
func newNatsUsersCommand(g *GlobalOptions) *cobra.Command {
	var (
		dir    string
		job    string
		ranks  int
		shared bool
	)
	cmd := &cobra.Command{
		Use:   "users --dir PARENT --ranks N [--job NAME] [--shared]",
		Short: "Make the NATS users of one job, with per-rank permissions, for servers it does not start",
		Long: `Make the users of one job in a new private directory below --dir (0700,
every file 0600, created with O_EXCL|O_NOFOLLOW) and print that directory.
It holds auth.conf, the servers' authorization (give every server
cutpoint nats --auth-file DIR/auth.conf), and one password file per user:
coordinator, and rank-0 ... rank-N-1 (or, with --shared, one user "ranks"
for all ranks: an MPI world, whose ranks share one environment). The
coordinator publishes and subscribes within the job's subjects; rank r
publishes only its own data and ack frames, its messages to the
coordinator, its host's node-local store's replies and, for rank 0 alone,
the result; no rank may publish a control message.

Give the coordinator (cutpoint run --nats, cutpoint coordinator)
--nats-users DIR (or CUTPOINT_NATS_USERS=DIR): it logs in as coordinator
and hands every rank it spawns the directory's name; each rank reads its
own password from it (CUTPOINT_NATS_USERS and its rank). The directory
must be where every host reads it (the job's store); a rank can read the
other ranks' files (same user), so the users separate the job from
everyone else on the servers and the coordinator's messages from the
ranks', not one rank from another. --job limits the users to the job of
that name (any run of it); without it they hold for any job name, for
servers that serve one job alone. Remove the directory when the job ends.

Exit codes: 0 made; 1 the files could not be written; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError(errors.New("--dir: give the parent of the users' directory"))
			}
			if ranks < 1 || ranks > maxRankUsers && !shared {
				return usageError(fmt.Errorf("--ranks %d: want 1 to %d (or --shared for more)", ranks, maxRankUsers))
			}
			name := "*"
			if job != "" {
				if err := jobname.Check(job); err != nil {
					return usageError(fmt.Errorf("--job: %w", err))
				}
				name = subjects.Job(job)
			}
			// "*" for the run's id: every launcher draws one (or the store
			// keeps it), and the users hold for each run of the job.
			d, err := natsutil.WriteUsers(dir, jobUsers(name+".*", ranks, shared))
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "parent directory of the new private users directory")
	f.StringVar(&job, "job", "", "the job the users are for (default: any job on these servers)")
	f.IntVar(&ranks, "ranks", 0, "the job's number of ranks")
	f.BoolVar(&shared, "shared", false, "one user for all ranks (ranks that share one environment, as an MPI world's)")
	return cmd
}
