package sim

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cutpoint/cutpoint/coordinator"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "run only this seed (reproduce a failure)")
	traceFlag = flag.Bool("simtrace", false, "with -seed: print every trace line")
	largeFlag = flag.Bool("large", false, "with -seed: the seed is of the large profile")
	seedsFlag = flag.Int("seeds", 0, "number of small-profile seeds (default: 2000, or 100000 with -tags soak)")
	largeN    = flag.Int("large-seeds", -1, "number of large-profile seeds (default: 6, or 300 with -tags soak)")
	firstFlag = flag.Uint64("first", 1, "first seed")
)

func reproduce(seed uint64, profile Profile) string {
	large := ""
	if profile == Large {
		large = " -large"
	}
	return fmt.Sprintf("go test ./sim -run 'TestSim|TestSoak' -count=1 -v -seed=%d%s", seed, large)
}

// runSeed runs one seed, then a restore of the job from one of the cuts it
// committed (a job killed whole and restored must reach the same result).
func runSeed(seed uint64, profile Profile, sink func(string)) (Stats, error) {
	cfg := ConfigFor(seed, profile)
	w, err := newWorld(cfg, newStore())
	if err != nil {
		return Stats{}, err
	}
	w.eng.sink = sink
	w.scheduleFaults()
	w.startCoordinator(coordinator.ModeNew)
	w.loop()
	if err := w.verdict(); err != nil {
		return w.stats, err
	}
	if len(w.stats.Committed) > 0 {
		pick := w.stats.Committed[int(seed)%len(w.stats.Committed)]
		if _, err := RunRestore(cfg, w.store, pick); err != nil {
			return w.stats, fmt.Errorf("restore from cut %d: %w", pick, err)
		}
	}
	return w.stats, nil
}

func largeSeeds(def uint64) uint64 {
	if *largeN >= 0 {
		return uint64(*largeN)
	}
	return def
}

type seedRange struct {
	first, n uint64
	profile  Profile
}

func runSeeds(t *testing.T, ranges ...seedRange) {
	if *seedFlag != 0 {
		p := Small
		if *largeFlag {
			p = Large
		}
		var sink func(string)
		if *traceFlag {
			sink = func(s string) { fmt.Println(s) }
		}
		st, err := runSeed(*seedFlag, p, sink)
		if err != nil {
			t.Fatalf("seed %d: %v\nreproduce: %s", *seedFlag, err, reproduce(*seedFlag, p))
		}
		t.Logf("seed %d: %+v", *seedFlag, st)
		return
	}
	type job struct {
		seed    uint64
		profile Profile
	}
	jobs := make(chan job)
	var failed atomic.Int32
	var mu sync.Mutex
	var total Stats
	total.AbortReasons = map[string]int{}
	total.RankAborts = map[string]int{}
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				st, err := runSeed(j.seed, j.profile, nil)
				if err != nil {
					if failed.Add(1) <= 3 {
						t.Errorf("seed %d: %v\nreproduce: %s", j.seed, err, reproduce(j.seed, j.profile))
					}
					continue
				}
				mu.Lock()
				total.Commits += st.Commits
				total.Aborts += st.Aborts
				total.Recoveries += st.Recoveries
				total.CoordCrashes += st.CoordCrashes
				total.RankCrashes += st.RankCrashes
				total.CtlLost += st.CtlLost
				total.CutsDamaged += st.CutsDamaged
				total.DamageFound += st.DamageFound
				total.Events += st.Events
				for k, v := range st.AbortReasons {
					total.AbortReasons[k] += v
				}
				for k, v := range st.RankAborts {
					total.RankAborts[k] += v
				}
				mu.Unlock()
			}
		}()
	}
	n := 0
	for _, r := range ranges {
		for s := r.first; s < r.first+r.n && failed.Load() < 3; s++ {
			jobs <- job{s, r.profile}
			n++
		}
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d seeds: %d commits, %d aborts %v (ranks' own: %v), %d recoveries, %d rank crashes, %d coordinator crashes, %d control messages lost, %d shards damaged (%d found by a restore), %d events",
		n, total.Commits, total.Aborts, total.AbortReasons, total.RankAborts, total.Recoveries, total.RankCrashes, total.CoordCrashes, total.CtlLost, total.CutsDamaged, total.DamageFound, total.Events)
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d seeds failed", f)
	}
}
