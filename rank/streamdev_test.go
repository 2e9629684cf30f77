package rank_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/heat2d"
	"github.com/cutpoint/cutpoint/kernels"
)

// streamDev is the CPU device behind buffers of its own type, so that the
// runtime treats them as device memory (not *kernels.HostBuffer) and
// restores them through the device's RestoreWriter, as it does the CUDA
// device's; it counts the bytes restored in pieces and as whole buffers.
type streamDev struct {
	*kernels.CPU
	pieces, whole atomic.Int64
}

type streamBuf struct {
	d *streamDev
	h kernels.Buffer
}

func (b *streamBuf) Device() kernels.Device { return b.d }
func (b *streamBuf) Len() int64             { return b.h.Len() }
func (b *streamBuf) ElemSize() int          { return b.h.ElemSize() }
func (b *streamBuf) Close() error           { return b.h.Close() }

// in is the host buffer behind b (nil for another device's buffer, which
// the CPU device then refuses).
func in(b kernels.Buffer) kernels.Buffer {
	if s, ok := b.(*streamBuf); ok {
		return s.h
	}
	return b
}

func (d *streamDev) Name() string { return "stream" }
func (d *streamDev) Alloc(n int64, elem int) (kernels.Buffer, error) {
	h, err := d.CPU.Alloc(n, elem)
	if err != nil {
		return nil, err
	}
	return &streamBuf{d: d, h: h}, nil
}
func (d *streamDev) CopyFromHost(b kernels.Buffer, off int64, src []byte) error {
	return d.CPU.CopyFromHost(in(b), off, src)
}
func (d *streamDev) CopyToHost(dst []byte, b kernels.Buffer, off int64) error {
	return d.CPU.CopyToHost(dst, in(b), off)
}
func (d *streamDev) Capture(b kernels.Buffer, o kernels.CaptureOptions) (kernels.Snapshot, error) {
	s, err := d.CPU.Capture(in(b), o)
	if err != nil {
		return nil, err
	}
	return timedSnap{s}, nil
}

// timedSnap says that its capture held the device's stream for
// streamTime, as a CUDA snapshot measures it with events.
type timedSnap struct{ kernels.Snapshot }

const streamTime = 250 * time.Microsecond

func (timedSnap) StreamTime() (time.Duration, error) { return streamTime, nil }
func (d *streamDev) Reserve(b kernels.Buffer, o kernels.CaptureOptions) error {
	return d.CPU.Reserve(in(b), o)
}
func (d *streamDev) Restore(b kernels.Buffer, src []byte) error {
	d.whole.Add(int64(len(src)))
	return d.CPU.Restore(in(b), src)
}
func (d *streamDev) Hash(b kernels.Buffer, chunk int) (*kernels.ChunkHashes, error) {
	return d.CPU.Hash(in(b), chunk)
}
func (d *streamDev) Heat2DStep(dst, src kernels.Buffer, t kernels.Tile, alpha float64) error {
	return d.CPU.Heat2DStep(in(dst), in(src), t, alpha)
}
func (d *streamDev) ReadEdges(src kernels.Buffer, t kernels.Tile, e kernels.Edges) error {
	return d.CPU.ReadEdges(in(src), t, e)
}
func (d *streamDev) WriteGhosts(dst kernels.Buffer, t kernels.Tile, e kernels.Edges) error {
	return d.CPU.WriteGhosts(in(dst), t, e)
}
func (d *streamDev) RestoreStream(b kernels.Buffer) (kernels.RestoreWriter, error) {
	w, err := d.CPU.RestoreStream(in(b))
	if err != nil {
		return nil, err
	}
	return &countedWriter{RestoreWriter: w, n: &d.pieces}, nil
}

type countedWriter struct {
	kernels.RestoreWriter
	n *atomic.Int64
}

func (w *countedWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.RestoreWriter.WriteAt(p, off)
	w.n.Add(int64(n))
	return n, err
}

// TestDeviceRestoreInPieces: ranks whose state lives on a device that
// takes a restore in pieces (as CUDA does) are restored after crashes
// through the device's writer, never from a whole host copy, and the job
// ends with the digest of an undisturbed run on the CPU.
func TestDeviceRestoreInPieces(t *testing.T) {
	cfg := heat2d.Config{Size: 40, Steps: 8000, Alpha: heat2d.DefaultAlpha}
	plain := runJob(t, cfg, 0, nil)
	dev := &streamDev{CPU: kernels.CPUDevice()}
	hurt := runJobOn(t, dev, cfg, 25, map[int]int64{1: 500, 3: 1000})
	if hurt.code != 0 || hurt.digest != plain.digest {
		t.Fatalf("after crashes: code %d digest %s, undisturbed %s\n%s", hurt.code, hurt.digest, plain.digest, tailLines(hurt.log, 60))
	}
	if !strings.Contains(hurt.log, "recovery-finished") {
		t.Fatalf("no recovery:\n%s", tailLines(hurt.log, 60))
	}
	if dev.pieces.Load() == 0 || dev.whole.Load() != 0 {
		t.Fatalf("restored %d bytes in pieces and %d from whole host copies; want all in pieces", dev.pieces.Load(), dev.whole.Load())
	}
	// Every shard written counts its captures' time on the device's
	// stream (heat2d protects one buffer here: one timed capture each).
	for i, st := range hurt.stats {
		if st.ShardsWritten == 0 || st.StreamCuts < st.ShardsWritten || st.StreamTime != time.Duration(st.StreamCuts)*streamTime {
			t.Errorf("rank process %d: %d shards written, %d timed on the stream for %v in all", i, st.ShardsWritten, st.StreamCuts, st.StreamTime)
		}
	}
}
