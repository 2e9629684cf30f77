package ckpt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/datagen"
)

func TestRoundTripCodecs(t *testing.T) {
	for _, codec := range []string{"none", "s2", "s2-better", "zstd-1", "zstd-3", "zstd-9", "zstd-19"} {
		t.Run(codec, func(t *testing.T) {
			opts := testOptions()
			opts.Codec = codec
			s, _ := newMemStore(t, opts)
			if s.Codec() != codec {
				t.Fatalf("Codec() = %s", s.Codec())
			}
			_, ds := writeCut(t, s, "job", 1, 2, 50000, 0)
			checkRestore(t, s, "job", 1, ds)
		})
	}
}

// Sizes around chunk and element boundaries, every element size.
func TestRoundTripSizes(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	sizes := []int{0, 1, 7, 8, 63, 64, 4095, 4096, 4097, 8192, 3*4096 + 5, 100003}
	w, err := s.NewShard(bg, ShardSpec{Job: "sizes", Epoch: 1, Rank: 0, Incarnation: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, n := range sizes {
		for _, es := range []int{1, 2, 4, 8} {
			name := fmt.Sprintf("b%d-s%d", n, es)
			data := datagen.New(datagen.Heat, n, uint64(n*10+es))
			want[name] = data
			if err := w.AddBuffer(bg, name, BytesSource(data, es)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ref, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.OpenShardRef(bg, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, bi := range r.Buffers() {
		got := make([]byte, bi.Len)
		if err := r.ReadBuffer(bg, bi.Name, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[bi.Name]) {
			t.Fatalf("%s differs", bi.Name)
		}
		if wantChunks := int(ceilDiv(bi.Len, testChunk)); bi.Chunks != wantChunks {
			t.Fatalf("%s: %d chunks, want %d", bi.Name, bi.Chunks, wantChunks)
		}
	}
	if len(r.Buffers()) != len(want) {
		t.Fatalf("%d buffers", len(r.Buffers()))
	}
	if err := r.ReadBuffer(bg, "nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadBuffer(nope) = %v", err)
	}
	if err := r.ReadBuffer(bg, "b7-s1", make([]byte, 6)); err == nil {
		t.Fatal("ReadBuffer into a short destination succeeded")
	}
}

func TestRoundTripDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	opts := testOptions()
	s, err := OpenDir(bg, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, ds := writeCut(t, s, "heat", 3, 3, 30000, 0)
	// A second process opening the same directory sees the cut.
	opts.Create = false
	opts.ChunkSize = 0
	s2, err := OpenDir(bg, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.ChunkSize() != testChunk {
		t.Fatalf("reopened chunk size %d", s2.ChunkSize())
	}
	checkRestore(t, s2, "heat", 3, ds)
	cuts, err := s2.List(bg, "heat")
	if err != nil || len(cuts) != 1 || cuts[0].Epoch != 3 || cuts[0].World != 3 || cuts[0].Step != 30 {
		t.Fatalf("List = %+v, %v", cuts, err)
	}
	if cuts[0].Meta["goarch"] != "amd64" || cuts[0].RawBytes == 0 || cuts[0].StoredBytes == 0 || cuts[0].Ratio() < 1 {
		t.Fatalf("cut info %+v", cuts[0])
	}
}

func TestOpenMissingStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	_, err := OpenDir(bg, dir, Options{})
	if !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("OpenDir(missing) = %v, want ErrNoStore naming %s", err, dir)
	}
	empty := t.TempDir()
	_, err = OpenDir(bg, empty, Options{})
	if !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), empty) {
		t.Fatalf("OpenDir(empty dir) = %v", err)
	}
	s, err := OpenDir(bg, empty, Options{Create: true, ChunkSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenDir(bg, empty, Options{ChunkSize: 4096}); err == nil {
		t.Fatal("reopening with another chunk size succeeded")
	}
	for _, bad := range []Options{{ChunkSize: 4100}, {ChunkSize: 1024}, {Codec: "lz4"}, {Codec: "zstd-20"}, {MaxInFlight: 100}, {Workers: -1}} {
		bad.Create = true
		if _, err := OpenDir(bg, t.TempDir(), bad); err == nil {
			t.Errorf("OpenDir with %+v succeeded", bad)
		}
	}
}

func TestShardSpecChecked(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	for _, spec := range []ShardSpec{
		{Job: "", Epoch: 1, Incarnation: 1},
		{Job: "../x", Epoch: 1, Incarnation: 1},
		{Job: "j", Epoch: 0, Incarnation: 1},
		{Job: "j", Epoch: 1, Incarnation: 0},
		{Job: "j", Epoch: 1, Incarnation: 1, Rank: -1},
		{Job: "j", Epoch: 1, Incarnation: 1, Step: -1},
		{Job: "j", Epoch: 2, Incarnation: 1, Base: &BaseRef{Epoch: 2}},
		{Job: "j", Epoch: 2, Incarnation: 1, Base: &BaseRef{Epoch: 1}}, // not committed
	} {
		if _, err := s.NewShard(bg, spec); err == nil {
			t.Errorf("NewShard(%+v) succeeded", spec)
		}
	}
}

func TestWriterRejectsBadInput(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	cases := []struct {
		name string
		fn   func(w *ShardWriter) error
	}{
		{"empty name", func(w *ShardWriter) error { return w.AddBuffer(bg, "", BytesSource(nil, 1)) }},
		{"control char", func(w *ShardWriter) error { return w.AddBuffer(bg, "a\nb", BytesSource(nil, 1)) }},
		{"long name", func(w *ShardWriter) error { return w.AddBuffer(bg, strings.Repeat("x", 257), BytesSource(nil, 1)) }},
		{"elem size 3", func(w *ShardWriter) error { return w.AddBuffer(bg, "a", BytesSource(make([]byte, 9), 3)) }},
		{"duplicate", func(w *ShardWriter) error {
			w.AddBuffer(bg, "a", BytesSource(nil, 1))
			return w.AddBuffer(bg, "a", BytesSource(nil, 1))
		}},
		{"duplicate channel", func(w *ShardWriter) error {
			w.AddChannel(bg, ChannelState{From: 1})
			return w.AddChannel(bg, ChannelState{From: 1})
		}},
		{"meta too big", func(w *ShardWriter) error { return w.SetMeta(make([]byte, MaxMeta+1)) }},
		{"short source", func(w *ShardWriter) error { return w.AddBuffer(bg, "a", &lyingSource{n: 10000, give: 100}) }},
		{"unchanged without base", func(w *ShardWriter) error { return w.AddBuffer(bg, "a", &lyingSource{n: 10000, unchanged: true}) }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := s.NewShard(bg, ShardSpec{Job: "bad", Epoch: uint64(i + 1), Rank: 0, Incarnation: 1})
			if err != nil {
				t.Fatal(err)
			}
			err = c.fn(w)
			if err == nil {
				t.Fatal("no error")
			}
			// Sticky: Close fails too and leaves nothing.
			if _, cerr := w.Close(bg); cerr == nil {
				t.Fatal("Close after an error succeeded")
			}
			w.Abort()
		})
	}
	if files := s.b.(interface{ Files() []string }).Files(); len(files) != 1 {
		t.Fatalf("failed shards left files: %v", files)
	}
}

// lyingSource returns chunks of the wrong length or claims unchanged.
type lyingSource struct {
	n         int64
	give      int
	unchanged bool
	released  atomic.Int64
}

func (s *lyingSource) Len() int64     { return s.n }
func (s *lyingSource) ElemSize() int  { return 1 }
func (s *lyingSource) Shuffled() bool { return false }
func (s *lyingSource) Done(int)       { s.released.Add(1) }
func (s *lyingSource) Chunk(ctx context.Context, i int) ([]byte, bool, error) {
	if s.unchanged {
		return nil, true, nil
	}
	return make([]byte, s.give), false, nil
}

// slowSource hands out chunks with a delay and checks the writer's
// contract: every chunk released exactly once, data untouched until Done.
type slowSource struct {
	data     []byte
	chunk    int
	elem     int
	delay    time.Duration
	mu       sync.Mutex
	out      map[int]bool
	released int
	failAt   int // -1: never
	t        testing.TB
}

func (s *slowSource) Len() int64     { return int64(len(s.data)) }
func (s *slowSource) ElemSize() int  { return s.elem }
func (s *slowSource) Shuffled() bool { return false }
func (s *slowSource) Chunk(ctx context.Context, i int) ([]byte, bool, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	if i == s.failAt {
		return nil, false, errors.New("device lost")
	}
	s.mu.Lock()
	if s.out[i] {
		s.t.Errorf("chunk %d handed out twice", i)
	}
	s.out[i] = true
	s.mu.Unlock()
	start := i * s.chunk
	end := min(start+s.chunk, len(s.data))
	return s.data[start:end:end], false, nil
}
func (s *slowSource) Done(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.out[i] {
		s.t.Errorf("Done(%d) for a chunk not out", i)
	}
	delete(s.out, i)
	s.released++
}

// TestInFlightBounded: whatever the workers and the source do, the
// pipeline never reserves more than MaxInFlight.
func TestInFlightBounded(t *testing.T) {
	opts := testOptions()
	opts.Workers = 4
	opts.MaxInFlight = 5 * testChunk // two slots of 2 chunks
	s, _ := newMemStore(t, opts)
	w, err := s.NewShard(bg, ShardSpec{Job: "mem", Epoch: 1, Incarnation: 1})
	if err != nil {
		t.Fatal(err)
	}
	data := datagen.New(datagen.Heat, 200*testChunk, 1)
	src := &slowSource{data: data, chunk: testChunk, elem: 8, out: map[int]bool{}, failAt: -1, t: t}
	if err := w.AddBuffer(bg, "u", src); err != nil {
		t.Fatal(err)
	}
	ref, err := w.Close(bg)
	if err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.PeakInFlight > opts.MaxInFlight || st.PeakInFlight == 0 {
		t.Fatalf("peak in flight %d, limit %d", st.PeakInFlight, opts.MaxInFlight)
	}
	if src.released != 200 || len(src.out) != 0 {
		t.Fatalf("released %d of 200 chunks, %d still out", src.released, len(src.out))
	}
	if ref.Chunks != 200 || st.Chunks != 200 {
		t.Fatalf("chunks %d / %d", ref.Chunks, st.Chunks)
	}
	r, _ := s.OpenShardRef(bg, ref)
	got := make([]byte, len(data))
	if err := r.ReadBuffer(bg, "u", got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore: %v", err)
	}
}

func TestSourceErrorIsSticky(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	w, _ := s.NewShard(bg, ShardSpec{Job: "e", Epoch: 1, Incarnation: 1})
	src := &slowSource{data: make([]byte, 20*testChunk), chunk: testChunk, elem: 4, out: map[int]bool{}, failAt: 7, t: t}
	err := w.AddBuffer(bg, "u", src)
	if err == nil || !strings.Contains(err.Error(), "device lost") || !strings.Contains(err.Error(), "chunk 7") {
		t.Fatalf("AddBuffer = %v", err)
	}
	if err := w.AddBuffer(bg, "v", BytesSource(nil, 1)); err == nil {
		t.Fatal("AddBuffer after a failure succeeded")
	}
	if _, err := w.Close(bg); err == nil {
		t.Fatal("Close after a failure succeeded")
	}
	if len(src.out) != 0 {
		t.Fatalf("chunks never released: %v", src.out)
	}
	if f := b.Files(); len(f) != 1 {
		t.Fatalf("files left: %v", f)
	}
}

func TestCancelAndAbort(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	t.Run("context", func(t *testing.T) {
		w, _ := s.NewShard(bg, ShardSpec{Job: "c", Epoch: 1, Incarnation: 1})
		ctx, cancel := context.WithCancel(bg)
		src := &slowSource{data: make([]byte, 1000*testChunk), chunk: testChunk, elem: 8, delay: time.Millisecond, out: map[int]bool{}, failAt: -1, t: t}
		time.AfterFunc(20*time.Millisecond, cancel)
		err := w.AddBuffer(ctx, "u", src)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("AddBuffer = %v", err)
		}
		if _, err := w.Close(bg); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close = %v", err)
		}
		if len(src.out) != 0 {
			t.Fatalf("chunks never released: %d", len(src.out))
		}
	})
	t.Run("abort from another goroutine", func(t *testing.T) {
		w, _ := s.NewShard(bg, ShardSpec{Job: "c", Epoch: 2, Incarnation: 1})
		src := &slowSource{data: make([]byte, 1000*testChunk), chunk: testChunk, elem: 8, delay: time.Millisecond, out: map[int]bool{}, failAt: -1, t: t}
		time.AfterFunc(20*time.Millisecond, w.Abort)
		err := w.AddBuffer(bg, "u", src)
		if !errors.Is(err, ErrAborted) {
			t.Fatalf("AddBuffer = %v", err)
		}
		w.Abort()
		if _, err := w.Close(bg); !errors.Is(err, ErrClosed) {
			t.Fatalf("Close after Abort = %v", err)
		}
	})
	t.Run("abort after close", func(t *testing.T) {
		w, _ := s.NewShard(bg, ShardSpec{Job: "c", Epoch: 3, Incarnation: 1})
		w.AddBuffer(bg, "u", BytesSource(make([]byte, 5000), 8))
		ref, err := w.Close(bg)
		if err != nil {
			t.Fatal(err)
		}
		w.Abort()
		if _, err := s.OpenShardRef(bg, ref); err != nil {
			t.Fatalf("Abort after Close removed the shard: %v", err)
		}
	})
	// Nothing but the committed shard and the config is left.
	for _, f := range b.Files() {
		if !strings.Contains(f, "/00000000000000000003/") && f != configName {
			t.Errorf("left behind: %s", f)
		}
	}
}

// TestIncremental: an unchanged buffer costs no new chunks, a partly changed
// one only its changed chunks, both by hash and by the source's word.
func TestIncremental(t *testing.T) {
	for _, h := range []string{"xxh3", "blake3"} {
		t.Run(h, func(t *testing.T) { testIncremental(t, h) })
	}
}

func testIncremental(t *testing.T, hash string) {
	opts := testOptions()
	opts.Hash = hash
	s, _ := newMemStore(t, opts)
	const job = "inc"
	u := datagen.New(datagen.Heat, 40*testChunk, 1)
	v := datagen.New(datagen.Weights, 10*testChunk+100, 2)
	write := func(epoch uint64, base uint64, vsrc Source) ShardRef {
		spec := ShardSpec{Job: job, Epoch: epoch, Incarnation: 1, Step: int64(epoch)}
		if base != 0 {
			spec.Base = &BaseRef{Epoch: base}
		}
		w, err := s.NewShard(bg, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddBuffer(bg, "u", BytesSource(u, 8)); err != nil {
			t.Fatal(err)
		}
		if err := w.AddBuffer(bg, "v", vsrc); err != nil {
			t.Fatal(err)
		}
		ref, err := w.Close(bg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(bg, CutSpec{Job: job, Epoch: epoch, Step: int64(epoch), World: 1, Incarnation: 1, Shards: []ShardRef{ref}}); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	r1 := write(1, 0, BytesSource(v, 4))
	if r1.NewChunks != r1.Chunks || r1.BaseEpoch != 0 {
		t.Fatalf("first cut: %+v", r1)
	}
	// Change one chunk of u.
	u[5*testChunk+17] ^= 0xff
	r2 := write(2, 1, BytesSource(v, 4))
	if r2.NewChunks != 1 || r2.BaseEpoch != 1 {
		t.Fatalf("one changed chunk: %d new of %d", r2.NewChunks, r2.Chunks)
	}
	// The source vouches for every chunk of v: nothing of v is read.
	r3 := write(3, 2, &unchangedSource{n: int64(len(v)), elem: 4})
	if r3.NewChunks != 0 {
		t.Fatalf("nothing changed: %d new chunks", r3.NewChunks)
	}
	for e, want := range map[uint64][]byte{3: u, 2: u} {
		r, err := s.OpenShard(bg, job, e, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if err := r.ReadBuffer(bg, "u", got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("cut %d u: %v", e, err)
		}
		gv := make([]byte, len(v))
		if err := r.ReadBuffer(bg, "v", gv); err != nil || !bytes.Equal(gv, v) {
			t.Fatalf("cut %d v: %v", e, err)
		}
		r.Close()
	}
	d, err := s.Inspect(bg, job, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Ranks[0].Packs) != 3 || d.Ranks[0].Buffers[0].ReusedChunks != 40 || d.Ranks[0].Buffers[1].NewChunks != 0 {
		t.Fatalf("inspect: %+v", d.Ranks[0])
	}
	// An unchanged claim for a buffer the base lacks is an error.
	w, _ := s.NewShard(bg, ShardSpec{Job: job, Epoch: 4, Incarnation: 1, Base: &BaseRef{Epoch: 3}})
	if err := w.AddBuffer(bg, "new", &unchangedSource{n: 100, elem: 1}); err == nil {
		t.Fatal("unchanged chunk of a buffer the base lacks accepted")
	}
	w.Abort()
}

type unchangedSource struct {
	n    int64
	elem int
}

func (s *unchangedSource) Len() int64     { return s.n }
func (s *unchangedSource) ElemSize() int  { return s.elem }
func (s *unchangedSource) Shuffled() bool { return false }
func (s *unchangedSource) Done(int)       {}
func (s *unchangedSource) Chunk(context.Context, int) ([]byte, bool, error) {
	return nil, true, nil
}

// TestPreShuffledSource: a source that shuffles on its own (the GPU path)
// gets plain shuffle, whatever the writer would choose for the same bytes;
// with plain shuffle on both paths it yields the same chunks, hashes and
// restore as the CPU path.
func TestPreShuffledSource(t *testing.T) {
	data := datagen.New(datagen.Heat, 10*testChunk+24, 5)
	for _, policy := range []filterPolicy{filterOnlyShuffle, filterAuto} {
		s, _ := newMemStore(t, testOptions())
		s.filters = policy
		w, _ := s.NewShard(bg, ShardSpec{Job: "gpu", Epoch: 1, Incarnation: 1})
		w.AddBuffer(bg, "cpu", BytesSource(data, 8))
		w.AddBuffer(bg, "gpu", &shuffledSource{data: data, elem: 8})
		ref, err := w.Close(bg)
		if err != nil {
			t.Fatal(err)
		}
		st := w.Stats()
		switch policy {
		case filterOnlyShuffle:
			// Identical filtered chunks are stored once.
			if ref.NewChunks != 11 || ref.Chunks != 22 || st.Delta != 0 {
				t.Fatalf("chunks %d, new %d, delta %d: CPU and GPU paths address chunks differently", ref.Chunks, ref.NewChunks, st.Delta)
			}
		case filterAuto:
			// The heat field takes delta+shuffle on the CPU path, never on
			// the pre-shuffled one.
			if ref.Chunks != 22 || st.Delta == 0 {
				t.Fatalf("chunks %d, delta %d", ref.Chunks, st.Delta)
			}
			x, err := s.readShardIndex(bg, ref)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range x.buffers[1].chunks {
				if c.filter != filterShuffle {
					t.Fatalf("pre-shuffled chunk %d has filter %s", i, c.filter)
				}
			}
		}
		r, _ := s.OpenShardRef(bg, ref)
		for _, name := range []string{"cpu", "gpu"} {
			got := make([]byte, len(data))
			if err := r.ReadBuffer(bg, name, got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("policy %d: restore of buffer %s: %v", policy, name, err)
			}
		}
		r.Close()
	}
}

type shuffledSource struct {
	data []byte
	elem int
}

func (s *shuffledSource) Len() int64     { return int64(len(s.data)) }
func (s *shuffledSource) ElemSize() int  { return s.elem }
func (s *shuffledSource) Shuffled() bool { return true }
func (s *shuffledSource) Done(int)       {}
func (s *shuffledSource) Chunk(_ context.Context, i int) ([]byte, bool, error) {
	start := i * testChunk
	end := min(start+testChunk, len(s.data))
	out := make([]byte, end-start)
	refShuffle(out, s.data[start:end], s.elem)
	return out, false, nil
}

// refShuffle is the byte-at-a-time definition (CONTRACTS §1).
func refShuffle(dst, src []byte, s int) {
	m := len(src) / s
	for p := 0; p < s; p++ {
		for i := 0; i < m; i++ {
			dst[p*m+i] = src[i*s+p]
		}
	}
	copy(dst[m*s:], src[m*s:])
}

func TestConcurrentShards(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	const world = 6
	refs := make([]ShardRef, world)
	ds := make([]rankData, world)
	var wg sync.WaitGroup
	for r := range world {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds[r] = makeRank(9, r, 40000)
			refs[r] = writeShard(t, s, ShardSpec{Job: "par", Epoch: 9, Rank: r, Incarnation: 2, Step: 90}, ds[r])
		}()
	}
	wg.Wait()
	if _, err := s.Commit(bg, CutSpec{Job: "par", Epoch: 9, Step: 90, World: world, Incarnation: 2, Shards: refs}); err != nil {
		t.Fatal(err)
	}
	checkRestore(t, s, "par", 9, ds)
}
