package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelFor calls fn on disjoint ranges [lo, hi) covering [0, n), from up
// to workers goroutines (<= 0: GOMAXPROCS). Ranges hold grain units (the
// last may hold fewer) and are handed out dynamically, so a core slowed by a
// neighbour does not hold the others up. The calling goroutine takes part.
// Results must not depend on which goroutine ran which range; every kernel
// here writes disjoint outputs, so none does.
func parallelFor(n, workers, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	grain = max(grain, 1)
	tasks := (n + grain - 1) / grain
	workers = min(workers, tasks)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var next atomic.Int64
	run := func() {
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			lo := t * grain
			fn(lo, min(lo+grain, n))
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
}

// parallelCopy copies src into dst (equal lengths) on up to workers
// goroutines. Below a few megabytes one goroutine is as fast.
func parallelCopy(dst, src []byte, workers int) {
	const grain = 1 << 20
	if len(src) < 4*grain {
		copy(dst, src)
		return
	}
	parallelFor(len(src), workers, grain, func(lo, hi int) {
		copy(dst[lo:hi], src[lo:hi])
	})
}
