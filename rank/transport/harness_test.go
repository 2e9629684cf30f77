package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// The harness runs N endpoints, each on its own NATS connection to one
// real server, streams generated messages over every channel (self included)
// and checks at each receiver, by content, that message i of channel
// from->to arrives exactly once, in order, with the right bytes.

const testJob = "tj.unit-1" // a '.' to exercise the subject token escape

var pool = func() []byte {
	b := make([]byte, 2<<20)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}()

func mix(seed uint64, from, to, i int) uint64 {
	x := seed ^ uint64(from)<<48 ^ uint64(to)<<32 ^ uint64(i)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// sizeFor draws message sizes from 0 bytes to maxSize, with weight on
// tiny messages and on lengths around multiples of the fragment payload.
func sizeFor(seed uint64, from, to, i, frag, maxSize int) int {
	h := mix(seed^0x5bd1e995, from, to, i)
	var n int
	switch h % 20 {
	case 0:
		n = 0
	case 1, 2, 3, 4:
		n = 1 + int(h>>8)%64
	case 5, 6, 7, 8:
		n = 1 + int(h>>8)%4096
	case 9, 10, 11, 12:
		n = (1+int(h>>8)%8)*frag + int(h>>16)%3 - 1
	default:
		n = int(h>>8) % (maxSize + 1)
	}
	return min(max(n, 0), maxSize)
}

func makeMsg(seed uint64, from, to, i, size int) []byte {
	m := make([]byte, size)
	off := int(mix(seed, from, to, i) % uint64(len(pool)-size))
	copy(m, pool[off:off+size])
	var id [16]byte
	binary.LittleEndian.PutUint32(id[0:], uint32(from))
	binary.LittleEndian.PutUint32(id[4:], uint32(to))
	binary.LittleEndian.PutUint64(id[8:], uint64(i))
	copy(m, id[:])
	return m
}

type tRank struct {
	w  *world
	id int
	nc *nats.Conn
	ep *transport.Endpoint

	mu        sync.Mutex
	g         uint64      // the incarnation deliveries must carry
	next      map[int]int // per sender: index of the next message expected
	want      int         // messages expected per sender
	remaining int
	done      chan struct{}
	noCredit  bool
	errs      []string
	events    []transport.Event
}

func (r *tRank) Deliver(from int, g uint64, msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g != r.g {
		r.errf("delivery of g=%d from %d while expecting g=%d", g, from, r.g)
		return
	}
	i := r.next[from]
	if i >= r.want {
		r.errf("extra message %d from %d (expected %d)", i, from, r.want)
		return
	}
	want := makeMsg(r.w.seed, from, r.id, i, sizeFor(r.w.seed, from, r.id, i, r.w.frag, r.w.maxSize))
	if !bytes.Equal(msg, want) {
		r.errf("message %d from %d: got %d bytes %s, want %d bytes %s", i, from, len(msg), head(msg), len(want), head(want))
	}
	r.next[from] = i + 1
	if !r.noCredit {
		r.ep.Credit(from, len(msg))
	}
	r.remaining--
	if r.remaining == 0 {
		close(r.done)
	}
}

func head(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return fmt.Sprintf("%x", b)
}

func (r *tRank) Event(ev transport.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *tRank) errf(format string, args ...any) {
	if len(r.errs) < 20 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *tRank) eventCount(k transport.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

// expect arms the checker for msgs messages from every peer and self.
func (r *tRank) expect(msgs int, g uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.g = g
	r.want = msgs
	r.next = map[int]int{}
	r.remaining = msgs * len(r.w.peersOf(r.id))
	r.done = make(chan struct{})
	if r.remaining == 0 {
		close(r.done)
	}
}

type world struct {
	t       *testing.T
	srv     *natstest.Server
	seed    uint64
	ranks   []*tRank
	frag    int
	maxSize int
	peersOf func(r int) []int // senders into r, r itself included

	allowMalformed bool
}

type worldOpts struct {
	n        int
	window   int
	options  func(r int, o *transport.Options)
	connOpts func(r int) []nats.Option
	// dial, if set, makes rank r's connection instead of natstest.Connect
	// to srv (a cluster: each rank its own server).
	dial func(r int) *nats.Conn
}

func allPeers(n int) func(int) []int {
	return func(int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		return p
	}
}

func newWorld(t *testing.T, srv *natstest.Server, seed uint64, wo worldOpts) *world {
	t.Helper()
	w := &world{t: t, srv: srv, seed: seed, peersOf: allPeers(wo.n)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < wo.n; i++ {
		var extra []nats.Option
		if wo.connOpts != nil {
			extra = wo.connOpts(i)
		}
		r := &tRank{w: w, id: i, g: 1}
		if wo.dial != nil {
			r.nc = wo.dial(i)
		} else {
			r.nc = natstest.Connect(t, srv.URL(), extra...)
		}
		o := transport.Options{Job: testJob, Self: i, Peers: w.peersOf(i), G: 1, Window: wo.window,
			AckTimeout: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}
		if wo.options != nil {
			wo.options(i, &o)
		}
		r.expect(0, 1)
		ep, err := transport.Open(ctx, r.nc, o, r)
		if err != nil {
			t.Fatalf("rank %d: Open: %v", i, err)
		}
		t.Cleanup(func() { ep.Close() })
		r.ep = ep
		w.ranks = append(w.ranks, r)
	}
	w.frag = w.ranks[0].ep.FragmentSize()
	w.maxSize = 8*int(w.ranks[0].nc.MaxPayload()) + 100
	return w
}

// stream sends msgs messages on every channel, one goroutine per channel,
// each waiting for credit before it enqueues. It returns at once.
func (w *world) stream(ctx context.Context, msgs int, g uint64) *sync.WaitGroup {
	for _, r := range w.ranks {
		r.expect(msgs, g)
	}
	var wg sync.WaitGroup
	for _, r := range w.ranks {
		for _, to := range w.peersOf(r.id) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < msgs; i++ {
					m := makeMsg(w.seed, r.id, to, i, sizeFor(w.seed, r.id, to, i, w.frag, w.maxSize))
					if err := r.ep.Acquire(ctx, to, len(m)); err != nil {
						w.t.Errorf("rank %d: Acquire to %d, message %d: %v", r.id, to, i, err)
						return
					}
					if err := r.ep.Enqueue(to, m); err != nil {
						w.t.Errorf("rank %d: Enqueue to %d, message %d: %v", r.id, to, i, err)
						return
					}
				}
			}()
		}
	}
	return &wg
}

// await waits until every rank received everything, then until nothing is
// unacknowledged anywhere (so no retransmission is still coming), and
// checks what the receivers saw.
func (w *world) await(ctx context.Context, senders *sync.WaitGroup) {
	w.t.Helper()
	for _, r := range w.ranks {
		select {
		case <-r.done:
		case <-ctx.Done():
			w.t.Fatalf("rank %d did not receive everything: %s", r.id, w.report())
		}
	}
	senders.Wait()
	for _, r := range w.ranks {
		for transport.Unacked(r.ep) > 0 {
			select {
			case <-ctx.Done():
				w.t.Fatalf("rank %d still has unacknowledged fragments: %s", r.id, w.report())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	for _, r := range w.ranks {
		r.mu.Lock()
		for _, e := range r.errs {
			w.t.Errorf("rank %d: %s", r.id, e)
		}
		for _, ev := range r.events {
			if ev.Kind == transport.EventGap || (ev.Kind == transport.EventMalformed && !w.allowMalformed) {
				w.t.Errorf("rank %d: unexpected event %v", r.id, ev)
			}
		}
		r.mu.Unlock()
	}
}

func (w *world) report() string {
	var b strings.Builder
	for _, r := range w.ranks {
		r.mu.Lock()
		fmt.Fprintf(&b, "\nrank %d: next=%v remaining=%d unacked=%d errs=%q\n  stats=%+v",
			r.id, r.next, r.remaining, transport.Unacked(r.ep), r.errs, r.ep.Stats())
		r.mu.Unlock()
	}
	return b.String()
}

func (w *world) totals() transport.Stats {
	var s transport.Stats
	for _, r := range w.ranks {
		x := r.ep.Stats()
		s.MsgsSent += x.MsgsSent
		s.MsgsDelivered += x.MsgsDelivered
		s.Fragmented += x.Fragmented
		s.Retransmits += x.Retransmits
		s.Duplicates += x.Duplicates
		s.Timeouts += x.Timeouts
		s.SlowConsumer += x.SlowConsumer
		s.Disconnects += x.Disconnects
		s.Reconnects += x.Reconnects
		s.ReorderDropped += x.ReorderDropped
		s.Gaps += x.Gaps
	}
	return s
}

// chaos drops, duplicates and delays (reorders) frames with the given
// probabilities, acks included.
type chaos struct {
	mu                 sync.Mutex
	rnd                *rand.Rand
	drop, dup, delay   float64
	held               map[string][][]byte
	dropped, duplicate int
	delayed            int
}

func newChaos(seed uint64, drop, dup, delay float64) *chaos {
	return &chaos{rnd: rand.New(rand.NewPCG(seed, 1)), drop: drop, dup: dup, delay: delay, held: map[string][][]byte{}}
}

func (c *chaos) Outgoing(subj string, frame []byte) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	switch r := c.rnd.Float64(); {
	case r < c.drop:
		c.dropped++
	case r < c.drop+c.dup:
		c.duplicate++
		out = append(out, frame, frame)
	case r < c.drop+c.dup+c.delay:
		c.delayed++
		c.held[subj] = append(c.held[subj], bytes.Clone(frame))
	default:
		out = append(out, frame)
	}
	if h := c.held[subj]; len(h) > 0 && c.rnd.Float64() < 0.3 {
		out = append(out, h...)
		delete(c.held, subj)
	}
	return out
}

func (c *chaos) Incoming(string, []byte) bool { return true }

// waitProgress waits until a fraction frac of all expected messages has
// been delivered, and returns the fraction reached.
func (w *world) waitProgress(ctx context.Context, frac float64) float64 {
	w.t.Helper()
	for {
		var want, got int
		for _, r := range w.ranks {
			r.mu.Lock()
			n := r.want * len(w.peersOf(r.id))
			want += n
			got += n - r.remaining
			r.mu.Unlock()
		}
		if want == 0 || float64(got) >= frac*float64(want) {
			return float64(got) / float64(max(want, 1))
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("progress stuck below %.2f: %s", frac, w.report())
		case <-time.After(time.Millisecond):
		}
	}
}

// waitFor polls cond until it holds or ctx ends (then the test fails).
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(2 * time.Millisecond):
		}
	}
}
