package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// TestMaxStagingSurvivesKills: with --max-staging below a rank's state the
// cuts read the buffers in place and hold the ranks; a rank SIGKILLed in
// the middle of such a write (held, or released a moment before: the
// fault point follows the last chunk handed to the writer) and another killed at a
// step are recovered, and the job ends with the undisturbed digest. The
// bound also comes from the environment (CUTPOINT_MAX_STAGING, the
// configuration key), in a unit the ranks read.
func TestMaxStagingSurvivesKills(t *testing.T) {
	want := reference(t)
	for _, c := range []struct {
		name string
		flag []string
		env  []string
	}{
		{"flag", []string{"--max-staging", "1KiB"}, nil},
		{"env", nil, []string{"CUTPOINT_MAX_STAGING=1KiB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			store, stats := filepath.Join(dir, "store"), filepath.Join(dir, "stats")
			args := append(append([]string{"run", "--store", store, "--stats-dir", stats, "--interval", "0", "--every-steps", "60",
				"--kill", "2@3500"}, c.flag...), job...)
			r := runOK(t, append([]string{"CUTPOINT_FAULT=1:write:2"}, c.env...), args...)
			if got := r.digest(t); got != want {
				t.Fatalf("digest %s, undisturbed %s\n%s", got, want, tail(r.stderr, 40))
			}
			for _, w := range []string{"buffer read in place at cuts", "[rank 1] fault injection: SIGKILL at write", "recovery-finished"} {
				if !strings.Contains(r.stderr, w) {
					t.Fatalf("no %q in the log\n%s", w, tail(r.stderr, 60))
				}
			}
			_, ranks, err := jobstats.ReadDir(stats)
			if err != nil {
				t.Fatal(err)
			}
			holds := 0
			for _, f := range ranks {
				if f.Holds > 0 && (f.HoldNs <= 0 || f.InPlaceBytes <= 0) {
					t.Fatalf("rank %d spawn %d: %d holds, %d ns, %d bytes in place", f.Rank, f.Spawn, f.Holds, f.HoldNs, f.InPlaceBytes)
				}
				holds += f.Holds
			}
			if holds == 0 {
				t.Fatal("no rank's stats file counts a hold")
			}
			if len(committed(t, store, "heat2d")) == 0 {
				t.Fatal("no cut committed")
			}
			verifyStore(t, store)
		})
	}
}
