package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// jobPlan is the job family for one device: heat2d runs of about State
// bytes on Ranks ranks, without cuts, with cuts every Interval, with packs
// through the page cache (--store-io buffered), with BLAKE3 chunk hashes
// (--hash blake3) and in stop-the-world mode at the first interval, Reps
// times each, interleaved
// so that the machine's mood shifts hit every variant alike; then
// RecoveryReps runs with one rank SIGKILLed.
type jobPlan struct {
	State          int64
	Ranks          int
	Device         string
	Codec          string
	Window         time.Duration // compute time of an overhead run
	CalSteps       int64
	Intervals      []time.Duration
	Reps           int
	RecoveryReps   int
	RecoveryWindow time.Duration
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
	runs     map[string][]jobRun // by variant label, in rep order
	recov    []jobRun
	memcpyMs float64 // one rank's state, one goroutine
}

func (h *harness) jobTasks(p jobPlan) []task {
	f := &jobFamily{p: p, runs: map[string][]jobRun{}}
	f.size = heatSize(p.State, p.Ranks)
	f.state = heatState(f.size, p.Ranks)
	f.variants = []jobVariant{{label: "no cuts"}}
	for _, iv := range p.Intervals {
		f.variants = append(f.variants, jobVariant{label: "every " + iv.String(), interval: iv})
	}
	if len(p.Intervals) > 0 {
		f.variants = append(f.variants,
			jobVariant{label: "every " + p.Intervals[0].String() + ", buffered packs", interval: p.Intervals[0], buffered: true},
			jobVariant{label: "every " + p.Intervals[0].String() + ", blake3 hashes", interval: p.Intervals[0], hash: "blake3"},
			jobVariant{label: "stop-the-world every " + p.Intervals[0].String(), interval: p.Intervals[0], stw: true})
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
		f.memcpyMs = ms(h.memcpyParts([][]byte{h.rankState(f.state / int64(p.Ranks))}))
		h.log.Info("bench: calibrated", "steps_per_s", fmt.Sprintf("%.2f", f.rate), "steps", f.steps, "state_bytes", f.state)
		return nil, nil
	}}}
	for rep := range p.Reps {
		for _, v := range f.variants {
			tasks = append(tasks, task{name: fmt.Sprintf("%s/%s/rep%d", prefix, v.label, rep+1), run: func(ctx context.Context) ([]Record, error) {
				if err := calibrated(); err != nil {
					return nil, err
				}
				a := base
				a.Steps, a.Interval, a.StopTheWorld = f.steps, v.interval, v.stw
				if v.buffered {
					a.StoreIO = "buffered"
				}
				a.Hash = v.hash
				j, err := h.runJob(ctx, a)
				if err != nil {
					return nil, err
				}
				f.runs[v.label] = append(f.runs[v.label], j)
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
	tasks = append(tasks, task{name: prefix + "/summary", run: func(ctx context.Context) ([]Record, error) {
		return f.records(prefix), nil
	}})
	return tasks
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
	for _, v := range f.variants {
		runs := f.runs[v.label]
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
		var rates, walls, rss, lrss, cuts, over, wover, stalls, copies, afterCap, afterReq []float64
		for i, j := range runs {
			rates = append(rates, j.stepRate())
			walls = append(walls, j.wall.Seconds())
			rss = append(rss, j.maxRSS())
			lrss = append(lrss, float64(j.run.Self.MaxRSSBytes))
			cuts = append(cuts, float64(len(j.run.Cuts)))
			stalls = append(stalls, j.stalls()...)
			copies = append(copies, j.captureCopies()...)
			ac, ar := j.captureToCommit()
			afterCap, afterReq = append(afterCap, ac...), append(afterReq, ar...)
			if v.interval > 0 && i < len(none) {
				over = append(over, (none[i].stepRate()/j.stepRate()-1)*100)
				wover = append(wover, (j.wall.Seconds()/none[i].wall.Seconds()-1)*100)
			}
		}
		r.StepsPerS, r.WallS, r.PeakRSSBytes, r.LauncherRSSBytes = statOf(rates...), statOf(walls...), statOf(rss...), statOf(lrss...)
		if v.interval > 0 {
			r.Cuts = statOf(cuts...)
			r.OverheadPct, r.WallOverheadPct = statOf(over...), statOf(wover...)
			r.BlockingMs, r.CaptureCopyMs = statOf(stalls...), statOf(copies...)
			r.CommittedMs, r.CutRequestToCommitMs = statOf(afterCap...), statOf(afterReq...)
			if r.BlockingMs != nil && f.memcpyMs > 0 {
				r.MemcpyMs = one(f.memcpyMs)
				r.BlockingVsMemcpy = &Stat{Median: r.BlockingMs.Median / f.memcpyMs, Min: r.BlockingMs.Min / f.memcpyMs, Max: r.BlockingMs.Max / f.memcpyMs, N: r.BlockingMs.N}
			}
		}
		r.Note = fmt.Sprintf("heat2d tile %d per rank, %d steps; overhead = no-cut step rate / this step rate - 1, paired by repetition", f.size, f.steps)
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
