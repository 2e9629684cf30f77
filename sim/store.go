package sim

import (
	"fmt"
	"slices"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/participant"
)

// shard is what a rank's (fake) shard writer made durable.
type shard struct {
	Rank     int
	Epoch    uint64
	Step     int64
	G        uint64
	State    uint64 // the job's captured buffers
	Meta     []byte
	Channels []participant.ChannelState
	damaged  bool // a restore finds it damaged (fault CutDamage)
}

// store is the shared storage: it survives every process.
type store struct {
	gen       uint64
	record    []byte
	shards    map[string]*shard
	manifests map[uint64]*coordinator.Manifest
	gcd       map[uint64]bool // epochs removed by GC
}

func newStore() *store {
	return &store{shards: map[string]*shard{}, manifests: map[uint64]*coordinator.Manifest{}, gcd: map[uint64]bool{}}
}

// claimGen is the driver's exclusive create of a generation marker.
func (s *store) claimGen() uint64 {
	s.gen++
	return s.gen
}

func (s *store) committed() []coordinator.CommittedCut {
	var out []coordinator.CommittedCut
	for e, m := range s.manifests {
		out = append(out, coordinator.CommittedCut{Epoch: e, Step: m.Step})
	}
	slices.SortFunc(out, func(a, b coordinator.CommittedCut) int { return int(a.Epoch) - int(b.Epoch) })
	return out
}

func (s *store) jobRecord() (*wire.JobRecord, error) {
	if s.record == nil {
		return nil, nil
	}
	rec, err := wire.DecodeJobRecord(s.record)
	if err != nil {
		return nil, fmt.Errorf("job record in the store: %w", err)
	}
	return &rec, nil
}

// gc keeps the newest keep manifests and the pinned ones.
func (s *store) gc(keep int, pins []uint64) {
	cuts := s.committed()
	for i, c := range cuts {
		if i >= len(cuts)-keep || slices.Contains(pins, c.Epoch) {
			continue
		}
		delete(s.manifests, c.Epoch)
		s.gcd[c.Epoch] = true
	}
}

// copyUpTo is a store holding the job record and the cuts up to epoch: a
// job killed whole after that cut, to be restored.
func (s *store) copyUpTo(epoch uint64) *store {
	c := newStore()
	c.gen = s.gen
	c.record = s.record
	c.shards = s.shards // immutable values, shared
	for e, m := range s.manifests {
		if e <= epoch {
			c.manifests[e] = m
		}
	}
	return c
}
