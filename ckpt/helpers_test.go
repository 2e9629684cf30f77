package ckpt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
	"github.com/cutpoint/cutpoint/internal/datagen"
)

var bg = context.Background()

// testChunk is the chunk size of most tests: small, so that small buffers
// have many chunks.
const testChunk = 4096

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions() Options {
	return Options{ChunkSize: testChunk, Create: true, Logger: quietLogger(), Workers: 3}
}

func newMemStore(t testing.TB, opts Options) (*Store, *mem.Backend) {
	t.Helper()
	b := mem.New()
	s, err := Open(bg, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b
}

func newStoreOn(t testing.TB, b backend.Backend, opts Options) *Store {
	t.Helper()
	s, err := Open(bg, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rankData is what a test rank protects: named buffers with element sizes.
type rankData struct {
	names []string
	elems []int
	data  [][]byte
	chans []ChannelState
	meta  []byte
}

// makeRank builds deterministic rank state for (epoch seed, rank): a heat
// field, weights, an odd-sized byte buffer and one channel.
func makeRank(seed uint64, rank int, size int) rankData {
	s := seed*1000 + uint64(rank)
	return rankData{
		names: []string{"u", "w", "misc"},
		elems: []int{8, 4, 1},
		data: [][]byte{
			datagen.New(datagen.Heat, size, s),
			datagen.New(datagen.Weights, size/2+3, s),
			datagen.New(datagen.Uniform, size/3+1, s),
		},
		chans: []ChannelState{{From: (rank + 1) % 4, FirstSeq: s, Messages: [][]byte{[]byte("halo-1"), {}, bytes.Repeat([]byte{byte(rank)}, 5000)}}},
		meta:  []byte(fmt.Sprintf("participant state of rank %d at seed %d", rank, seed)),
	}
}

func writeShard(t testing.TB, s *Store, spec ShardSpec, d rankData) ShardRef {
	t.Helper()
	w, err := s.NewShard(bg, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range d.names {
		if err := w.AddBuffer(bg, n, BytesSource(d.data[i], d.elems[i])); err != nil {
			t.Fatalf("AddBuffer(%s): %v", n, err)
		}
	}
	for _, c := range d.chans {
		if err := w.AddChannel(bg, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.SetMeta(d.meta); err != nil {
		t.Fatal(err)
	}
	ref, err := w.Close(bg)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	return ref
}

// writeCut writes and commits a cut of world ranks with makeRank data.
func writeCut(t testing.TB, s *Store, job string, epoch uint64, world int, size int, base uint64) (CutInfo, []rankData) {
	t.Helper()
	var refs []ShardRef
	var ds []rankData
	for r := 0; r < world; r++ {
		d := makeRank(epoch, r, size)
		spec := ShardSpec{Job: job, Epoch: epoch, Rank: r, Incarnation: 1, Step: int64(epoch * 10)}
		if base != 0 {
			spec.Base = &BaseRef{Epoch: base}
		}
		refs = append(refs, writeShard(t, s, spec, d))
		ds = append(ds, d)
	}
	info, err := s.Commit(bg, CutSpec{Job: job, Epoch: epoch, Step: int64(epoch * 10), World: world, Incarnation: 1, Shards: refs,
		Meta: map[string]string{"goarch": "amd64"}})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return info, ds
}

// checkRestore reads every rank of a cut and compares with the data.
func checkRestore(t testing.TB, s *Store, job string, epoch uint64, ds []rankData) {
	t.Helper()
	for r, d := range ds {
		sr, err := s.OpenShard(bg, job, epoch, r)
		if err != nil {
			t.Fatalf("OpenShard(%d, %d): %v", epoch, r, err)
		}
		bufs := sr.Buffers()
		if len(bufs) != len(d.names) {
			t.Fatalf("rank %d: %d buffers, want %d", r, len(bufs), len(d.names))
		}
		for i, n := range d.names {
			if bufs[i].Name != n || bufs[i].Len != int64(len(d.data[i])) || bufs[i].ElemSize != d.elems[i] {
				t.Fatalf("rank %d buffer %d: %+v", r, i, bufs[i])
			}
			got := make([]byte, len(d.data[i]))
			if err := sr.ReadBuffer(bg, n, got); err != nil {
				t.Fatalf("ReadBuffer(%s): %v", n, err)
			}
			if !bytes.Equal(got, d.data[i]) {
				t.Fatalf("cut %d rank %d buffer %s: restored bytes differ", epoch, r, n)
			}
			// The same bytes through a writer, chunk by chunk (how a
			// device buffer is restored).
			to := sliceWriterAt(make([]byte, len(d.data[i])))
			if err := sr.ReadBufferTo(bg, n, to); err != nil {
				t.Fatalf("ReadBufferTo(%s): %v", n, err)
			}
			if !bytes.Equal(to, d.data[i]) {
				t.Fatalf("cut %d rank %d buffer %s: bytes restored through a writer differ", epoch, r, n)
			}
		}
		chans, err := sr.Channels(bg)
		if err != nil {
			t.Fatal(err)
		}
		if len(chans) != len(d.chans) {
			t.Fatalf("channels: %d, want %d", len(chans), len(d.chans))
		}
		for i, c := range d.chans {
			g := chans[i]
			if g.From != c.From || g.FirstSeq != c.FirstSeq || len(g.Messages) != len(c.Messages) {
				t.Fatalf("channel %d: %+v", i, g)
			}
			for j := range c.Messages {
				if !bytes.Equal(g.Messages[j], c.Messages[j]) {
					t.Fatalf("channel %d message %d differs", i, j)
				}
			}
		}
		if !bytes.Equal(sr.Meta(), d.meta) {
			t.Fatalf("meta %q, want %q", sr.Meta(), d.meta)
		}
		sr.Close()
	}
}

// sliceWriterAt is a byte slice as an io.WriterAt (writes at distinct
// offsets may run at once).
type sliceWriterAt []byte

func (b sliceWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) || int64(len(p)) > int64(len(b))-off {
		return 0, fmt.Errorf("write of %d bytes at %d outside %d", len(p), off, len(b))
	}
	return copy(b[off:], p), nil
}
