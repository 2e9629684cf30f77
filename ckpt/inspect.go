package ckpt

import (
	"context"
)

// StreamDetail describes one buffer or channel of a shard.
type StreamDetail struct {
	Name     string // buffer name, or "channel from N"
	Len      int64
	ElemSize int
	Messages int // channels only
	Chunks   int
	// NewChunks are stored in the shard's own pack, ReusedChunks in the
	// pack of an older cut.
	NewChunks, ReusedChunks int
	StoredBytes             int64          // stored size of all its chunks
	NewStoredBytes          int64          // of which in the shard's own pack
	Codecs                  map[string]int // chunks per codec
	Filters                 map[string]int // chunks per filter ("shuffle", "delta+shuffle")
}

// DeltaChunks is the number of its chunks stored with the delta+shuffle
// filter; the others have plain shuffle.
func (d StreamDetail) DeltaChunks() int { return d.Filters[filterDelta.String()] }

// Ratio is Len / StoredBytes.
func (d StreamDetail) Ratio() float64 {
	if d.StoredBytes == 0 {
		return 1
	}
	return float64(d.Len) / float64(d.StoredBytes)
}

// RankDetail describes one rank's shard of a cut.
type RankDetail struct {
	Ref       ShardRef
	Packs     []string // store-relative; the first is the shard's own
	MetaBytes int
	Hash      string // chunk hash of its index: "xxh3" or "blake3"
	Buffers   []StreamDetail
	Channels  []StreamDetail
	Err       error // the shard index could not be read (Buffers is then empty)
}

// CutDetail is a committed cut down to its chunks' placement.
type CutDetail struct {
	CutInfo
	Ranks []RankDetail
}

// Inspect describes a committed cut per rank and buffer: sizes, chunks,
// new versus reused, filters, codecs. It reads the manifest and the shard
// indexes, not the chunks; an unreadable shard index is reported in that
// rank's Err.
func (s *Store) Inspect(ctx context.Context, job string, epoch uint64) (*CutDetail, error) {
	cut, err := s.LoadCut(ctx, job, epoch)
	if err != nil {
		return nil, err
	}
	d := &CutDetail{CutInfo: cut.CutInfo}
	for _, ref := range cut.Shards {
		rd := s.InspectShard(ctx, ref)
		if rd.Err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d.Ranks = append(d.Ranks, rd)
	}
	return d, nil
}

// InspectShard describes one shard of this store, as Inspect does each
// rank's (a node-local store, which holds no manifests, is inspected shard
// by shard with the refs of the shared store's manifest); an unreadable
// shard index is reported in Err.
func (s *Store) InspectShard(ctx context.Context, ref ShardRef) RankDetail {
	rd := RankDetail{Ref: ref}
	idx, err := s.readShardIndex(ctx, ref)
	if err != nil {
		rd.Err = err
		return rd
	}
	for _, p := range idx.packs {
		rd.Packs = append(rd.Packs, jobDir(ref.Job)+"/"+p)
	}
	rd.MetaBytes = len(idx.meta)
	rd.Hash = idx.alg.String()
	for _, ls := range idx.streams() {
		sd := StreamDetail{Name: ls.label, Len: ls.s.length, ElemSize: ls.s.elemSize, Chunks: len(ls.s.chunks),
			Codecs: map[string]int{}, Filters: map[string]int{}}
		for _, c := range ls.s.chunks {
			sd.StoredBytes += int64(c.stored)
			sd.Codecs[c.codec.String()]++
			sd.Filters[c.filter.String()]++
			if c.pack == 0 {
				sd.NewChunks++
				sd.NewStoredBytes += int64(c.stored)
			} else {
				sd.ReusedChunks++
			}
		}
		if len(rd.Buffers) < len(idx.buffers) {
			rd.Buffers = append(rd.Buffers, sd)
		} else {
			sd.Messages = len(idx.channels[len(rd.Channels)].lengths)
			rd.Channels = append(rd.Channels, sd)
		}
	}
	return rd
}
