//go:build !soak

package sim

import "testing"

// TestSim is the simulation `make test` runs: 2,000 small seeds plus a few
// large worlds (up to 1024 ranks).
func TestSim(t *testing.T) {
	n := uint64(2000)
	if *seedsFlag > 0 {
		n = uint64(*seedsFlag)
	}
	runSeeds(t, seedRange{*firstFlag, n, Small}, seedRange{*firstFlag, largeSeeds(6), Large})
}
