package channel

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the inputs. Package transport returns these same values as its
// sentinels of the same names.
var (
	ErrUnknownPeer      = errors.New("transport: rank is not a declared peer")
	ErrBroken           = errors.New("transport: channel broken by an unrepairable gap")
	ErrStaleIncarnation = errors.New("transport: incarnation older than the current one")
	// ErrWait: Room says the window is full; wait for Ready.Wake.
	ErrWait = errors.New("transport: credit window full")
)

// Config is fixed for a Machine's life.
type Config struct {
	Self  int
	Peers []int // declared peers: distinct, without Self
	// Window is the credit window of each channel in message bytes.
	Window int
	// MaxMessage bounds a message (and so reassembly).
	MaxMessage int
	// FragPayload is the payload of a full data frame (frame size less
	// DataHeaderLen), at least 1.
	FragPayload int
	// AckTimeout is the first and minimum retransmission timeout,
	// MaxBackoff its cap, AckDelay how long a non-urgent ack may wait.
	AckTimeout, MaxBackoff, AckDelay time.Duration
}

// Sub names the subject a frame is published on or arrived on.
type Sub uint8

// Subjects of a channel.
const (
	// DataSub carries data, probe and gone frames of channel From->To.
	DataSub Sub = 1
	// AckSub carries the acks of channel To->From (the receiver From
	// acknowledges to the sender To).
	AckSub Sub = 2
)

// Out is one frame to publish: on subject Sub of rank To in incarnation
// Header.G, from Self. Payload aliases the enqueued message (valid until
// Advance; the machine never writes it).
type Out struct {
	Sub     Sub
	To      int
	Header  Header
	Payload []byte
}

// Delivery is a message of channel From->Self of incarnation G, whole, in
// channel order. Msg belongs to the upper layer.
type Delivery struct {
	From int
	G    uint64
	Msg  []byte
}

// EventKind says what happened. Package transport names these same
// kinds and Event (aliases): its Handler receives them.
type EventKind int

// Event kinds. The machine reports gaps, malformed and stale frames; the
// driver notes the others (Note), which go out with the machine's.
const (
	// EventSlowConsumer: the NATS client dropped frames of this rank's
	// subscription (pending limit hit). Retransmission repairs it; an
	// event is still worth a warning because it costs throughput.
	EventSlowConsumer EventKind = iota + 1
	// EventDisconnect: the NATS connection was lost; the client is
	// reconnecting (or gave up: Err says so).
	EventDisconnect
	// EventReconnect: the connection is back; unacknowledged frames are
	// being retransmitted and peers asked to resend.
	EventReconnect
	// EventGap: the channel with Peer has lost messages that cannot be
	// retransmitted (the peer lost its state within one incarnation, or the
	// stream was corrupt). The channel is broken until Reset: the upper
	// layer should report it so that the coordinator starts a recovery.
	EventGap
	// EventMalformed: a frame failed to decode or did not fit the channel
	// (Peer is -1 when the sender is unknown); it was dropped.
	EventMalformed
	// EventStale: a frame of an older incarnation was dropped.
	EventStale
)

var eventNames = [...]string{EventSlowConsumer: "slow-consumer", EventDisconnect: "disconnect",
	EventReconnect: "reconnect", EventGap: "gap", EventMalformed: "malformed", EventStale: "stale-incarnation"}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// limited: the kinds reported at most once per kind and peer per second
// of the machine's time (a hostile or overloaded peer could otherwise
// flood the log); the counters in Stats count them all.
func (k EventKind) limited() bool {
	return k == EventMalformed || k == EventStale || k == EventSlowConsumer
}

// Event is one transport event. EventMalformed, EventStale and
// EventSlowConsumer are rate-limited to one per kind and peer per second
// (Stats counts them all); the others are always reported.
type Event struct {
	Kind EventKind
	// Peer is the rank concerned, or -1.
	Peer int
	// G is the incarnation when the event happened.
	G uint64
	// Err gives the detail.
	Err error
}

func (e Event) String() string {
	return fmt.Sprintf("%s peer=%d g=%d: %v", e.Kind, e.Peer, e.G, e.Err)
}

// Ready is what the driver must do; see the package documentation.
type Ready struct {
	// Frames to publish on the one connection, in this order.
	Frames []Out
	// Deliver to the upper layer in this order (skip those whose G is no
	// longer current when their turn comes).
	Deliver []Delivery
	// Events to report (gaps, malformed and stale frames, and those the
	// driver noted).
	Events []Event
	// Wake: a window grew, a channel broke or an incarnation began:
	// waiting senders should ask Room again.
	Wake bool

	n uint64 // which Ready this is: Advance checks it
}

// IsEmpty reports whether r asks for nothing.
func (r *Ready) IsEmpty() bool {
	return len(r.Frames) == 0 && len(r.Deliver) == 0 && len(r.Events) == 0 && !r.Wake
}

// Stats are the machine's counters, cumulative over its life (package
// transport's Stats embeds them).
type Stats struct {
	MsgsSent       uint64 // messages accepted by Enqueue (self-channel included)
	BytesSent      uint64 // their bytes
	MsgsReadied    uint64 // messages handed out in Ready.Deliver
	BytesReadied   uint64 // their bytes
	Fragmented     uint64 // messages sent in more than one frame
	FramesSent     uint64 // data frames published for the first time
	FramesReceived uint64 // data frames received (in any order, duplicates included)
	Retransmits    uint64 // data frames published again
	Timeouts       uint64 // retransmission timeouts fired
	Probes         uint64 // credit probes sent
	AcksSent       uint64
	AcksReceived   uint64
	Duplicates     uint64 // data frames dropped as already received
	ReorderDropped uint64 // out-of-order frames dropped for lack of reorder room (retransmitted later)
	StaleDropped   uint64 // frames of an older incarnation dropped
	FutureDropped  uint64 // frames of a newer incarnation dropped (their sender retransmits them)
	Malformed      uint64 // frames rejected by the decoder or by channel checks
	Gaps           uint64 // unrepairable gaps reported
	Resets         uint64
	// Bounds on what a sender (honest or not) can make the receiver hold
	// (each drop is also counted in Malformed and reported as a
	// rate-limited EventMalformed): AheadDropped: data frames beyond the
	// window in frames past the next expected seq (never held, never
	// taken as the truth); WindowDropped: in-order data frames past the
	// bytes the receiver granted (delivered and not credited back over
	// max(Window, MaxMessage)); Conflicts: a second, different copy of a
	// held fragment (the channel breaks).
	AheadDropped, WindowDropped, Conflicts uint64
	// Acks that claim what this sender never sent: AckPastSent (cum at or
	// past the lowest seq never transmitted: dropped; if they persist the
	// channel breaks), AckClamped (a transmission id never used or credit
	// past what was enqueued: clamped, the rest of the ack is used).
	AckPastSent, AckClamped uint64
}

// Machine is one rank's end of all its channels. It is not safe for
// concurrent use: the driver serializes every call.
type Machine struct {
	cfg         Config
	urgentBytes int
	oooLimit    int
	maxAhead    int64
	inflight    uint64 // message bytes a receiver may hold delivered and not credited
	holdoff     int64
	budget      int

	now      int64
	g        uint64
	session  uint64
	connDown bool

	send     map[int]*sendChan
	sendList []*sendChan
	recv     map[int]*recvChan
	recvList []*recvChan
	selfW    window

	ready     []*sendChan
	ackq      []*recvChan
	ackUrgent bool
	ackDue    int64 // delayed ack due at (0: none armed)

	rd      Ready  // accumulating for the next Ready
	out     Ready  // handed out, not yet advanced (out.n 0: none)
	readies uint64 // Readys handed out so far: each one's number

	lastEvent map[eventKey]int64
	st        Stats
}

type eventKey struct {
	kind EventKind
	peer int
}

// window is a channel's credit as its sender sees it.
type window struct {
	charged  uint64 // message bytes enqueued, cumulative
	credited uint64 // message bytes credited back, cumulative
}

func (w *window) outstanding() int64 { return int64(w.charged - w.credited) }

type sendChan struct {
	window
	peer int

	frags    []frag // frags[i] has seq base+i; all unacknowledged (sent or not)
	base     uint64 // seq of frags[0]: everything below is acknowledged
	nextSend uint64 // lowest seq never transmitted
	retxFrom uint64 // [retxFrom, retxTo) holds every fragment marked for resending
	retxTo   uint64
	nextTx   uint64 // transmission id of the next frame published

	peerSess     uint64        // the receiver session acknowledging us (0: none yet)
	rto          time.Duration // current retransmission timeout (backed off)
	srtt, rttvar time.Duration // smoothed ack delay and its variation (0: no sample yet)
	lastProgress int64         // last ack progress, or first send after idle
	lastAck      int64         // last ack heard, or last probe sent
	pastSince    int64         // first ack past nextSend since the last valid one (0: none)
	pastCount    int           // acks past nextSend since the last valid one
	waiting      bool          // Room said ErrWait since the last ack
	probe        bool
	gone         bool
	broken       bool
	inReady      bool
}

type frag struct {
	msg    []byte // the whole message
	off    int
	n      int
	sent   int64  // time of the last transmission
	tx     uint64 // transmission id of the last transmission (0: never)
	resend bool   // to be retransmitted
}

// nextSeq is the seq the next fragment gets.
func (sc *sendChan) nextSeq() uint64 { return sc.base + uint64(len(sc.frags)) }

func (sc *sendChan) hasWork() bool {
	return sc.gone || (!sc.broken && (sc.probe || sc.retxFrom < sc.retxTo || sc.nextSend < sc.nextSeq()))
}

type recvChan struct {
	peer int

	sess     uint64 // the sender session we receive from (0: none yet)
	received bool   // a data frame of sess arrived
	maxTx    uint64 // highest transmission id received from sess
	next     uint64 // next seq to accept in order
	ooo      map[uint64]heldFrag
	oooBytes int
	oooMin   uint64 // lowest held seq; 0 with frames held: unknown

	asm    []byte // message being reassembled
	asmLen uint64
	asmOn  bool

	credited      uint64 // cumulative bytes the upper layer returned
	accepted      uint64 // cumulative message bytes accepted in order
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

// New makes the machine of cfg.Self in incarnation g with sender session
// id session (non-zero; the driver draws it at random), at time now. It
// greets nobody until Subscribed.
func New(cfg Config, g, session uint64, now int64) (*Machine, error) {
	switch {
	case cfg.Window <= 0 || cfg.MaxMessage < 0 || cfg.FragPayload < 1:
		return nil, fmt.Errorf("channel: window %d, max message %d, fragment payload %d", cfg.Window, cfg.MaxMessage, cfg.FragPayload)
	case cfg.AckTimeout <= 0 || cfg.MaxBackoff < cfg.AckTimeout || cfg.AckDelay < 0:
		return nil, fmt.Errorf("channel: ack timeout %v, max backoff %v, ack delay %v", cfg.AckTimeout, cfg.MaxBackoff, cfg.AckDelay)
	case g == 0 || session == 0:
		return nil, fmt.Errorf("channel: incarnation %d, session %#x", g, session)
	case cfg.Self < 0 || cfg.Self > MaxRankOnWire:
		return nil, fmt.Errorf("channel: rank %d out of range", cfg.Self)
	}
	seen := map[int]bool{}
	for _, p := range cfg.Peers {
		if p == cfg.Self || p < 0 || p > MaxRankOnWire || seen[p] {
			return nil, fmt.Errorf("channel: bad peer list %v for rank %d", cfg.Peers, cfg.Self)
		}
		seen[p] = true
	}
	frameMax := cfg.FragPayload + DataHeaderLen
	m := &Machine{
		cfg:         cfg,
		urgentBytes: max(cfg.Window/16, 1),
		oooLimit:    2*cfg.Window + 2*frameMax,
		holdoff:     int64(max(cfg.AckTimeout/16, 500*time.Microsecond)),
		budget:      max(frameMax, 64<<10),
		now:         now,
		lastEvent:   map[eventKey]int64{},
	}
	// An honest sender enqueues only while what it charged and was not
	// credited back fits the window, or one message alone: the receiver
	// never has more than max(Window, MaxMessage) delivered and not
	// credited (see granted for the finer rule), nor more than that many
	// full frames in flight past its next seq. Anything beyond
	// is dropped (a sender that honours the window never sees it; frames
	// of small messages past it are resent, which is always safe).
	m.inflight = uint64(max(cfg.Window, cfg.MaxMessage))
	m.maxAhead = min(int64(m.oooLimit/DataHeaderLen), int64(m.inflight)/int64(cfg.FragPayload)+2)
	m.install(g, session)
	return m, nil
}

// G is the current incarnation; Session the current sender session.
func (m *Machine) G() uint64       { return m.g }
func (m *Machine) Session() uint64 { return m.session }

// Stats returns the counters.
func (m *Machine) Stats() Stats { return m.st }

// Unacked counts the fragments not yet acknowledged on all channels.
func (m *Machine) Unacked() int {
	n := 0
	for _, sc := range m.sendList {
		n += len(sc.frags)
	}
	return n
}

// Outstanding is the bytes enqueued to `to` and not yet credited back.
func (m *Machine) Outstanding(to int) int64 {
	if w, _, _ := m.sendTo(to); w != nil {
		return w.outstanding()
	}
	return 0
}

// Held is what the receiver of channel from->Self holds: bytes and frames
// in the reorder buffer and bytes of the message being reassembled.
func (m *Machine) Held(from int) (oooBytes, oooFrames, asm int) {
	if rc := m.recv[from]; rc != nil {
		return rc.oooBytes, len(rc.ooo), len(rc.asm)
	}
	return 0, 0, 0
}

// Uncredited is what the receiver of channel from->Self accepted in order
// and the upper layer has not credited back, and its bound
// max(Window, MaxMessage).
func (m *Machine) Uncredited(from int) (held, limit uint64) {
	if rc := m.recv[from]; rc != nil && rc.accepted > rc.credited {
		held = rc.accepted - rc.credited
	}
	return held, m.inflight
}

// Limits are the receiver's bounds: reorder bytes and frames.
func (m *Machine) Limits() (oooBytes, oooFrames int) { return m.oooLimit, int(m.maxAhead) }

// install starts incarnation g: fresh channels, everything queued dropped.
func (m *Machine) install(g, session uint64) {
	m.g, m.session = g, session
	m.send = make(map[int]*sendChan, len(m.cfg.Peers))
	m.recv = make(map[int]*recvChan, len(m.cfg.Peers))
	m.sendList, m.recvList = m.sendList[:0], m.recvList[:0]
	for _, p := range m.cfg.Peers {
		sc := &sendChan{peer: p, base: 1, nextSend: 1, nextTx: 1, rto: m.cfg.AckTimeout}
		m.send[p] = sc
		m.sendList = append(m.sendList, sc)
		rc := &recvChan{peer: p, next: 1}
		m.recv[p] = rc
		m.recvList = append(m.recvList, rc)
	}
	m.selfW = window{}
	clear(m.ready)
	m.ready = m.ready[:0]
	clear(m.ackq)
	m.ackq, m.ackUrgent, m.ackDue = m.ackq[:0], false, 0
	m.rd.Deliver = nil
}

// Reset starts incarnation g (>= G) with sender session session (non-zero,
// new): every queued, unacknowledged and half-reassembled message and
// every delivery not yet handed out is dropped, and windows start full.
// The driver then moves its subscriptions to g and calls Subscribed.
func (m *Machine) Reset(g, session uint64) error {
	switch {
	case g < m.g:
		return fmt.Errorf("%w: Reset(%d) at g=%d", ErrStaleIncarnation, g, m.g)
	case session == 0:
		return fmt.Errorf("channel: Reset to g=%d with session 0", g)
	}
	m.install(g, session)
	m.rd.Wake = true // waiting senders see the new windows
	m.st.Resets++
	return nil
}

// Subscribed: the driver's subscriptions of the current incarnation are
// registered with the server. Every peer gets a hello ack, which makes it
// retransmit at once what it holds for this rank (it may have published
// before the subscriptions existed) and tells it the receiver's session.
func (m *Machine) Subscribed() {
	for _, rc := range m.recvList {
		rc.hello, rc.nackAll = true, true
		m.markAck(rc, true)
	}
}

// Disconnected: the connection is down. Data frames wait (acks still go
// into Ready: the client buffers them) until Reconnected. It reports
// whether the connection was up.
func (m *Machine) Disconnected() bool {
	up := !m.connDown
	m.connDown = true
	return up
}

// Reconnected: the connection is back. Everything unacknowledged is resent
// and every peer is asked to resend (NACK-all): frames in the dead socket
// were lost both ways, and frames published to this rank while it had no
// subscription were dropped. It reports whether the connection was down.
func (m *Machine) Reconnected() bool {
	if !m.connDown {
		return false
	}
	m.connDown = false
	for _, sc := range m.sendList {
		if !sc.broken {
			m.resend(sc, sc.base, sc.nextSend, 0)
		}
	}
	for _, rc := range m.recvList {
		if !rc.broken {
			rc.nackAll = true
			m.markAck(rc, true)
		}
	}
	return true
}

// Note queues an event of the driver (the connection's, a slow
// consumer, a frame that failed authentication) at time now: it goes out
// in Ready.Events with the machine's own, rate-limited the same way (see
// emit for its Peer and G).
func (m *Machine) Note(now int64, ev Event) {
	m.now = max(m.now, now)
	m.emit(ev)
}

// Room reports whether n more bytes fit in the window of channel Self->to:
// nil if the bytes enqueued and not credited back plus n fit, or nothing
// is outstanding; ErrWait if the sender must wait for Ready.Wake; or
// ErrBroken, ErrUnknownPeer.
func (m *Machine) Room(to, n int) error {
	w, sc, err := m.sendTo(to)
	if err != nil {
		return err
	}
	out := w.outstanding()
	if out <= 0 || out+int64(n) <= int64(m.cfg.Window) {
		return nil
	}
	if sc != nil {
		sc.waiting = true
	}
	return ErrWait
}

// Enqueue queues msg (owned by the machine from now on, read until every
// fragment is acknowledged) on channel Self->to, charging len(msg) to the
// window. A self-channel message goes straight to Ready.Deliver.
func (m *Machine) Enqueue(to int, msg []byte) error {
	n := len(msg)
	if n > m.cfg.MaxMessage {
		return fmt.Errorf("channel: message of %d bytes over %d", n, m.cfg.MaxMessage)
	}
	w, sc, err := m.sendTo(to)
	if err != nil {
		return err
	}
	w.charged += uint64(n)
	m.st.MsgsSent++
	m.st.BytesSent += uint64(n)
	if sc == nil {
		m.deliver(Delivery{From: to, G: m.g, Msg: msg})
		return nil
	}
	had := len(sc.frags)
	p := m.cfg.FragPayload
	for off := 0; off == 0 || off < n; off += p { // an empty message is one empty fragment
		sc.frags = append(sc.frags, frag{msg: msg, off: off, n: min(p, n-off)})
	}
	m.markReady(sc)
	if len(sc.frags)-had > 1 {
		m.st.Fragmented++
	}
	return nil
}

// sendTo is the window of channel Self->to and its sender (nil for the
// self-channel); the error is ErrUnknownPeer, or ErrBroken with both.
func (m *Machine) sendTo(to int) (*window, *sendChan, error) {
	if to == m.cfg.Self {
		return &m.selfW, nil, nil
	}
	sc := m.send[to]
	if sc == nil {
		return nil, nil, fmt.Errorf("%w: rank %d", ErrUnknownPeer, to)
	}
	if sc.broken {
		return &sc.window, sc, fmt.Errorf("%w: channel %d->%d", ErrBroken, m.cfg.Self, to)
	}
	return &sc.window, sc, nil
}

// Credit returns n bytes of window to the sender of channel from->Self; it
// travels in acks as a cumulative count. Unknown ranks and n <= 0 are
// ignored.
func (m *Machine) Credit(from, n int) {
	if n <= 0 {
		return
	}
	if from == m.cfg.Self {
		m.selfW.credited += uint64(n)
		m.rd.Wake = true
		return
	}
	rc := m.recv[from]
	if rc == nil || rc.broken {
		return
	}
	rc.credited += uint64(n)
	m.markAck(rc, rc.credited-rc.creditSent >= uint64(m.urgentBytes))
}

// NextAck is when a delayed ack is due (0: none): the driver calls Tick
// then at the latest.
func (m *Machine) NextAck() int64 { return m.ackDue }

// Tick moves the machine's clock to now (it never goes back) and fires
// retransmission timeouts and credit probes.
func (m *Machine) Tick(now int64) {
	m.now = max(m.now, now)
	if m.connDown {
		return
	}
	for _, sc := range m.sendList {
		if sc.broken {
			continue
		}
		switch {
		case sc.base < sc.nextSend:
			if time.Duration(m.now-sc.lastProgress) >= sc.rto {
				// Resend only the oldest fragment: if the acks were just
				// slow that costs one frame, and if frames were lost its
				// ack shows which (see handleAck).
				m.resend(sc, sc.base, sc.base+1, 0)
				sc.lastProgress = m.now
				sc.rto = min(2*sc.rto, m.cfg.MaxBackoff)
				m.st.Timeouts++
			}
		case sc.waiting && time.Duration(m.now-sc.lastAck) >= sc.rto:
			// A sender waits and nothing is in flight: the ack that would
			// carry the credit may have been lost. Ask for it.
			sc.probe = true
			sc.lastAck = m.now
			sc.rto = min(2*sc.rto, m.cfg.MaxBackoff)
			m.markReady(sc)
		}
	}
}

// HasReady reports whether Ready would ask for anything.
func (m *Machine) HasReady() bool {
	if m.out.n != 0 {
		return true
	}
	return !m.rd.IsEmpty() || m.acksDue() || (!m.connDown && len(m.ready) > 0)
}

func (m *Machine) acksDue() bool {
	return len(m.ackq) > 0 && (m.ackUrgent || (m.ackDue != 0 && m.now >= m.ackDue))
}

// Ready returns what to do now: the acks due, then about one full frame
// (at least 64 KiB) of data frames taken round-robin from the channels
// with work, the deliveries and the events. Calling it again before
// Advance returns the same Ready; inputs in between go to the next one.
func (m *Machine) Ready() Ready {
	if m.out.n != 0 {
		return m.out
	}
	r := m.rd
	m.rd = Ready{}
	if m.acksDue() {
		for _, rc := range m.ackq {
			rc.inAckq = false
			if rc.broken || !rc.ackPending {
				continue
			}
			r.Frames = append(r.Frames, m.ackFrame(rc))
		}
		clear(m.ackq)
		m.ackq, m.ackUrgent, m.ackDue = m.ackq[:0], false, 0
	}
	if !m.connDown {
		budget := m.budget
		for budget > 0 && len(m.ready) > 0 {
			sc := m.ready[0]
			m.ready[0] = nil
			m.ready = m.ready[1:]
			sc.inReady = false
			budget -= m.takeFrames(sc, &r.Frames, budget)
			if sc.hasWork() {
				m.markReady(sc)
			}
		}
	}
	for _, d := range r.Deliver {
		m.st.MsgsReadied++
		m.st.BytesReadied += uint64(len(d.Msg))
	}
	m.readies++
	r.n = m.readies
	m.out = r
	return r
}

// Advance acknowledges rd, the Ready handed out, once it is executed: its
// frames were published (or given to the connection, which may lose
// them), its deliveries queued for the upper layer and its events
// reported. It panics unless rd is the Ready handed out (the contract of
// all three machines: Ready, execute, Advance; see doc.go).
func (m *Machine) Advance(rd Ready) {
	if rd.n == 0 || rd.n != m.out.n {
		panic(fmt.Sprintf("channel: Advance of Ready #%d, but the Ready handed out is #%d (0: none)", rd.n, m.out.n))
	}
	m.out = Ready{}
}

func (m *Machine) markReady(sc *sendChan) {
	if !sc.inReady {
		sc.inReady = true
		m.ready = append(m.ready, sc)
	}
}

// markAck schedules an ack on rc: in the next Ready if urgent, else within
// AckDelay (or with any earlier urgent one).
func (m *Machine) markAck(rc *recvChan, urgent bool) {
	rc.ackPending = true
	if !rc.inAckq {
		rc.inAckq = true
		m.ackq = append(m.ackq, rc)
	}
	if urgent {
		m.ackUrgent = true
	} else if m.ackDue == 0 {
		m.ackDue = m.now + int64(m.cfg.AckDelay)
	}
}

func (m *Machine) deliver(d Delivery) { m.rd.Deliver = append(m.rd.Deliver, d) }

// emit queues an event; those of a limited kind at most once per second
// per kind and peer of the machine's time. A Peer that is not a declared
// peer becomes -1 (so that hostile frames cannot grow the rate limiter's
// map); G is the current incarnation.
func (m *Machine) emit(ev Event) {
	if _, ok := m.recv[ev.Peer]; !ok {
		ev.Peer = -1
	}
	if ev.Kind.limited() {
		k := eventKey{ev.Kind, ev.Peer}
		if t, ok := m.lastEvent[k]; ok && m.now-t < int64(time.Second) {
			return
		}
		m.lastEvent[k] = m.now
	}
	ev.G = m.g
	m.rd.Events = append(m.rd.Events, ev)
}

func (m *Machine) malformed(peer int, err error) {
	m.st.Malformed++
	m.emit(Event{Kind: EventMalformed, Peer: peer, Err: err})
}
