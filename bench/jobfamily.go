package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
)

// jobPlan is the job family for one device: heat2d runs of about State
// bytes on Ranks ranks, without cuts and with a cut every Interval (and,
// with Extras, with packs through the page cache, BLAKE3 chunk hashes and
// stop-the-world at the first interval), Reps times each, the variants of
// each repetition in an order drawn from Seed, so that neither a fixed
// order nor the machine's mood shifts favour a variant; then the frozen
// workload (incremental reuse), RecoveryReps runs with one rank SIGKILLed,
// and the scale runs (many small ranks).
type jobPlan struct {
	State          int64
	Ranks          int
	Device         string
	Codec          string
	Window         time.Duration // compute time of an overhead run
	CalSteps       int64
	Intervals      []time.Duration
	Reps           int
	Extras         bool
	Seed           uint64
	Frozen         float64 // > 0: runs of heat2d --frozen at the first interval
	RecoveryReps   int
	RecoveryWindow time.Duration
	Scale          []int         // rank counts of the scale runs
	ScaleSize      int           // their tile edge
	ScaleWindow    time.Duration // their compute time
	ScaleInterval  time.Duration
	// Memory > 0 runs the memory scenario instead of the rest: heat2d
	// with a tile of about State bytes over the ranks and a --frozen
	// parameter buffer that brings the protected state to Memory in all,
	// under --max-staging MaxStaging, without cuts and with a cut every
	// Intervals[0], Reps pairs; it measures what a cut under the bound
	// adds to a rank's peak memory and how long it holds the job.
	Memory     int64
	MaxStaging int64
}

type jobVariant struct {
	label    string
	interval time.Duration
	stw      bool
	buffered bool   // --store-io buffered
	hash     string // --hash
}

// jobFamily holds the runs of one plan while its tasks execute.
type jobFamily struct {
	p        jobPlan
	size     int
	state    int64
	rate     float64 // calibrated steps per second
	steps    int64
	variants []jobVariant
	runs     map[string][]*jobRun // by variant label, indexed by repetition (nil: failed)
	lag      map[string][]float64 // by label: real period minus --interval, per run
	frozen   []jobRun
	recov    []jobRun
	scale    map[int]*jobRun
	memcpyMs float64 // every rank's state at once, each on GOMAXPROCS goroutines
}

func (h *harness) jobTasks(p jobPlan) []task {
	if p.Memory > 0 {
		return h.memoryTasks(p)
	}
	f := &jobFamily{p: p, runs: map[string][]*jobRun{}, lag: map[string][]float64{}, scale: map[int]*jobRun{}}
	f.size = heatSize(p.State, p.Ranks)
	f.state = heatState(f.size, p.Ranks)
	f.variants = []jobVariant{{label: "no cuts"}}
	for _, iv := range p.Intervals {
		f.variants = append(f.variants, jobVariant{label: "every " + iv.String(), interval: iv})
	}
	if len(p.Intervals) > 0 && p.Extras {
		f.variants = append(f.variants,
			jobVariant{label: "every " + p.Intervals[0].String() + ", buffered packs", interval: p.Intervals[0], buffered: true},
			jobVariant{label: "every " + p.Intervals[0].String() + ", blake3 hashes", interval: p.Intervals[0], hash: "blake3"},
			jobVariant{label: "stop-the-world every " + p.Intervals[0].String(), interval: p.Intervals[0], stw: true})
	}
	for _, v := range f.variants {
		f.runs[v.label] = make([]*jobRun, p.Reps)
	}
	prefix := fmt.Sprintf("job/%s/heat2d/r%d/%s", p.Device, p.Ranks, sizeName(f.state))
	base := jobArgs{Ranks: p.Ranks, Size: f.size, Codec: p.Codec, Device: p.Device}
	calibrated := func() error {
		if f.rate <= 0 || math.IsNaN(f.rate) {
			return errors.New("no calibrated step rate (the calibration run failed)")
		}
		return nil
	}
	tasks := []task{{name: prefix + "/calibrate", run: func(ctx context.Context) ([]Record, error) {
		a := base
		a.Steps = p.CalSteps
		j, err := h.runJob(ctx, a)
		if err != nil {
			return nil, err
		}
		f.rate = j.stepRate()
		if err := calibrated(); err != nil {
			return nil, err
		}
		f.steps = max(20, int64(f.rate*p.Window.Seconds()))
		// The ranks capture at the same SafePoint, each on all its
		// cores: the fair memcpy is every rank's state copied at once,
		// each on as many goroutines as a rank's capture uses.
		parts := make([][]byte, p.Ranks)
		for i := range parts {
			parts[i] = h.rankState(f.state / int64(p.Ranks))
		}
		f.memcpyMs = ms(h.memcpyThreads(parts, runtime.GOMAXPROCS(0)))
		h.log.Info("bench: calibrated", "steps_per_s", fmt.Sprintf("%.2f", f.rate), "steps", f.steps, "state_bytes", f.state)
		return nil, nil
	}}}
	// The frozen and scale runs first: the pairs are the longest part,
	// and an interrupted run keeps what came before.
	if p.Frozen > 0 && len(p.Intervals) > 0 {
		for rep := range min(p.Reps, 3) {
			tasks = append(tasks, task{name: fmt.Sprintf("%s/frozen %g/rep%d", prefix, p.Frozen, rep+1), run: func(ctx context.Context) ([]Record, error) {
				if err := calibrated(); err != nil {
					return nil, err
				}
				a := base
				a.Steps, a.Interval, a.Frozen = f.steps, p.Intervals[0], p.Frozen
				j, err := h.runJob(ctx, a)
				if err != nil {
					return nil, err
				}
				f.frozen = append(f.frozen, j)
				return nil, nil
			}})
		}
	}
	for _, n := range p.Scale {
		tasks = append(tasks, task{name: fmt.Sprintf("job/%s/scale/r%d", p.Device, n), run: func(ctx context.Context) ([]Record, error) {
			// Calibrate at this rank count: the step rate of many ranks
			// sharing the cores is not the two-rank one.
			a := jobArgs{Ranks: n, Size: p.ScaleSize, Codec: p.Codec, Device: p.Device, Steps: p.CalSteps * 2, Force: true}
			c, err := h.runJob(ctx, a)
			if err != nil {
				return nil, err
			}
			rate := c.stepRate()
			if !(rate > 0) {
				return nil, fmt.Errorf("%d ranks: no step rate from the calibration run", n)
			}
			a.Steps = max(20, int64(rate*p.ScaleWindow.Seconds()))
			a.Interval = p.ScaleInterval
			j, err := h.runJob(ctx, a)
			if err != nil {
				return nil, err
			}
			f.scale[n] = &j
			return nil, nil
		}})
	}
	rng := rand.New(rand.NewPCG(p.Seed, 1))
	for rep := range p.Reps {
		for _, vi := range rng.Perm(len(f.variants)) {
			v := f.variants[vi]
			tasks = append(tasks, task{name: fmt.Sprintf("%s/%s/rep%d", prefix, v.label, rep+1), run: func(ctx context.Context) ([]Record, error) {
				if err := calibrated(); err != nil {
					return nil, err
				}
				a := base
				a.Steps, a.Interval, a.StopTheWorld = f.steps, f.intervalArg(v), v.stw
				if v.buffered {
					a.StoreIO = "buffered"
				}
				a.Hash = v.hash
				j, err := h.runJob(ctx, a)
				if err != nil {
					return nil, err
				}
				if pd := j.period(); v.interval > 0 && !math.IsNaN(pd) {
					f.lag[v.label] = append(f.lag[v.label], pd-a.Interval.Seconds())
				}
				f.runs[v.label][rep] = &j
				return nil, nil
			}})
		}
	}
	for rep := range p.RecoveryReps {
		tasks = append(tasks, task{name: fmt.Sprintf("%s/recovery/rep%d", prefix, rep+1), run: func(ctx context.Context) ([]Record, error) {
			if err := calibrated(); err != nil {
				return nil, err
			}
			a := base
			a.Steps = max(40, int64(f.rate*p.RecoveryWindow.Seconds()))
			a.EverySteps = max(4, a.Steps/4)
			a.Kill = fmt.Sprintf("%d@%d", p.Ranks-1, a.Steps*3/5)
			j, err := h.runJob(ctx, a)
			if err != nil {
				return nil, err
			}
			f.recov = append(f.recov, j)
			return nil, nil
		}})
	}
	tasks = append(tasks, task{name: prefix + "/summary", always: true, run: func(context.Context) ([]Record, error) {
		return f.records(prefix), nil
	}})
	return tasks
}

// intervalArg is the --interval that gives v's runs a real period of
// v.interval: the coordinator counts the interval from the previous
// commit, so the period is the interval plus the request→commit time,
// which the earlier runs of the variant measured.
func (f *jobFamily) intervalArg(v jobVariant) time.Duration {
	if v.interval == 0 || len(f.lag[v.label]) == 0 {
		return v.interval
	}
	lag := statOf(f.lag[v.label]...).med()
	arg := v.interval - time.Duration(lag*float64(time.Second))
	return max(arg, v.interval/2).Round(10 * time.Millisecond)
}

// rankState returns n bytes of pre-faulted memory (the memcpy source for
// one rank's state).
func (h *harness) rankState(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// records summarizes the family's runs.
func (f *jobFamily) records(prefix string) []Record {
	var out []Record
	none := f.runs["no cuts"]
	common := func(label, what, role string, v jobVariant) Record {
		r := Record{
			Name: prefix + "/" + label, Family: FamilyJob, Role: role, What: what, Kind: "heat2d (float64)",
			StateBytes: f.state, Ranks: f.p.Ranks, Codec: f.p.Codec, Device: f.p.Device,
			IntervalS: v.interval.Seconds(), StopTheWorld: v.stw,
		}
		if v.buffered {
			r.StoreIO = "buffered"
		}
		r.Hash = v.hash
		return r
	}
	rankBytes := float64(f.state) / float64(f.p.Ranks)
	for _, v := range f.variants {
		var runs []*jobRun
		for _, j := range f.runs[v.label] {
			if j != nil {
				runs = append(runs, j)
			}
		}
		if len(runs) == 0 {
			continue
		}
		role, what := RoleScenario, "overhead"
		switch {
		case v.interval == 0:
			role, what = RoleBaseline, "no cuts"
		case v.stw:
			role, what = RoleBaseline, "stop-the-world"
		case v.buffered:
			role, what = RoleBaseline, "buffered packs"
		case v.hash != "":
			role, what = RoleBaseline, v.hash+" hashes"
		}
		r := common(v.label, what, role, v)
		r.Reps = len(runs)
		var rates, walls, rss, lrss, cuts, over, wover, stalls, copies, streams, afterCap, afterReq, periods, args, rssAdd, reuse []float64
		for rep, j := range f.runs[v.label] {
			if j == nil {
				continue
			}
			rates = append(rates, j.stepRate())
			walls = append(walls, j.wall.Seconds())
			rss = append(rss, j.maxRSS())
			lrss = append(lrss, float64(j.run.Self.MaxRSSBytes))
			cuts = append(cuts, float64(len(j.run.Cuts)))
			stalls = append(stalls, j.stalls()...)
			copies = append(copies, j.captureCopies()...)
			streams = append(streams, j.streamTimes()...)
			ac, ar := j.captureToCommit()
			afterCap, afterReq = append(afterCap, ac...), append(afterReq, ar...)
			periods = append(periods, j.period())
			args = append(args, j.args.Interval.Seconds())
			if len(j.run.Cuts) >= 2 {
				// Reuse needs an older cut to reuse from.
				reuse = append(reuse, j.reuse())
			}
			// Pairs: the no-cut run of the same repetition, when this
			// run committed a cut (a run the machine slowed so much that
			// it ended before its first cut measures no cut at all).
			if n := none[rep]; v.interval > 0 && n != nil && len(j.run.Cuts) > 0 {
				over = append(over, (n.stepRate()/j.stepRate()-1)*100)
				wover = append(wover, (j.wall.Seconds()/n.wall.Seconds()-1)*100)
				rssAdd = append(rssAdd, (j.maxRSS()-n.maxRSS())/rankBytes)
			}
		}
		r.StepsPerS, r.WallS, r.PeakRSSBytes, r.LauncherRSSBytes = statOf(rates...), statOf(walls...), statOf(rss...), statOf(lrss...)
		if v.interval > 0 {
			r.Cuts = statOf(cuts...)
			r.OverheadPct, r.WallOverheadPct = statOf(over...), statOf(wover...)
			r.Samples = over
			r.OverheadCI = bootstrapCI(over, 0.95, f.p.Seed)
			r.PeriodS, r.IntervalArgS = statOf(periods...), statOf(args...)
			r.RSSAddedPerStateByte = statOf(rssAdd...)
			r.ReusedFraction = statOf(reuse...)
			r.BlockingMs, r.CaptureCopyMs, r.StreamMs = statOf(stalls...), statOf(copies...), statOf(streams...)
			r.CommittedMs, r.CutRequestToCommitMs = statOf(afterCap...), statOf(afterReq...)
			if r.BlockingMs != nil && f.memcpyMs > 0 {
				r.MemcpyMs = one(f.memcpyMs)
				r.BlockingVsMemcpy = &Stat{Median: r.BlockingMs.Median / f.memcpyMs, Min: r.BlockingMs.Min / f.memcpyMs, Max: r.BlockingMs.Max / f.memcpyMs, N: r.BlockingMs.N}
			}
		}
		r.Note = fmt.Sprintf("heat2d tile %d per rank, %d steps; overhead = no-cut step rate / this step rate - 1, paired by repetition, variants in a random order per repetition (seed %d); memcpy: every rank's state at once on %d goroutines each", f.size, f.steps, f.p.Seed, runtime.GOMAXPROCS(0))
		out = append(out, r)
	}
	if len(f.frozen) > 0 {
		v := jobVariant{interval: f.p.Intervals[0]}
		r := common(fmt.Sprintf("frozen %g, every %s", f.p.Frozen, v.interval), "incremental reuse", RoleScenario, v)
		r.Kind = fmt.Sprintf("heat2d + parameters, %g frozen", f.p.Frozen)
		r.StateBytes = 2 * f.state
		r.Reps = len(f.frozen)
		var reuse, req, stalls, cuts, rss []float64
		for _, j := range f.frozen {
			if len(j.run.Cuts) >= 2 {
				reuse = append(reuse, j.reuse())
			}
			_, ar := j.captureToCommit()
			req = append(req, ar...)
			stalls = append(stalls, j.stalls()...)
			cuts = append(cuts, float64(len(j.run.Cuts)))
			rss = append(rss, j.maxRSS())
		}
		r.ReusedFraction, r.CutRequestToCommitMs, r.BlockingMs, r.Cuts, r.PeakRSSBytes = statOf(reuse...), statOf(req...), statOf(stalls...), statOf(cuts...), statOf(rss...)
		r.Note = fmt.Sprintf("heat2d --frozen %g: a parameter buffer as large as the tile, its first %g frozen, the rest rewritten every step; reuse = chunks of the last cut referenced from an older cut; the heat field itself changes everywhere", f.p.Frozen, f.p.Frozen)
		out = append(out, r)
	}
	for _, n := range f.p.Scale {
		j := f.scale[n]
		if j == nil {
			continue
		}
		r := Record{Name: fmt.Sprintf("job/%s/scale/r%d", f.p.Device, n), Family: FamilyJob, Role: RoleScenario, What: "scale",
			Kind: "heat2d (float64)", StateBytes: heatState(f.p.ScaleSize, n), Ranks: n, Codec: f.p.Codec, Device: f.p.Device,
			IntervalS: f.p.ScaleInterval.Seconds(), Reps: 1}
		_, ar := j.captureToCommit()
		lc, rc := j.cpuCores()
		r.CutRequestToCommitMs, r.Cuts, r.LauncherCPUCores, r.RanksCPUCores = statOf(ar...), one(float64(len(j.run.Cuts))), one(lc), one(rc)
		r.StepsPerS, r.WallS, r.PeriodS, r.LauncherRSSBytes, r.PeakRSSBytes = one(j.stepRate()), one(j.wall.Seconds()), one(j.period()), one(float64(j.run.Self.MaxRSSBytes)), one(j.maxRSS())
		r.Note = fmt.Sprintf("%d rank processes on this one machine, tile %d, a cut every %s; launcher CPU = cutpoint run (coordinator and embedded NATS server) CPU-seconds per second of the run", n, f.p.ScaleSize, f.p.ScaleInterval)
		out = append(out, r)
	}
	if len(f.recov) > 0 {
		r := common("recovery", "recovery", RoleScenario, jobVariant{})
		r.Reps = len(f.recov)
		var rec, rest, coord, minus, rgb, respawn, startup []float64
		var notes []string
		for _, j := range f.recov {
			t, err := j.recovery()
			if err != nil {
				notes = append(notes, err.Error())
				continue
			}
			rec, rest, coord, minus = append(rec, t.total), append(rest, t.restore), append(coord, t.coord), append(minus, t.total-t.restore)
			if t.respawn > 0 {
				respawn = append(respawn, t.respawn)
			}
			if t.startup > 0 {
				startup = append(startup, t.startup)
			}
			if t.restore > 0 {
				rgb = append(rgb, float64(f.state)/float64(f.p.Ranks)/t.restore/1e9)
			}
		}
		r.RecoveryS, r.RestoreS, r.CoordRecoveryS, r.RecoveryMinusRestoreS = statOf(rec...), statOf(rest...), statOf(coord...), statOf(minus...)
		r.RespawnS, r.ReplacementStartS, r.RestoreGBps = statOf(respawn...), statOf(startup...), statOf(rgb...)
		r.Note = "SIGKILL of the last rank at 60% of the steps, cuts every quarter; recovery = kill to every rank computing again; restore = the slowest rank's read of the cut (one rank's state)"
		if len(notes) > 0 {
			r.Note += "; " + fmt.Sprint(notes)
		}
		out = append(out, r)
	}
	return out
}
