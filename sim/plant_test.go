//go:build cutpoint_plant

package sim

import (
	"flag"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

var plantFlag = flag.String("plant", "", "TestPlants: only this plant (with -seed: replay that seed with it)")

// TestPlants plants each transport bug of channel.Plant in turn and runs
// the make-test seeds (small profile, 1..2000) until one fails: every plant
// must be caught within that bound, which proves the whole-stack
// simulation sees transport bugs, not only the channel machine's own
// simulation. `make plants` runs it; it needs the cutpoint_plant tag.
func TestPlants(t *testing.T) {
	defer func() { _ = channel.SetPlant(channel.PlantNone) }()
	for p := channel.PlantNone + 1; int(p) < len(channel.PlantNames); p++ {
		if *plantFlag != "" && p.String() != *plantFlag {
			continue
		}
		if err := channel.SetPlant(p); err != nil {
			t.Fatal(err)
		}
		if *seedFlag != 0 {
			_, err := runSeed(*seedFlag, Small, nil)
			t.Logf("plant %s, seed %d: %v", p, *seedFlag, err)
			if err == nil {
				t.Errorf("plant %s: seed %d passes", p, *seedFlag)
			}
			continue
		}
		seed, err := firstFailure(2000)
		if err == nil {
			t.Errorf("plant %s: no seed of 1..2000 fails: the simulation does not catch it", p)
			continue
		}
		first, _, _ := strings.Cut(err.Error(), "\nlast events:")
		if lines := strings.Split(first, "\n"); len(lines) > 1 {
			first = lines[1] // the first violation (line 0 is the configuration)
		}
		t.Logf("plant %s: caught by seed %d: %s\nreplay: go test -tags cutpoint_plant ./sim -run TestPlants -plant=%s -seed=%d -v",
			p, seed, first, p, seed)
	}
}

// firstFailure runs seeds 1..n in parallel batches and returns the lowest
// failing seed of the first batch that has one.
func firstFailure(n uint64) (uint64, error) {
	batch := uint64(4 * runtime.GOMAXPROCS(0))
	for lo := uint64(1); lo <= n; lo += batch {
		errs := make([]error, batch)
		var wg sync.WaitGroup
		sem := make(chan struct{}, runtime.GOMAXPROCS(0))
		for i := range batch {
			if lo+i > n {
				break
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_, errs[i] = runSeed(lo+i, Small, nil)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return lo + uint64(i), err
			}
		}
	}
	return 0, nil
}
