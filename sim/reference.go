package sim

import (
	"fmt"
	"slices"
)

// Reference is the ground truth: the job executed without any protocol,
// with unbounded queues, round robin. A deterministic job gives the same
// states and messages in any correct execution, so the simulation checks
// every cut and every step against it.
type Reference struct {
	prog *Program
	// State[r][k]: rank r's state after k steps.
	State [][]uint64
	// chans: index of channel (from, to), self-channels included.
	chans map[[2]int]int
	// SentAt[c][k] and RecvAt[c][k]: messages sent / received on channel c
	// by the end of step k of the sender / receiver.
	SentAt [][]uint64
	RecvAt [][]uint64
	// Keys[c][s-1]: payload key of message s on channel c.
	Keys [][]uint64
}

// NewReference runs prog to the end.
func NewReference(prog *Program) (*Reference, error) {
	n, T := prog.N, prog.Steps
	ref := &Reference{prog: prog, State: make([][]uint64, n), chans: map[[2]int]int{}}
	for r := range n {
		for _, q := range append(slices.Clone(prog.Peers(r)), r) {
			ref.chans[[2]int{r, q}] = len(ref.SentAt)
			ref.SentAt = append(ref.SentAt, make([]uint64, T+1))
			ref.RecvAt = append(ref.RecvAt, make([]uint64, T+1))
			ref.Keys = append(ref.Keys, nil)
		}
	}
	type runner struct {
		st   uint64
		k    int64 // step in progress (1-based); T+1 when done
		pc   int
		ops  []Op
		recv map[int]uint64 // cumulative receptions per channel index
	}
	queues := make([][][]byte, len(ref.SentAt))
	rs := make([]runner, n)
	for r := range rs {
		rs[r] = runner{st: prog.Initial(r), k: 1, ops: prog.Ops(r, 1), recv: map[int]uint64{}}
		ref.State[r] = make([]uint64, T+1)
		ref.State[r][0] = rs[r].st
	}
	done := 0
	for done < n {
		progress := false
		for r := range rs {
			x := &rs[r]
			for x.k <= T {
				if x.pc == len(x.ops) {
					ref.State[r][x.k] = x.st
					for _, q := range append(slices.Clone(prog.Peers(r)), r) {
						c := ref.chans[[2]int{r, q}]
						ref.SentAt[c][x.k] = uint64(len(ref.Keys[c]))
						c2 := ref.chans[[2]int{q, r}]
						ref.RecvAt[c2][x.k] = x.recv[c2]
					}
					x.k++
					x.pc = 0
					if x.k <= T {
						x.ops = prog.Ops(r, x.k)
					} else {
						done++
					}
					progress = true
					continue
				}
				op := x.ops[x.pc]
				switch op.Kind {
				case OpSend:
					c := ref.chans[[2]int{r, op.Peer}]
					b := prog.Payload(x.st, r, x.k, x.pc, op.Size)
					queues[c] = append(queues[c], b)
					ref.Keys[c] = append(ref.Keys[c], payloadKey(b))
				case OpRecv:
					c := ref.chans[[2]int{op.Peer, r}]
					if len(queues[c]) == 0 {
						goto blocked
					}
					x.st = Absorb(x.st, queues[c][0])
					queues[c] = queues[c][1:]
					x.recv[c]++
				case OpCompute:
					x.st = Compute(x.st, x.k)
				}
				x.pc++
				progress = true
			}
		blocked:
		}
		if !progress {
			return nil, fmt.Errorf("sim: the %s program deadlocks without any protocol", prog.Pattern)
		}
	}
	return ref, nil
}

// Chan returns the index of channel from->to.
func (ref *Reference) Chan(from, to int) (int, bool) {
	c, ok := ref.chans[[2]int{from, to}]
	return c, ok
}
