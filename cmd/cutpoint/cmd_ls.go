package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
)

// storeOptions are the flags of the store commands (ls, verify, gc,
// inspect).
type storeOptions struct {
	Store string
	Job   string
}

func (o *storeOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Store, "store", "", "checkpoint store directory (required)")
	f.StringVar(&o.Job, "job", "", "job name (default: the store's only job)")
}

// openStore opens an existing store; a missing or mistyped --store is a
// usage error (exit 2) that names the directory, a damaged
// cutpoint-store.json is damage (exit 3).
func (o *storeOptions) openStore(ctx context.Context, g *GlobalOptions) (*ckpt.Store, error) {
	if o.Store == "" {
		return nil, usageError(errors.New("--store DIR is required"))
	}
	s, err := ckpt.OpenDir(ctx, o.Store, ckpt.Options{Logger: g.Logger})
	if errors.Is(err, ckpt.ErrNoStore) {
		return nil, usageError(err)
	}
	if errors.Is(err, ckpt.ErrCorrupt) {
		// The store's own settings file is damaged: that is damage
		// (exit 3), not a mistyped flag.
		return nil, withCode(exitDamaged, fmt.Errorf("DAMAGED %w", err))
	}
	return s, err
}

// jobs returns the jobs a command works on: --job if given (it must exist),
// else every job in the store.
func (o *storeOptions) jobs(ctx context.Context, s *ckpt.Store) ([]string, error) {
	all, err := s.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	if o.Job == "" {
		if len(all) == 0 {
			return nil, fmt.Errorf("store %s holds no jobs", o.Store)
		}
		return all, nil
	}
	if err := ckpt.ValidJobName(o.Job); err != nil {
		return nil, usageError(err)
	}
	for _, j := range all {
		if j == o.Job {
			return []string{j}, nil
		}
	}
	return nil, usageError(fmt.Errorf("store %s has no job %q (jobs: %s)", o.Store, o.Job, listOrNone(all)))
}

// oneJob is jobs for commands that need exactly one.
func (o *storeOptions) oneJob(ctx context.Context, s *ckpt.Store) (string, error) {
	jobs, err := o.jobs(ctx, s)
	if err != nil {
		return "", err
	}
	if len(jobs) > 1 {
		return "", usageError(fmt.Errorf("store %s holds several jobs (%s): pick one with --job", o.Store, strings.Join(jobs, ", ")))
	}
	return jobs[0], nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

type lsOptions struct {
	storeOptions
	local string
}

func newLsCommand(g *GlobalOptions) *cobra.Command {
	var o lsOptions
	cmd := &cobra.Command{
		Use:   "ls --store DIR [--job NAME]",
		Short: "List the committed cuts of a store",
		Long: `List the committed cuts of a job, oldest first: one line per cut,
beginning with its epoch, after a header line. Columns: epoch, step, ranks,
raw bytes, stored bytes (compressed size of every chunk the cut references),
ratio (raw / stored), commit time (UTC) and the levels holding the cut
(local, partner, shared: see --local of run). With --local, a last column
counts the cut's shards each host's node-local store holds ("a=4 b=4").
Without --job every job of the store is listed, each after a "job NAME"
line.

Exit codes: 0 listed; 2 no such store or job; 3 a manifest is damaged (the
readable cuts are still listed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLs(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	addLocalFlag(cmd.Flags(), &o.local)
	return cmd
}

func runLs(ctx context.Context, g *GlobalOptions, o lsOptions) error {
	s, err := o.openStore(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	jobs, err := o.jobs(ctx, s)
	if err != nil {
		return err
	}
	nodes, err := openNodeDirs(ctx, g, o.local, s)
	if err != nil {
		return err
	}
	defer closeNodeDirs(nodes)
	var damaged []error
	for _, job := range jobs {
		cuts, err := s.List(ctx, job)
		if err != nil && !errors.Is(err, ckpt.ErrCorrupt) {
			return err
		}
		if err != nil {
			damaged = append(damaged, err)
		}
		if len(jobs) > 1 {
			fmt.Fprintf(g.Stdout, "job %s\n", job)
		}
		printCuts(g.Stdout, cuts, copiesOf(ctx, s, job, cuts, nodes))
	}
	if len(damaged) > 0 {
		return withCode(exitDamaged, errors.Join(damaged...))
	}
	return nil
}

func printCuts(w io.Writer, cuts []ckpt.CutInfo, copies map[uint64]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "EPOCH\tSTEP\tRANKS\tRAW\tSTORED\tRATIO\tTIME\tLEVELS"
	if copies != nil {
		head += "\tNODE-LOCAL"
	}
	fmt.Fprintln(tw, head)
	for _, c := range cuts {
		lv := c.Levels().String()
		if lv == "" {
			lv = "damaged"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%.2f\t%s\t%s", c.Epoch, c.Step, c.World, c.RawBytes, c.StoredBytes, c.Ratio(), c.Time.UTC().Format(time.RFC3339), lv)
		if copies != nil {
			fmt.Fprintf(tw, "\t%s", copies[c.Epoch])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// humanBytes renders a byte count with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
