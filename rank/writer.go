package rank

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/kernels"
	"github.com/cutpoint/cutpoint/rank/participant"
)

type capturedBuffer struct {
	p    *protected
	snap kernels.Snapshot
	// inPlace is snap when it reads the live buffer (Options.MaxStaging):
	// the job must not write the buffer until it is consumed.
	inPlace kernels.InPlaceSnapshot
}

// shardWriter writes one epoch's shard in the background: the captured
// buffers stream into the store at once, the channel state follows when the
// participant seals the epoch (every marker in).
type shardWriter struct {
	epoch  uint64
	owner  *participant.Participant
	seal   chan *participant.Seal
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// consumed is closed once no buffer read in place will be read again
	// (nil when every buffer was copied); it closes at the latest when
	// the writer ends, which releases every snapshot.
	consumed chan struct{}
}

func (w *shardWriter) stop() {
	w.cancel()
	<-w.done
}

// startWriter starts the writer of spec.Epoch (r.mu held).
func (r *Rank) startWriter(spec ckpt.ShardSpec, snaps []capturedBuffer) *shardWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &shardWriter{
		epoch: spec.Epoch, owner: r.p, seal: make(chan *participant.Seal, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	var inPlace []kernels.InPlaceSnapshot
	for _, c := range snaps {
		if c.inPlace != nil {
			inPlace = append(inPlace, c.inPlace)
		}
	}
	if len(inPlace) > 0 {
		w.consumed = make(chan struct{})
		go func() {
			for _, s := range inPlace {
				<-s.Consumed()
			}
			close(w.consumed)
		}()
	}
	r.writers[spec.Epoch] = w
	go r.runWriter(w, spec, snaps)
	return w
}

func (r *Rank) runWriter(w *shardWriter, spec ckpt.ShardSpec, snaps []capturedBuffer) {
	defer close(w.done)
	t := time.Now()
	ref, err := r.writeShard(w, spec, snaps)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writers[w.epoch] == w {
		delete(r.writers, w.epoch)
	}
	if r.p != w.owner || w.ctx.Err() != nil {
		return // rolled back or cancelled: the pack is left to GC
	}
	if err != nil {
		r.log.Error("shard write failed", "epoch", w.epoch, "err", err)
		r.p.ShardFailed(w.epoch, err)
		r.process()
		return
	}
	b, err := ref.MarshalBinary()
	if err != nil {
		r.p.ShardFailed(w.epoch, err)
		r.process()
		return
	}
	r.faults.hit("durable")
	r.stats.ShardsWritten++
	r.stats.ShardBytes += ref.RawBytes
	r.stats.ShardStored += ref.NewBytes
	r.stats.LastShardTime = time.Since(t)
	if err := r.p.ShardDurable(w.epoch, b, uint64(ref.RawBytes), uint64(ref.NewBytes)); err != nil {
		r.log.Debug("shard report refused", "epoch", w.epoch, "err", err)
	}
	r.process()
	if r.faults != nil {
		_ = r.nc.Flush() // let the report leave before the fault point
		r.faults.hit("reported")
	}
}

// testHookInPlace, set by tests only, runs on the writer's goroutine
// before it reads a buffer in place: a test slows the writer with it, to
// hold the job as long as it needs.
var testHookInPlace func(ctx context.Context, rank int, epoch uint64)

// writeShard streams the snapshots into a new shard, waits for the seal,
// adds the channel state and meta and makes the shard durable. Snapshots
// are released whatever happens.
func (r *Rank) writeShard(w *shardWriter, spec ckpt.ShardSpec, snaps []capturedBuffer) (ref ckpt.ShardRef, err error) {
	defer func() {
		for _, c := range snaps {
			c.snap.Release()
		}
	}()
	st := r.store
	if r.lv != nil {
		st, spec = r.lv.local, r.lv.prepare(w.ctx, spec)
	}
	sw, err := st.NewShard(w.ctx, spec)
	if err != nil {
		return ref, err
	}
	defer func() {
		if err != nil {
			sw.Abort()
		}
	}()
	var onStream time.Duration // the captures' time on the job's device stream
	timed := false
	for _, c := range snaps {
		if c.inPlace != nil && testHookInPlace != nil {
			testHookInPlace(w.ctx, r.o.Rank, spec.Epoch)
		}
		if err := sw.AddBuffer(w.ctx, c.p.name, c.snap); err != nil {
			return ref, fmt.Errorf("buffer %q: %w", c.p.name, err)
		}
		r.faults.hit("write")
		if r.captureOptions(c.p).Incremental {
			if h, err := c.snap.Hashes(w.ctx); err == nil {
				r.mu.Lock()
				c.p.pending[spec.Epoch] = h
				r.mu.Unlock()
			}
		}
		if st, ok := c.snap.(kernels.StreamTimed); ok {
			if d, err := st.StreamTime(); err == nil {
				onStream += d
				timed = true
			}
		}
		c.snap.Release()
	}
	snaps = nil
	if timed {
		r.mu.Lock()
		r.stats.StreamCuts++
		r.stats.StreamTime += onStream
		r.mu.Unlock()
	}
	var seal *participant.Seal
	select {
	case seal = <-w.seal:
	case <-w.ctx.Done():
		return ref, w.ctx.Err()
	}
	for _, cs := range seal.Channels {
		if err := sw.AddChannel(w.ctx, ckpt.ChannelState{From: cs.From, FirstSeq: cs.FirstSeq, Messages: cs.Msgs}); err != nil {
			return ref, fmt.Errorf("channel state from %d: %w", cs.From, err)
		}
	}
	if err := sw.SetMeta(seal.Meta); err != nil {
		return ref, err
	}
	if ref, err = sw.Close(w.ctx); err != nil || r.lv == nil {
		return ref, err
	}
	// Persist before report, at every level the commit rule needs.
	c, err := r.lv.protect(w.ctx, ref, r.lv.isFinal(ref.Epoch))
	if err == nil {
		r.lv.flush.reported(ref)
	}
	r.mu.Lock()
	r.stats.PartnerBytes += c.partner
	r.stats.FlushBytes += c.flushed
	if c.fallback {
		r.stats.FallbackBytes += c.flushed
	}
	r.stats.PartnerChanges += int64(c.moved)
	r.stats.FragmentMoves += int64(c.fragMoves)
	r.mu.Unlock()
	return ref, err
}

// sendResult hands the job's result to the coordinator driver, which
// acknowledges it; control messages may be lost, so it retries.
func (r *Rank) sendResult(ctx context.Context, g uint64, result []byte) error {
	msg, err := wire.EncodeResult(wire.Result{Rank: r.o.Rank, G: g, Data: result})
	if err != nil {
		return fmt.Errorf("rank %d: result: %w", r.o.Rank, err)
	}
	if r.o.Keys != nil {
		msg = wire.NewMAC(r.o.Keys.Report).Seal(wire.DomainResult, msg)
	}
	for {
		reply, err := r.nc.RequestWithContext(withTimeout(ctx, 2*time.Second), subjects.Result(r.space()), msg)
		if err == nil && string(reply.Data) == "ok" {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("rank %d: result: %w", r.o.Rank, err)
		}
		r.mu.Lock()
		terr := r.callState()
		r.mu.Unlock()
		if terr != nil {
			return terr
		}
		r.log.Debug("result not acknowledged yet", "err", err)
	}
}

func withTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}
