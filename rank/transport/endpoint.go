package transport

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// Endpoint is one rank's end of its channels: a sender for each channel
// Self->peer and a receiver for each peer->Self, plus the in-memory
// self-channel. Its methods are safe for concurrent use. It drives a
// channel.Machine (see the package documentation for who decides what).
//
// Goroutines: a writer (ticks the machine's clock, executes its Readys
// with channel.Execute through ports, then publishes their frames), a
// deliverer (calls the Handler), a watcher of the connection's status, and
// one watcher per subscription for slow-consumer reports. Frames are
// handed to the machine on the NATS client's subscription goroutines,
// which only take the endpoint's mutex briefly and never call the Handler.
type Endpoint struct {
	nc          *nats.Conn
	cfg         config
	h           Handler
	log         *slog.Logger
	job         string // subject token of the job
	fragPayload int    // payload bytes per data frame
	pendBytes   int    // pending-bytes limit of the data subscription
	t0          time.Time

	resetMu sync.Mutex // serializes Reset and Close

	mu       sync.Mutex
	m        *channel.Machine
	subjG    uint64             // the incarnation of subjs
	subjs    map[subjKey]string // publish subjects, by kind and peer
	epoch    uint64             // bumped by Reset, so that Acquire and the deliverer notice one
	closed   bool
	connGone bool          // the connection is closed for good
	wait     chan struct{} // closed (and cleared) when Acquire should look again
	ackArmed bool          // ackTimer runs for a delayed ack
	dq       []upcall      // for the deliverer
	dqEvents int
	dataSub  *nats.Subscription
	ackSub   *nats.Subscription

	wkick    chan struct{}
	dkick    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	ackTimer *time.Timer
	statusCh chan nats.Status

	// st holds the driver's own counters (its channel.Stats stays zero:
	// Stats reads the machine's).
	st Stats

	auth *frameAuth // nil: Options.Keys unset
}

type subjKey struct {
	sub channel.Sub
	to  int
}

type upcall struct {
	from  int
	g     uint64
	msg   []byte
	ev    *Event
	epoch uint64 // of a delivery: e.epoch when it was queued
}

// Open starts an endpoint on nc in incarnation o.G: it subscribes to this
// rank's data and ack subjects, sets the data subscription's pending limits,
// and Flushes so that the server has registered the subscriptions before it
// returns (ctx bounds the Flush; without a deadline DefaultFlushTimeout
// applies). Then it greets every peer so that frames they sent before this
// rank subscribed are retransmitted at once. nc stays the caller's: Close
// does not close it. The endpoint watches nc's status (nc.StatusChanged)
// for disconnects and reconnects; it does not replace nc's handlers.
func Open(ctx context.Context, nc *nats.Conn, o Options, h Handler) (*Endpoint, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil *nats.Conn", ErrInvalidOptions)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil Handler", ErrInvalidOptions)
	}
	cfg, err := o.normalize()
	if err != nil {
		return nil, err
	}
	mp := nc.MaxPayload()
	if mp <= 0 {
		return nil, fmt.Errorf("transport: connection reports max payload %d (not connected?)", mp)
	}
	frameMax := int(min(mp, 1<<30))
	if cfg.MaxFrame > 0 && cfg.MaxFrame < frameMax {
		frameMax = cfg.MaxFrame
	}
	if frameMax < minFrame {
		return nil, fmt.Errorf("transport: frames of %d bytes are too small (need %d)", frameMax, minFrame)
	}
	e, err := newEndpoint(nc, cfg, frameMax, h)
	if err != nil {
		return nil, err
	}
	e.statusCh = nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED, nats.DISCONNECTED, nats.CLOSED)
	e.wg.Add(2)
	go e.writeLoop()
	go e.watchConn()
	go e.deliverLoop()

	if err := e.subscribe(ctx, cfg.G); err != nil {
		e.Close()
		return nil, err
	}
	e.greet()
	return e, nil
}

// newEndpoint builds the endpoint and its machine in incarnation cfg.G,
// with no subscription and no goroutine yet.
func newEndpoint(nc *nats.Conn, cfg config, frameMax int, h Handler) (*Endpoint, error) {
	e := &Endpoint{
		nc:          nc,
		cfg:         cfg,
		h:           h,
		log:         cfg.Logger.With("rank", cfg.Self, "job", cfg.Job),
		job:         space(cfg.Job, cfg.JobID),
		fragPayload: frameMax - channel.DataHeaderLen,
		t0:          time.Now(),
		wkick:       make(chan struct{}, 1),
		dkick:       make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	if cfg.Keys != nil {
		e.fragPayload -= TagLen // the frame and its tag fit the server's max payload
	}
	e.pendBytes = cmp.Or(cfg.PendingBytesLimit, max(2*len(cfg.peers)*(cfg.Window+frameMax), 8<<20))
	m, err := channel.New(channel.Config{
		Self: cfg.Self, Peers: cfg.peers, Window: cfg.Window, MaxMessage: cfg.MaxMessage,
		FragPayload: e.fragPayload, AckTimeout: cfg.AckTimeout, MaxBackoff: cfg.MaxBackoff, AckDelay: cfg.AckDelay,
	}, cfg.G, newSession(), e.now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	if cfg.Keys != nil { // the peers are checked: one key each
		if e.auth, err = newFrameAuth(cfg.Keys, cfg.peers); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, err)
		}
	}
	e.m = m
	e.ackTimer = time.AfterFunc(time.Hour, e.ackTimerFired)
	e.ackTimer.Stop()
	return e, nil
}

func newSession() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
		if s := binary.LittleEndian.Uint64(b[:]); s != 0 {
			return s
		}
	}
}

func (e *Endpoint) now() int64 { return int64(time.Since(e.t0)) }

// subject is where frame f of the current incarnation goes.
func (e *Endpoint) subject(f *channel.Out) string {
	if e.subjs == nil || e.subjG != f.Header.G {
		e.subjG, e.subjs = f.Header.G, map[subjKey]string{}
	}
	k := subjKey{f.Sub, f.To}
	s, ok := e.subjs[k]
	if !ok {
		s = subject(e.job, f.Header.G, f.Sub, f.To, strconv.Itoa(e.cfg.Self))
		e.subjs[k] = s
	}
	return s
}

// subscribe makes the subscriptions of incarnation g, drops those of the
// previous incarnation, and flushes.
func (e *Endpoint) subscribe(ctx context.Context, g uint64) error {
	ds, err := e.nc.Subscribe(subject(e.job, g, channel.DataSub, e.cfg.Self, "*"), e.onData)
	if err != nil {
		return fmt.Errorf("transport: subscribe data of g=%d: %w", g, err)
	}
	as, err := e.nc.Subscribe(subject(e.job, g, channel.AckSub, e.cfg.Self, "*"), e.onAck)
	if err != nil {
		_ = ds.Unsubscribe()
		return fmt.Errorf("transport: subscribe acks of g=%d: %w", g, err)
	}
	if err := ds.SetPendingLimits(-1, e.pendBytes); err != nil {
		unsubscribe(ds, as)
		return fmt.Errorf("transport: pending limits: %w", err)
	}
	_ = as.SetPendingLimits(-1, 16<<20)
	e.watchSub(ds, "data")
	e.watchSub(as, "ack")

	e.mu.Lock()
	oldD, oldA := e.dataSub, e.ackSub
	e.dataSub, e.ackSub = ds, as
	closed := e.closed
	e.mu.Unlock()
	unsubscribe(oldD, oldA)
	if closed {
		unsubscribe(ds, as)
		return ErrClosed
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFlushTimeout)
		defer cancel()
	}
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("transport: flush after subscribing g=%d: %w", g, err)
	}
	return nil
}

// unsubscribe drops subs (nil ones are skipped).
func unsubscribe(subs ...*nats.Subscription) {
	for _, s := range subs {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
}

// greet tells the machine the subscriptions are registered: it sends every
// peer a hello, which makes it retransmit at once whatever it has
// unacknowledged (it may have published before this rank subscribed).
func (e *Endpoint) greet() {
	e.mu.Lock()
	e.m.Subscribed()
	e.afterLocked()
	e.mu.Unlock()
}

// Reset starts incarnation g (g >= the current one): every queued,
// unacknowledged and half-reassembled message is dropped, queued deliveries
// of older incarnations are discarded, credit windows start full, a new
// session id is drawn, and the subscriptions move to g's subjects; Reset
// returns after a Flush, so the server has registered them (ctx bounds it).
// Acquire calls waiting when Reset starts return ErrReset.
//
// After Reset returns, no Deliver of an older incarnation begins. Reset
// does not wait for a Handler call already running (so it may be called
// while holding a lock that Deliver takes); such a call may still finish
// afterwards, and Deliver's g argument tells it apart.
//
// Frames of older incarnations still arriving are dropped and counted
// (StaleDropped, EventStale). Frames of a newer incarnation than the
// endpoint's are dropped without acknowledgement (FutureDropped): their
// sender keeps them and retransmits them, and, once this endpoint Resets to
// their incarnation, its hello makes the sender resend them at once; so an
// early sender loses nothing.
//
// If the subscription or the Flush fails, Reset returns the error with the
// endpoint already in g; calling Reset(ctx, g) again retries.
func (e *Endpoint) Reset(ctx context.Context, g uint64) error {
	e.resetMu.Lock()
	defer e.resetMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if err := e.m.Reset(g, newSession()); err != nil {
		e.mu.Unlock()
		return err // ErrStaleIncarnation
	}
	e.epoch++ // queued deliveries are dropped at their turn (events stay)
	e.wakeLocked()
	e.mu.Unlock()
	if err := e.subscribe(ctx, g); err != nil {
		return err
	}
	e.greet()
	e.log.Debug("transport reset", "g", g)
	return nil
}

// Close stops the endpoint: subscriptions are removed, queued messages and
// deliveries dropped, Acquire calls return ErrClosed, and every method
// afterwards returns ErrClosed (Credit does nothing). Close waits for the
// endpoint's goroutines except a Handler call in progress, which it does not
// wait for (after Close returns no new Handler call begins). It does not
// close nc. Close is idempotent.
func (e *Endpoint) Close() error {
	e.resetMu.Lock()
	defer e.resetMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.wakeLocked()
	ds, as := e.dataSub, e.ackSub
	e.dataSub, e.ackSub = nil, nil
	e.dq = nil
	e.mu.Unlock()

	close(e.stop)
	e.ackTimer.Stop()
	unsubscribe(ds, as)
	e.nc.RemoveStatusListener(e.statusCh) // set by Open before any Close
	e.wg.Wait()
	return nil
}

// G is the current incarnation.
func (e *Endpoint) G() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.G()
}

// FragmentSize is the payload of a full data frame: messages longer than
// that are fragmented. It is the connection's max payload (or
// Options.MaxFrame if smaller) less the 64-byte frame header and, with
// Options.Keys, the TagLen-byte tag.
func (e *Endpoint) FragmentSize() int { return e.fragPayload }

// Acquire blocks until the channel Self->to has room for n more bytes in
// its credit window, that is until the bytes enqueued and not yet credited
// back plus n fit in Options.Window, or the channel has nothing outstanding
// at all: so a message larger than the window can still be sent, alone.
// Acquire reserves nothing: it is a wait, and the following Enqueue charges
// the message's length. Two goroutines sending on one channel may thus both
// pass and overcommit the window by one message each.
//
// It returns nil when there is room; ctx's error (wrapped) when ctx ends;
// ErrReset if the endpoint was Reset while it waited; ErrBroken,
// ErrUnknownPeer, ErrTooLarge (n > MaxMessage), ErrConnClosed or ErrClosed.
func (e *Endpoint) Acquire(ctx context.Context, to, n int) error {
	if n < 0 {
		return fmt.Errorf("transport: Acquire of %d bytes", n)
	}
	if n > e.cfg.MaxMessage {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, e.cfg.MaxMessage)
	}
	e.mu.Lock()
	epoch := e.epoch
	for {
		switch {
		case e.closed:
			e.mu.Unlock()
			return ErrClosed
		case e.epoch != epoch:
			e.mu.Unlock()
			return ErrReset
		case e.connGone:
			e.mu.Unlock()
			return ErrConnClosed
		}
		err := e.m.Room(to, n)
		if !errors.Is(err, channel.ErrWait) {
			e.mu.Unlock()
			return err // nil, ErrBroken or ErrUnknownPeer
		}
		if e.wait == nil {
			e.wait = make(chan struct{})
		}
		ch := e.wait
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("transport: waiting for %d bytes of credit to rank %d: %w", n, to, ctx.Err())
		}
		e.mu.Lock()
	}
}

// Enqueue queues msg on channel Self->to and returns at once: it never
// waits for credit or the network (call Acquire first to respect the
// window; Enqueue charges len(msg) to the window either way, so messages
// the upper layer must send without waiting, such as markers, still count).
// Messages of one channel are transmitted and delivered in Enqueue call
// order. Enqueue takes ownership of msg: the caller must not modify it
// afterwards (the endpoint reads it until every fragment is acknowledged;
// a self-channel message is handed to Deliver as is).
//
// Errors: ErrUnknownPeer, ErrTooLarge, ErrBroken, ErrConnClosed (not for
// the self-channel), ErrClosed.
func (e *Endpoint) Enqueue(to int, msg []byte) error {
	if len(msg) > e.cfg.MaxMessage {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(msg), e.cfg.MaxMessage)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.connGone && to != e.cfg.Self {
		return ErrConnClosed
	}
	if err := e.m.Enqueue(to, msg); err != nil {
		return err
	}
	e.afterLocked()
	return nil
}

// Credit returns n bytes of window to the sender of channel from->Self (n
// is normally len(msg) of a delivered message, returned when the upper
// layer consumes it or decides to hold it). It never blocks. Unknown ranks
// and n <= 0 are ignored; so is everything after Close. Credit belongs to
// the current incarnation: crediting a message of an older one after Reset
// only widens the new window by that much.
func (e *Endpoint) Credit(from int, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || n <= 0 {
		return
	}
	e.m.Tick(e.now()) // a delayed ack is due AckDelay from now, not from the last tick
	e.m.Credit(from, n)
	e.afterLocked()
}

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st
	st.Stats = e.m.Stats()
	return st
}

// afterLocked follows every input to the machine: the writer executes what
// it asks for, now or when the delayed ack is due.
func (e *Endpoint) afterLocked() {
	if e.m.HasReady() {
		kick(e.wkick)
	} else if due := e.m.NextAck(); due != 0 && !e.ackArmed {
		e.ackArmed = true
		e.ackTimer.Reset(time.Duration(max(due-e.now(), 0)))
	}
}

func (e *Endpoint) ackTimerFired() {
	e.mu.Lock()
	e.ackArmed = false
	e.mu.Unlock()
	kick(e.wkick)
}

// kick wakes the writer (e.wkick) or the deliverer (e.dkick), unless a
// wake is pending already.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeLocked makes waiting Acquire calls look again.
func (e *Endpoint) wakeLocked() {
	if e.wait != nil {
		close(e.wait)
		e.wait = nil
	}
}

// pushLocked queues an upcall for the deliverer.
func (e *Endpoint) pushLocked(u upcall) {
	e.dq = append(e.dq, u)
	kick(e.dkick)
}

// noteLocked gives an event of the Endpoint to the machine, which reports
// it with its own (rate-limited alike) in the writer's next Ready.
func (e *Endpoint) noteLocked(ev Event) {
	if e.closed {
		return
	}
	e.m.Note(e.now(), ev)
	e.afterLocked()
}

// deliverLoop is the one goroutine that calls the Handler. It takes the
// queue whole, and looks at Close and Reset again before each upcall: a
// delivery queued before a Reset is dropped at its turn.
func (e *Endpoint) deliverLoop() {
	var batch []upcall
	for {
		select {
		case <-e.stop:
			return
		case <-e.dkick:
		}
		e.mu.Lock()
		batch, e.dq = e.dq, batch[:0]
		e.mu.Unlock()
		for i, u := range batch {
			batch[i] = upcall{}
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				return
			}
			if u.ev != nil {
				e.dqEvents--
			} else if u.epoch != e.epoch {
				e.mu.Unlock()
				continue
			} else {
				e.st.MsgsDelivered++
				e.st.BytesDelivered += uint64(len(u.msg))
			}
			e.mu.Unlock()
			if u.ev != nil {
				e.logEvent(*u.ev)
				e.h.Event(*u.ev)
			} else {
				e.h.Deliver(u.from, u.g, u.msg)
			}
		}
	}
}

func (e *Endpoint) logEvent(ev Event) {
	attrs := []any{"event", ev.Kind.String(), "peer", ev.Peer, "g", ev.G, "err", ev.Err}
	switch ev.Kind {
	// EventMalformed: dropped frames that do not fit the channel (a hostile
	// or broken sender: past the window, far ahead, acks of what was never
	// sent). The machine reports at most one per peer per second.
	case EventGap, EventSlowConsumer, EventDisconnect, EventMalformed:
		e.log.Warn("transport event", attrs...)
	case EventReconnect:
		e.log.Info("transport event", attrs...)
	default:
		e.log.Debug("transport event", attrs...)
	}
}

// watchConn turns the connection's status changes into events and inputs
// of the machine.
func (e *Endpoint) watchConn() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case st, ok := <-e.statusCh:
			if !ok {
				return
			}
			switch st {
			case nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED:
				e.onDisconnect(st)
			case nats.CONNECTED:
				e.onReconnect()
			}
		}
	}
}

func (e *Endpoint) onDisconnect(st nats.Status) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.connGone || (!e.m.Disconnected() && st == nats.RECONNECTING) {
		return
	}
	if st == nats.CLOSED || st == nats.DISCONNECTED {
		// No reconnect will come: fail the senders instead of letting
		// them wait for credit forever.
		e.connGone = true
		e.wakeLocked()
	}
	e.st.Disconnects++
	err := fmt.Errorf("NATS connection %s: %v", st, e.nc.LastError())
	e.noteLocked(Event{Kind: EventDisconnect, Peer: -1, Err: err})
}

// onReconnect: the machine retransmits everything unacknowledged and asks
// every peer to do the same.
func (e *Endpoint) onReconnect() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.m.Reconnected() {
		return
	}
	e.st.Reconnects++
	e.noteLocked(Event{Kind: EventReconnect, Peer: -1, Err: fmt.Errorf("reconnected to %s", natsutil.Redact(e.nc.ConnectedUrl()))})
}

// watchSub reports the NATS client's slow-consumer drops on sub.
func (e *Endpoint) watchSub(sub *nats.Subscription, what string) {
	ch := sub.StatusChanged(nats.SubscriptionSlowConsumer)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			select {
			case <-e.stop:
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				dropped, _ := sub.Dropped()
				e.mu.Lock()
				e.st.SlowConsumer++
				e.noteLocked(Event{Kind: EventSlowConsumer, Peer: -1,
					Err: fmt.Errorf("NATS client dropped frames of the %s subscription (%d so far; pending limit %d bytes)", what, dropped, e.pendBytes)})
				e.mu.Unlock()
			}
		}
	}()
}
