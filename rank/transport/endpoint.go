package transport

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/natsutil"
)

// Endpoint is one rank's end of its channels: a sender for each channel
// Self->peer and a receiver for each peer->Self, plus the in-memory
// self-channel. Its methods are safe for concurrent use.
//
// Goroutines: a writer (publishes frames and acks, fires retransmission
// timers), a deliverer (calls the Handler), a watcher of the connection's
// status, and one watcher per subscription for slow-consumer reports. Frames
// are decoded on the NATS client's subscription goroutines, which only take
// the endpoint's mutex briefly and never call the Handler.
type Endpoint struct {
	nc          *nats.Conn
	cfg         config
	h           Handler
	log         *slog.Logger
	self        int
	job         string // subject token of the job
	frameMax    int    // bytes per frame, header included
	fragPayload int    // payload bytes per data frame
	maxMsg      uint64
	pendBytes   int   // pending-bytes limit of the data subscription
	urgentBytes int   // unacknowledged or uncredited bytes that make an ack urgent
	oooLimit    int   // bytes a receive channel may hold out of order
	maxAhead    int64 // how far past the next expected seq a held frame may be
	holdoff     int64 // ns: a NACK-all (hello, reconnect of the peer) does not resend what was sent this recently
	t0          time.Time

	resetMu sync.Mutex // serializes Reset and Close

	mu        sync.Mutex
	g         uint64
	session   uint64
	epoch     uint64 // bumped by Reset, so that Acquire notices one
	closed    bool
	connDown  bool
	connGone  bool // the connection is closed for good
	send      map[int]*sendChan
	sendList  []*sendChan // send, by peer, for the timer scan
	recv      map[int]*recvChan
	recvList  []*recvChan
	selfW     window
	ready     []*sendChan // channels with frames or control frames to transmit
	ackq      []*recvChan // channels with an ack to send
	ackArmed  bool        // ackTimer runs for a delayed ack
	dq        []upcall    // for the deliverer
	dqHead    int
	dqEvents  int
	lastEvent map[eventKey]time.Time
	dataSub   *nats.Subscription
	ackSub    *nats.Subscription

	wkick    chan struct{}
	dkick    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	ackTimer *time.Timer
	statusCh chan nats.Status

	st counters
}

// window is the credit state of a channel as its sender sees it.
type window struct {
	charged  uint64        // message bytes enqueued, cumulative
	credited uint64        // message bytes credited back, cumulative
	wait     chan struct{} // closed (and cleared) when Acquire should look again
}

func (w *window) outstanding() int64 { return int64(w.charged - w.credited) }

func (w *window) waiter() chan struct{} {
	if w.wait == nil {
		w.wait = make(chan struct{})
	}
	return w.wait
}

func (w *window) wake() {
	if w.wait != nil {
		close(w.wait)
		w.wait = nil
	}
}

// sendChan is the sending side of channel Self->peer.
type sendChan struct {
	window
	peer int
	subj string

	frags    []frag // frags[i] has seq base+i; all unacknowledged (sent or not)
	base     uint64 // seq of frags[0]: everything below is acknowledged
	nextSeq  uint64 // seq the next fragment gets
	nextSend uint64 // lowest seq never transmitted
	retxFrom uint64 // [retxFrom, retxTo) holds every fragment marked for resending
	retxTo   uint64
	nextTx   uint64 // transmission id of the next frame published

	peerSess     uint64        // the receiver session acknowledging us (0: none yet)
	rto          time.Duration // current retransmission timeout (backed off)
	srtt, rttvar time.Duration // smoothed ack delay and its variation (0: no sample yet)
	lastProgress int64         // ns: last ack progress, or first send after idle
	lastAck      int64         // ns: last ack heard, or last probe sent
	probe        bool
	gone         bool
	broken       bool
	inReady      bool
}

type frag struct {
	msg    []byte // the whole message (owned by the endpoint since Enqueue)
	off    int
	n      int
	sent   int64  // ns of the last transmission, 0: never
	tx     uint64 // transmission id of the last transmission
	resend bool   // to be retransmitted
}

func (sc *sendChan) hasWork() bool {
	return sc.gone || (!sc.broken && (sc.probe || sc.retxFrom < sc.retxTo || sc.nextSend < sc.nextSeq))
}

// recvChan is the receiving side of channel peer->Self.
type recvChan struct {
	peer    int
	ackSubj string

	sess     uint64 // the sender session we receive from (0: none yet)
	received bool   // a data frame of sess arrived
	maxTx    uint64 // highest transmission id received from sess
	next     uint64 // next seq to accept in order
	ooo      map[uint64]heldFrag
	oooBytes int
	oooMin   uint64 // lowest held seq; 0 if ooo is empty

	asm    []byte // message being reassembled
	asmLen uint64
	asmOn  bool

	credited      uint64 // cumulative bytes the upper layer returned
	creditSent    uint64 // credited as of the last ack sent
	bytesSinceAck int
	ackPending    bool
	nackAll       bool
	hello         bool
	inAckq        bool
	broken        bool
}

type heldFrag struct {
	msgLen, offset uint64
	payload        []byte
}

type upcall struct {
	from int
	g    uint64
	msg  []byte
	ev   *Event
}

type eventKey struct {
	kind EventKind
	peer int
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
	e := newEndpoint(nc, cfg, frameMax, h)
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

// newEndpoint builds the endpoint's state in incarnation cfg.G, with no
// subscription and no goroutine yet.
func newEndpoint(nc *nats.Conn, cfg config, frameMax int, h Handler) *Endpoint {
	e := &Endpoint{
		nc:          nc,
		cfg:         cfg,
		h:           h,
		log:         cfg.Logger.With("rank", cfg.Self, "job", cfg.Job),
		self:        cfg.Self,
		job:         jobToken(cfg.Job),
		frameMax:    frameMax,
		fragPayload: frameMax - dataHdrLen,
		maxMsg:      uint64(cfg.MaxMessage),
		urgentBytes: max(cfg.Window/16, 1),
		oooLimit:    2*cfg.Window + 2*frameMax,
		holdoff:     int64(max(cfg.AckTimeout/16, 500*time.Microsecond)),
		t0:          time.Now(),
		lastEvent:   map[eventKey]time.Time{},
		wkick:       make(chan struct{}, 1),
		dkick:       make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	e.maxAhead = int64(e.oooLimit / dataHdrLen)
	e.pendBytes = cfg.PendingBytesLimit
	if e.pendBytes == 0 {
		e.pendBytes = max(2*len(cfg.peers)*(cfg.Window+frameMax), 8<<20)
	}
	e.ackTimer = time.AfterFunc(time.Hour, e.ackTimerFired)
	e.ackTimer.Stop()

	e.mu.Lock()
	e.installLocked(cfg.G)
	e.mu.Unlock()

	return e
}

// installLocked starts incarnation g with fresh channel state and a new
// session id. Queued deliveries of older incarnations are dropped (events
// stay), and Acquire waiters are woken to notice.
func (e *Endpoint) installLocked(g uint64) {
	for _, sc := range e.sendList {
		sc.wake()
	}
	e.selfW.wake()
	e.g = g
	e.session = newSession()
	e.epoch++
	e.send = make(map[int]*sendChan, len(e.cfg.peers))
	e.recv = make(map[int]*recvChan, len(e.cfg.peers))
	e.sendList = e.sendList[:0]
	e.recvList = e.recvList[:0]
	for _, p := range e.cfg.peers {
		sc := &sendChan{
			peer:    p,
			subj:    dataSubject(e.job, g, p, e.self),
			base:    1,
			nextSeq: 1, nextSend: 1, nextTx: 1,
			rto: e.cfg.AckTimeout,
		}
		e.send[p] = sc
		e.sendList = append(e.sendList, sc)
		rc := &recvChan{peer: p, ackSubj: ackSubject(e.job, g, p, e.self), next: 1}
		e.recv[p] = rc
		e.recvList = append(e.recvList, rc)
	}
	e.selfW = window{}
	e.ready = e.ready[:0]
	e.ackq = e.ackq[:0]
	kept := e.dq[:0]
	for _, u := range e.dq[e.dqHead:] {
		if u.ev != nil {
			kept = append(kept, u)
		}
	}
	clear(e.dq[len(kept):])
	e.dq, e.dqHead = kept, 0
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

// subscribe makes the subscriptions of incarnation g, drops those of the
// previous incarnation, and flushes.
func (e *Endpoint) subscribe(ctx context.Context, g uint64) error {
	ds, err := e.nc.Subscribe(dataWildcard(e.job, g, e.self), e.onData)
	if err != nil {
		return fmt.Errorf("transport: subscribe data of g=%d: %w", g, err)
	}
	as, err := e.nc.Subscribe(ackWildcard(e.job, g, e.self), e.onAck)
	if err != nil {
		_ = ds.Unsubscribe()
		return fmt.Errorf("transport: subscribe acks of g=%d: %w", g, err)
	}
	if err := ds.SetPendingLimits(-1, e.pendBytes); err != nil {
		_ = ds.Unsubscribe()
		_ = as.Unsubscribe()
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
	if oldD != nil {
		_ = oldD.Unsubscribe()
	}
	if oldA != nil {
		_ = oldA.Unsubscribe()
	}
	if closed {
		_ = ds.Unsubscribe()
		_ = as.Unsubscribe()
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

// greet queues a hello ack to every peer: it asks each sender to
// retransmit whatever it has unacknowledged (it may have published before
// this rank subscribed) and tells it this receiver's new session.
func (e *Endpoint) greet() {
	e.mu.Lock()
	for _, rc := range e.recvList {
		rc.hello, rc.nackAll = true, true
		e.markAckLocked(rc, true)
	}
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
	if g < e.g {
		cur := e.g
		e.mu.Unlock()
		return fmt.Errorf("%w: Reset(%d) at g=%d", ErrStaleIncarnation, g, cur)
	}
	e.installLocked(g)
	e.st.resets.Add(1)
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
	for _, sc := range e.sendList {
		sc.wake()
	}
	e.selfW.wake()
	ds, as := e.dataSub, e.ackSub
	e.dataSub, e.ackSub = nil, nil
	e.dq, e.dqHead = nil, 0
	e.mu.Unlock()

	close(e.stop)
	e.ackTimer.Stop()
	if ds != nil {
		_ = ds.Unsubscribe()
	}
	if as != nil {
		_ = as.Unsubscribe()
	}
	if e.statusCh != nil {
		e.nc.RemoveStatusListener(e.statusCh)
	}
	e.wg.Wait()
	return nil
}

// G is the current incarnation.
func (e *Endpoint) G() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g
}

// FragmentSize is the payload of a full data frame: messages longer than
// that are fragmented. It is the connection's max payload (or
// Options.MaxFrame if smaller) less the 64-byte frame header.
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
		if e.closed {
			e.mu.Unlock()
			return ErrClosed
		}
		if e.epoch != epoch {
			e.mu.Unlock()
			return ErrReset
		}
		if e.connGone {
			e.mu.Unlock()
			return ErrConnClosed
		}
		var w *window
		if to == e.self {
			w = &e.selfW
		} else if sc := e.send[to]; sc != nil {
			if sc.broken {
				e.mu.Unlock()
				return fmt.Errorf("%w: channel %d->%d", ErrBroken, e.self, to)
			}
			w = &sc.window
		} else {
			e.mu.Unlock()
			return fmt.Errorf("%w: rank %d", ErrUnknownPeer, to)
		}
		out := w.outstanding()
		if out <= 0 || out+int64(n) <= int64(e.cfg.Window) {
			e.mu.Unlock()
			return nil
		}
		ch := w.waiter()
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
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	n := len(msg)
	if e.connGone && to != e.self {
		e.mu.Unlock()
		return ErrConnClosed
	}
	if to == e.self {
		e.selfW.charged += uint64(n)
		e.pushLocked(upcall{from: e.self, g: e.g, msg: msg})
		e.mu.Unlock()
		e.st.msgsSent.Add(1)
		e.st.bytesSent.Add(uint64(n))
		return nil
	}
	sc := e.send[to]
	if sc == nil {
		e.mu.Unlock()
		return fmt.Errorf("%w: rank %d", ErrUnknownPeer, to)
	}
	if sc.broken {
		e.mu.Unlock()
		return fmt.Errorf("%w: channel %d->%d", ErrBroken, e.self, to)
	}
	sc.charged += uint64(n)
	frames := 1
	if n == 0 {
		sc.frags = append(sc.frags, frag{msg: msg})
	} else {
		p := e.fragPayload
		frames = (n + p - 1) / p
		for off := 0; off < n; off += p {
			sc.frags = append(sc.frags, frag{msg: msg, off: off, n: min(p, n-off)})
		}
	}
	sc.nextSeq += uint64(frames)
	e.readyLocked(sc)
	e.mu.Unlock()
	e.kickWriter()
	e.st.msgsSent.Add(1)
	e.st.bytesSent.Add(uint64(n))
	if frames > 1 {
		e.st.fragmented.Add(1)
	}
	return nil
}

// Credit returns n bytes of window to the sender of channel from->Self (n
// is normally len(msg) of a delivered message, returned when the upper
// layer consumes it or decides to hold it). It never blocks. Unknown ranks
// and n <= 0 are ignored; so is everything after Close. Credit belongs to
// the current incarnation: crediting a message of an older one after Reset
// only widens the new window by that much.
func (e *Endpoint) Credit(from int, n int) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if from == e.self {
		e.selfW.credited += uint64(n)
		e.selfW.wake()
		return
	}
	rc := e.recv[from]
	if rc == nil || rc.broken {
		return
	}
	rc.credited += uint64(n)
	e.markAckLocked(rc, rc.credited-rc.creditSent >= uint64(e.urgentBytes))
}

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats { return e.st.snapshot() }

func (e *Endpoint) kickWriter() {
	select {
	case e.wkick <- struct{}{}:
	default:
	}
}

func (e *Endpoint) kickDeliverer() {
	select {
	case e.dkick <- struct{}{}:
	default:
	}
}

func (e *Endpoint) readyLocked(sc *sendChan) {
	if !sc.inReady {
		sc.inReady = true
		e.ready = append(e.ready, sc)
	}
}

// markAckLocked schedules an ack on rc: now if urgent, else within AckDelay.
func (e *Endpoint) markAckLocked(rc *recvChan, urgent bool) {
	rc.ackPending = true
	if !rc.inAckq {
		rc.inAckq = true
		e.ackq = append(e.ackq, rc)
	}
	if urgent {
		e.kickWriter()
	} else if !e.ackArmed {
		e.ackArmed = true
		e.ackTimer.Reset(e.cfg.AckDelay)
	}
}

func (e *Endpoint) ackTimerFired() {
	e.mu.Lock()
	e.ackArmed = false
	e.mu.Unlock()
	e.kickWriter()
}

// pushLocked queues an upcall for the deliverer.
func (e *Endpoint) pushLocked(u upcall) {
	e.dq = append(e.dq, u)
	e.kickDeliverer()
}

const maxQueuedEvents = 1024

// emitLocked queues an event; limited events are sent at most once per
// second per kind and peer.
func (e *Endpoint) emitLocked(ev Event, limited bool) {
	if limited {
		k := eventKey{ev.Kind, ev.Peer}
		now := time.Now()
		if t, ok := e.lastEvent[k]; ok && now.Sub(t) < time.Second {
			return
		}
		e.lastEvent[k] = now
	}
	if e.closed {
		return
	}
	if e.dqEvents >= maxQueuedEvents {
		e.st.eventsDropped.Add(1)
		return
	}
	e.dqEvents++
	ev.G = e.g
	e.pushLocked(upcall{ev: &ev})
}

// deliverLoop is the one goroutine that calls the Handler.
func (e *Endpoint) deliverLoop() {
	for {
		select {
		case <-e.stop:
			return
		case <-e.dkick:
		}
		for {
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				return
			}
			if e.dqHead == len(e.dq) {
				e.dq, e.dqHead = e.dq[:0], 0
				e.mu.Unlock()
				break
			}
			u := e.dq[e.dqHead]
			e.dq[e.dqHead] = upcall{}
			e.dqHead++
			if e.dqHead >= 4096 && e.dqHead*2 >= len(e.dq) {
				n := copy(e.dq, e.dq[e.dqHead:])
				clear(e.dq[n:])
				e.dq, e.dqHead = e.dq[:n], 0
			}
			if u.ev != nil {
				e.dqEvents--
			} else if u.g != e.g {
				e.mu.Unlock()
				continue
			}
			e.mu.Unlock()
			if u.ev != nil {
				e.logEvent(*u.ev)
				e.h.Event(*u.ev)
				continue
			}
			e.st.msgsDelivered.Add(1)
			e.st.bytesDelivered.Add(uint64(len(u.msg)))
			e.h.Deliver(u.from, u.g, u.msg)
		}
	}
}

func (e *Endpoint) logEvent(ev Event) {
	attrs := []any{"event", ev.Kind.String(), "peer", ev.Peer, "g", ev.G, "err", ev.Err}
	switch ev.Kind {
	case EventGap, EventSlowConsumer, EventDisconnect:
		e.log.Warn("transport event", attrs...)
	case EventReconnect:
		e.log.Info("transport event", attrs...)
	default:
		e.log.Debug("transport event", attrs...)
	}
}

// watchConn turns the connection's status changes into events and repairs.
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
	if e.connGone || (e.connDown && st == nats.RECONNECTING) {
		return
	}
	e.connDown = true
	if st == nats.CLOSED || st == nats.DISCONNECTED {
		// No reconnect will come: fail the senders instead of letting
		// them wait for credit forever.
		e.connGone = true
		for _, sc := range e.sendList {
			sc.wake()
		}
	}
	e.st.disconnects.Add(1)
	err := fmt.Errorf("NATS connection %s: %v", st, e.nc.LastError())
	e.emitLocked(Event{Kind: EventDisconnect, Peer: -1, Err: err}, false)
}

// onReconnect retransmits everything unacknowledged and asks every peer to
// do the same: frames in the dead socket were lost in both directions, and
// frames published to this rank while it had no subscription were dropped.
func (e *Endpoint) onReconnect() {
	e.mu.Lock()
	if !e.connDown {
		e.mu.Unlock()
		return
	}
	e.connDown = false
	e.st.reconnects.Add(1)
	for _, sc := range e.sendList {
		if !sc.broken {
			e.resendLocked(sc, sc.base, sc.nextSend, 0)
		}
	}
	for _, rc := range e.recvList {
		if !rc.broken {
			rc.nackAll = true
			e.markAckLocked(rc, true)
		}
	}
	e.emitLocked(Event{Kind: EventReconnect, Peer: -1, Err: fmt.Errorf("reconnected to %s", natsutil.Redact(e.nc.ConnectedUrl()))}, false)
	e.mu.Unlock()
	e.kickWriter()
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
				e.st.slowConsumer.Add(1)
				e.emitLocked(Event{Kind: EventSlowConsumer, Peer: -1,
					Err: fmt.Errorf("NATS client dropped frames of the %s subscription (%d so far; pending limit %d bytes)", what, dropped, e.pendBytes)}, true)
				e.mu.Unlock()
			}
		}
	}()
}
