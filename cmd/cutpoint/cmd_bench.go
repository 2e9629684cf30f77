package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutpoint/cutpoint/bench"
)

type benchOptions struct {
	Out      string
	Scratch  string
	Quick    bool
	Families []string
	Reps     int
	JobState string
	JobRanks int
	JobWin   time.Duration
	JobIvals []time.Duration
	Devices  []string
	Doc      string
	DocPlots string
	From     []string
	Seed     uint64
	NoExtras bool
	Scale    []int
	NoScale  bool
	Frozen   float64
	StoreMax string
	Memory   string
	MaxStage string
}

func newBenchCommand(g *GlobalOptions) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench [--quick] [--out DIR]",
		Short: "Measure cuts, overhead and recovery next to the machine's limits and the usual tools",
		Long: `Run the benchmark harness: cuts written by the storage engine over state
size, ranks, codec, shuffle, data kind, changed fraction and device; heat2d
jobs under "cutpoint run" without cuts, with cuts and stop-the-world, and
with a rank SIGKILLed; beside them, in the same run, memcpy and write+fsync
of the same bytes, the zstd command line tool (when installed), the engine
on one core, and raw NATS for the rank transport.

Writes results.json, results.md and PNG plots into --out. --quick runs a
small plan (under two minutes on two cores). The job runs start this
executable's "run" command. --doc FILE writes the report into FILE's
generated "Harness" section and copies the plots to --doc-plots.

A full run takes about an hour on two cores (10 pairs of every job
variant, in an order drawn from --seed; the verdicts come from intervals
over the pairs) and writes several GiB to --scratch (the largest scenario
holds 4 GiB of state); run it on a quiet machine, or a modest plan:
--store-max 256MiB, --no-job-extras, --job-intervals 10s.

"cutpoint bench goals" writes docs/benchmarks.md's goal table from the
committed raw results.

SIGINT or SIGTERM cancels the task in progress, skips the rest and still
writes what was measured until then.

Exit codes: 0 done (failed scenarios are listed in the results); 1 the
harness could not run; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), g, o, cmd.Flags().Args())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "bench-results", "output folder: results.json, results.md, plots")
	f.StringVar(&o.Scratch, "scratch", "", "folder on the disk to measure (default: under --out)")
	f.BoolVar(&o.Quick, "quick", false, "small plan, under two minutes")
	f.StringSliceVar(&o.Families, "families", nil, "run only these: store, kernels, transport, job (default all)")
	f.IntVar(&o.Reps, "reps", 0, "repetitions of each job variant and of the recovery (default: 3, quick 1)")
	f.StringVar(&o.JobState, "job-state", "", "total heat2d state of the job runs, e.g. 1GiB or 256MiB (default 1GiB, quick 8MiB)")
	f.IntVar(&o.JobRanks, "job-ranks", 0, "ranks of the job runs (default 2)")
	f.DurationVar(&o.JobWin, "job-window", 0, "compute time of each job overhead run (default 30s, quick 2s)")
	f.DurationSliceVar(&o.JobIvals, "job-intervals", nil, "cut intervals of the job overhead runs; the first also runs stop-the-world (default 10s,5s,2.5s, quick 500ms)")
	f.Lookup("job-intervals").DefValue = "" // the default is in the text: pflag would add "(default [])"
	f.StringSliceVar(&o.Devices, "devices", nil, "run the device scenarios on these only: cpu, cuda (default every device of this build)")
	f.StringVar(&o.Doc, "doc", "", "also write the report into this markdown file's generated Harness section")
	f.StringVar(&o.DocPlots, "doc-plots", "", "where --doc's plots go (default: bench/ beside the document)")
	f.Uint64Var(&o.Seed, "seed", 0, "seed of the job variants' order and the bootstrap intervals (default: from the clock; recorded in results.json)")
	f.BoolVar(&o.NoExtras, "no-job-extras", false, "job family: leave out the buffered-packs, BLAKE3 and stop-the-world variants")
	f.IntSliceVar(&o.Scale, "scale-ranks", nil, "rank counts of the job family's scale runs (default 8,16,32,64, quick 4)")
	f.BoolVar(&o.NoScale, "no-scale", false, "job family: leave out the scale runs")
	f.Float64Var(&o.Frozen, "frozen", 0, "job family: frozen fraction of the incremental-reuse runs (default 0.9; negative: none)")
	f.StringVar(&o.StoreMax, "store-max", "", "cap the store family's state sizes, e.g. 256MiB (default: the plan's, up to 4GiB)")
	f.StringVar(&o.Memory, "job-memory", "", "job family: run only the memory scenario, heat2d whose protected state is this much in all (e.g. 12GiB: a tile of --job-state over the ranks, the rest a --frozen parameter buffer), without cuts and with a cut every --job-intervals' first, both under --job-max-staging")
	f.StringVar(&o.MaxStage, "job-max-staging", "64MiB", "job family's memory scenario: the ranks' --max-staging")
	cmd.AddCommand(newBenchGoalsCommand(g))
	f.StringSliceVar(&o.From, "from", nil, "measure nothing: redraw the table and plots (and --doc) from this results.json into --out; several (comma-separated) go into --out/run1, run2, ... and one --doc section")
	return cmd
}

func runBench(ctx context.Context, g *GlobalOptions, o benchOptions, _ []string) error {
	for _, fam := range o.Families {
		switch fam {
		case bench.FamilyStore, bench.FamilyJob, "kernels", "transport":
		default:
			return usageError(fmt.Errorf("--families %q: want store, kernels, transport or job", fam))
		}
	}
	for _, d := range o.Devices {
		if d != "cpu" && d != "cuda" {
			return usageError(fmt.Errorf("--devices %q: want cpu or cuda", d))
		}
	}
	if o.Reps < 0 || o.JobRanks < 0 || o.JobWin < 0 {
		return usageError(errors.New("--reps, --job-ranks and --job-window must be >= 0"))
	}
	for _, n := range o.Scale {
		if n < 1 || n > 1024 {
			return usageError(fmt.Errorf("--scale-ranks %d: want 1..1024", n))
		}
	}
	if o.Frozen >= 1 {
		return usageError(fmt.Errorf("--frozen %g: want a fraction below 1", o.Frozen))
	}
	for _, iv := range o.JobIvals {
		if iv <= 0 {
			return usageError(fmt.Errorf("--job-intervals: %v: want positive durations", iv))
		}
	}
	var state int64
	if o.JobState != "" {
		var err error
		if state, err = parseSize(o.JobState); err != nil {
			return usageError(fmt.Errorf("--job-state: %w", err))
		}
	}
	var storeMax int64
	if o.StoreMax != "" {
		var err error
		if storeMax, err = parseSize(o.StoreMax); err != nil {
			return usageError(fmt.Errorf("--store-max: %w", err))
		}
	}
	var memory, maxStaging int64
	if o.Memory != "" {
		var err error
		if memory, err = parseSize(o.Memory); err != nil {
			return usageError(fmt.Errorf("--job-memory: %w", err))
		}
		if maxStaging, err = parseSize(o.MaxStage); err != nil {
			return usageError(fmt.Errorf("--job-max-staging: %w", err))
		}
	}
	if o.Doc != "" {
		if _, err := os.Stat(o.Doc); err != nil {
			return usageError(fmt.Errorf("--doc: %w", err))
		}
		if o.DocPlots == "" {
			o.DocPlots = filepath.Join(filepath.Dir(o.Doc), "bench")
		}
	}
	var runs []bench.DocRun
	if len(o.From) > 0 {
		for i, from := range o.From {
			res, err := bench.ReadResults(from)
			if err != nil {
				return usageError(fmt.Errorf("--from: %w", err))
			}
			out := o.Out
			if len(o.From) > 1 {
				out = filepath.Join(o.Out, fmt.Sprintf("run%d", i+1))
			}
			if err := bench.Render(res, out); err != nil {
				return err
			}
			run := bench.DocRun{Res: res, Out: out}
			if o.Doc != "" {
				if abs, err := filepath.Abs(from); err == nil {
					if d, err := filepath.Abs(filepath.Dir(o.Doc)); err == nil {
						if rel, err := filepath.Rel(d, abs); err == nil && !strings.HasPrefix(rel, "..") {
							run.Raw = rel
						}
					}
				}
			}
			runs = append(runs, run)
		}
	} else {
		// SIGINT or SIGTERM cancels the task in progress and skips the
		// rest; what was measured until then is still summarized and
		// written.
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		res, err := bench.Run(ctx, bench.Config{
			Out: o.Out, Scratch: o.Scratch, Quick: o.Quick, Families: o.Families, Reps: o.Reps,
			JobState: state, JobRanks: o.JobRanks, JobWindow: o.JobWin, JobIntervals: o.JobIvals, Devices: o.Devices,
			Seed: o.Seed, NoJobExtras: o.NoExtras, ScaleRanks: o.Scale, ScaleOff: o.NoScale, Frozen: o.Frozen, StoreMax: storeMax,
			JobMemory: memory, JobMaxStaging: maxStaging,
			Command: "cutpoint " + strings.Join(os.Args[1:], " "),
			Log:     g.Logger, Progress: g.Stderr,
		})
		if err != nil {
			return err
		}
		runs = append(runs, bench.DocRun{Res: res, Out: o.Out})
	}
	if o.Doc != "" {
		if err := bench.UpdateDocRuns(o.Doc, runs, o.DocPlots); err != nil {
			return fmt.Errorf("--doc: %w", err)
		}
	}
	for _, r := range runs {
		res := r.Res
		fmt.Fprintf(g.Stdout, "%d records, %d goals, %d skipped; see %s\n", len(res.Records), len(res.Goals), len(res.Skipped),
			filepath.Join(r.Out, bench.TableFile))
	}
	return nil
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(s, u.suf) {
			num, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q: want a positive byte count, optionally with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

func newBenchGoalsCommand(g *GlobalOptions) *cobra.Command {
	var doc, dir string
	var check bool
	cmd := &cobra.Command{
		Use:   "goals [--doc docs/benchmarks.md] [--dir docs/bench] [--check]",
		Short: "Write the goal table of the benchmarks document from the committed raw results",
		Long: `Make the "Where the goals stand" table from the raw results: every
*.goals.json under --dir names its sources (a harness results.json, whose
goals are evaluated with this build's rules, or one figure read from any
raw file by a selector; docs/benchmarks.md describes the schema). The
table is written between the goal markers of --doc; --check only compares
and exits 1 when the committed table differs.

Exit codes: 0 written (or unchanged with --check); 1 a spec or raw file
could not be read, or --check found a difference; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(doc); err != nil {
				return usageError(fmt.Errorf("--doc: %w", err))
			}
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return usageError(fmt.Errorf("--dir %s: not a folder", dir))
			}
			if err := bench.UpdateGoalTable(doc, dir, check); err != nil {
				return err
			}
			if check {
				fmt.Fprintf(g.Stdout, "%s: the goal table is what %s makes\n", doc, dir)
			} else {
				fmt.Fprintf(g.Stdout, "%s: goal table written from %s\n", doc, dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&doc, "doc", "docs/benchmarks.md", "the document whose goal table is written")
	cmd.Flags().StringVar(&dir, "dir", "docs/bench", "the folder of raw results and their *.goals.json")
	cmd.Flags().BoolVar(&check, "check", false, "only compare: exit 1 when the committed table differs")
	return cmd
}
