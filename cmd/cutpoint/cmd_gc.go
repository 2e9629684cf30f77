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
		"delete packs of epochs newer than the latest cut once older than this (0: keep them)")
	addLocalFlag(f, &o.local)
}

func newGcCommand(g *GlobalOptions) *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc --store DIR [--job NAME] --keep K",
		Short: "Delete all but the latest K committed cuts and unreferenced packs",
		Long: `Delete the committed cuts of a job (every job without --job) except the
latest K, then every pack no kept cut references, then temporary files of
killed writers; with --local, also every pack of the node-local stores that
no remaining cut references. Packs of an epoch newer than the latest cut may belong to a
cut in progress; they are deleted only once older than --in-flight-horizon.
Deleting is crash-safe: a gc killed at any point leaves every remaining cut
intact and the next gc finishes.

Run it while the job is stopped, or with K at least the distance to the base
of an incremental cut in progress; a running job's coordinator runs its own
gc with the right pins.

Exit codes: 0 done; 2 bad flags or no such store or job; 3 a kept cut is
damaged (then no pack is deleted); 1 the store could not be written.`,
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
	var damaged []error
	for _, job := range jobs {
		rep, err := s.GC(ctx, job, ckpt.GCOptions{Keep: o.Keep, DryRun: o.DryRun, InFlightHorizon: o.InFlightHorizon})
		if err != nil && !errors.Is(err, ckpt.ErrCorrupt) {
			return err
		}
		fmt.Fprintf(g.Stdout, "job %s: kept cuts %s; %s cuts %s, %d packs (%s), %d temporary files",
			job, orNone(rep.Kept), verb, orNone(rep.DeletedCuts), rep.DeletedPacks, humanBytes(rep.DeletedBytes), rep.DeletedTemps)
		if rep.KeptUnreferenced > 0 {
			fmt.Fprintf(g.Stdout, "; kept %d packs of a cut that may be in progress", rep.KeptUnreferenced)
		}
		fmt.Fprintln(g.Stdout)
		if err != nil {
			damaged = append(damaged, err)
			continue
		}
		if len(nodes) > 0 {
			if err := gcNodeDirs(ctx, g.Stdout, s, job, nodes, o.DryRun, verb); err != nil {
				if !errors.Is(err, ckpt.ErrCorrupt) {
					return err
				}
				damaged = append(damaged, err)
			}
		}
	}
	if len(damaged) > 0 {
		return withCode(exitDamaged, errors.Join(damaged...))
	}
	return nil
}

func orNone(es []uint64) string {
	if len(es) == 0 {
		return "none"
	}
	return epochList(es)
}
