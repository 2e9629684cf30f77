package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckResources(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		name           string
		ranks          int
		h              heat2dMem
		res            resources
		warns, refuses []string
	}{
		{"fits", 2, heat2dMem{size: 512}, resources{cores: 2, nproc: 4096, memAvail: 8 * gib}, nil, nil},
		{"oversubscribed", 8, heat2dMem{}, resources{cores: 2}, []string{"--ranks 8 on 2 cores: 4 ranks per core"}, nil},
		{"far oversubscribed", 5000, heat2dMem{}, resources{cores: 2}, nil, []string{"--ranks 5000 on 2 cores: 2500 ranks per core"}},
		{"small jobs never refused for cores", 64, heat2dMem{}, resources{cores: 1}, []string{"64 ranks per core"}, nil},
		{"process limit", 100, heat2dMem{}, resources{cores: 128, nproc: 100}, nil, []string{"RLIMIT_NPROC", "is 100"}},
		{"threads near the process limit", 100, heat2dMem{}, resources{cores: 128, nproc: 500}, []string{"about 800 threads", "is 500"}, nil},
		// 30000+2 squared cells of 8 bytes: 6.7 GiB a rank, 5 times that
		// held (two tiles, the start-up grid, a staging copy, the initial
		// copy).
		{"state beyond memory", 2, heat2dMem{size: 30000}, resources{cores: 8, memAvail: 16 * gib}, nil, []string{"--size 30000", "6.7 GiB of state per rank", "67.1 GiB in all", "16.0 GiB of memory available"}},
		{"state near memory", 1, heat2dMem{size: 30000}, resources{cores: 8, memAvail: 60 * gib}, []string{"33.5 GiB in all"}, nil},
		// A parameter buffer of 6 GiB beside a 2 MiB tile (514^2 x 8):
		// without a bound, twice more of it is held (staging, initial
		// copy); within --max-staging 64MiB only the tile is copied.
		{"parameters", 2, heat2dMem{size: 512, params: 6 * gib}, resources{cores: 8, memAvail: 20 * gib}, nil, []string{"6.0 GiB of state per rank", "36.0 GiB in all"}},
		{"parameters within max staging", 2, heat2dMem{size: 512, params: 6 * gib, maxStaging: 64 << 20}, resources{cores: 8, memAvail: 20 * gib}, []string{"12.0 GiB in all"}, nil},
		{"user executable: no state check", 2, heat2dMem{}, resources{cores: 8, memAvail: 1}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := checkResources(c.ranks, c.h, c.res)
			check := func(what string, got, want []string) {
				all := strings.Join(got, "\n")
				if (len(want) == 0) != (len(got) == 0) {
					t.Fatalf("%s: got %q, want ones naming %q", what, got, want)
				}
				for _, w := range want {
					if !strings.Contains(all, w) {
						t.Fatalf("%s %q do not name %q", what, all, w)
					}
				}
			}
			check("warnings", p.warnings, c.warns)
			check("refusals", p.refusals, c.refuses)
		})
	}
}

// TestRunRefusesWhatCannotFit: a world far beyond any machine's cores is
// refused with exit 2 before anything is created; --force is the way past.
func TestRunRefusesWhatCannotFit(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	_, errOut, code := runCLI(t, "run", "--store", store, "--ranks", "1000000", "--", "true")
	if code != exitUsage || !strings.Contains(errOut, "--ranks 1000000") || !strings.Contains(errOut, "--force") {
		t.Fatalf("exit %d, stderr %q; want exit 2 naming --ranks and --force", code, errOut)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("a refused job created its store: %v", err)
	}
}
