package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
)

type gcOptions struct {
	storeOptions
	Keep            int
	DryRun          bool
	InFlightHorizon time.Duration
	local           string
}

func (o *gcOptions) AddFlags(f *pflag.FlagSet) {
	o.storeOptions.AddFlags(f)
	f.IntVar(&o.Keep, "keep", 0, "number of latest committed cuts to keep (required, >= 1)")
	f.BoolVar(&o.DryRun, "dry-run", false, "report what would be deleted, delete nothing")
	f.DurationVar(&o.InFlightHorizon, "in-flight-horizon", 24*time.Hour,
		"kept for compatibility; gc runs only on a stopped job, where no cut is in progress")
	_ = f.MarkHidden("in-flight-horizon")
	addLocalFlag(f, &o.local)
}

func newGcCommand(g *GlobalOptions) *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc --store DIR [--job NAME] --keep K",
		Short: "Delete all but the latest K committed cuts and unreferenced packs",
		Long: `Delete the committed cuts of a stopped job (every job without --job) except
the latest K, then every pack no kept cut references (also those of
aborted or unfinished cut attempts), every temporary file of a killed
writer and every empty epoch folder; with --local, also every pack of the
node-local stores that no remaining cut references. Deleting is crash-safe: a gc killed at
any point leaves every remaining cut intact and the next gc finishes.

gc takes the job's lease for the time it runs, so no coordinator can start
on the job meanwhile. A job with a live owner (a running coordinator; its
lease names the host and pid) is refused: its coordinator runs its own gc,
which knows the cut in progress and its base. A lease that expired is taken
over as "run --restore" would (see docs/operations.md).

Exit codes: 0 done; 2 bad flags, no such store or job, or the job has a
live owner; 3 a kept cut is damaged (then no pack is deleted); 1 the store
could not be written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGc(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runGc(ctx context.Context, g *GlobalOptions, o gcOptions) error {
	if o.Keep < 1 {
		return usageError(fmt.Errorf("--keep K is required, K >= 1 (got %d)", o.Keep))
	}
	if o.InFlightHorizon < 0 {
		return usageError(fmt.Errorf("--in-flight-horizon %v is negative", o.InFlightHorizon))
	}
	s, err := o.openStore(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	jobs, err := o.jobs(ctx, s)
	if err != nil {
		return err
	}
	verb := "deleted"
	if o.DryRun {
		verb = "would delete"
	}
	nodes, err := openNodeDirs(ctx, g, o.local, s)
	if err != nil {
		return err
	}
	defer closeNodeDirs(nodes)
	var damaged, owned []error
	for _, job := range jobs {
		var lease *ckpt.Lease
		if o.DryRun {
			li, err := s.InspectLease(ctx, job)
			if err != nil {
				return err
			}
			if li.State == ckpt.LeaseLive || li.State == ckpt.LeaseUnreadable {
				err = fmt.Errorf("gc: %w; stop it first", &ckpt.LeaseHeldError{Info: li})
				fmt.Fprintf(g.Stdout, "job %s: skipped: %v\n", job, err)
				owned = append(owned, err)
				continue
			}
		} else {
			lease, err = acquireToolLease(ctx, s, job, "gc")
			if errors.Is(err, ckpt.ErrLeaseHeld) {
				// Refused: the other jobs are still collected.
				fmt.Fprintf(g.Stdout, "job %s: skipped: %v\n", job, err)
				owned = append(owned, err)
				continue
			}
			if err != nil {
				return err
			}
		}
		rep, err := s.GC(ctx, job, ckpt.GCOptions{Keep: o.Keep, DryRun: o.DryRun, Stopped: true, Lease: lease})
		if err == nil && len(nodes) > 0 {
			// The node-local stores too, still under the job's lease.
			err = gcNodeDirs(ctx, g.Stdout, s, job, nodes, o.DryRun, verb)
		}
		if rerr := lease.Release(ctx); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil && !errors.Is(err, ckpt.ErrCorrupt) {
			return err
		}
		fmt.Fprintf(g.Stdout, "job %s: kept cuts %s; %s cuts %s, %d packs (%s), %d temporary files",
			job, orNone(rep.Kept), verb, orNone(rep.DeletedCuts), rep.DeletedPacks, humanBytes(rep.DeletedBytes), rep.DeletedTemps)
		if rep.DeletedDirs > 0 {
			fmt.Fprintf(g.Stdout, ", %d empty epoch folders", rep.DeletedDirs)
		}
		if rep.KeptUnreferenced > 0 {
			fmt.Fprintf(g.Stdout, "; kept %d packs of a cut that may be in progress", rep.KeptUnreferenced)
		}
		fmt.Fprintln(g.Stdout)
		if err != nil {
			damaged = append(damaged, err)
		}
	}
	if len(damaged) > 0 {
		return withCode(exitDamaged, errors.Join(append(damaged, owned...)...))
	}
	if len(owned) > 0 {
		return usageError(errors.Join(owned...))
	}
	return nil
}

// acquireToolLease takes a stopped job's lease for a store command (gc,
// rm): a live owner is a usage error (exit 2) naming its host and pid.
func acquireToolLease(ctx context.Context, s *ckpt.Store, job, role string) (*ckpt.Lease, error) {
	l, err := s.AcquireLease(ctx, job, ckpt.LeaseOptions{TTL: 5 * time.Second, Owner: ckpt.LeaseOwner{Role: role}})
	if errors.Is(err, ckpt.ErrLeaseHeld) {
		return nil, usageError(fmt.Errorf("%s: %w; stop it first", role, err))
	}
	if err != nil {
		return nil, err
	}
	l.KeepRenewed()
	return l, nil
}

func orNone(es []uint64) string {
	if len(es) == 0 {
		return "none"
	}
	return epochList(es)
}
