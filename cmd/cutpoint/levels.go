package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/levels"
)

// levelOptions are the multi-level flags of run and coordinator.
type levelOptions struct {
	Local      string
	Redundancy string
	FlushEvery int
	Bandwidth  float64
}

func (o *levelOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Local, "local", "", "node-local checkpoint directory, {host} replaced by the rank's host (level 1; default: none, every cut in --store)")
	f.StringVar(&o.Redundancy, "redundancy", "none", "copies of each node-local shard on other hosts: none, partner (a full copy on the next host) or rs:K+M (erasure fragments on the next K+M hosts) (level 2; needs --local, and --hosts or a Slurm allocation of several nodes under --spawn srun)")
	f.IntVar(&o.FlushEvery, "flush-every", 1, "with --redundancy partner or rs:K+M: write every Nth epoch's cut to --store too, in the background after it commits (level 3)")
	f.Float64Var(&o.Bandwidth, "redundancy-bandwidth", 0, "MiB/s each rank's copies to other hosts and flushes to --store may take, in the background (0: no bound)")
}

// hostsString writes a --hosts list back in its own syntax.
func hostsString(hosts []launch.Host) string {
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = h.Name + ":" + strconv.Itoa(h.Slots)
	}
	return strings.Join(parts, ",")
}

// levelConfig settles a job's levels: the flags for a new job (recorded in
// the store's job file levels.json), the record for a restore or a rejoin
// that gives no --local (the flags win when given: a restore may move to
// other hosts).
func (o *jobOptions) levelConfig(ctx context.Context, store *ckpt.Store, hosts []launch.Host, resume bool) (levels.Config, error) {
	c := levels.Config{Local: o.levels.Local, Redundancy: o.levels.Redundancy, FlushEvery: o.levels.FlushEvery, Hosts: hostsString(hosts), World: o.Ranks, Bandwidth: o.levels.Bandwidth}
	if c.Local == "" && resume {
		data, err := store.GetJobFile(ctx, o.Job, levels.RecordFile)
		if errors.Is(err, ckpt.ErrNotFound) {
			return levels.Config{}, nil
		}
		if err != nil {
			return c, err
		}
		rec, err := levels.Decode(data)
		if err != nil {
			return c, fmt.Errorf("store %s job %s: %w", store, o.Job, err)
		}
		rec.Hosts, rec.World = c.Hosts, c.World // the partner follows this launch's hosts
		if c.Bandwidth > 0 {
			rec.Bandwidth = c.Bandwidth
		}
		if err := rec.Check(); err != nil {
			return c, fmt.Errorf("the job's recorded levels (%s) do not fit this launch: %w", levels.RecordFile, err)
		}
		return rec, nil
	}
	if !c.Enabled() {
		return c, c.Check()
	}
	if !filepath.IsAbs(c.Local) {
		abs, err := filepath.Abs(c.Local)
		if err != nil {
			return c, err
		}
		c.Local = abs
	}
	// The driver writes the record (levels.RecordFile) once it owns the
	// job: nothing is written before the job's checks pass.
	return c, c.Check()
}

// precheckLevels refuses bad level flags before anything is created.
func (o *jobOptions) precheckLevels(hosts []launch.Host) error {
	l := o.levels
	if l.Local == "" && (l.Redundancy == "" || l.Redundancy == levels.RedundancyNone) && l.FlushEvery <= 1 && l.Bandwidth == 0 {
		return nil
	}
	return levels.Config{Local: l.Local, Redundancy: l.Redundancy, FlushEvery: l.FlushEvery, Hosts: hostsString(hosts), World: o.Ranks, Bandwidth: l.Bandwidth}.Check()
}

// levelHosts is the host ring the levels choose partners and erasure
// groups from: the --hosts list; under --spawn srun with a node-local
// level, the Slurm allocation's nodes (SLURM_JOB_NODELIST) with their
// tasks (SLURM_TASKS_PER_NODE) as slots, so that srun's block
// distribution of the ranks is the ring's placement.
func (j *jobRun) levelHosts(getenv func(string) string) ([]launch.Host, error) {
	if len(j.hosts) > 0 || j.spawn != "srun" || j.job.levels.Local == "" {
		return j.hosts, nil
	}
	hosts, err := launch.SlurmHosts(getenv("SLURM_JOB_NODELIST"), getenv("SLURM_TASKS_PER_NODE"))
	if errors.Is(err, launch.ErrNoAllocation) {
		return nil, nil // the srun spawner says so
	}
	if err != nil {
		return nil, fmt.Errorf("--local under --spawn srun: the allocation's nodes: %w", err)
	}
	return hosts, nil
}
