package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/channel"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// smallPayload makes the server's max payload 32 KiB, so that messages of
// up to 8x max payload stay cheap under the race detector while every
// message of more than one frame is fragmented for real.
func smallPayload(o *server.Options) { o.MaxPayload = 32 << 10 }

func TestExactlyOnceInOrder(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	w := newWorld(t, srv, 1, worldOpts{n: 4, window: 128 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w.await(ctx, w.stream(ctx, 40, 1))
	s := w.totals()
	if want := uint64(4 * 4 * 40); s.MsgsDelivered != want || s.MsgsSent != want {
		t.Errorf("sent %d, delivered %d messages, want %d", s.MsgsSent, s.MsgsDelivered, want)
	}
	if s.Fragmented == 0 {
		t.Errorf("no message was fragmented: %+v", s)
	}
	t.Logf("totals: %+v", s)
}

func TestServerRestartMidStream(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	w := newWorld(t, srv, 2, worldOpts{n: 3, window: 128 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	senders := w.stream(ctx, 80, 1)
	for _, frac := range []float64{0.25, 0.6} {
		if got := w.waitProgress(ctx, frac); got >= 1 {
			t.Fatalf("stream finished before the restart (%.2f): make it longer", got)
		}
		srv.Restart()
	}
	w.await(ctx, senders)
	s := w.totals()
	if want := uint64(3 * 3 * 80); s.MsgsDelivered != want {
		t.Errorf("delivered %d messages, want %d", s.MsgsDelivered, want)
	}
	for _, r := range w.ranks {
		if st := r.ep.Stats(); st.Disconnects == 0 || st.Reconnects == 0 {
			t.Errorf("rank %d did not see the restarts: %+v", r.id, st)
		}
		if r.eventCount(transport.EventReconnect) == 0 {
			t.Errorf("rank %d got no reconnect event", r.id)
		}
	}
	t.Logf("totals: %+v", s)
}

// slowIncoming sleeps on every frame received while on.
type slowIncoming struct{ on atomic.Bool }

func (s *slowIncoming) Outgoing(_ string, f []byte) [][]byte { return [][]byte{f} }
func (s *slowIncoming) Incoming(string, []byte) bool {
	if s.on.Load() {
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func TestClientSlowConsumer(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	slow := &slowIncoming{}
	slow.on.Store(true)
	w := newWorld(t, srv, 3, worldOpts{n: 3, window: 128 << 10, options: func(r int, o *transport.Options) {
		if r == 0 {
			o.PendingBytesLimit = 64 << 10 // two full frames
			o.Faults = slow
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	senders := w.stream(ctx, 40, 1)
	r0 := w.ranks[0]
	waitFor(ctx, t, "a client-side slow consumer on rank 0", func() bool { return r0.ep.Stats().SlowConsumer > 0 })
	slow.on.Store(false)
	w.await(ctx, senders)
	if r0.eventCount(transport.EventSlowConsumer) == 0 {
		t.Errorf("no slow-consumer event on rank 0")
	}
	s := w.totals()
	if want := uint64(3 * 3 * 40); s.MsgsDelivered != want {
		t.Errorf("delivered %d messages, want %d", s.MsgsDelivered, want)
	}
	if s.Retransmits == 0 {
		t.Errorf("frames were dropped but nothing was retransmitted: %+v", s)
	}
	t.Logf("totals: %+v", s)
}

func TestServerSlowConsumer(t *testing.T) {
	srv := natstest.Run(t, smallPayload, func(o *server.Options) {
		o.MaxPending = 256 << 10
		o.WriteDeadline = 100 * time.Millisecond
	})
	dialer := &natstest.SlowDialer{}
	dialer.SetReadDelay(5 * time.Millisecond)
	w := newWorld(t, srv, 4, worldOpts{n: 3, window: 2 << 20, connOpts: func(r int) []nats.Option {
		if r == 0 {
			return []nats.Option{nats.SetCustomDialer(dialer)}
		}
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	senders := w.stream(ctx, 60, 1)
	r0 := w.ranks[0]
	waitFor(ctx, t, "the server to cut rank 0 off as a slow consumer", func() bool {
		return srv.SlowConsumers() > 0 && r0.ep.Stats().Disconnects > 0
	})
	dialer.SetReadDelay(0)
	w.await(ctx, senders)
	s := w.totals()
	if want := uint64(3 * 3 * 60); s.MsgsDelivered != want {
		t.Errorf("delivered %d messages, want %d", s.MsgsDelivered, want)
	}
	if st := r0.ep.Stats(); st.Reconnects == 0 {
		t.Errorf("rank 0 never reconnected: %+v", st)
	}
	t.Logf("server slow consumers: %d; totals: %+v", srv.SlowConsumers(), s)
}

func TestDropsDuplicatesReordering(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	faults := make([]*chaos, 4)
	w := newWorld(t, srv, 5, worldOpts{n: 4, window: 128 << 10, options: func(r int, o *transport.Options) {
		faults[r] = newChaos(uint64(r)+100, 0.1, 0.1, 0.1)
		o.Faults = faults[r]
		o.AckTimeout = 20 * time.Millisecond
		o.MaxBackoff = 100 * time.Millisecond
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w.await(ctx, w.stream(ctx, 40, 1))
	s := w.totals()
	if want := uint64(4 * 4 * 40); s.MsgsDelivered != want {
		t.Errorf("delivered %d messages, want %d", s.MsgsDelivered, want)
	}
	var dropped, duped, delayed int
	for _, c := range faults {
		c.mu.Lock()
		dropped, duped, delayed = dropped+c.dropped, duped+c.duplicate, delayed+c.delayed
		c.mu.Unlock()
	}
	if dropped == 0 || duped == 0 || delayed == 0 || s.Retransmits == 0 || s.Duplicates == 0 {
		t.Errorf("faults not exercised: dropped %d, duplicated %d, delayed %d; %+v", dropped, duped, delayed, s)
	}
	t.Logf("faults: dropped %d, duplicated %d, delayed %d; totals: %+v", dropped, duped, delayed, s)
}

func TestUnrepairableGapIsReported(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	w := newWorld(t, srv, 6, worldOpts{n: 2, window: 128 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w.await(ctx, w.stream(ctx, 10, 1))
	r0, r1 := w.ranks[0], w.ranks[1]

	// Rank 1 restarts inside incarnation 1 (no Reset: a rank that lost its
	// state without a recovery). What it had received is gone with it.
	r1.ep.Close()
	nr := &tRank{w: w, id: 1}
	nr.expect(0, 1) // any delivery to the new rank 1 is an error
	nr.nc = natstest.Connect(t, srv.URL())
	ep, err := transport.Open(ctx, nr.nc, transport.Options{Job: testJob, Self: 1, Peers: []int{0, 1}, G: 1,
		Window: 128 << 10, AckTimeout: 50 * time.Millisecond}, nr)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	nr.ep = ep

	// Its hello tells rank 0, which holds nothing of the acknowledged
	// fragments any more, that the gap cannot be repaired; rank 0 says so
	// back with a gone frame.
	waitFor(ctx, t, "a gap on rank 0", func() bool { return r0.eventCount(transport.EventGap) >= 1 })
	waitFor(ctx, t, "a gap on the new rank 1", func() bool { return nr.eventCount(transport.EventGap) >= 1 })
	if err := r0.ep.Enqueue(1, []byte("after")); !errors.Is(err, transport.ErrBroken) {
		t.Errorf("Enqueue on a broken channel: %v, want ErrBroken", err)
	}
	if err := r0.ep.Acquire(ctx, 1, 10); !errors.Is(err, transport.ErrBroken) {
		t.Errorf("Acquire on a broken channel: %v, want ErrBroken", err)
	}
	// The other direction: the new rank 1 sends under a new session what
	// rank 0 would take for the continuation of the old stream.
	if err := nr.ep.Enqueue(0, []byte("from the new rank 1")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "a second gap on rank 0", func() bool { return r0.eventCount(transport.EventGap) >= 2 })
	r0.mu.Lock()
	for _, ev := range r0.events {
		if ev.Kind == transport.EventGap && ev.Peer != 1 {
			t.Errorf("gap event names peer %d, want 1: %v", ev.Peer, ev)
		}
	}
	if len(r0.errs) > 0 {
		t.Errorf("rank 0 saw: %q", r0.errs)
	}
	r0.mu.Unlock()
	nr.mu.Lock()
	if len(nr.errs) > 0 || len(nr.next) > 0 {
		t.Errorf("the new rank 1 got deliveries: %v %q", nr.next, nr.errs)
	}
	nr.mu.Unlock()
	if s := r0.ep.Stats(); s.Gaps < 2 {
		t.Errorf("rank 0 counted %d gaps, want 2", s.Gaps)
	}
}

// incHandler checks the incarnation guarantee of Reset (once Reset(g) has
// returned, no Deliver of an older incarnation begins) and the content and
// order of what it gets.
type incHandler struct {
	ep      *transport.Endpoint
	resetTo atomic.Uint64
	mu      sync.Mutex
	got     map[uint64][]int // per incarnation: message indexes, in delivery order
	bad     []string
	stale   int
}

func incMsg(i int) []byte { return makeMsg(9, 0, 1, i, 16+i%3000) }

func (h *incHandler) Deliver(from int, g uint64, msg []byte) {
	if r := h.resetTo.Load(); g < r {
		h.mu.Lock()
		h.bad = append(h.bad, fmt.Sprintf("Deliver of g=%d began after Reset(%d) returned", g, r))
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	i := len(h.got[g])
	if !bytes.Equal(msg, incMsg(i)) {
		h.bad = append(h.bad, fmt.Sprintf("g=%d: delivery %d is not message %d (%d bytes %s)", g, i, i, len(msg), head(msg)))
	}
	h.got[g] = append(h.got[g], i)
	h.ep.Credit(from, len(msg))
}

func (h *incHandler) Event(ev transport.Event) {
	if ev.Kind == transport.EventStale {
		h.mu.Lock()
		h.stale++
		h.mu.Unlock()
	}
}

func (h *incHandler) count(g uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got[g])
}

// sender mimics the rank runtime: Acquire without its lock, then Enqueue
// under it unless a rollback happened meanwhile.
type sender struct {
	mu         sync.Mutex
	rolledBack bool
	done       chan error
}

func startSender(ctx context.Context, ep *transport.Endpoint, n int) *sender {
	s := &sender{done: make(chan error, 1)}
	go func() {
		for i := 0; n < 0 || i < n; i++ {
			m := incMsg(i)
			if err := ep.Acquire(ctx, 1, len(m)); err != nil {
				s.done <- err
				return
			}
			s.mu.Lock()
			if s.rolledBack {
				s.mu.Unlock()
				s.done <- transport.ErrReset
				return
			}
			err := ep.Enqueue(1, m)
			s.mu.Unlock()
			if err != nil {
				s.done <- err
				return
			}
		}
		s.done <- nil
	}()
	return s
}

// rollback resets ep to g under the sender's lock and waits for the
// sender to stop.
func (s *sender) rollback(ctx context.Context, t *testing.T, ep *transport.Endpoint, g uint64) {
	t.Helper()
	s.mu.Lock()
	s.rolledBack = true
	err := ep.Reset(ctx, g)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, transport.ErrReset) {
			t.Fatalf("sender stopped with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("sender did not stop after the rollback")
	}
}

func TestOlderIncarnationNeverDeliveredAfterReset(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hs := make([]*incHandler, 2)
	ncs := make([]*nats.Conn, 2)
	for i := range hs {
		hs[i] = &incHandler{got: map[uint64][]int{}}
		ncs[i] = natstest.Connect(t, srv.URL())
		ep, err := transport.Open(ctx, ncs[i], transport.Options{Job: testJob, Self: i, Peers: []int{0, 1}, G: 1,
			Window: 64 << 10, AckTimeout: 30 * time.Millisecond, MaxBackoff: 60 * time.Millisecond}, hs[i])
		if err != nil {
			t.Fatal(err)
		}
		defer ep.Close()
		hs[i].ep = ep
	}
	e0, e1, h1 := hs[0].ep, hs[1].ep, hs[1]

	// g=1: rank 0 streams without end.
	s := startSender(ctx, e0, -1)
	waitFor(ctx, t, "deliveries in g=1", func() bool { return h1.count(1) >= 50 })

	// Rank 1 rolls back to g=2 while holding the lock its Deliver takes,
	// as the rank runtime may: Reset must not wait for a Deliver blocked
	// on that lock, and no g=1 Deliver may begin after it returns.
	h1.mu.Lock()
	err := e1.Reset(ctx, 2)
	h1.resetTo.Store(2)
	h1.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if e1.G() != 2 {
		t.Fatalf("G() = %d after Reset(2)", e1.G())
	}
	// Rank 0 is still in g=1 and keeps publishing there. A g=1 frame
	// forged onto g=2's subject must be dropped and counted.
	forged := transport.DataFrame(0, 1, 1, transport.Session(e0), 1, 5, 0, []byte("stale"))
	if err := ncs[0].Publish(transport.DataSubject(testJob, 2, 1, 0), forged); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the stale frame to be counted", func() bool { return e1.Stats().StaleDropped >= 1 })
	s.rollback(ctx, t, e0, 2)

	// g=2: a fresh stream, from message 0, exactly once and in order.
	const k = 300
	s = startSender(ctx, e0, k)
	waitFor(ctx, t, "g=2 deliveries", func() bool { return h1.count(2) >= k })
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}

	// A newer incarnation early: rank 0 moves to g=3 and sends while rank
	// 1 is still in g=2. Nothing may be delivered until rank 1 gets there,
	// then everything, once and in order.
	if err := e0.Reset(ctx, 3); err != nil { // its g=2 sender has finished
		t.Fatal(err)
	}
	s = startSender(ctx, e0, k)
	future := transport.DataFrame(0, 1, 3, transport.Session(e0), 1, 6, 0, []byte("future"))
	if err := ncs[0].Publish(transport.DataSubject(testJob, 2, 1, 0), future); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the early frame to be counted", func() bool { return e1.Stats().FutureDropped >= 1 })
	if n := h1.count(3); n != 0 {
		t.Fatalf("%d g=3 messages delivered while rank 1 was in g=2", n)
	}
	h1.mu.Lock()
	err = e1.Reset(ctx, 3)
	h1.resetTo.Store(3)
	h1.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "g=3 deliveries", func() bool { return h1.count(3) >= k })
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	for transport.Unacked(e0) > 0 {
		waitFor(ctx, t, "all acked", func() bool { return transport.Unacked(e0) == 0 })
	}

	h1.mu.Lock()
	defer h1.mu.Unlock()
	for _, b := range h1.bad {
		t.Error(b)
	}
	if n := len(h1.got[2]); n != k {
		t.Errorf("g=2: %d deliveries, want %d", n, k)
	}
	if n := len(h1.got[3]); n != k {
		t.Errorf("g=3: %d deliveries, want %d", n, k)
	}
	if h1.stale == 0 {
		t.Errorf("no stale-incarnation event")
	}
	if err := e1.Reset(ctx, 2); !errors.Is(err, transport.ErrStaleIncarnation) {
		t.Errorf("Reset to an older g: %v, want ErrStaleIncarnation", err)
	}
	t.Logf("rank 1: %+v", e1.Stats())
}

func TestMalformedFramesRejected(t *testing.T) {
	srv := natstest.Run(t, smallPayload)
	w := newWorld(t, srv, 8, worldOpts{n: 2, window: 128 << 10})
	w.allowMalformed = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	senders := w.stream(ctx, 30, 1)
	r1 := w.ranks[1]
	sess := transport.Session(w.ranks[0].ep)
	data := transport.DataSubject(testJob, 1, 1, 0)
	ack := transport.AckSubject(testJob, 1, 1, 0)
	bad := [][]byte{
		nil,
		[]byte("hello"),
		make([]byte, 31),
		make([]byte, 64), // version 0
		transport.DataFrame(7, 1, 1, sess, 1, 3, 0, []byte("abc")),                                                  // undeclared peer
		transport.DataFrame(0, 5, 1, sess, 1, 3, 0, []byte("abc")),                                                  // for another rank
		transport.DataFrame(0, 1, 1, sess, 0, 3, 0, []byte("abc")),                                                  // seq 0
		transport.DataFrame(0, 1, 1, sess, 1, 1<<40, 0, []byte("abc")),                                              // over MaxMessage
		transport.DataFrame(0, 1, 1, sess, 1, 3, 2, []byte("abc")),                                                  // past the message end
		transport.DataFrame(0, 1, 1, 0, 1, 3, 0, []byte("abc")),                                                     // session 0
		transport.AckFrame(0, 1, 1, sess, 0, 0, 0, 0, 0),                                                            // an ack on the data subject
		transport.AckFrame(0, 1, 1, sess, 5, 0, 3, 0, 0),                                                            // gap end before cum
		transport.AckFrame(0, 1, 1, sess, 0, 0, 0, 0, 1<<7),                                                         // unknown flag
		append(transport.AckFrame(0, 1, 1, sess, 0, 0, 0, 0, 0), 0),                                                 // too long
		append([]byte{channel.FrameVersion + 1}, transport.DataFrame(0, 1, 1, sess, 1, 3, 0, []byte("abc"))[1:]...), // a later version
		append([]byte{channel.FrameVersion - 1}, transport.DataFrame(0, 1, 1, sess, 1, 3, 0, []byte("abc"))[1:]...), // an earlier version
	}
	rnd := rand.New(rand.NewPCG(8, 8))
	for i := 0; i < 200; i++ {
		b := make([]byte, rnd.IntN(100))
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		b = append([]byte{channel.FrameVersion, byte(1 + rnd.IntN(4))}, b...) // get past the version check
		bad = append(bad, b)
	}
	pub := natstest.Connect(t, srv.URL())
	for _, b := range bad {
		for _, subj := range []string{data, ack} {
			if err := pub.Publish(subj, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// All but one are rejected: the ack sent to the ack subject is a valid
	// ack of nothing. (Garbage that decodes by chance would be a frame of
	// another incarnation: counted too.)
	want := uint64(2*len(bad) - 1)
	waitFor(ctx, t, "malformed frames to be counted", func() bool {
		s := r1.ep.Stats()
		return s.Malformed+s.StaleDropped+s.FutureDropped >= want
	})
	w.await(ctx, senders)
	if r1.eventCount(transport.EventMalformed) == 0 {
		t.Errorf("no malformed-frame event")
	}
	t.Logf("rank 1: %+v", r1.ep.Stats())
}
