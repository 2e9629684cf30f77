package rank

import "context"

// SetInPlaceHook makes every shard writer call f before it reads a buffer
// in place (Options.MaxStaging); the returned function removes it. For
// tests only: not safe while ranks run.
func SetInPlaceHook(f func(ctx context.Context, rank int, epoch uint64)) (restore func()) {
	testHookInPlace = f
	return func() { testHookInPlace = nil }
}
