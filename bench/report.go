package bench

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"
)

// Markdown renders the results as the report docs/benchmarks.md carries:
// how and where it ran, the goals, and one table per family. Plots are
// linked from plotDir (relative to the document; "" links them from the
// output folder itself).
func Markdown(res *Results, plotDir string) string {
	var b strings.Builder
	m := res.Machine
	fmt.Fprintf(&b, "Command: `%s` (%s mode), %s to %s UTC, %.1f minutes.\n\n", res.Command, res.Mode,
		res.Started.Format("2006-01-02 15:04"), res.Finished.Format("15:04"), res.DurationS/60)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %.1f GiB memory, Linux %s, %s, GOMAXPROCS %d; scratch disk: %s; zstd CLI: %s; devices: %s.\n\n",
		m.CPUs, m.CPUModel, float64(m.MemBytes)/(1<<30), m.Kernel, m.Go, m.GOMAXPROCS, orDash(m.ScratchFS), orDash(firstLine(m.ZstdCLI)), strings.Join(m.Devices, ", "))
	fmt.Fprintf(&b, "Load average (1, 5, 15 min): %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end, 1-minute maximum %.2f seen between tasks.\n\n",
		m.LoadStart[0], m.LoadStart[1], m.LoadStart[2], m.LoadEnd[0], m.LoadEnd[1], m.LoadEnd[2], m.LoadMax)
	fmt.Fprintf(&b, "Seed %d (the job variants' order in each repetition, the bootstrap intervals); commit %s.\n\n", res.Seed, orDash(res.Commit))
	b.WriteString("Units: GB/s is 10^9 bytes per second; MiB is 2^20 bytes. A cell with several repetitions shows the median and (min–max).\n\n")

	b.WriteString("### Against the goals\n\n| issue | goal | measured | met |\n|---|---|---|---|\n")
	for _, g := range res.Goals {
		met := verdictCell(g)
		meas := g.Measured
		if g.Note != "" {
			meas += " — " + g.Note
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", g.Issue, g.Goal, esc(meas), met)
	}
	b.WriteString("\n")

	if rows := filter(res, func(r Record) bool {
		return r.Family == FamilyStore && (r.What == "cut" || r.What == "incremental cut")
	}); len(rows) > 0 {
		b.WriteString("### Cuts (store family, in-process)\n\n")
		b.WriteString("Each rank's buffer is captured on the device (the job's stall), written by its own shard writer into one store on the scratch disk and committed; then read back into memory with the packs dropped from the page cache and checked. *shuffle*: on gives the store the buffer's element size, and the store filters each chunk by a byte shuffle or, where a sample compresses better, delta+shuffle (docs/format.md); off stores the bytes unfiltered; *blocking*: the slowest rank's capture; *memcpy*: the same parts copied the same way; *durable*: capture start to the last shard fsynced; *committed*: to the manifest renamed; *raw GB/s*: state bytes / durable; *vs zstd*: raw GB/s over the zstd CLI's on the same bytes; *vs limit*: raw GB/s over min(disk write+fsync x ratio, engine without storage).\n\n")
		b.WriteString("| data | state | ranks | codec | shuffle | changed | device | blocking ms | memcpy ms | blocking / memcpy | durable ms | committed ms | raw GB/s | stored GB/s | ratio | restore GB/s | vs zstd | vs limit | MB/cpu-s | in-flight MiB | RSS extra MiB |\n")
		b.WriteString("|---|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				r.Kind, sizeName(r.StateBytes), r.Ranks, r.Codec, onOff(r.Shuffle), changed(r), r.Device,
				f(r.BlockingMs, 1), f(r.MemcpyMs, 1), f(r.BlockingVsMemcpy, 2), f(r.DurableMs, 0), f(r.CommittedMs, 0),
				f(r.RawGBps, 3), f(r.StoredGBps, 3), f(r.Ratio, 3), f(r.RestoreGBps, 3), fx(r.VsZstdCLI), pct(r.VsDiskLimit)+exceeded(r),
				f(r.WriteMBPerCPUs, 0), mib(r.PeakInflightBytes), mib(r.PeakRSSExtraBytes))
		}
		b.WriteString("\n")
		if inc := filter(res, func(r Record) bool { return r.SpeedupVsFull != nil }); len(inc) > 0 {
			b.WriteString("Incremental cuts (a full cut, then the given fraction of chunks changed, then the measured cut):\n\n| data | state | ranks | device | changed | full cut durable ms | incremental durable ms | speedup |\n|---|---|---:|---|---:|---:|---:|---:|\n")
			for _, r := range inc {
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", r.Kind, sizeName(r.StateBytes), r.Ranks, r.Device, changed(r), f(r.FullCutDurableMs, 0), f(r.DurableMs, 0), fx(r.SpeedupVsFull))
			}
			b.WriteString("\n")
		}
	}
	if rows := filter(res, func(r Record) bool {
		return r.Family == FamilyStore && (r.Role == RoleLimit || r.Role == RoleBaseline || strings.HasPrefix(r.Name, "kernels/"))
	}); len(rows) > 0 {
		b.WriteString("### Limits and baselines (same bytes, same disk, same run)\n\n| what | data | state | codec | GB/s | ratio | ms | MB/cpu-s | note |\n|---|---|---|---|---:|---:|---:|---:|---|\n")
		for _, r := range rows {
			codec := r.Codec
			if r.Shuffle != nil {
				codec += " " + onOff(r.Shuffle)
			}
			msv := r.DurableMs
			if msv == nil {
				msv = r.MemcpyMs
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.What, r.Kind, sizeName(r.StateBytes), orDash(strings.TrimSpace(codec)),
				f(r.RawGBps, 3), f(r.Ratio, 3), f(msv, 0), f(r.WriteMBPerCPUs, 0), esc(r.Note)+exceeded(r))
		}
		b.WriteString("\n")
	}
	if rows := filter(res, func(r Record) bool { return r.What == "memory" }); len(rows) > 0 {
		b.WriteString("### Memory under a staging bound (job family, memory scenario)\n\n")
		b.WriteString("heat2d whose protected state is mostly a `--frozen` parameter buffer (`--params-size`), without cuts and with cuts, both under `--max-staging`: the cuts read the buffers beyond the bound in place and hold the job at its SafePoint until the writer has read them. *RSS added / byte*: the largest rank's peak RSS with cuts minus without, per byte of one rank's state, paired by repetition; *blocking*: every cut's SafePoint on every rank; *hold*: per rank, its mean hold per cut.\n\n")
		b.WriteString("| variant | workload | state | ranks | max staging | reps | cuts/run | rank peak RSS MiB, cuts | rank peak RSS MiB, no cuts | RSS added / byte | blocking ms | hold ms | steps/s | wall s |\n|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name[strings.LastIndex(r.Name, "/")+1:], r.Kind, sizeName(r.StateBytes), r.Ranks, sizeName(r.MaxStagingBytes), r.Reps,
				f(r.Cuts, 1), mib(r.PeakRSSBytes), mib(r.NoCutRSSBytes), f(r.RSSAddedPerStateByte, 3), f(r.BlockingMs, 0), f(r.HoldMs, 0), f(r.StepsPerS, 2), f(r.WallS, 0))
		}
		b.WriteString("\n")
	}
	if rows := filter(res, func(r Record) bool {
		return r.Family == FamilyJob && r.What != "recovery" && r.What != "scale" && r.What != "incremental reuse" && r.What != "memory"
	}); len(rows) > 0 {
		b.WriteString("### heat2d under `cutpoint run` (job family)\n\n")
		b.WriteString("Real processes: `cutpoint run --ranks R --size N --steps K` with an embedded NATS server, the variants interleaved within each repetition. *overhead*: the no-cut run's step rate over this run's, minus 1, per repetition pair (the slowest rank's rate between its first and last step: start-up and the final gather excluded); *wall*: the same for the whole command; *blocking*: every cut's SafePoint on every rank; *copy*: the capture's copy alone (the runtime's own count, mean per rank and run); *capture→commit*: the last rank's capture to the manifest rename; *request→commit*: the coordinator's cut start to the commit.\n\n")
		b.WriteString("*period*: the real time between cut starts (the runs' --interval in brackets: the harness shortens it by the measured request→commit time); *95 % interval*: bootstrap interval of the mean of the paired overheads; *RSS added / byte*: the largest rank's peak RSS with cuts minus without, per byte of one rank's state; *reused*: chunks of the last cut referenced from an older one.\n\n")
		b.WriteString("| variant | state | ranks | reps | steps/s | overhead % | 95 % interval | wall overhead % | period s | cuts/run | blocking ms | copy ms | blocking / memcpy | capture→commit ms | request→commit ms | rank peak RSS MiB | RSS added / byte | reused | launcher RSS MiB |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			period := f(r.PeriodS, 1)
			if r.IntervalArgS != nil {
				period += " [" + f(r.IntervalArgS, 1) + "]"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				r.Name[strings.LastIndex(r.Name, "/")+1:], sizeName(r.StateBytes), r.Ranks, r.Reps,
				f(r.StepsPerS, 2), f(r.OverheadPct, 2), ci(r.OverheadCI, 2, 1), f(r.WallOverheadPct, 1), period, f(r.Cuts, 1), f(r.BlockingMs, 1), f(r.CaptureCopyMs, 1), f(r.BlockingVsMemcpy, 2),
				f(r.CommittedMs, 0), f(r.CutRequestToCommitMs, 0), mib(r.PeakRSSBytes), f(r.RSSAddedPerStateByte, 2), pct(r.ReusedFraction), mib(r.LauncherRSSBytes))
		}
		b.WriteString("\n")
	}
	if rows := filter(res, func(r Record) bool { return r.What == "incremental reuse" }); len(rows) > 0 {
		b.WriteString("Incremental reuse on a job whose state only partly changes (heat2d --frozen: a parameter buffer as large as the heat field, its first fraction frozen, the rest rewritten every step; the heat field changes everywhere, so at most half the frozen fraction of the chunks can be reused):\n\n")
		b.WriteString("| workload | state | ranks | reps | cuts/run | reused chunks | blocking ms | request→commit ms | rank peak RSS MiB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s | %s |\n", r.Kind, sizeName(r.StateBytes), r.Ranks, r.Reps, f(r.Cuts, 1), pct(r.ReusedFraction), f(r.BlockingMs, 1), f(r.CutRequestToCommitMs, 0), mib(r.PeakRSSBytes))
		}
		b.WriteString("\n")
	}
	if rows := filter(res, func(r Record) bool { return r.What == "scale" }); len(rows) > 0 {
		b.WriteString("Scale on one machine (small heat2d tiles, many rank processes; *launcher CPU*: `cutpoint run` itself, the coordinator and its embedded NATS server, in cores: CPU-seconds per second of the run; *ranks CPU*: every rank process together):\n\n")
		b.WriteString("| ranks | state | steps/s | cuts | period s | request→commit ms | launcher CPU cores | ranks CPU cores | launcher RSS MiB | rank peak RSS MiB |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Ranks, sizeName(r.StateBytes), f(r.StepsPerS, 1), f(r.Cuts, 0), f(r.PeriodS, 2),
				f(r.CutRequestToCommitMs, 0), f(r.LauncherCPUCores, 3), f(r.RanksCPUCores, 2), mib(r.LauncherRSSBytes), mib(r.PeakRSSBytes))
		}
		b.WriteString("\n")
	}
	if rows := filter(res, func(r Record) bool { return r.What == "recovery" }); len(rows) > 0 {
		b.WriteString("Recovery (SIGKILL of one rank by `--kill`; *recovery*: the kill to every rank computing again, from the ranks' own clocks; *restore*: the slowest rank's read of the cut; *coordinator*: loss detected to every rank told to go; *respawn*: the kill to the replacement's rank command starting; *replacement start-up*: from there to the replacement computing, its set-up and restore included):\n\n")
		b.WriteString("| state | ranks | reps | recovery s | restore s | beyond restore s | coordinator s | respawn s | replacement start-up s | restore GB/s (one rank) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", sizeName(r.StateBytes), r.Ranks, r.Reps,
				f(r.RecoveryS, 2), f(r.RestoreS, 2), f(r.RecoveryMinusRestoreS, 2), f(r.CoordRecoveryS, 2), f(r.RespawnS, 2), f(r.ReplacementStartS, 2), f(r.RestoreGBps, 3))
		}
		b.WriteString("\n")
	}
	if rows := filter(res, func(r Record) bool { return r.Family == "transport" }); len(rows) > 0 {
		b.WriteString("### Rank transport against raw NATS (same embedded server, same pacing, same run)\n\n| what | samples | transport GB/s | raw NATS GB/s | transport / raw | 95 % interval | one-way µs | raw NATS one-way µs | added µs |\n|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(r.Name, "transport/"), r.Reps, f(r.RawGBps, 3), f(r.RawNATSGBps, 3), pct(r.VsRawNATS), ci(r.VsRawNATSCI, 0, 100),
				f(r.OneWayUs, 1), f(r.RawNATSOneWayUs, 1), f(r.AddedLatencyUs, 1))
		}
		b.WriteString("\n")
	}
	if len(res.Skipped) > 0 {
		b.WriteString("Not measured in this run:\n\n")
		for _, s := range res.Skipped {
			fmt.Fprintf(&b, "- %s: %s\n", s.What, esc(scrubPaths(firstLine(s.Why))))
		}
		b.WriteString("\n")
	}
	if len(res.Plots) > 0 {
		b.WriteString("### Plots\n\n")
		for _, p := range res.Plots {
			fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(p, ".png"), path.Join(plotDir, p))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// verdictCell is a goal's verdict as a table shows it.
func verdictCell(g Goal) string {
	switch v := g.Verdict; {
	case v == VerdictMet || (v == "" && g.Met != nil && *g.Met):
		return "yes"
	case v == VerdictNotMet || (v == "" && g.Met != nil):
		return "**NO**"
	case v == VerdictInconclusive:
		return "inconclusive"
	}
	return "—"
}

func filter(res *Results, keep func(Record) bool) []Record {
	var out []Record
	for _, r := range res.Records {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// f formats a Stat with prec decimals: the median, and (min–max) when
// there were several measurements that differ.
func f(s *Stat, prec int) string {
	if s == nil {
		return "—"
	}
	v := fmt.Sprintf("%.*f", prec, s.Median)
	if s.N > 1 && s.Min != s.Max {
		v += fmt.Sprintf(" (%.*f–%.*f)", prec, s.Min, prec, s.Max)
	}
	return v
}

// ci formats an interval scaled by scale with prec decimals.
func ci(c *Interval, prec int, scale float64) string {
	if c == nil {
		return "—"
	}
	return fmt.Sprintf("[%.*f, %.*f]", prec, c.Low*scale, prec, c.High*scale)
}

// exceeded marks a row above its limit, or a limit a row exceeded.
func exceeded(r Record) string {
	if !r.LimitExceeded {
		return ""
	}
	if r.Role == RoleLimit {
		return " **exceeded by a scenario: not a ceiling**"
	}
	return " (above its limit: the limit is wrong)"
}

func fx(s *Stat) string {
	if s == nil {
		return "—"
	}
	return f(s, 2) + "x"
}

func pct(s *Stat) string {
	if s == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", s.Median*100)
}

func mib(s *Stat) string {
	if s == nil {
		return "—"
	}
	return f(&Stat{Median: s.Median / (1 << 20), Min: s.Min / (1 << 20), Max: s.Max / (1 << 20), N: s.N}, 0)
}

func onOff(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "on"
	}
	return "off"
}

func changed(r Record) string {
	if r.ChangedFraction == 0 || math.IsNaN(r.ChangedFraction) {
		return "all"
	}
	return fmt.Sprintf("%g%%", r.ChangedFraction*100)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// absPath matches an absolute path that starts a word, after a bracket or
// after '=' (a failed run's command line names its scratch folders).
var absPath = regexp.MustCompile(`(^|[\s\[=(])/[^\s\]\):,;]*`)

// scrubPaths replaces the absolute paths in a reason by DIR: the reasons
// are printed into the committed document, which names no machine's paths
// (results.json keeps them for whoever debugs the run).
func scrubPaths(s string) string {
	return absPath.ReplaceAllString(s, "${1}DIR")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// esc keeps a cell on one table row.
func esc(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}
