package bench

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStatOf(t *testing.T) {
	s := statOf(3, 1, 2, 10)
	if s.Median != 2.5 || s.Min != 1 || s.Max != 10 || s.N != 4 {
		t.Fatalf("statOf = %+v", s)
	}
	if statOf() != nil || statOf(nan()) != nil {
		t.Fatal("statOf of nothing must be nil")
	}
	if s := statOf(5); s.Median != 5 || s.N != 1 {
		t.Fatalf("statOf(5) = %+v", s)
	}
}

func nan() float64 { var z float64; return z / z }

func TestSplit(t *testing.T) {
	b := make([]byte, 8*10+3)
	parts := split(b, 3, 8)
	var lens []int
	for _, p := range parts {
		lens = append(lens, len(p))
	}
	if !slices.Equal(lens, []int{32, 24, 24}) {
		t.Fatalf("split lengths %v", lens)
	}
}

func TestChangedChunks(t *testing.T) {
	for _, c := range []struct {
		n    int
		f    float64
		want int
	}{{8, 0.1, 1}, {100, 0.1, 10}, {100, 0.5, 50}, {3, 1, 3}, {0, 0.5, 0}} {
		got := changedChunks(c.n, c.f)
		if len(got) != c.want {
			t.Errorf("changedChunks(%d, %g) = %v, want %d chunks", c.n, c.f, got, c.want)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("changedChunks(%d, %g) = %v: not distinct and sorted", c.n, c.f, got)
		}
	}
	b := []byte{0, 0, 0, 0, 0, 0}
	flipChunks(b, 2, []int{0, 2})
	flipChunks(b, 2, []int{0, 2})
	if !slices.Equal(b, make([]byte, 6)) {
		t.Fatal("flipChunks twice is not the identity")
	}
}

func TestHeatSize(t *testing.T) {
	for _, c := range []struct {
		state int64
		ranks int
	}{{1 << 30, 2}, {1 << 30, 4}, {8 << 20, 2}} {
		s := heatSize(c.state, c.ranks)
		got := heatState(s, c.ranks)
		if got > c.state || float64(got) < 0.99*float64(c.state) {
			t.Errorf("heatSize(%d, %d) = %d: state %d", c.state, c.ranks, s, got)
		}
	}
}

func sampleResults() *Results {
	r := &Results{Version: ResultsVersion, Mode: "quick", Started: time.Unix(0, 0).UTC(), Finished: time.Unix(60, 0).UTC(),
		Machine: Machine{CPUs: 2, Devices: []string{"cpu"}}}
	r.Records = []Record{
		{Name: "store/a", Family: FamilyStore, Role: RoleScenario, What: "cut", Kind: "heat-f64", StateBytes: 1 << 20, Ranks: 2, Codec: "s2",
			Shuffle: boolp(true), Device: "cpu", RawGBps: one(1), Ratio: one(1.4), BlockingMs: statOf(1, 2, 3), MemcpyMs: one(1), StopWorldBlockingMs: one(5)},
		{Name: "job/x/every 1s", Family: FamilyJob, Role: RoleScenario, What: "overhead", StateBytes: 1 << 20, Ranks: 2, Device: "cpu",
			IntervalS: 1, OverheadPct: statOf(1, 2, 3)},
		{Name: "job/x/recovery", Family: FamilyJob, Role: RoleScenario, What: "recovery", StateBytes: 1 << 20, Ranks: 2,
			RecoveryS: one(1), RestoreS: one(0.1), RecoveryMinusRestoreS: one(0.9), CoordRecoveryS: one(0.5)},
	}
	r.Goals = evaluateGoals(r)
	return r
}

func TestMarkdownAndPlots(t *testing.T) {
	res := sampleResults()
	dir := t.TempDir()
	plots, err := writePlots(res, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 4 {
		t.Fatalf("plots %v, want 4", plots)
	}
	res.Plots = plots
	md := Markdown(res, "img")
	for _, s := range []string{"| heat-f64 | 1MiB | 2 | s2 | on |", "2.00 (1.00–3.00)", "![recovery](img/recovery.png)", "| 4 | recovery"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestUpdateDoc(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "benchmarks.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\n## Kernels\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := sampleResults()
	out := t.TempDir()
	plots, err := writePlots(res, out)
	if err != nil {
		t.Fatal(err)
	}
	res.Plots = plots
	for range 2 { // the second run replaces the section
		if err := UpdateDoc(doc, res, out, filepath.Join(dir, "bench")); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(doc)
	s := string(b)
	if strings.Count(s, "## Harness") != 1 || !strings.Contains(s, "kept") || !strings.Contains(s, "](bench/recovery.png)") {
		t.Fatalf("document:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench", PlotRecovery)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(doc, []byte("x\n"+docBegin+"\n"), 0o644)
	if err := UpdateDoc(doc, res, out, filepath.Join(dir, "bench")); err == nil {
		t.Fatal("a document with only the begin marker was accepted")
	}
}

func TestDecodeResults(t *testing.T) {
	for _, b := range []string{"", "{", `{"version": 2}`, `[]`} {
		if _, err := DecodeResults([]byte(b)); !errors.Is(err, ErrResults) {
			t.Errorf("DecodeResults(%q) = %v, want ErrResults", b, err)
		}
	}
}

func TestMergeReps(t *testing.T) {
	recs := []Record{
		{Name: "a", RawGBps: one(1), Ratio: one(1.5)},
		{Name: "b", RawGBps: one(7)},
		{Name: "a", RawGBps: one(3), Ratio: one(1.5)},
		{Name: "a", RawGBps: one(2)},
	}
	got := mergeByName(recs)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("merged %+v", got)
	}
	a := got[0]
	if a.Reps != 3 || *a.RawGBps != (Stat{Median: 2, Min: 1, Max: 3, N: 3}) || a.Ratio.N != 2 || a.BlockingMs != nil {
		t.Fatalf("merged a: reps %d raw %+v ratio %+v", a.Reps, a.RawGBps, a.Ratio)
	}
}

func TestScrubPaths(t *testing.T) {
	for in, want := range map[string]string{
		"failed: cutpoint [run --store /tmp/x/job-5/store --ranks 2]: exit status 8": "failed: cutpoint [run --store DIR --ranks 2]: exit status 8",
		"open /var/x: no such file":                    "open DIR: no such file",
		"--out=/a/b and (/c/d) r2/1GiB/every 10s/rep2": "--out=DIR and (DIR) r2/1GiB/every 10s/rep2",
		"[/only]": "[DIR]",
	} {
		if got := scrubPaths(in); got != want {
			t.Errorf("scrubPaths(%q) = %q, want %q", in, got, want)
		}
	}
}

// The memory scenario's record gives issue 20's row (bytes a cut adds per
// byte of state under the staging bound, its share of the machine, the
// hold) and its own table; without a pair with a cut it is not measured.
func TestMemoryRow(t *testing.T) {
	r := &Results{Version: ResultsVersion, Machine: Machine{CPUs: 2, MemBytes: 24 << 30}}
	r.Records = []Record{{Name: "job/cpu/heat2d/r2/12GiB/memory, every 15s, max staging 64MiB", Family: FamilyJob, Role: RoleScenario, What: "memory",
		Kind: "heat2d + parameters, 0.99 frozen", StateBytes: 12 << 30, Ranks: 2, Device: "cpu", IntervalS: 15, MaxStagingBytes: 64 << 20, Reps: 1,
		PeakRSSBytes: one(6.2 * (1 << 30)), NoCutRSSBytes: one(6.1 * (1 << 30)), RSSAddedPerStateByte: one(0.017), HoldMs: statOf(20000, 30000), Cuts: one(2)}}
	var row *Goal
	for _, g := range evaluateGoals(r) {
		if g.Issue == 20 {
			if row != nil {
				t.Fatalf("two rows for issue 20: %+v, %+v", *row, g)
			}
			row = &g
		}
	}
	if row == nil || row.Met == nil || !*row.Met {
		t.Fatalf("issue 20: %+v", row)
	}
	for _, w := range []string{"0.017 bytes per byte of state", "6GiB of state per rank", "50 % of the machine's 24GiB", "--max-staging 64MiB", "6.20 GiB with cuts, 6.10 GiB without"} {
		if !strings.Contains(row.Measured, w) {
			t.Errorf("issue 20 row %q lacks %q", row.Measured, w)
		}
	}
	if !strings.Contains(row.Note, "held the job 25.0 s") {
		t.Errorf("issue 20 note %q does not give the hold", row.Note)
	}
	if md := Markdown(r, "img"); !strings.Contains(md, "| memory, every 15s, max staging 64MiB | heat2d + parameters, 0.99 frozen | 12GiB | 2 | 64MiB | 1 | 2.0 |") {
		t.Errorf("markdown lacks the memory row:\n%s", md)
	}
	r.Records[0].RSSAddedPerStateByte = nil
	for _, g := range evaluateGoals(r) {
		if g.Issue == 20 && (g.Met != nil || !strings.Contains(g.Measured+g.Note, "no pair with a committed cut")) {
			t.Errorf("issue 20 without a pair: %+v", g)
		}
	}
}

// TestGPUStallRow: the GPU stall goal of a job run adds the captures'
// time on the job's stream (CUDA events) to the SafePoint's, and is
// settled only when that time was measured.
func TestGPUStallRow(t *testing.T) {
	const goal = "GPU: app-visible stall per cut <= 1 ms plus launch"
	row := func(r *Results) *Goal {
		for _, g := range evaluateGoals(r) {
			if g.Goal == goal {
				return &g
			}
		}
		t.Fatal("no GPU stall row")
		return nil
	}
	job := Record{Name: "job/cuda/heat2d/r2/1GiB/every 10s", Family: FamilyJob, Role: RoleScenario, What: "overhead", Device: "cuda",
		StateBytes: 1 << 30, Ranks: 2, IntervalS: 10, BlockingMs: statOf(0.13, 0.14), StreamMs: statOf(0.8, 0.9)}
	r := &Results{Version: ResultsVersion, Records: []Record{job}}
	g := row(r)
	if g.Met == nil || !*g.Met || !strings.Contains(g.Measured, "0.985 ms median: 0.135 ms at the SafePoint + 0.850 ms on the job's stream") {
		t.Errorf("within the goal: %+v", *g)
	}
	r.Records[0].StreamMs = statOf(1.6, 1.7)
	if g := row(r); g.Met == nil || *g.Met {
		t.Errorf("beyond the goal: %+v", *g)
	}
	r.Records[0].StreamMs = nil
	if g := row(r); g.Met != nil || !strings.Contains(g.Note, "not timed") {
		t.Errorf("stream time not measured: %+v", *g)
	}
}
