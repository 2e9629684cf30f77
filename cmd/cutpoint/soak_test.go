//go:build soak

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoakKills is the end-to-end part of `make soak`: round after round
// of the job with SIGKILLs at random protocol points and random steps, each
// ending with the undisturbed digest. CUTPOINT_E2E_ROUNDS sets the number
// of rounds (default 50); CUTPOINT_E2E_SEED replays one sequence.
func TestSoakKills(t *testing.T) {
	rounds := 50
	if s := os.Getenv("CUTPOINT_E2E_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CUTPOINT_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with CUTPOINT_E2E_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	want := reference(t)
	points := []string{"capture", "write", "durable", "reported", "restore"}
	for round := range rounds {
		var faults []string
		armed := map[int]bool{}
		for range 1 + rng.IntN(2) {
			r := rng.IntN(4)
			if armed[r] {
				continue
			}
			armed[r] = true
			faults = append(faults, fmt.Sprintf("%d:%s:%d", r, points[rng.IntN(len(points))], 1+rng.IntN(4)))
		}
		store := filepath.Join(t.TempDir(), "store")
		args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", strconv.Itoa(20 + rng.IntN(200))}, job...)
		for range rng.IntN(3) {
			args = append(args, "--kill", fmt.Sprintf("%d@%d", rng.IntN(4), 50+rng.IntN(5500)))
		}
		r := runCmd(t, cutpoint(t, []string{"CUTPOINT_FAULT=" + strings.Join(faults, ",")}, args...))
		if r.code != 0 {
			t.Fatalf("round %d (faults %v, args %v): exit %d\n%s", round, faults, args, r.code, tail(r.stderr, 80))
		}
		if got := r.digest(t); got != want {
			t.Fatalf("round %d (faults %v, args %v): digest %s, undisturbed %s", round, faults, args, got, want)
		}
		verifyStore(t, store)
		t.Logf("round %d ok: faults %v, %d kills, %d recoveries", round, faults, strings.Count(strings.Join(args, " "), "--kill"),
			strings.Count(r.stderr, "recovery-finished"))
	}
}
