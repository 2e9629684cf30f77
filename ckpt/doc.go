// Package ckpt is cutpoint's storage engine: the format and the code that
// writes, commits, reads, verifies and garbage-collects consistent cuts.
//
// A store holds jobs; a job holds committed cuts (epochs). Each rank writes
// its shard of a cut into one new pack file: content-addressed chunks
// (byte-shuffled by element size, or delta+shuffled where a sample shows
// it compresses better, hashed with the store's chunk hash, XXH3-128 or
// BLAKE3-256, compressed with s2 or zstd), then a pack index, then the shard index that lists the
// rank's buffers, channel states and metadata. The coordinator commits the
// cut by writing its manifest last (temporary file, fsync, rename, fsync
// of the directory): the rename is the commit. Readers go the other way,
// manifest to shard index to chunks, and check every hash on every read.
// docs/format.md specifies the bytes.
//
// Rank side:
//
//	w, err := store.NewShard(ctx, ckpt.ShardSpec{Job: "heat", Epoch: e, Rank: r, Incarnation: g, Step: s, Base: &ckpt.BaseRef{Epoch: prev}})
//	err = w.AddBuffer(ctx, "u", ckpt.BytesSource(u, 8))
//	err = w.AddChannel(ctx, ckpt.ChannelState{From: 2, FirstSeq: 17, Messages: msgs})
//	err = w.SetMeta(participantState)
//	ref, err := w.Close(ctx) // durable; send ref.MarshalBinary() to the coordinator
//
// Coordinator side, holding the job's lease (one owner at a time, also
// across hosts; ErrLeaseHeld names a live owner):
//
//	l, err := store.AcquireLease(ctx, "heat", ckpt.LeaseOptions{TTL: 15 * time.Second, Owner: ckpt.LeaseOwner{Role: "coordinator"}})
//	err = l.Renew(ctx)       // every TTL/3; ErrLeaseLost: stop writing
//	err = l.Check()          // before every write
//	info, err := store.Commit(ctx, ckpt.CutSpec{Job: "heat", Epoch: e, Step: s, World: n, Incarnation: g, Shards: refs})
//	err = store.RecordAbort(ctx, "heat", e, 0, l) // an aborted epoch's packs are garbage
//	cuts, err := store.List(ctx, "heat")
//	rep, err := store.GC(ctx, "heat", ckpt.GCOptions{Keep: 2, Pin: []uint64{base}, Lease: l})
//	err = l.Release(ctx)     // on a clean end
//
// Store tools take the lease of a stopped job the same way (GCOptions.Stopped,
// RemoveJob).
//
// Restore:
//
//	r, err := store.OpenShard(ctx, "heat", e, rank)
//	err = r.ReadBuffer(ctx, "u", u)
//	chans, err := r.Channels(ctx)
//
// The package knows nothing about NATS, ranks or the protocol; the
// Backend interface (package backend) is all it needs from storage.
package ckpt

import "github.com/cutpoint/cutpoint/ckpt/backend"

// Backend is the storage interface of a store; see package backend for the
// contract and its implementations (local, mem, fault).
type Backend = backend.Backend
