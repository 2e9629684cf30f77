//go:build race

package channel_test

// The machine has no goroutines, so the race detector finds nothing in the
// simulation; it only makes it ten times slower.
func init() { defaultSeeds = 200 }
