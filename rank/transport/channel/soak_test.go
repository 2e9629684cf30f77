//go:build soak

package channel_test

import (
	"flag"
	"testing"
)

var flagFirst = flag.Uint64("first", 2001, "first seed of TestSoakSim")

// TestSoakSim runs the simulation on seeds beyond TestSim's: -seeds (or
// 50,000 by default) starting at -first. make soak runs it.
func TestSoakSim(t *testing.T) {
	n := *flagSeeds
	if n == 0 {
		n = 50000
	}
	for seed := *flagFirst; seed < *flagFirst+uint64(n); seed++ {
		if err := runSim(seed, false, t.Logf); err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./rank/transport/channel -run 'TestSim$' -seed=%d -simtrace -v", seed, err, seed)
		}
	}
}
