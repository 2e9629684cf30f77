package heat2d

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/cutpoint/cutpoint/kernels"
)

// memComm is an in-process Comm: unbounded FIFO queues per ordered pair, no
// cuts. It checks the workload's decomposition and digest, not the runtime.
type memComm struct {
	id, n int
	net   *memNet
}

type memNet struct {
	mu sync.Mutex
	cv *sync.Cond
	q  map[[2]int][][]byte
}

func newMemNet() *memNet {
	m := &memNet{q: map[[2]int][][]byte{}}
	m.cv = sync.NewCond(&m.mu)
	return m
}

func (c *memComm) ID() int    { return c.id }
func (c *memComm) World() int { return c.n }
func (c *memComm) Send(_ context.Context, to int, msg []byte) error {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	k := [2]int{c.id, to}
	c.net.q[k] = append(c.net.q[k], append([]byte(nil), msg...))
	c.net.cv.Broadcast()
	return nil
}
func (c *memComm) Recv(_ context.Context, from int) ([]byte, error) {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	k := [2]int{from, c.id}
	for len(c.net.q[k]) == 0 {
		c.net.cv.Wait()
	}
	m := c.net.q[k][0]
	c.net.q[k] = c.net.q[k][1:]
	return m, nil
}
func (c *memComm) ProtectFunc(string, int, func(int64) kernels.Buffer) error { return nil }
func (c *memComm) Start(context.Context) (int64, error)                      { return 0, nil }
func (c *memComm) SafePoint(_ context.Context, s int64) (int64, error)       { return s, nil }
func (c *memComm) Finish(context.Context, []byte) error                      { return nil }

func runJob(t *testing.T, n int, cfg Config) string {
	t.Helper()
	net := newMemNet()
	digests := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			digests[r], errs[r] = Run(context.Background(), &memComm{id: r, n: n, net: net}, kernels.CPUDevice(), cfg)
		}(r)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for r := 1; r < n; r++ {
		if digests[r] != nil {
			t.Fatalf("rank %d returned a digest", r)
		}
	}
	return Hex(digests[0])
}

// serialDigest steps the whole global grid as one tile with the host
// kernels: the reference the distributed run must match.
func serialDigest(t *testing.T, gx, gy int, cfg Config) string {
	tile := kernels.Tile{NX: gx, NY: gy, GX: gx, GY: gy}
	a := make([]float64, tile.Elems())
	if err := kernels.Heat2DInit(a, tile); err != nil {
		t.Fatal(err)
	}
	b := append([]float64(nil), a...)
	for s := int64(0); s < cfg.Steps; s++ {
		if err := kernels.Heat2DStepSlices(b, a, tile, cfg.Alpha, 1); err != nil {
			t.Fatal(err)
		}
		a, b = b, a
	}
	h := sha256.New()
	raw := kernels.Float64Bytes(a)
	for j := 1; j <= gy; j++ {
		off := 8 * tile.Index(1, j)
		h.Write(raw[off : off+8*gx])
	}
	return Hex(h.Sum(nil))
}

func TestDigestIndependentOfDecomposition(t *testing.T) {
	cfg := Config{Size: 12, Steps: 30, Alpha: DefaultAlpha}
	for _, n := range []int{1, 2, 4, 6, 9} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			px, py := ProcGrid(n)
			got := runJob(t, n, cfg)
			want := serialDigest(t, px*cfg.Size, py*cfg.Size, cfg)
			if got != want {
				t.Fatalf("%d ranks (%dx%d): digest %s, serial %s", n, px, py, got, want)
			}
		})
	}
	// The same global grid cut differently: 4 ranks of 12 == 1 rank of 24.
	if a, b := runJob(t, 4, cfg), runJob(t, 1, Config{Size: 24, Steps: 30, Alpha: DefaultAlpha}); a != b {
		t.Fatalf("4x12 digest %s != 1x24 digest %s", a, b)
	}
}

func TestDigestChangesWithSteps(t *testing.T) {
	a := runJob(t, 4, Config{Size: 8, Steps: 10, Alpha: DefaultAlpha})
	b := runJob(t, 4, Config{Size: 8, Steps: 11, Alpha: DefaultAlpha})
	if a == b {
		t.Fatal("digest did not change with one more step")
	}
}

func TestGatherManyBlocks(t *testing.T) {
	// 140 rows of 8 KiB with a 1 MiB block: several blocks per tile.
	cfg := Config{Size: 1024, Steps: 1, Alpha: DefaultAlpha}
	if testing.Short() {
		t.Skip("large tile")
	}
	got := runJob(t, 2, cfg)
	want := serialDigest(t, 2*1024, 1024, cfg)
	if got != want {
		t.Fatalf("digest %s, serial %s", got, want)
	}
}

func TestProcGridAndPeers(t *testing.T) {
	for n, want := range map[int][2]int{1: {1, 1}, 2: {2, 1}, 4: {2, 2}, 6: {3, 2}, 7: {7, 1}, 8: {4, 2}, 16: {4, 4}} {
		px, py := ProcGrid(n)
		if px != want[0] || py != want[1] {
			t.Errorf("ProcGrid(%d) = %dx%d, want %dx%d", n, px, py, want[0], want[1])
		}
	}
	// Peer sets must be symmetric: channels exist in both directions.
	for _, n := range []int{1, 2, 4, 6, 9, 12} {
		peers := map[[2]int]bool{}
		for r := 0; r < n; r++ {
			for _, p := range NewLayout(r, n, 4).Peers() {
				peers[[2]int{r, p}] = true
			}
		}
		for k := range peers {
			if !peers[[2]int{k[1], k[0]}] {
				t.Errorf("n=%d: %d declares %d but not the reverse", n, k[0], k[1])
			}
		}
	}
	if err := (Config{Size: 0, Steps: 1, Alpha: 0.2}).Validate(); err == nil {
		t.Error("size 0 accepted")
	}
	if err := (Config{Size: 4, Steps: 1, Alpha: 0.3}).Validate(); err == nil {
		t.Error("unstable alpha accepted")
	}
}

// frozenComm records the "w" buffer at every SafePoint.
type frozenComm struct {
	*memComm
	w    func(int64) kernels.Buffer
	seen map[int64][]byte
}

func (c *frozenComm) ProtectFunc(name string, _ int, f func(int64) kernels.Buffer) error {
	if name == "w" {
		c.w = f
	}
	return nil
}

func (c *frozenComm) SafePoint(_ context.Context, s int64) (int64, error) {
	if c.w != nil {
		b := c.w(s)
		out := make([]byte, b.Len())
		if err := kernels.CPUDevice().CopyToHost(out, b, 0); err != nil {
			return s, err
		}
		c.seen[s] = out
	}
	return s, nil
}

// With --frozen, the parameter buffer's head stays as written and its
// tail is a function of the step alone (what a restore at that step
// holds), and the heat field's digest is the one without it.
func TestFrozenParameters(t *testing.T) {
	cfg := Config{Size: 64, Steps: 5, Alpha: DefaultAlpha, Frozen: 0.75}
	c := &frozenComm{memComm: &memComm{id: 0, n: 1, net: newMemNet()}, seen: map[int64][]byte{}}
	d, err := Run(context.Background(), c, kernels.CPUDevice(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain := cfg
	plain.Frozen = 0
	if Hex(d) != runJob(t, 1, plain) {
		t.Fatal("the parameter buffer changed the heat field's digest")
	}
	first, last := c.seen[1], c.seen[cfg.Steps]
	if first == nil || last == nil {
		t.Fatalf("the parameter buffer was not protected (seen %d SafePoints)", len(c.seen))
	}
	n := len(last) / 8 * 8
	head := int(float64(n/8)*cfg.Frozen) * 8
	if string(first[:head]) != string(last[:head]) {
		t.Fatal("the frozen head changed between steps")
	}
	if string(first[head:]) == string(last[head:]) {
		t.Fatal("the trainable tail did not change")
	}
	checkParams(t, last, head, cfg.Steps)
	if err := (Config{Size: 8, Alpha: DefaultAlpha, Frozen: 1}).Validate(); err == nil {
		t.Fatal("--frozen 1 passed Validate")
	}
	if err := (Config{Size: 8, Alpha: DefaultAlpha, ParamsBytes: 1 << 20}).Validate(); err == nil {
		t.Fatal("--params-size without --frozen passed Validate")
	}
}

// checkParams compares a parameter buffer at step with what it must hold:
// the xorshift head, then the tail of step.
func checkParams(t *testing.T, got []byte, head int, step int64) {
	t.Helper()
	want := make([]float64, len(got)/8)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range head / 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		want[i] = float64(x>>11) / (1 << 53)
	}
	for i := head / 8; i < len(want); i++ {
		want[i] = float64(step)*1e-3 + float64(i-head/8)*1e-9
	}
	if string(kernels.Float64Bytes(want[:head/8])) != string(got[:head]) {
		t.Fatal("the frozen head is not the xorshift sequence")
	}
	if string(kernels.Float64Bytes(want[head/8:])) != string(got[head:]) {
		t.Fatalf("the tail at step %d is not a function of the step alone", step)
	}
}

// --params-size sets the parameter buffer's size apart from the tile's;
// the head and the tail are written through a block of host memory, and
// a buffer of several blocks holds what one written at once would.
func TestParamsSize(t *testing.T) {
	n := int64(3*paramsBlock*8 + 44) // rounded down to whole float64s
	cfg := Config{Size: 16, Steps: 3, Alpha: DefaultAlpha, Frozen: 0.6, ParamsBytes: n}
	c := &frozenComm{memComm: &memComm{id: 0, n: 1, net: newMemNet()}, seen: map[int64][]byte{}}
	if _, err := Run(context.Background(), c, kernels.CPUDevice(), cfg); err != nil {
		t.Fatal(err)
	}
	last := c.seen[cfg.Steps]
	if int64(len(last)) != n/8*8 {
		t.Fatalf("parameter buffer of %d bytes, want %d", len(last), n/8*8)
	}
	checkParams(t, last, int(float64(n/8)*cfg.Frozen)*8, cfg.Steps)
}
