package transport_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// recorder collects deliveries and credits only when told to.
type recorder struct {
	mu   sync.Mutex
	msgs map[int][][]byte
	got  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{msgs: map[int][][]byte{}, got: make(chan struct{}, 1024)}
}

func (r *recorder) Deliver(from int, _ uint64, msg []byte) {
	r.mu.Lock()
	r.msgs[from] = append(r.msgs[from], msg)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) Event(transport.Event) {}

func (r *recorder) from(p int) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.msgs[p]...)
}

func openPair(t *testing.T, window int) (e0, e1 *transport.Endpoint, h0, h1 *recorder) {
	t.Helper()
	srv := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h0, h1 = newRecorder(), newRecorder()
	var eps [2]*transport.Endpoint
	for i, h := range []*recorder{h0, h1} {
		ep, err := transport.Open(ctx, natstest.Connect(t, srv.URL()), transport.Options{
			Job: "unit", Self: i, Peers: []int{0, 1}, G: 1, Window: window}, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		eps[i] = ep
	}
	return eps[0], eps[1], h0, h1
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// cancelled is a context that has already ended: Acquire returns its error
// only if it had to wait, so it shows whether there was room.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestAcquireWaitsForCredit(t *testing.T) {
	e0, e1, _, h1 := openPair(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e0.Acquire(cancelled(), 1, 600); err != nil {
		t.Fatalf("Acquire on an empty channel: %v", err)
	}
	if err := e0.Enqueue(1, make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Acquire past the window", e0.Acquire(cancelled(), 1, 600), context.Canceled)
	if err := e0.Acquire(cancelled(), 1, 400); err != nil {
		t.Errorf("Acquire of what still fits: %v", err)
	}
	// Credit from the receiver's upper layer opens the window again.
	<-h1.got
	done := make(chan error, 1)
	go func() { done <- e0.Acquire(ctx, 1, 600) }()
	e1.Credit(0, 600)
	if err := <-done; err != nil {
		t.Errorf("Acquire after Credit: %v", err)
	}
}

func TestOversizedMessageGoesAlone(t *testing.T) {
	e0, e1, _, h1 := openPair(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i)
	}
	if err := e0.Acquire(cancelled(), 1, len(big)); err != nil {
		t.Fatalf("Acquire of a message over the window, channel empty: %v", err)
	}
	if err := e0.Enqueue(1, big); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Acquire behind an oversized message", e0.Acquire(cancelled(), 1, 1), context.Canceled)
	<-h1.got
	if got := h1.from(0); len(got) != 1 || len(got[0]) != 5000 || got[0][4999] != byte(4999%256) {
		t.Fatalf("got %d messages", len(got))
	}
	e1.Credit(0, 5000)
	if err := e0.Acquire(ctx, 1, 1000); err != nil {
		t.Errorf("Acquire after the oversized message was credited: %v", err)
	}
}

func TestSelfChannel(t *testing.T) {
	e0, _, h0, _ := openPair(t, 100)
	for i := 0; i < 10; i++ {
		if err := e0.Acquire(cancelled(), 0, 10); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if err := e0.Enqueue(0, []byte{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9}); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "self Acquire past the window", e0.Acquire(cancelled(), 0, 10), context.Canceled)
	for i := 0; i < 10; i++ {
		<-h0.got
	}
	got := h0.from(0)
	for i, m := range got {
		if m[0] != byte(i) {
			t.Fatalf("self message %d is %d", i, m[0])
		}
	}
	e0.Credit(0, 10)
	if err := e0.Acquire(cancelled(), 0, 10); err != nil {
		t.Errorf("self Acquire after Credit: %v", err)
	}
	if s := e0.Stats(); s.MsgsDelivered != 10 || s.FramesSent != 0 {
		t.Errorf("self messages went to the network or were lost: %+v", s)
	}
}

func TestErrors(t *testing.T) {
	e0, _, _, _ := openPair(t, 1000)
	wantErr(t, "Enqueue to an undeclared peer", e0.Enqueue(5, nil), transport.ErrUnknownPeer)
	wantErr(t, "Acquire to an undeclared peer", e0.Acquire(cancelled(), 5, 1), transport.ErrUnknownPeer)
	wantErr(t, "Acquire over MaxMessage", e0.Acquire(cancelled(), 1, transport.DefaultMaxMessage+1), transport.ErrTooLarge)
	wantErr(t, "Reset backwards", e0.Reset(context.Background(), 0), transport.ErrStaleIncarnation)

	// A Reset wakes a waiting Acquire with ErrReset.
	if err := e0.Enqueue(1, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e0.Acquire(context.Background(), 1, 10) }()
	if err := e0.Reset(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		wantErr(t, "Acquire across Reset", err, transport.ErrReset)
	} // nil: it got in before the Reset; the window is fresh either way
	if err := e0.Acquire(cancelled(), 1, 1000); err != nil {
		t.Errorf("window not full after Reset: %v", err)
	}

	e0.Close()
	wantErr(t, "Enqueue after Close", e0.Enqueue(1, nil), transport.ErrClosed)
	wantErr(t, "Acquire after Close", e0.Acquire(cancelled(), 1, 1), transport.ErrClosed)
	wantErr(t, "Reset after Close", e0.Reset(context.Background(), 3), transport.ErrClosed)
	e0.Credit(1, 10) // no effect, no panic
	if err := e0.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv.URL())
	ok := transport.Options{Job: "j", Self: 0, Peers: []int{1}, G: 1}
	for name, mod := range map[string]func(*transport.Options){
		"empty job":       func(o *transport.Options) { o.Job = "" },
		"job with space":  func(o *transport.Options) { o.Job = "a b" },
		"job too long":    func(o *transport.Options) { o.Job = string(make([]byte, 65)) },
		"g 0":             func(o *transport.Options) { o.G = 0 },
		"negative self":   func(o *transport.Options) { o.Self = -1 },
		"negative peer":   func(o *transport.Options) { o.Peers = []int{-2} },
		"duplicate peer":  func(o *transport.Options) { o.Peers = []int{1, 1} },
		"negative window": func(o *transport.Options) { o.Window = -1 },
		"tiny frame":      func(o *transport.Options) { o.MaxFrame = 10 },
		"huge message":    func(o *transport.Options) { o.MaxMessage = transport.MaxMaxMessage + 1 },
		"backoff < rto":   func(o *transport.Options) { o.AckTimeout, o.MaxBackoff = time.Second, time.Millisecond },
	} {
		o := ok
		mod(&o)
		_, err := transport.Open(context.Background(), nc, o, newRecorder())
		wantErr(t, name, err, transport.ErrInvalidOptions)
	}
	_, err := transport.Open(context.Background(), nc, ok, nil)
	wantErr(t, "nil handler", err, transport.ErrInvalidOptions)
	_, err = transport.Open(context.Background(), nil, ok, newRecorder())
	wantErr(t, "nil conn", err, transport.ErrInvalidOptions)
}

func TestConnectionClosedForGood(t *testing.T) {
	srv := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc := natstest.Connect(t, srv.URL())
	h := &eventRecorder{recorder: newRecorder()}
	ep, err := transport.Open(ctx, nc, transport.Options{Job: "unit", Self: 0, Peers: []int{1}, G: 1, Window: 100}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if err := ep.Enqueue(1, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ep.Acquire(ctx, 1, 100) }() // waits: rank 1 never credits
	nc.Close()
	wantErr(t, "Acquire waiting when the connection closed", <-done, transport.ErrConnClosed)
	wantErr(t, "Enqueue after the connection closed", ep.Enqueue(1, nil), transport.ErrConnClosed)
	if err := ep.Enqueue(0, []byte("self")); err != nil {
		t.Errorf("self-channel after the connection closed: %v", err)
	}
	waitFor(ctx, t, "a disconnect event", func() bool { return h.count(transport.EventDisconnect) > 0 })
}

type eventRecorder struct {
	*recorder
	mu     sync.Mutex
	events []transport.Event
}

func (r *eventRecorder) Event(ev transport.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *eventRecorder) count(k transport.EventKind) int {
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

// ackDropper drops this rank's outgoing acks while on.
type ackDropper struct {
	on      atomic.Bool
	dropped atomic.Int64
}

func (d *ackDropper) Outgoing(subj string, f []byte) [][]byte {
	if d.on.Load() && strings.Contains(subj, ".a.") {
		d.dropped.Add(1)
		return nil
	}
	return [][]byte{f}
}
func (d *ackDropper) Incoming(string, []byte) bool { return true }

// A lost ack that carried credit must not leave a sender waiting forever:
// with nothing in flight to retransmit, it probes.
func TestLostCreditIsProbedFor(t *testing.T) {
	srv := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	drop := &ackDropper{}
	var eps [2]*transport.Endpoint
	var recs [2]*recorder
	for i := range eps {
		recs[i] = newRecorder()
		o := transport.Options{Job: "unit", Self: i, Peers: []int{0, 1}, G: 1, Window: 1000,
			AckTimeout: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
		if i == 1 {
			o.Faults = drop
		}
		ep, err := transport.Open(ctx, natstest.Connect(t, srv.URL()), o, recs[i])
		if err != nil {
			t.Fatal(err)
		}
		defer ep.Close()
		eps[i] = ep
	}
	if err := eps[0].Enqueue(1, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	<-recs[1].got
	waitFor(ctx, t, "the message to be acknowledged", func() bool { return transport.Unacked(eps[0]) == 0 })
	drop.on.Store(true)
	eps[1].Credit(0, 1000) // its ack is dropped
	waitFor(ctx, t, "the credit ack to be dropped", func() bool { return drop.dropped.Load() > 0 })
	drop.on.Store(false)
	if err := eps[0].Acquire(ctx, 1, 1000); err != nil {
		t.Fatalf("Acquire after a lost credit ack: %v", err)
	}
	if p := eps[0].Stats().Probes; p == 0 {
		t.Errorf("credit came back without a probe: %+v", eps[0].Stats())
	}
}
