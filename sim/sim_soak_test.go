//go:build soak

package sim

import "testing"

// TestSoak is `make soak`: 100,000 small seeds and 300 large ones.
func TestSoak(t *testing.T) {
	n := uint64(100_000)
	if *seedsFlag > 0 {
		n = uint64(*seedsFlag)
	}
	runSeeds(t, seedRange{*firstFlag, n, Small}, seedRange{*firstFlag, largeSeeds(300), Large})
}
