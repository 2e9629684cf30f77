package main

import (
	"path/filepath"
	"testing"

	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// TestStatsFiles: a C job under `cutpoint run --stats-dir` writes the same
// per-rank files as the Go job (cut stalls, safe points), through the
// launcher's CUTPOINT_STATS_DIR.
func TestStatsFiles(t *testing.T) {
	cc := needTool(t, "gcc")
	tl := buildTools(t)
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "heat2d-c")
	src := filepath.Join(root, "examples", "c")
	compile(t, cc, "-std=c99", "-O2", "-Wall", "-Werror", "-I"+tl.include, "-o", bin,
		filepath.Join(src, "heat2d.c"), filepath.Join(src, "sha256.c"), "-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir, "-lm")
	dir := filepath.Join(t.TempDir(), "stats")
	runJob(t, tl, "--ranks", "2", "--every-steps", "500", "--stats-dir", dir, "--", bin, heat2dSize, heat2dSteps)
	run, ranks, err := jobstats.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Cuts) == 0 {
		t.Fatalf("run.json: no cut committed")
	}
	if len(ranks) != 2 {
		t.Fatalf("%d rank files, want 2", len(ranks))
	}
	for _, r := range ranks {
		if r.SafePoints < 4000 || r.Captures == 0 || len(r.CaptureStall) == 0 || r.LastStep == 0 {
			t.Errorf("rank %d: %d safe points, %d captures, %d stalls recorded, last step %d", r.Rank, r.SafePoints, r.Captures, len(r.CaptureStall), r.LastStep)
		}
		for _, c := range r.CaptureStall {
			if c.StallNs <= 0 || c.Step <= 0 {
				t.Errorf("rank %d: capture %+v", r.Rank, c)
			}
		}
	}
}
