// Package fault wraps a checkpoint-store backend and injects failures, for
// tests: a disk that fills up after N bytes, and failures of chosen
// operations on chosen files.
package fault
