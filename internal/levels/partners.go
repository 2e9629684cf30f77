package levels

import (
	"fmt"
	"slices"
	"time"
)

// Backoff of a host's first-choice partner after a copy there failed: it
// is tried again after PartnerRetry, then after twice as long each time it
// fails again, up to PartnerRetryMax. Each retry of a first choice that is
// still down costs one copy's first request (a host whose ranks are gone:
// at once; a host that does not answer: the rank's probe timeout), so the
// backoff bounds what a dead host costs the job over time, while a host
// that comes back (its ranks respawned there) gets its copies back within
// PartnerRetryMax.
const (
	PartnerRetry    = 30 * time.Second
	PartnerRetryMax = 10 * time.Minute
)

// Partners is the choice of the host that takes the partner copies of one
// rank's shards, a pure machine: the caller passes the time in, copies
// the shard, and says how each try went.
//
// Copies go to the ring's first choice (PartnerOf) while it takes them.
// When a copy fails, the rank tries the next hosts of PartnerOrder and
// stays with the first one that takes it for the copies after (so a dead
// partner costs one failed try, not one per cut); the first choice is
// tried again, first, only once its backoff ran out. Every host tried is
// another host than the writer's, so a copy wherever it went satisfies
// the commit rule (the cut survives the loss of any one host).
type Partners struct {
	order []string
	cur   int // index in order of the host copies go to now
	// retryAt: when the first choice is tried first again (cur != 0);
	// backoff: the wait after its latest failure (0: not failing).
	retryAt time.Time
	backoff time.Duration
	// Retry and RetryMax are the backoff (PartnerRetry, PartnerRetryMax
	// by default).
	Retry, RetryMax time.Duration
}

// NewPartners starts the choice for the ranks of host, on its first
// choice.
func (c Config) NewPartners(host string) (*Partners, error) {
	order, err := c.PartnerOrder(host)
	if err != nil {
		return nil, err
	}
	return &Partners{order: order, Retry: PartnerRetry, RetryMax: PartnerRetryMax}, nil
}

// First is the ring's first choice.
func (p *Partners) First() string { return p.order[0] }

// Current is the host the copies go to now.
func (p *Partners) Current() string { return p.order[p.cur] }

// Candidates lists the hosts to try for the next copy at now, in order:
// the current partner, then the hosts after it in PartnerOrder,
// cyclically; from the first choice instead once its backoff ran out.
func (p *Partners) Candidates(now time.Time) []string {
	start := p.cur
	if start != 0 && !now.Before(p.retryAt) {
		start = 0
	}
	return append(slices.Clone(p.order[start:]), p.order[:start]...)
}

// Failed records that a copy to host failed at now. A failure of the
// first choice starts or doubles its backoff.
func (p *Partners) Failed(host string, now time.Time) {
	if slices.Index(p.order, host) != 0 {
		return
	}
	switch {
	case p.backoff == 0:
		p.backoff = p.Retry
	default:
		p.backoff = min(2*p.backoff, p.RetryMax)
	}
	p.retryAt = now.Add(p.backoff)
}

// Copied records that host took a copy: it is the partner from
// now on. When it differs from the partner before, Copied returns that
// one and changed (the caller logs and counts the change). A copy the
// first choice took ends its backoff.
func (p *Partners) Copied(host string) (from string, changed bool, err error) {
	i := slices.Index(p.order, host)
	if i < 0 {
		return "", false, fmt.Errorf("host %q is not a partner candidate (%v)", host, p.order)
	}
	if i == 0 {
		p.backoff, p.retryAt = 0, time.Time{}
	}
	if i == p.cur {
		return "", false, nil
	}
	from, p.cur = p.order[p.cur], i
	return from, true, nil
}
