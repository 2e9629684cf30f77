package sim

import (
	"fmt"
	"testing"

	"github.com/cutpoint/cutpoint/coordinator"
)

// TestSimWholeWorld runs small-profile seeds (their faults included) with
// the coordinator in WholeWorld mode, as for an MPI world: every recovery
// respawns every rank from the cut, none is rolled back in place, and the
// job must still reach the reference result (and a restore from one of its
// cuts too). The patterns exchange messages, so the respawned ranks also
// take the cut's channel state; MPI codes declare no channels, a special
// case.
func TestSimWholeWorld(t *testing.T) {
	n := uint64(200)
	if testing.Short() {
		n = 40
	}
	recoveries := 0
	for seed := uint64(1); seed <= n; seed++ {
		cfg := ConfigFor(seed, Small)
		cfg.WholeWorld = true
		w, err := newWorld(cfg, newStore())
		if err != nil {
			t.Fatal(err)
		}
		w.scheduleFaults()
		w.startCoordinator(coordinator.ModeNew)
		w.loop()
		err = w.verdict()
		if err == nil && len(w.stats.Committed) > 0 {
			pick := w.stats.Committed[int(seed)%len(w.stats.Committed)]
			if _, rerr := RunRestore(cfg, w.store, pick); rerr != nil {
				err = fmt.Errorf("restore from cut %d: %w", pick, rerr)
			}
		}
		if err != nil {
			t.Fatalf("seed %d (WholeWorld): %v", seed, err)
		}
		recoveries += w.stats.Recoveries
	}
	t.Logf("%d seeds, %d whole-world recoveries", n, recoveries)
	if recoveries == 0 {
		t.Fatal("no seed recovered: the WholeWorld path was not exercised")
	}
}
