// Package datagen generates the benchmark and test data of the checkpoint
// engine, deterministically from a seed and at any size: a smooth float64
// heat field, uniform random float64, and float32 weights drawn from
// N(0, 0.02). The same (kind, size, seed) gives the same bytes on every
// machine and with any number of cores: every block of output is computed
// from the seed and its own position only.
package datagen
