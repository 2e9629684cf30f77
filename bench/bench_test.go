package bench

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildCutpoint builds the cutpoint binary the job scenarios run.
func buildCutpoint(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build cutpoint with")
	}
	exe := filepath.Join(t.TempDir(), "cutpoint")
	cmd := exec.Command(gobin, "build", "-o", exe, "github.com/cutpoint/cutpoint/cmd/cutpoint")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// TestQuick runs the quick plan end to end (real `cutpoint run`
// processes included) and checks that every output exists, parses and
// holds sane values. It asserts nothing about speed.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("quick benchmark run skipped in -short mode")
	}
	exe := buildCutpoint(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Out: out, Exe: exe, Quick: true, Command: "go test (quick)"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadResults(filepath.Join(out, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != "quick" || len(got.Records) != len(res.Records) || len(got.Records) == 0 {
		t.Fatalf("results.json: mode %q, %d records (Run returned %d)", got.Mode, len(got.Records), len(res.Records))
	}
	for _, s := range got.Skipped {
		if strings.HasPrefix(s.Why, "failed") {
			t.Errorf("task %s: %s", s.What, s.Why)
		}
	}
	_, zstdErr := exec.LookPath("zstd")
	byWhat := map[string][]Record{}
	for _, r := range got.Records {
		byWhat[r.What] = append(byWhat[r.What], r)
	}
	for _, w := range []string{"cut", "incremental cut", "memcpy", "write+fsync", "single-threaded", "engine, no storage",
		"no cuts", "overhead", "buffered packs", "blake3 hashes", "stop-the-world", "recovery", "one channel", "one channel, frames authenticated", "one-way latency", "shuffle, one core"} {
		if len(byWhat[w]) == 0 {
			t.Errorf("no %q record", w)
		}
	}
	// A run pairs with the no-cut runs only when it committed a cut; on a
	// loaded machine (CI runs packages side by side on 2 cores) a short
	// quick run can end before its first: then no pair is the right
	// answer, and it must say so through its cut count.
	paired := func(r Record) bool {
		if r.OverheadPct != nil {
			return true
		}
		if r.Cuts != nil && r.Cuts.Max == 0 {
			t.Logf("%s: no run committed a cut (the machine was too slow for the quick window): no pair", r.Name)
			return true
		}
		return false
	}
	for _, r := range byWhat["buffered packs"] {
		if r.StoreIO != "buffered" || !paired(r) {
			t.Errorf("%s: store_io %q, overhead %v, cuts %v: want a buffered run paired with the no-cut runs", r.Name, r.StoreIO, r.OverheadPct, r.Cuts)
		}
	}
	for _, r := range byWhat["blake3 hashes"] {
		if r.Hash != "blake3" || !paired(r) {
			t.Errorf("%s: hash %q, overhead %v, cuts %v: want a blake3 run paired with the no-cut runs", r.Name, r.Hash, r.OverheadPct, r.Cuts)
		}
	}
	anyOverhead := false
	for _, r := range byWhat["overhead"] {
		anyOverhead = anyOverhead || r.OverheadPct != nil
		if !paired(r) {
			t.Errorf("%s: overhead %v, cuts %v: want the run paired with the no-cut runs", r.Name, r.OverheadPct, r.Cuts)
		}
	}
	if zstdErr == nil && len(byWhat["zstd CLI"]) == 0 {
		t.Error("zstd is installed but there is no zstd CLI record")
	}
	positive := func(r Record, name string, s *Stat) {
		t.Helper()
		if s == nil || !(s.Median > 0) || math.IsInf(s.Median, 0) || s.Min > s.Median || s.Median > s.Max {
			t.Errorf("%s: %s = %+v, want a positive finite median within [min, max]", r.Name, name, s)
		}
	}
	for _, r := range byWhat["cut"] {
		positive(r, "raw GB/s", r.RawGBps)
		positive(r, "restore GB/s", r.RestoreGBps)
		positive(r, "blocking ms", r.BlockingMs)
		positive(r, "memcpy ms", r.MemcpyMs)
		if r.DurableMs.Median > r.CommittedMs.Median || r.BlockingMs.Median > r.DurableMs.Median {
			t.Errorf("%s: blocking %v <= durable %v <= committed %v does not hold", r.Name, r.BlockingMs.Median, r.DurableMs.Median, r.CommittedMs.Median)
		}
		// Ratios are deterministic (seeded data): smooth doubles shuffled
		// compress, random mantissas without a shuffle do not.
		switch {
		case r.Kind == "heat-f64" && r.Codec == "s2" && *r.Shuffle:
			if r.Ratio.Median < 1.3 || r.Ratio.Median > 2 {
				t.Errorf("%s: ratio %.3f, want about 1.4", r.Name, r.Ratio.Median)
			}
		case r.Kind == "uniform-f64" && !*r.Shuffle:
			if math.Abs(r.Ratio.Median-1) > 0.01 {
				t.Errorf("%s: ratio %.3f, want 1", r.Name, r.Ratio.Median)
			}
		}
		if r.PeakInflightBytes == nil || r.PeakInflightBytes.Median > float64(4*runtime.GOMAXPROCS(0)*(4<<20)) {
			t.Errorf("%s: peak in flight %+v above the writer's default limit", r.Name, r.PeakInflightBytes)
		}
	}
	for _, r := range byWhat["incremental cut"] {
		positive(r, "speedup vs full", r.SpeedupVsFull)
		if r.StoredGBps == nil || r.StoredGBps.Median <= 0 {
			t.Errorf("%s: an incremental cut with changed chunks wrote nothing", r.Name)
		}
	}
	for _, r := range append(byWhat["no cuts"], byWhat["overhead"]...) {
		positive(r, "steps/s", r.StepsPerS)
		positive(r, "rank peak RSS", r.PeakRSSBytes)
	}
	for _, r := range byWhat["overhead"] {
		if r.Cuts != nil && r.Cuts.Median > 0 {
			positive(r, "blocking per cut", r.BlockingMs)
			positive(r, "capture copy", r.CaptureCopyMs)
		}
	}
	if got.Seed == 0 {
		t.Error("no seed recorded")
	}
	for _, r := range byWhat["overhead"] {
		if r.OverheadPct != nil && len(r.Samples) != r.OverheadPct.N {
			t.Errorf("%s: %d samples for %d pairs", r.Name, len(r.Samples), r.OverheadPct.N)
		}
		if r.OverheadPct != nil && r.OverheadPct.N >= 2 && (r.OverheadCI == nil || r.OverheadCI.Low > r.OverheadCI.High) {
			t.Errorf("%s: interval %+v from %d pairs", r.Name, r.OverheadCI, r.OverheadPct.N)
		}
	}
	for _, r := range byWhat["one channel"] {
		if len(r.Samples) != transportSamples || r.VsRawNATSCI == nil {
			t.Errorf("%s: %d samples, interval %+v; want %d and an interval", r.Name, len(r.Samples), r.VsRawNATSCI, transportSamples)
		}
	}
	for _, w := range []string{"scale", "incremental reuse"} {
		if len(byWhat[w]) == 0 {
			t.Errorf("no %q record", w)
		}
	}
	for _, r := range byWhat["scale"] {
		positive(r, "launcher CPU cores", r.LauncherCPUCores)
		positive(r, "steps/s", r.StepsPerS)
	}
	for _, r := range byWhat["incremental reuse"] {
		// A quick run may end before its second cut: no reuse to read.
		if f := r.ReusedFraction; f != nil && (f.Min < 0 || f.Max > 1) {
			t.Errorf("%s: reused fraction %+v outside [0, 1]", r.Name, f)
		}
		if r.Cuts == nil {
			t.Errorf("%s: no cut count", r.Name)
		}
	}
	for _, r := range byWhat["recovery"] {
		positive(r, "recovery s", r.RecoveryS)
		positive(r, "respawn s", r.RespawnS)
		positive(r, "replacement start-up s", r.ReplacementStartS)
		if r.RespawnS != nil && r.RecoveryS != nil && r.RespawnS.Median > r.RecoveryS.Median {
			t.Errorf("%s: the replacement started %.2f s after the kill, after the recovery ended (%.2f s)", r.Name, r.RespawnS.Median, r.RecoveryS.Median)
		}
		if r.RecoveryS != nil && r.RecoveryS.Median > 60 {
			t.Errorf("%s: recovery %.1f s", r.Name, r.RecoveryS.Median)
		}
	}
	if len(got.Goals) == 0 {
		t.Error("no goals evaluated")
	}
	for _, p := range []string{PlotThroughput, PlotBlocking, PlotOverhead, PlotRecovery} {
		if p == PlotOverhead && !anyOverhead {
			continue // no pair to plot (see above)
		}
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Errorf("plot %s: %v", p, err)
			continue
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("plot %s is not a PNG", p)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, TableFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Against the goals", "| heat-f64 |", "recovery s", PlotThroughput} {
		if !bytes.Contains(md, []byte(s)) {
			t.Errorf("results.md has no %q", s)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 2+len(got.Plots) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output folder holds %v: the scratch files were not removed?", names)
	}
}
