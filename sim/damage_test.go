package sim

import (
	"testing"

	"github.com/cutpoint/cutpoint/coordinator"
)

// TestSimCutDamage damages a rank's shard of the latest committed cut in
// the middle of each job and kills that rank: the restore finds the
// damage, the coordinator marks the cut bad and every rank falls back to
// an older intact cut (or step 0), and the job must still end with the
// reference's state. Then the stopped job's latest cut is damaged and the
// job restored: the restore falls back the same way.
func TestSimCutDamage(t *testing.T) {
	found, damaged, restores := 0, 0, 0
	for seed := uint64(1); seed <= 150; seed++ {
		cfg := ConfigFor(seed, Small)
		cfg.CtlLoss = 0
		span := cfg.Steps * (cfg.ComputeMin + cfg.ComputeMax) / 2
		cfg.Faults = []Fault{{Kind: CutDamage, Trigger: AtTime, Rank: int(seed) % cfg.N, At: span / 2},
			{Kind: CutDamage, Trigger: AtTime, Rank: int(seed+1) % cfg.N, At: span * 3 / 4}}
		w, err := newWorld(cfg, newStore())
		if err != nil {
			t.Fatal(err)
		}
		w.scheduleFaults()
		w.startCoordinator(coordinator.ModeNew)
		w.loop()
		if err := w.verdict(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		found += w.stats.DamageFound
		damaged += w.stats.CutsDamaged
		cuts := w.store.committed()
		if len(cuts) < 2 {
			continue
		}
		// The job is over; damage its latest cut and restore it.
		latest := cuts[len(cuts)-1].Epoch
		man := w.store.manifests[latest]
		sh := w.store.shards[string(man.Shards[int(seed)%cfg.N])]
		if sh.damaged {
			continue
		}
		sh.damaged = true
		st, err := RunRestore(cfg, w.store, latest)
		if err != nil {
			t.Fatalf("seed %d: restore with cut %d damaged: %v", seed, latest, err)
		}
		if st.DamageFound == 0 {
			t.Fatalf("seed %d: the restore of damaged cut %d did not find the damage", seed, latest)
		}
		restores++
	}
	if found == 0 || restores == 0 {
		t.Fatalf("damage found by %d recoveries and %d restores: the test exercised nothing", found, restores)
	}
	t.Logf("%d shards damaged in running jobs, found by %d recoveries; %d restores fell back", damaged, found, restores)
}
