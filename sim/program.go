package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Pattern is an application traffic pattern.
type Pattern uint8

const (
	Halo1D      Pattern  = iota + 1 // neighbours r-1, r+1; send both, receive both, compute
	Halo2D                          // px x py grid, 4 neighbours
	AllToAll                        // everyone with everyone (small worlds)
	Pipeline                        // h[k] sent to the right in step k, used in step k+1 (lagged: the C1 pattern)
	Idle                            // a 1-D chain with some ranks that never communicate
	Ring                            // periodic ring with a self-send per step (R9)
	Sparse                          // a random symmetric graph, random messages per step, some lagged
	Misaligned                      // request/response across SafePoints: breaks R7 on purpose (scenarios only)
	numPatterns = Sparse            // patterns the random simulation draws from
)

func (p Pattern) String() string {
	return [...]string{"?", "halo1d", "halo2d", "alltoall", "pipeline", "idle", "ring", "sparse", "misaligned"}[p]
}

// OpKind is one action of the job inside a step.
type OpKind uint8

const (
	OpSend OpKind = iota + 1
	OpRecv
	OpCompute
)

// Op is one action: send Size bytes to Peer, receive from Peer, compute.
type Op struct {
	Kind OpKind
	Peer int
	Size int
}

// Program is a deterministic job: the ops of rank r in step k (1-based;
// SafePoint(k) follows them) over a fixed, symmetric peer set.
type Program struct {
	Pattern Pattern
	N       int
	Steps   int64
	seed    uint64
	peers   [][]int
	idle    []bool
	px, py  int
}

// NewProgram builds the program of pattern for n ranks.
func NewProgram(pattern Pattern, n int, steps int64, seed uint64) *Program {
	p := &Program{Pattern: pattern, N: n, Steps: steps, seed: seed, peers: make([][]int, n), idle: make([]bool, n)}
	add := func(a, b int) {
		if a == b || a < 0 || b < 0 || a >= n || b >= n {
			return
		}
		if _, ok := slices.BinarySearch(p.peers[a], b); !ok {
			p.peers[a] = append(p.peers[a], b)
			slices.Sort(p.peers[a])
			p.peers[b] = append(p.peers[b], a)
			slices.Sort(p.peers[b])
		}
	}
	switch pattern {
	case Halo1D, Pipeline, Misaligned:
		for r := 0; r+1 < n; r++ {
			add(r, r+1)
		}
	case Halo2D:
		p.px = int(math.Sqrt(float64(n)))
		for n%p.px != 0 {
			p.px--
		}
		p.py = n / p.px
		for r := range n {
			x, y := r%p.px, r/p.px
			if x+1 < p.px {
				add(r, r+1)
			}
			if y+1 < p.py {
				add(r, r+p.px)
			}
		}
	case AllToAll:
		for a := range n {
			for b := a + 1; b < n; b++ {
				add(a, b)
			}
		}
	case Idle:
		prev := -1
		for r := range n {
			p.idle[r] = n > 1 && hash3(seed, uint64(r), 7)%3 == 0
			if !p.idle[r] {
				if prev >= 0 {
					add(prev, r)
				}
				prev = r
			}
		}
	case Ring:
		if n > 1 {
			for r := range n {
				add(r, (r+1)%n)
			}
		}
	case Sparse:
		for r := 1; r < n; r++ {
			add(r, int(hash3(seed, uint64(r), 1)%uint64(r))) // a random tree: connected
			if hash3(seed, uint64(r), 2)%2 == 0 {
				add(r, int(hash3(seed, uint64(r), 3)%uint64(n)))
			}
		}
	default:
		panic(fmt.Sprintf("sim: unknown pattern %d", pattern))
	}
	for r := range p.peers {
		if p.peers[r] == nil {
			p.peers[r] = []int{}
		}
	}
	return p
}

// Peers returns rank r's declared peers.
func (p *Program) Peers(r int) []int { return p.peers[r] }

func (p *Program) size(k int64, from, to, i int) int {
	h := hash3(p.seed^uint64(k), uint64(from)<<20|uint64(to), uint64(i))
	switch h % 16 {
	case 0:
		return 8 + int(h>>8%6000) // sometimes over the credit window
	default:
		return 8 + int(h>>8%400)
	}
}

// sparseCount is how many messages from sends to to in step k (0..2).
func (p *Program) sparseCount(k int64, from, to int) int {
	return int(hash3(p.seed^0x55, uint64(k)<<20|uint64(from), uint64(to)) % 3)
}

// sparseLagged: messages on the channel from->to are consumed one step
// after they were sent.
func (p *Program) sparseLagged(from, to int) bool {
	return hash3(p.seed^0x77, uint64(from), uint64(to))%3 == 0
}

// Ops returns the ops of rank r in step k.
func (p *Program) Ops(r int, k int64) []Op {
	var ops []Op
	send := func(to, i int) { ops = append(ops, Op{Kind: OpSend, Peer: to, Size: p.size(k, r, to, i)}) }
	recv := func(from int) { ops = append(ops, Op{Kind: OpRecv, Peer: from}) }
	compute := Op{Kind: OpCompute}
	switch p.Pattern {
	case Halo1D, Halo2D, AllToAll, Idle:
		if p.idle[r] {
			return []Op{compute}
		}
		for _, q := range p.peers[r] {
			send(q, 0)
		}
		for _, q := range p.peers[r] {
			recv(q)
		}
		ops = append(ops, compute)
	case Pipeline:
		if r > 0 && k > 1 {
			recv(r - 1)
		}
		ops = append(ops, compute)
		if r+1 < p.N {
			send(r+1, 0)
		}
	case Ring:
		send(r, 0)
		if p.N > 1 {
			send((r+1)%p.N, 0)
			recv((r - 1 + p.N) % p.N)
		}
		recv(r)
		ops = append(ops, compute)
	case Sparse:
		for _, q := range p.peers[r] {
			for i := range p.sparseCount(k, r, q) {
				send(q, i)
			}
		}
		ops = append(ops, compute)
		for _, q := range p.peers[r] {
			kk := k
			if p.sparseLagged(q, r) {
				kk = k - 1
			}
			if kk >= 1 {
				for range p.sparseCount(kk, q, r) {
					recv(q)
				}
			}
		}
	case Misaligned:
		// Rank 0 asks rank 1 and waits for the answer before its
		// SafePoint; rank 1 answers only after its own SafePoint: a
		// message received before SafePoint(k) sent after the sender's
		// SafePoint(k) (R7). Other ranks idle.
		switch r {
		case 0:
			if p.N > 1 {
				send(1, 0)
				recv(1) // the answer to this request: rank 1 sends it in step k+1
			}
		case 1:
			if k > 1 {
				send(0, 0) // the answer to step k-1's request
			}
			recv(0)
			if k == p.Steps {
				send(0, 1)
			}
		}
		ops = append(ops, compute)
	}
	return ops
}

// Initial is rank r's state before step 1.
func (p *Program) Initial(r int) uint64 { return hash3(p.seed, uint64(r), 0xabc) }

// Payload is the message rank r sends as op i of step k in state st.
func (p *Program) Payload(st uint64, r int, k int64, i int, size int) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint64(b, hash3(st, uint64(r)<<32|uint64(i), uint64(k)))
	for j := 8; j < size; j++ {
		b[j] = byte(j)
	}
	return b
}

// payloadKey is what identifies a payload for the consistency check.
func payloadKey(b []byte) uint64 {
	if len(b) < 8 {
		return uint64(len(b))
	}
	return binary.LittleEndian.Uint64(b) ^ uint64(len(b))<<56
}

// Absorb is the job's state after receiving payload.
func Absorb(st uint64, payload []byte) uint64 { return mix(st ^ payloadKey(payload)) }

// Compute is the job's state after computing in step k.
func Compute(st uint64, k int64) uint64 { return mix(st + uint64(k)) }
