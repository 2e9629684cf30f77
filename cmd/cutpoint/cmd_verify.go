package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/wire"
)

type verifyOptions struct {
	storeOptions
	Cut   uint64
	local string
}

func (o *verifyOptions) AddFlags(f *pflag.FlagSet) {
	o.storeOptions.AddFlags(f)
	f.Uint64Var(&o.Cut, "cut", 0, "verify only this cut (epoch); default every committed cut")
	addLocalFlag(f, &o.local)
}

func newVerifyCommand(g *GlobalOptions) *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify --store DIR [--job NAME] [--cut E]",
		Short: "Re-read and check every chunk of the committed cuts",
		Long: `Re-read the committed cuts of a job (every job without --job, one cut with
--cut): manifests, pack and shard indexes, and every chunk, decompressed and
checked against its content hash (the store's: XXH3-128 by default, or
BLAKE3); the store's cutpoint-store.json (its chunk_size
against what the cuts record) and the job's record job.json (decoded, its
world size against the cuts'), which a --restore starts from. A chunk shared
by several cuts is read once.
On a terminal a progress bar shows the bytes checked.

Each problem is printed with the job, cut, rank, buffer, chunk and file it
concerns. Cuts of a multi-level job that are on node-local levels only are
checked in the node-local stores --local names (every shard copy found
there is read and checked).

Exit codes: 0 everything verified; 2 no such store, job or cut;
3 damage found; 1 the store could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerify(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runVerify(ctx context.Context, g *GlobalOptions, o verifyOptions) error {
	s, err := o.openStore(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	var jobs []string
	if o.Cut != 0 {
		job, err := o.oneJob(ctx, s)
		if err != nil {
			return err
		}
		if _, err := s.LoadCut(ctx, job, o.Cut); errors.Is(err, ckpt.ErrNotFound) {
			return usageError(fmt.Errorf("job %s has no committed cut %d", job, o.Cut))
		}
		jobs = []string{job}
	} else if jobs, err = o.jobs(ctx, s); err != nil {
		return err
	}
	nodes, err := openNodeDirs(ctx, g, o.local, s)
	if err != nil {
		return err
	}
	defer closeNodeDirs(nodes)
	var damagedJobs []string
	for _, job := range jobs {
		if bad, err := verifyNodeDirs(ctx, g.Stdout, s, job, o.Cut, nodes); err != nil {
			return fmt.Errorf("verify job %s: %w", job, err)
		} else if len(bad) > 0 {
			damagedJobs = append(damagedJobs, fmt.Sprintf("job %s: %d node-local shard copies", job, len(bad)))
		}
		bar := newBar(g.Stderr, "verify "+job)
		rep, err := s.Verify(ctx, job, o.Cut, bar.update)
		bar.finish()
		if err != nil && !errors.Is(err, ckpt.ErrCorrupt) {
			return fmt.Errorf("verify job %s: %w", job, err)
		}
		problems := splitJoined(err)
		jerr := verifyJobRecord(ctx, s, job)
		if jerr != nil {
			problems = append(problems, jerr)
		}
		for _, p := range problems {
			fmt.Fprintf(g.Stdout, "DAMAGED %v\n", p)
		}
		ok := len(rep.Cuts) - len(rep.DamagedCuts)
		fmt.Fprintf(g.Stdout, "job %s: %d cuts checked, %d chunks, %s", job, len(rep.Cuts), rep.Chunks, humanBytes(rep.Bytes))
		if len(rep.NodeLocal) > 0 {
			fmt.Fprintf(g.Stdout, " (cuts %s on node-local levels only)", epochList(rep.NodeLocal))
		}
		if len(rep.DamagedCuts) > 0 {
			fmt.Fprintf(g.Stdout, ": DAMAGED cuts %s; %d cuts ok\n", epochList(rep.DamagedCuts), ok)
			damagedJobs = append(damagedJobs, fmt.Sprintf("job %s cuts %s", job, epochList(rep.DamagedCuts)))
		} else if jerr != nil {
			fmt.Fprintf(g.Stdout, ": DAMAGED %s\n", driver.JobRecordFile)
			damagedJobs = append(damagedJobs, fmt.Sprintf("job %s %s", job, driver.JobRecordFile))
		} else {
			fmt.Fprintf(g.Stdout, ": ok\n")
		}
	}
	if len(damagedJobs) > 0 {
		return withCode(exitDamaged, fmt.Errorf("verification found damage in %s", strings.Join(damagedJobs, "; ")))
	}
	return nil
}

// verifyJobRecord checks the coordinator's job record, which --restore and
// --rejoin start from: it decodes within its bounds, names this job, and
// its world size is that of every committed cut. The lease, when present,
// must decode too.
func verifyJobRecord(ctx context.Context, s *ckpt.Store, job string) error {
	file := "jobs/" + job + "/" + driver.JobRecordFile
	bad := func(format string, args ...any) error {
		return &ckpt.CorruptError{Job: job, Rank: -1, Chunk: -1, Offset: -1, File: file, Err: fmt.Errorf(format, args...)}
	}
	data, err := s.GetJobFile(ctx, job, driver.JobRecordFile)
	if errors.Is(err, ckpt.ErrNotFound) {
		// Cuts written with the engine alone (tools, benchmarks) have
		// no coordinator record; that is no damage.
		return nil
	}
	if err != nil {
		return err
	}
	rec, err := wire.DecodeJobRecord(data)
	if err != nil {
		return bad("%w (--restore would fail)", err)
	}
	cuts, _ := s.List(ctx, job) // damaged manifests are Verify's to report
	if rec.Job != job {
		return bad("record of job %q in job %q's folder", rec.Job, job)
	}
	for _, c := range cuts {
		if c.World != rec.World {
			return bad("world %d, but cut %d has %d ranks", rec.World, c.Epoch, c.World)
		}
		if c.Incarnation > rec.Incarnation {
			return bad("incarnation %d, but cut %d was taken in incarnation %d", rec.Incarnation, c.Epoch, c.Incarnation)
		}
	}
	if li, err := s.InspectLease(ctx, job); err == nil && li.State == ckpt.LeaseUnreadable {
		// A torn lease is only ever the last instance; it blocks the job
		// until it is older than twice the ttl, so report it.
		return &ckpt.CorruptError{Job: job, Rank: -1, Chunk: -1, Offset: -1,
			File: fmt.Sprintf("jobs/%s/lease-%08d", job, li.Instance), Err: li.Err}
	}
	return nil
}

// splitJoined lists the errors an errors.Join produced (or err itself).
func splitJoined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}

func epochList(es []uint64) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprint(e)
	}
	return strings.Join(parts, ", ")
}

// bar is a progress bar on a terminal and nothing elsewhere, so that logs
// and pipes stay clean.
type bar struct {
	w    io.Writer
	desc string
	pb   *progressbar.ProgressBar
}

func newBar(w io.Writer, desc string) *bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &bar{}
	}
	return &bar{w: w, desc: desc}
}

func (b *bar) update(p ckpt.VerifyProgress) {
	if b.w == nil {
		return
	}
	if b.pb == nil {
		b.pb = progressbar.NewOptions64(p.BytesTotal,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(b.desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	b.pb.Set64(p.BytesDone)
}

func (b *bar) finish() {
	if b.pb != nil {
		b.pb.Finish()
	}
}
