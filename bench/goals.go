package bench

import (
	"fmt"
	"math"
	"strings"
)

// evaluateGoals compares the run's figures with the speed goals of issues
// 2 (storage engine), 4 (launcher and recovery), 5 (kernels) and 8 (rank
// transport). A goal this run has no figure for is listed with Met nil.
func evaluateGoals(res *Results) []Goal {
	var gs []Goal
	add := func(issue int, goal, measured string, met *bool, note string) {
		gs = append(gs, Goal{Issue: issue, Goal: goal, Measured: measured, Met: met, Note: note})
	}
	unknown := func(issue int, goal, why string) { add(issue, goal, "not measured", nil, why) }

	// The reference row for the storage goals: the largest heat-field cut
	// with the default codec and shuffle, on the CPU, not incremental.
	var heat *Record
	for i := range res.Records {
		r := &res.Records[i]
		if r.Family == FamilyStore && r.What == "cut" && r.Device == "cpu" && r.Kind == "heat-f64" && r.Codec == "s2" &&
			r.Shuffle != nil && *r.Shuffle && r.Ranks == 2 && r.Workers == 0 && (heat == nil || r.StateBytes > heat.StateBytes) {
			heat = r
		}
	}
	if heat == nil {
		for _, g := range []string{"heat field ratio >= 1.5 with shuffle", "write >= 3x the zstd CLI", "write >= 80% of min(disk x ratio, cores x codec speed)", "restore >= write"} {
			unknown(2, g, "no store scenario of the heat field with s2 and shuffle in this run")
		}
	} else {
		at := fmt.Sprintf(" (heat-f64, s2 + shuffle, %s, 2 ranks)", sizeName(heat.StateBytes))
		best := heat.Ratio.med()
		bestCodec := "s2"
		for _, r := range res.Records {
			if r.Family == FamilyStore && r.What == "cut" && r.Kind == "heat-f64" && r.Shuffle != nil && *r.Shuffle && r.Ratio != nil && r.Ratio.Median > best {
				best, bestCodec = r.Ratio.Median, r.Codec
			}
		}
		add(2, "heat field ratio >= 1.5 with shuffle", fmt.Sprintf("%.3f with s2%s; best %.3f with %s", heat.Ratio.med(), at, best, bestCodec),
			boolp(heat.Ratio.med() >= 1.5), ratioNote(heat.Ratio.med(), best))
		if heat.VsZstdCLI != nil {
			add(2, "write >= 3x the zstd CLI", fmt.Sprintf("%.3fx (min %.3f, max %.3f; %.3f GB/s)%s", heat.VsZstdCLI.Median, heat.VsZstdCLI.Min, heat.VsZstdCLI.Max, heat.RawGBps.med(), at), rangeMet(heat.VsZstdCLI, 3, false), rangeNote(heat.VsZstdCLI))
		} else {
			unknown(2, "write >= 3x the zstd CLI", "no zstd CLI row for this data (zstd not installed?)")
		}
		if heat.VsDiskLimit != nil {
			met, note := rangeMet(heat.VsDiskLimit, 0.8, false), rangeNote(heat.VsDiskLimit)
			if heat.LimitExceeded {
				met, note = nil, "a repetition exceeded the bound (over 100 %): the disk or engine limit measured in the run is not a ceiling, so the ratio cannot settle the goal"
			}
			add(2, "write >= 80% of min(disk x ratio, cores x codec speed)", fmt.Sprintf("%.0f%% (min %.0f, max %.0f; the disk limit with %d writers at once)%s", heat.VsDiskLimit.Median*100, heat.VsDiskLimit.Min*100, heat.VsDiskLimit.Max*100, heat.Ranks, at), met, note)
		}
		if heat.RestoreVsWrite != nil {
			add(2, "restore >= write", fmt.Sprintf("%.2fx (min %.2f; restore %.3f GB/s from disk, page cache dropped)%s", heat.RestoreVsWrite.Median, heat.RestoreVsWrite.Min, heat.RestoreGBps.med(), at), rangeMet(heat.RestoreVsWrite, 1, false), rangeNote(heat.RestoreVsWrite))
		}
	}
	// In-flight memory: every writer against its limit (4 x workers x 4 MiB
	// by default; the single-threaded rows have 1 worker).
	worst, worstLim, worstRatio, n := 0.0, 0.0, -1.0, 0
	for _, r := range res.Records {
		if r.Family != FamilyStore || r.PeakInflightBytes == nil {
			continue
		}
		w := res.Machine.GOMAXPROCS
		if r.Workers > 0 {
			w = r.Workers
		}
		lim := float64(4 * w * (4 << 20))
		n++
		if q := r.PeakInflightBytes.Max / lim; q > worstRatio {
			worst, worstLim, worstRatio = r.PeakInflightBytes.Max, lim, q
		}
	}
	if n > 0 {
		add(2, "memory in flight bounded by the configured limit", fmt.Sprintf("at most %.0f MiB against %.0f MiB over %d cuts", worst/(1<<20), worstLim/(1<<20), n), boolp(worst <= worstLim),
			"the writer's own reservation, bounded by construction; the capture's staging copy of the state is outside it (see the rank memory row)")
	}

	// Issue 4: blocking, overhead, recovery, from the job runs.
	var ovGoal, stw *Record
	var recov *Record
	for i := range res.Records {
		r := &res.Records[i]
		if r.Family != FamilyJob || r.Device != "cpu" {
			continue
		}
		switch {
		case r.What == "overhead" && (ovGoal == nil || abs(r.IntervalS-10) < abs(ovGoal.IntervalS-10)):
			ovGoal = r
		case r.What == "stop-the-world":
			stw = r
		case r.What == "recovery":
			recov = r
		}
	}
	// Blocking: the job runs' SafePoints, and every store-family row (any
	// rank count), each against a memcpy on as many goroutines as its
	// capture.
	var worstStore *Record
	for i := range res.Records {
		r := &res.Records[i]
		if r.Family == FamilyStore && r.What == "cut" && r.Device == "cpu" && r.BlockingVsMemcpy != nil &&
			(worstStore == nil || r.BlockingVsMemcpy.Median > worstStore.BlockingVsMemcpy.Median) {
			worstStore = r
		}
	}
	if ovGoal != nil && ovGoal.BlockingVsMemcpy != nil {
		m := fmt.Sprintf("%.2fx median (%.1f ms per cut against %.1f ms; max %.2fx) in the job runs", ovGoal.BlockingVsMemcpy.Median, ovGoal.BlockingMs.Median, ovGoal.MemcpyMs.med(), ovGoal.BlockingVsMemcpy.Max)
		ok := ovGoal.BlockingVsMemcpy.Median <= 1.5
		if worstStore != nil {
			m += fmt.Sprintf("; worst store row %.2fx (%s, %d ranks)", worstStore.BlockingVsMemcpy.Median, sizeName(worstStore.StateBytes), worstStore.Ranks)
			ok = ok && worstStore.BlockingVsMemcpy.Median <= 1.5
		}
		met, note := boolp(ok), "memcpy: every rank's state at once, each on as many goroutines as its capture, measured in the same run; met only if every row's median is"
		if ovGoal.BlockingVsMemcpy.Median < 1 || memcpyExceeded(res) {
			met, note = nil, note+"; a stall shorter than its memcpy means the memcpy measured in the run is not a floor, so the ratio cannot settle the goal"
		}
		add(4, "app-visible blocking per cut on CPU <= 1.5x a memcpy of the protected state", m, met, note)
	} else if worstStore != nil {
		add(4, "app-visible blocking per cut on CPU <= 1.5x a memcpy of the protected state",
			fmt.Sprintf("worst store row %.2fx median (%s, %d ranks; max %.2fx); no job run with cuts", worstStore.BlockingVsMemcpy.Median, sizeName(worstStore.StateBytes), worstStore.Ranks, worstStore.BlockingVsMemcpy.Max),
			storeBlockingMet(res, worstStore), "store family (in-process captures); memcpy: every rank's state at once, each on as many goroutines as its capture, measured in the same run; met only if every row's median is; inconclusive when a row's stall is shorter than its memcpy (the memcpy is then not a floor)")
	} else {
		unknown(4, "app-visible blocking per cut on CPU <= 1.5x a memcpy of the protected state", "no job run with cuts")
	}
	if ovGoal != nil && ovGoal.OverheadPct != nil {
		m := fmt.Sprintf("%+.2f%% median (min %+.2f, max %+.2f, %d pairs), %s on %d ranks, real period between cuts %.1f s (--interval %.1f s), %.1f cuts per run",
			ovGoal.OverheadPct.Median, ovGoal.OverheadPct.Min, ovGoal.OverheadPct.Max, ovGoal.OverheadPct.N, sizeName(ovGoal.StateBytes), ovGoal.Ranks, ovGoal.PeriodS.med(), ovGoal.IntervalArgS.med(), ovGoal.Cuts.med())
		if ci := ovGoal.OverheadCI; ci != nil {
			m += fmt.Sprintf("; mean %+.2f%%, %.0f %% interval [%+.2f, %+.2f] (%s)", ci.Mean, ci.Level*100, ci.Low, ci.High, ci.Method)
		}
		if stw != nil && stw.OverheadPct != nil {
			m += fmt.Sprintf("; stop-the-world at the same interval: %+.2f%%", stw.OverheadPct.Median)
		}
		v := verdict(ovGoal.OverheadCI, 2, true)
		note := "verdict from the interval: met when all of it is at or below 2 %, not met when all of it is above"
		period := ovGoal.PeriodS.med()
		switch {
		case ovGoal.StateBytes < 1<<30*95/100 || math.IsNaN(period) || abs(period-10) > 1:
			v, note = VerdictNotMeasured, "not at the goal's setting (1 GiB, a cut every 10 s of real period)"
		case ovGoal.OverheadPct.N < 10:
			v, note = VerdictInconclusive, fmt.Sprintf("fewer than 10 pairs (%d)", ovGoal.OverheadPct.N)
		}
		gs = append(gs, Goal{Issue: 4, Goal: "runtime overhead with a cut every 10 s, heat2d 1 GiB: <= 2%", Measured: m, Met: metOf(v), Verdict: v, Note: note})
	} else {
		unknown(4, "runtime overhead with a cut every 10 s, heat2d 1 GiB: <= 2%", "no job runs")
	}
	// What a cut adds to a rank's memory, per byte of its state.
	if ovGoal != nil && ovGoal.RSSAddedPerStateByte != nil && ovGoal.Cuts != nil && ovGoal.Cuts.Median < 1 {
		unknown(20, "memory a cut adds to a rank <= one copy of its state", "the runs with cuts committed none (median): no cut's memory was measured")
	} else if ovGoal != nil && ovGoal.RSSAddedPerStateByte != nil {
		a := ovGoal.RSSAddedPerStateByte
		note := "peak RSS of the largest rank with cuts minus without, paired by repetition, over one rank's state; the workload's own peaks (heat2d's start-up grid, the final gather on rank 0) can hide a cut's staging under them"
		if a.Median > 1 {
			note += "; above one copy of the state: --max-staging bounds it, trading stall for memory (the memory scenario measures that)"
		}
		add(20, "memory a cut adds to a rank <= one copy of its state", fmt.Sprintf("%.2f bytes per byte of state (min %.2f, max %.2f, %d pairs; %s of state per rank)", a.Median, a.Min, a.Max, a.N, sizeName(ovGoal.StateBytes/int64(max(1, ovGoal.Ranks)))), rangeMet(a, 1, true), note)
	} else if memoryRow(res) == nil {
		unknown(20, "memory a cut adds to a rank <= one copy of its state", "no paired job runs")
	}
	// The same under a staging bound, with a state of a good part of the
	// machine's memory (the memory scenario).
	if mr := memoryRow(res); mr != nil {
		const goal = "memory a cut adds to a rank <= one copy of its state"
		rank := mr.StateBytes / int64(max(1, mr.Ranks))
		switch a := mr.RSSAddedPerStateByte; {
		case a == nil:
			unknown(20, goal, fmt.Sprintf("the memory runs (%s of state, --max-staging %s) left no pair with a committed cut", sizeName(mr.StateBytes), sizeName(mr.MaxStagingBytes)))
		default:
			share := ""
			if m := res.Machine.MemBytes; m > 0 {
				share = fmt.Sprintf(", %.0f %% of the machine's %s", 100*float64(mr.StateBytes)/float64(m), sizeName(m))
			}
			add(20, goal, fmt.Sprintf("%.3f bytes per byte of state (min %.3f, max %.3f, %d pairs; %s of state per rank, %s in all%s; --max-staging %s; largest rank's peak RSS %.2f GiB with cuts, %.2f GiB without; %.1f cuts per run)",
				a.Median, a.Min, a.Max, a.N, sizeName(rank), sizeName(mr.StateBytes), share, sizeName(mr.MaxStagingBytes), mr.PeakRSSBytes.med()/(1<<30), mr.NoCutRSSBytes.med()/(1<<30), mr.Cuts.med()),
				rangeMet(a, 1, true), "memory scenario: heat2d whose state is mostly a parameter buffer, both variants under the staging bound, paired by repetition; the cuts read the buffers beyond the bound in place and hold the job instead of copying them: "+holdNote(mr))
		}
	}
	if recov != nil && recov.RecoveryMinusRestoreS != nil {
		add(4, "recovery from a rank's SIGKILL to all ranks computing again <= 2 s + restore I/O",
			fmt.Sprintf("%.2f s median (max %.2f) of which restore I/O %.2f s; %.2f s beyond it (max %.2f), %s on %d ranks",
				recov.RecoveryS.med(), recov.RecoveryS.Max, recov.RestoreS.med(), recov.RecoveryMinusRestoreS.Median, recov.RecoveryMinusRestoreS.Max, sizeName(recov.StateBytes), recov.Ranks),
			rangeMet(recov.RecoveryMinusRestoreS, 2, true), rangeNote(recov.RecoveryMinusRestoreS))
	} else {
		unknown(4, "recovery from a rank's SIGKILL to all ranks computing again <= 2 s + restore I/O", "no recovery run")
	}

	// Issue 5.
	for _, what := range []string{"shuffle, one core", "chunk hash, one core"} {
		found := false
		for _, r := range res.Records {
			if r.What == what && r.RawGBps != nil {
				g := strings.SplitN(what, ",", 2)[0] + " >= 5 GB/s per core"
				if r.WriteMBPerCPUs != nil {
					// Per CPU-second: one goroutine on a shared machine
					// gets a fraction of a core, which wall time counts.
					perCore := r.WriteMBPerCPUs.Median / 1000
					add(5, g, fmt.Sprintf("%.2f GB per CPU-second (%.2f GB/s by the wall clock)", perCore, r.RawGBps.Median), boolp(perCore >= 5), "per core = over the process's CPU time")
				} else {
					add(5, g, fmt.Sprintf("%.2f GB/s", r.RawGBps.Median), boolp(r.RawGBps.Median >= 5), "")
				}
				found = true
			}
		}
		if !found {
			unknown(5, strings.SplitN(what, ",", 2)[0]+" >= 5 GB/s per core", "kernels family not run")
		}
	}
	var gpuFull, gpuInc, gpuJob *Record
	for i := range res.Records {
		r := &res.Records[i]
		if r.Family == FamilyJob && r.Device == "cuda" && r.What == "overhead" && r.BlockingMs != nil &&
			(gpuJob == nil || r.IntervalS > gpuJob.IntervalS) {
			gpuJob = r
		}
		if r.Family == FamilyStore && r.Device == "cuda" {
			if r.What == "cut" && (gpuFull == nil || r.StateBytes > gpuFull.StateBytes) {
				gpuFull = r
			}
			if r.What == "incremental cut" && r.ChangedFraction <= 0.1 {
				gpuInc = r
			}
		}
	}
	switch {
	case gpuJob != nil && gpuJob.StreamMs != nil:
		// The SafePoint returns once the device-side copy is enqueued;
		// the copy then holds the job's stream for StreamMs (timed by
		// CUDA events): the job's stall is the sum.
		stall := gpuJob.BlockingMs.med() + gpuJob.StreamMs.med()
		add(5, "GPU: app-visible stall per cut <= 1 ms plus launch", fmt.Sprintf("%.3f ms median: %.3f ms at the SafePoint + %.3f ms on the job's stream (max %.3f + %.3f; heat2d under cutpoint run, %s on %d ranks, every SafePoint with a cut)",
			stall, gpuJob.BlockingMs.med(), gpuJob.StreamMs.med(), gpuJob.BlockingMs.Max, gpuJob.StreamMs.Max, sizeName(gpuJob.StateBytes), gpuJob.Ranks), boolp(stall <= 1.5),
			"the SafePoint's host time plus the device-side pass on the job's stream (CUDA events), medians; 1 ms plus 0.5 ms allowed for the launch")
	case gpuJob != nil:
		// The SafePoint of a running job is what the application sees.
		// The SafePoint returns once the device-side copy is enqueued;
		// that copy then holds the job's stream, and the harness does not
		// time it, so the stall the job sees is not all measured.
		add(5, "GPU: app-visible stall per cut <= 1 ms plus launch", fmt.Sprintf("%.3f ms median, max %.3f ms at the SafePoint (heat2d under cutpoint run, %s on %d ranks, every SafePoint with a cut)", gpuJob.BlockingMs.med(), gpuJob.BlockingMs.Max, sizeName(gpuJob.StateBytes), gpuJob.Ranks), nil,
			"the SafePoint only: the device-side pass that then holds the job's stream is not timed (CUDA events would), so the run cannot settle the goal")
	case gpuFull != nil:
		add(5, "GPU: app-visible stall per cut <= 1 ms plus launch", fmt.Sprintf("%.3f ms (%s, %d ranks)", gpuFull.BlockingMs.med(), sizeName(gpuFull.StateBytes), gpuFull.Ranks), boolp(gpuFull.BlockingMs.med() <= 1.5), "1 ms plus 0.5 ms allowed for the launch")
	default:
		unknown(5, "GPU: app-visible stall per cut <= 1 ms plus launch", "no GPU in this run")
	}
	if gpuInc != nil && gpuInc.SpeedupVsFull != nil {
		add(5, "GPU: incremental cut with 10% of chunks changed >= 5x faster than a full one", fmt.Sprintf("%.2fx", gpuInc.SpeedupVsFull.Median), boolp(gpuInc.SpeedupVsFull.Median >= 5), "durable time of the cut")
	} else {
		unknown(5, "GPU: incremental cut with 10% of chunks changed >= 5x faster than a full one", "no GPU in this run")
	}
	unknown(5, "GPU: capture >= 80% of pinned device-to-host bandwidth", "the harness does not measure the pinned bandwidth; kernels/cuda's TestReport does (make gpu-test-bin)")

	// Issue 8.
	for _, r := range res.Records {
		if r.Family != "transport" {
			continue
		}
		if r.VsRawNATS != nil {
			m := fmt.Sprintf("%.0f%% median (min %.0f, max %.0f; %.3f vs %.3f GB/s), %s", r.VsRawNATS.Median*100, r.VsRawNATS.Min*100, r.VsRawNATS.Max*100, r.RawGBps.med(), r.RawNATSGBps.med(), strings.TrimPrefix(r.Name, "transport/"))
			v, note := VerdictInconclusive, "one sample: no interval"
			if ci := r.VsRawNATSCI; ci != nil {
				m += fmt.Sprintf("; mean %.0f%%, %.0f %% interval [%.0f, %.0f] over %d samples", ci.Mean*100, ci.Level*100, ci.Low*100, ci.High*100, ci.N)
				v, note = verdict(ci, 0.8, false), "one channel; raw NATS paced by the same window, measured in turn; verdict from the interval"
				if ci.N < 5 {
					v, note = VerdictInconclusive, fmt.Sprintf("fewer than 5 samples (%d)", ci.N)
				}
			}
			gs = append(gs, Goal{Issue: 8, Goal: "transport >= 80% of raw NATS throughput for messages >= 64 KiB", Measured: m, Met: metOf(v), Verdict: v, Note: note})
		}
		if r.AddedLatencyUs != nil {
			add(8, "added latency < 50 us per small message on loopback", fmt.Sprintf("%.1f us (transport %.1f, raw NATS %.1f, one way, 64 B)", r.AddedLatencyUs.Median, r.OneWayUs.med(), r.RawNATSOneWayUs.med()),
				boolp(r.AddedLatencyUs.Median < 50), "")
		}
	}
	for i := range gs {
		if gs[i].Verdict != "" {
			continue
		}
		switch {
		case gs[i].Met != nil && *gs[i].Met:
			gs[i].Verdict = VerdictMet
		case gs[i].Met != nil:
			gs[i].Verdict = VerdictNotMet
		case gs[i].Measured == "not measured":
			gs[i].Verdict = VerdictNotMeasured
		default:
			gs[i].Verdict = VerdictInconclusive
		}
	}
	return gs
}

// memcpyExceeded: a store row's stall was shorter than its memcpy.
func memcpyExceeded(res *Results) bool {
	for _, r := range res.Records {
		if r.Family == FamilyStore && r.What == "cut" && r.BlockingVsMemcpy != nil && r.BlockingVsMemcpy.Median < 1 {
			return true
		}
	}
	return false
}

// storeBlockingMet is the blocking verdict of the store rows alone.
func storeBlockingMet(res *Results, worst *Record) *bool {
	if worst.BlockingVsMemcpy.Median > 1.5 && !memcpyExceeded(res) {
		return boolp(false)
	}
	if memcpyExceeded(res) {
		return nil
	}
	return boolp(true)
}

// rangeMet reads "value <= limit" (atMost) or ">= limit" from the spread
// of repetitions: met when every repetition meets it, not met when none
// does, nil (inconclusive) otherwise.
func rangeMet(s *Stat, limit float64, atMost bool) *bool {
	if s == nil {
		return nil
	}
	switch {
	case atMost && s.Max <= limit, !atMost && s.Min >= limit:
		return boolp(true)
	case atMost && s.Min > limit, !atMost && s.Max < limit:
		return boolp(false)
	}
	return nil
}

// rangeNote explains a rangeMet verdict that is neither.
func rangeNote(s *Stat) string {
	if s == nil || s.N < 2 {
		return "one measurement"
	}
	return fmt.Sprintf("verdict over all %d repetitions (met only if every one meets it)", s.N)
}

func ratioNote(s2, best float64) string {
	if s2 < 1.5 && best >= 1.5 {
		return "the default codec misses it; a denser codec meets it"
	}
	return ""
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
