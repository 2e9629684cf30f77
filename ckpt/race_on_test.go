//go:build race

package ckpt

// raceEnabled thins the exhaustive tests: the race detector makes each
// iteration ~10x slower and they check single-threaded logic.
const raceEnabled = true
