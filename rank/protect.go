package rank

import (
	"fmt"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/kernels"
)

// The job's protected state: registered before Start, captured at every
// cut (the shard writer, writer.go, stores it), restored on a rollback
// (restore.go).

type protected struct {
	name     string
	elemSize int
	buf      func(step int64) kernels.Buffer
	// Device chunk hashes, for incremental capture on devices where the
	// copy to the host is the cost (not the CPU): base is the hashes of
	// committed cut baseEpoch; pending those of epochs not yet committed.
	base      *kernels.ChunkHashes
	baseEpoch uint64
	pending   map[uint64]*kernels.ChunkHashes
	// inPlace: the buffer does not fit in Options.MaxStaging beside the
	// buffers protected before it; cuts read it where it lives and hold
	// the job until it has been read (see Rank.hold).
	inPlace bool
}

// Protect registers buf as state: it is captured at every cut and restored
// on a rollback. Call it before Start.
func (r *Rank) Protect(name string, buf kernels.Buffer) error {
	return r.ProtectFunc(name, buf.ElemSize(), func(int64) kernels.Buffer { return buf })
}

// ProtectFunc registers state that lives in a buffer chosen by step, e.g.
// one half of a double buffer: fn(step) names the buffer holding the state
// after step. It is called at capture (with the cut's step) and at restore
// (with the restored step, before the job resumes). Every buffer fn returns
// must have the same length and element size.
func (r *Rank) ProtectFunc(name string, elemSize int, fn func(step int64) kernels.Buffer) error {
	if !kernels.ValidElemSize(elemSize) {
		return fmt.Errorf("rank: protect %q: element size %d (want 1, 2, 4 or 8)", name, elemSize)
	}
	if name == "" || len(name) > 255 {
		return fmt.Errorf("rank: protect: buffer name %q must have 1 to 255 bytes", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return ErrProtectAfterStart
	}
	for _, p := range r.prot {
		if p.name == name {
			return fmt.Errorf("rank: protect %q: name already protected", name)
		}
	}
	p := &protected{name: name, elemSize: elemSize, buf: fn, pending: map[uint64]*kernels.ChunkHashes{}}
	b := fn(0)
	if b.ElemSize() != elemSize {
		return fmt.Errorf("rank: protect %q: buffer element size %d, declared %d", name, b.ElemSize(), elemSize)
	}
	if m := r.o.MaxStaging; m > 0 {
		if _, ok := deviceOf(b).(inPlaceDevice); !ok {
			r.log.Warn("max staging applies to CPU buffers only: this buffer is captured as always", "buffer", name, "device", b.Device().Name())
		} else if r.staged+b.Len() > m {
			p.inPlace = true
			r.log.Info("buffer read in place at cuts: it does not fit in the staging bound, so the job is held at each cut until the writer has read it",
				"buffer", name, "bytes", b.Len(), "staged", r.staged, "max_staging", m)
		} else {
			r.staged += b.Len()
		}
	}
	r.prot = append(r.prot, p)
	if p.inPlace {
		return nil // nothing to reserve: no staging copy is made
	}
	// Staging memory allocated now costs nothing at the first cut.
	if err := deviceOf(b).Reserve(b, r.captureOptions(p)); err != nil {
		r.log.Warn("staging reservation failed; the first cut will allocate", "buffer", name, "err", err)
	}
	return nil
}

func (r *Rank) captureOptions(p *protected) kernels.CaptureOptions {
	opt := kernels.CaptureOptions{ChunkSize: r.store.ChunkSize()}
	if _, cpu := p.buf(0).Device().(*kernels.CPU); !cpu {
		// Devices shuffle before the copy and skip unchanged chunks; on
		// the CPU the writer's cores shuffle and the store deduplicates.
		opt.Shuffle = true
		opt.Incremental = true
		if p.base != nil && p.baseEpoch == r.committed {
			opt.Base = p.base
		}
	}
	return opt
}

// capture snapshots every protected buffer for epoch e at step (r.mu held)
// and starts the epoch's shard writer.
func (r *Rank) capture(e uint64, step int64) *shardWriter {
	t := time.Now()
	snaps := make([]capturedBuffer, 0, len(r.prot))
	// The buffers read in place go first: the writer reads them before
	// the staged copies, so the job's hold (Rank.hold) ends as early as
	// it can.
	order := make([]*protected, 0, len(r.prot))
	for _, inPlace := range []bool{true, false} {
		for _, p := range r.prot {
			if p.inPlace == inPlace {
				order = append(order, p)
			}
		}
	}
	for _, p := range order {
		b := p.buf(step)
		var s kernels.Snapshot
		var ip kernels.InPlaceSnapshot
		var err error
		if d, ok := deviceOf(b).(inPlaceDevice); ok && p.inPlace {
			ip, err = d.CaptureInPlace(b, r.captureOptions(p))
			s = ip
		} else {
			s, err = deviceOf(b).Capture(b, r.captureOptions(p))
		}
		if err != nil {
			for _, c := range snaps {
				c.snap.Release()
			}
			r.log.Error("capture failed", "epoch", e, "buffer", p.name, "err", err)
			r.p.CaptureFailed(e, fmt.Errorf("capture %q: %w", p.name, err))
			return nil
		}
		snaps = append(snaps, capturedBuffer{p: p, snap: s, inPlace: ip})
		r.faults.hit("capture")
	}
	r.stats.Captures++
	r.stats.CaptureTime += time.Since(t)
	for _, c := range snaps {
		if c.inPlace != nil {
			r.stats.InPlaceBytes += c.snap.Len()
		}
	}
	var base *ckpt.BaseRef
	if r.committed > 0 {
		base = &ckpt.BaseRef{Epoch: r.committed}
	}
	w := r.startWriter(ckpt.ShardSpec{
		Job: r.o.Job, Epoch: e, Rank: r.o.Rank, Incarnation: r.p.Incarnation(), Step: step, Base: base,
	}, snaps)
	return w
}
