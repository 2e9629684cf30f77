package levels

import (
	"fmt"
	"slices"
	"time"
)

// Fragments is the choice of the K+M hosts that take the erasure
// fragments of one rank's shards (--redundancy rs:K+M), a pure machine:
// the caller passes the time in, writes the fragments, and says how each
// host did.
//
// Fragment i goes to slot i's host. The slots start on the first choices
// (ErasureHosts). When a slot's host does not take its fragment (no rank
// serves its store, none answers a probe, or a write fails), the caller
// gives the slot the next host of Plan's spares, and once every fragment
// is written, Placed makes that the slot's host for the shards after: a
// dead host costs one failed try, not one per cut. A slot whose first
// choice failed gets it back first once its backoff ran out (the host
// came back), as Partners does for a partner.
//
// The invariant the commit rule needs: the K+M hosts of a placement are
// distinct and none is the writer's (every host Plan names comes from
// ErasureOrder, which lists the writer's host never, each other host
// once; Placed refuses a repeated host), so the loss of any M+1 hosts
// leaves the writer's copy or K fragments of every pack.
type Fragments struct {
	order []string // ErasureOrder: slot i's first choice is order[i]
	set   []string // slot i's host now
	// backoff: per host whose fragment failed, when it is tried first
	// again (as a slot's first choice, or before the spares that did not
	// fail) and the wait after its latest failure.
	backoff map[string]hostBackoff
	// Retry and RetryMax are the backoff (PartnerRetry, PartnerRetryMax by
	// default).
	Retry, RetryMax time.Duration
}

type hostBackoff struct {
	retryAt time.Time
	wait    time.Duration
}

// Move is a slot that changed hosts.
type Move struct {
	Slot     int
	From, To string
}

func (m Move) String() string { return fmt.Sprintf("fragment %d: %s to %s", m.Slot, m.From, m.To) }

// NewFragments starts the choice for the ranks of host, on the first
// choices.
func (c Config) NewFragments(host string) (*Fragments, error) {
	first, err := c.ErasureHosts(host)
	if err != nil {
		return nil, err
	}
	order, err := c.ErasureOrder(host)
	if err != nil {
		return nil, err
	}
	return &Fragments{order: order, set: slices.Clone(first), backoff: map[string]hostBackoff{},
		Retry: PartnerRetry, RetryMax: PartnerRetryMax}, nil
}

// First is the first choices, fragment i's host at i.
func (f *Fragments) First() []string { return slices.Clone(f.order[:len(f.set)]) }

// Current is the hosts the fragments went to last, fragment i's at i.
func (f *Fragments) Current() []string { return slices.Clone(f.set) }

func (f *Fragments) failing(host string, now time.Time) bool {
	b, ok := f.backoff[host]
	return ok && now.Before(b.retryAt)
}

// Plan returns the hosts to write the next shard's fragments to at now:
// slots, fragment i's host at i (the current one, or the slot's first
// choice again once its backoff ran out and no other slot holds it; a
// host still failing, one whose fragment failed since the last
// placement, gives its slot to a spare that is not); and spares, the
// hosts to give a slot whose host fails, in order: the other hosts of
// ErasureOrder, those not failing first. slots and spares are distinct
// and never name the writer's host.
func (f *Fragments) Plan(now time.Time) (slots, spares []string) {
	slots = slices.Clone(f.set)
	for i, h := range slots {
		if first := f.order[i]; h != first && !f.failing(first, now) && !slices.Contains(slots, first) {
			slots[i] = first
		}
	}
	rest := func() (ok, failing []string) {
		for _, h := range f.order {
			switch {
			case slices.Contains(slots, h):
			case f.failing(h, now):
				failing = append(failing, h)
			default:
				ok = append(ok, h)
			}
		}
		return ok, failing
	}
	ok, _ := rest()
	for i, h := range slots {
		if f.failing(h, now) && len(ok) > 0 {
			slots[i], ok = ok[0], ok[1:]
		}
	}
	ok, failing := rest()
	return slots, append(ok, failing...)
}

// Failed records that host did not take a fragment at now: its backoff
// starts, or doubles.
func (f *Fragments) Failed(host string, now time.Time) {
	if !slices.Contains(f.order, host) {
		return
	}
	b := f.backoff[host]
	switch {
	case b.wait == 0:
		b.wait = f.Retry
	default:
		b.wait = min(2*b.wait, f.RetryMax)
	}
	b.retryAt = now.Add(b.wait)
	f.backoff[host] = b
}

// Placed records that the shard's fragments were written, fragment i to
// hosts[i]: those are the slots' hosts from now on, and their backoffs
// end. It returns the slots whose host changed (the caller logs and
// counts them). hosts must be K+M distinct hosts of ErasureOrder.
func (f *Fragments) Placed(hosts []string) ([]Move, error) {
	if len(hosts) != len(f.set) {
		return nil, fmt.Errorf("fragments placed on %d hosts, want %d", len(hosts), len(f.set))
	}
	for i, h := range hosts {
		if !slices.Contains(f.order, h) {
			return nil, fmt.Errorf("host %q is not a fragment candidate (%v)", h, f.order)
		}
		if slices.Contains(hosts[:i], h) {
			return nil, fmt.Errorf("host %q holds two fragments (%v): one host's loss would take both", h, hosts)
		}
	}
	var moves []Move
	for i, h := range hosts {
		delete(f.backoff, h)
		if h != f.set[i] {
			moves = append(moves, Move{Slot: i, From: f.set[i], To: h})
			f.set[i] = h
		}
	}
	return moves, nil
}
