package wire

import (
	"fmt"
	"slices"
)

// KindShardMeta marks an encoded ShardMeta.
const KindShardMeta byte = 0x30

// ShardMeta is the participant's part of a shard: what a restore needs to
// rebuild the channel counters. The runtime stores it with the shard as
// opaque bytes and hands it back on restore, together with the recorded
// channel messages (each one a data frame as it arrived).
type ShardMeta struct {
	Rank  int
	World int
	Epoch uint64
	Step  int64
	G     uint64 // incarnation at capture
	Peers []int  // declared peers, sorted
	// Counts as reported to the coordinator: Out and In have one entry per
	// peer plus the self-channel.
	Counts Counts
}

// EncodeShardMeta returns the bytes of m.
func EncodeShardMeta(m ShardMeta) []byte {
	b := make([]byte, 0, 32+len(m.Peers)*12)
	b = append(b, Version, KindShardMeta)
	b = putRank(b, m.Rank)
	b = putU(b, uint64(m.World))
	b = putU(b, m.Epoch)
	b = putI(b, m.Step)
	b = putU(b, m.G)
	b = putU(b, uint64(len(m.Peers)))
	for _, p := range m.Peers {
		b = putRank(b, p)
	}
	return appendCounts(b, m.Counts)
}

// DecodeShardMeta decodes and checks a ShardMeta: world and ranks in range,
// peers sorted and distinct, and the counts naming exactly the peers and
// the rank itself.
func DecodeShardMeta(b []byte) (ShardMeta, error) {
	kind, r, err := header(b, MaxControlLen)
	if err != nil {
		return ShardMeta{}, err
	}
	if kind != KindShardMeta {
		return ShardMeta{}, fmt.Errorf("wire: shard meta kind 0x%02x: %w", kind, ErrUnknownKind)
	}
	var m ShardMeta
	m.Rank = r.rank("meta.rank")
	w := r.uvarint("meta.world")
	if r.err == nil && (w == 0 || w > MaxWorld) {
		r.fail(ErrMalformed, "meta.world", "world %d out of 1..%d", w, MaxWorld)
	}
	m.World = int(w)
	m.Epoch = r.uvarint("meta.epoch")
	m.Step = r.nonNeg("meta.step")
	m.G = r.uvarint("meta.g")
	n := r.count("meta.peers", MaxWorld-1, 1)
	if n > 0 {
		m.Peers = make([]int, n)
		for i := range m.Peers {
			m.Peers[i] = r.rank("meta.peers")
		}
	}
	m.Counts = readCounts(r)
	if err := r.done(); err != nil {
		return ShardMeta{}, err
	}
	if err := m.check(); err != nil {
		return ShardMeta{}, err
	}
	return m, nil
}

func (m *ShardMeta) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("wire: shard meta: %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
	}
	if m.Rank >= m.World {
		return bad("rank %d >= world %d", m.Rank, m.World)
	}
	if m.Epoch == 0 {
		return bad("epoch 0")
	}
	for i, p := range m.Peers {
		if p >= m.World || p == m.Rank || (i > 0 && p <= m.Peers[i-1]) {
			return bad("peer list not sorted, distinct, in range and without the rank itself at %d", i)
		}
	}
	// The channels are the peers plus the self-channel, in rank order.
	want := slices.Clone(m.Peers)
	want = append(want, m.Rank)
	slices.Sort(want)
	if len(m.Counts.Out) != len(want) || len(m.Counts.In) != len(want) {
		return bad("%d out and %d in counts for %d channels", len(m.Counts.Out), len(m.Counts.In), len(want))
	}
	for i, p := range want {
		if m.Counts.Out[i].To != p || m.Counts.In[i].From != p {
			return bad("counts at %d do not name channel %d", i, p)
		}
		in := m.Counts.In[i]
		if in.First != in.Delivered+1 {
			return bad("channel from %d: recorded range starts at %d, delivered %d", p, in.First, in.Delivered)
		}
	}
	return nil
}
