package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
)

// memoryTasks is the job family's memory scenario (jobPlan.Memory): a
// heat2d job whose protected state is mostly a --frozen parameter buffer,
// so that a rank's memory is about its state, run under --max-staging
// without cuts and with a cut every Intervals[0], Reps pairs in an order
// drawn from the seed. The record says what the cuts added to the largest
// rank's peak RSS per byte of one rank's state, and how long each cut held
// the job.
func (h *harness) memoryTasks(p jobPlan) []task {
	size := heatSize(p.State, p.Ranks)
	tile := heatState(size, 1)
	params := (p.Memory/int64(p.Ranks) - tile) / 8 * 8
	state := int64(p.Ranks) * (tile + params)
	prefix := fmt.Sprintf("job/%s/heat2d/r%d/%s", p.Device, p.Ranks, sizeName(state))
	fail := func(err error) []task {
		return []task{{name: prefix + "/memory", run: func(context.Context) ([]Record, error) { return nil, err }}}
	}
	switch {
	case params <= 0:
		return fail(fmt.Errorf("memory scenario: %s in all leaves no parameter buffer beside a tile of %s per rank (--job-state is the heat field's share)", sizeName(p.Memory), sizeName(tile)))
	case p.Frozen <= 0:
		return fail(errors.New("memory scenario: needs a frozen fraction (--frozen): the state beyond the tile is heat2d's parameter buffer"))
	case len(p.Intervals) == 0:
		return fail(errors.New("memory scenario: no cut interval"))
	}
	iv := p.Intervals[0]
	base := jobArgs{Ranks: p.Ranks, Size: size, Codec: p.Codec, Device: p.Device, Frozen: p.Frozen, Params: params, MaxStaging: p.MaxStaging}
	var rate float64
	var steps int64
	none, cut := make([]*jobRun, p.Reps), make([]*jobRun, p.Reps)
	tasks := []task{{name: prefix + "/memory/calibrate", run: func(ctx context.Context) ([]Record, error) {
		a := base
		a.Steps = p.CalSteps
		j, err := h.runJob(ctx, a)
		if err != nil {
			return nil, err
		}
		if rate = j.stepRate(); !(rate > 0) {
			return nil, errors.New("no step rate from the calibration run")
		}
		steps = max(20, int64(rate*p.Window.Seconds()))
		h.log.Info("bench: memory scenario calibrated", "steps_per_s", fmt.Sprintf("%.2f", rate), "steps", steps, "state_bytes", state)
		return nil, nil
	}}}
	rng := rand.New(rand.NewPCG(p.Seed, 2))
	for rep := range p.Reps {
		for _, withCuts := range rng.Perm(2) {
			label := "no cuts"
			if withCuts == 1 {
				label = "every " + iv.String()
			}
			tasks = append(tasks, task{name: fmt.Sprintf("%s/memory/%s/rep%d", prefix, label, rep+1), run: func(ctx context.Context) ([]Record, error) {
				if steps == 0 {
					return nil, errors.New("no calibrated step count (the calibration run failed)")
				}
				a := base
				a.Steps = steps
				if withCuts == 1 {
					a.Interval = iv
				}
				j, err := h.runJob(ctx, a)
				if err != nil {
					return nil, err
				}
				if withCuts == 1 {
					cut[rep] = &j
				} else {
					none[rep] = &j
				}
				return nil, nil
			}})
		}
	}
	tasks = append(tasks, task{name: prefix + "/memory/summary", always: true, run: func(context.Context) ([]Record, error) {
		r := Record{
			Name: fmt.Sprintf("%s/memory, every %s, max staging %s", prefix, iv, sizeName(p.MaxStaging)), Family: FamilyJob, Role: RoleScenario, What: "memory",
			Kind: fmt.Sprintf("heat2d + parameters, %g frozen", p.Frozen), StateBytes: state, Ranks: p.Ranks, Codec: p.Codec, Device: p.Device,
			IntervalS: iv.Seconds(), MaxStagingBytes: p.MaxStaging,
		}
		var rss, nrss, add, stalls, holds, cuts, walls, rates []float64
		for rep := range p.Reps {
			c, n := cut[rep], none[rep]
			if n != nil {
				nrss = append(nrss, n.maxRSS())
			}
			if c == nil {
				continue
			}
			r.Reps++
			rss, cuts, walls, rates = append(rss, c.maxRSS()), append(cuts, float64(len(c.run.Cuts))), append(walls, c.wall.Seconds()), append(rates, c.stepRate())
			stalls, holds = append(stalls, c.stalls()...), append(holds, c.holds()...)
			// A pair counts when the run with cuts committed one: a run
			// that ended before its first cut measured no cut's memory.
			if n != nil && len(c.run.Cuts) > 0 {
				add = append(add, (c.maxRSS()-n.maxRSS())/float64(tile+params))
			}
		}
		if r.Reps == 0 && len(nrss) == 0 {
			return nil, nil
		}
		r.PeakRSSBytes, r.NoCutRSSBytes, r.RSSAddedPerStateByte = statOf(rss...), statOf(nrss...), statOf(add...)
		r.BlockingMs, r.HoldMs, r.Cuts, r.WallS, r.StepsPerS = statOf(stalls...), statOf(holds...), statOf(cuts...), statOf(walls...), statOf(rates...)
		r.Note = fmt.Sprintf("heat2d tile %d (%s per rank) plus a %s parameter buffer per rank (--frozen %g), %d steps, both variants under --max-staging %d; RSS added = (largest rank's peak RSS with cuts - without) / one rank's state, paired by repetition; hold = the SafePoint held until the writer had read the buffers beyond the bound",
			size, sizeName(tile), sizeName(params), p.Frozen, steps, p.MaxStaging)
		return []Record{r}, nil
	}})
	return tasks
}

// memoryRow is the job family's memory scenario of res, if it ran.
func memoryRow(res *Results) *Record {
	for i := range res.Records {
		if r := &res.Records[i]; r.Family == FamilyJob && r.What == "memory" {
			return r
		}
	}
	return nil
}

// holdNote says how long the memory runs held the job per cut.
func holdNote(r *Record) string {
	if r.HoldMs == nil {
		return "no hold recorded"
	}
	return fmt.Sprintf("each cut held the job %.1f s (median per rank, %.1f to %.1f s)", r.HoldMs.Median/1e3, r.HoldMs.Min/1e3, r.HoldMs.Max/1e3)
}
