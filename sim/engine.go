package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strings"
)

// event is one scheduled action; ties at the same instant run in the order
// they were scheduled, which keeps a run a function of its seed.
type event struct {
	at  int64
	seq uint64
	fn  func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*q = old[:len(old)-1]
	return e
}

type engine struct {
	now    int64
	seq    uint64
	q      eventQueue
	rng    *rand.Rand
	steps  uint64
	trace  []string // ring of the last trace lines, for failure reports
	tpos   int
	traceN int
	sink   func(string) // every trace line, when set (single-seed runs)
}

func newEngine(seed uint64) *engine {
	return &engine{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), trace: make([]string, 400)}
}

func (e *engine) at(t int64, fn func()) {
	if t < e.now {
		t = e.now
	}
	e.seq++
	heap.Push(&e.q, event{at: t, seq: e.seq, fn: fn})
}

func (e *engine) after(d int64, fn func()) { e.at(e.now+d, fn) }

// run executes events until stop returns true, the queue empties or the
// clock passes deadline.
func (e *engine) run(deadline int64, stop func() bool) {
	for len(e.q) > 0 && !stop() {
		ev := heap.Pop(&e.q).(event)
		if ev.at > deadline {
			e.now = deadline
			return
		}
		e.now = ev.at
		e.steps++
		ev.fn()
	}
}

// between returns a uniform value in [lo, hi].
func (e *engine) between(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return lo + e.rng.Int64N(hi-lo+1)
}

func (e *engine) chance(p float64) bool { return p > 0 && e.rng.Float64() < p }

func (e *engine) tracef(format string, args ...any) {
	e.trace[e.tpos] = fmt.Sprintf("%9.3fms ", float64(e.now)/1e6) + fmt.Sprintf(format, args...)
	if e.sink != nil {
		e.sink(e.trace[e.tpos])
	}
	e.tpos = (e.tpos + 1) % len(e.trace)
	e.traceN++
}

func (e *engine) lastTrace(n int) string {
	var b strings.Builder
	if n > len(e.trace) {
		n = len(e.trace)
	}
	if n > e.traceN {
		n = e.traceN
	}
	for i := n; i > 0; i-- {
		b.WriteString(e.trace[(e.tpos-i+len(e.trace))%len(e.trace)])
		b.WriteByte('\n')
	}
	return b.String()
}

// mix is splitmix64's finalizer: the job's deterministic "computation".
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hash3(a, b, c uint64) uint64 { return mix(mix(mix(a)^b) ^ c) }
