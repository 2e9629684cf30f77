package wire

import "fmt"

// Rank-to-coordinator message kinds.
const (
	KindStatus      byte = 0x10
	KindShardReport byte = 0x11
	KindEpochAbort  byte = 0x12
	KindAlarm       byte = 0x13
)

// RankHeader identifies the sender of every rank-to-coordinator message:
// the rank, the incarnation its process was spawned at (Spawn, which tells
// a replacement from the process it replaced, R13) and the incarnation it
// runs at now (G, R11).
type RankHeader struct {
	Rank  int
	Spawn uint64
	G     uint64
}

// RankMsg is one of *Status, *ShardReport, *EpochAbort, *Alarm.
type RankMsg interface {
	Header() RankHeader
	// Append appends the encoding to dst.
	Append(dst []byte) []byte
}

// Status is a rank's join, Ready(g) and heartbeat in one message. Hello is
// set when the rank (re)joins or becomes ready; a periodic heartbeat leaves
// it nil. The epoch fields let the coordinator heal lost control messages.
type Status struct {
	RankHeader
	State  RankState
	Step   int64       // last completed SafePoint (restore step at start)
	Epoch  uint64      // the rank's current epoch, 0 if none
	EStep  int64       // the step S of Epoch
	Phase  EpochPhase  // how far the rank is with Epoch
	Reason AbortReason // when Phase is PhaseAborted
	Peer   int         // for ReasonBlocked: the channel it waited on; else -1
	Cut    uint64      // the committed cut this process restored from, 0 for step 0
	Total  int64       // the job's last step if the rank knows it, else 0
	Hello  *Hello
}

// Hello carries what a rank declares when it joins (R10).
type Hello struct {
	Peers []int // sorted, distinct, excluding the rank itself
}

// ShardReport says a rank's shard of epoch Epoch is durable (R4 counts
// included).
type ShardReport struct {
	RankHeader
	Epoch  uint64
	Step   int64
	Ref    []byte // opaque reference the manifest stores for this rank
	Bytes  uint64 // logical bytes in the shard (buffers + channel state)
	Stored uint64 // bytes written to the store
	Counts Counts
}

// Counts are a rank's per-channel counts at its capture (R4). Out and In
// include the rank's self-channel (To/From == its own rank).
type Counts struct {
	Out []OutCount // sorted by To
	In  []InCount  // sorted by From
}

// OutCount: data messages sent on the channel to To before the capture.
type OutCount struct {
	To   int
	Sent uint64
}

// InCount: on the channel from From, messages delivered to the job
// (returned by Recv) before the capture, and the recorded range: sequence
// numbers First .. First+Recorded-1 are the channel state.
type InCount struct {
	From      int
	Delivered uint64
	First     uint64
	Recorded  uint64
}

// EpochAbort tells the coordinator a rank aborted epoch Epoch on its own.
type EpochAbort struct {
	RankHeader
	Epoch  uint64
	Reason AbortReason
	Peer   int   // for ReasonBlocked: the channel waited on; else -1
	Step   int64 // the rank's last completed SafePoint
	Detail string
}

// Alarm reports a fault the coordinator must act on or show loudly.
type Alarm struct {
	RankHeader
	Kind     AlarmKind
	Peer     int   // the other rank of the channel (the sender for AlarmAlignment)
	SendStep int64 // AlarmAlignment: the sender's step in the header
	RecvStep int64 // AlarmAlignment: the receiver's last SafePoint at delivery
	Detail   string
	// Cut is the committed cut a restore alarm is about (AlarmCutDamaged,
	// AlarmRestoreFailed; encoded only for those kinds, non-zero).
	Cut uint64
}

func (m *Status) Header() RankHeader      { return m.RankHeader }
func (m *ShardReport) Header() RankHeader { return m.RankHeader }
func (m *EpochAbort) Header() RankHeader  { return m.RankHeader }
func (m *Alarm) Header() RankHeader       { return m.RankHeader }

func appendRankHeader(b []byte, kind byte, h RankHeader) []byte {
	b = append(b, Version, kind)
	b = putRank(b, h.Rank)
	b = putU(b, h.Spawn)
	return putU(b, h.G)
}

func readRankHeader(r *reader) RankHeader {
	return RankHeader{Rank: r.rank("rank"), Spawn: r.uvarint("spawn"), G: r.uvarint("g")}
}

// Append implements RankMsg.
func (m *Status) Append(b []byte) []byte {
	b = appendRankHeader(b, KindStatus, m.RankHeader)
	b = append(b, byte(m.State))
	b = putI(b, m.Step)
	b = putU(b, m.Epoch)
	b = putI(b, m.EStep)
	b = append(b, byte(m.Phase), byte(m.Reason))
	b = putOptRank(b, m.Peer)
	b = putU(b, m.Cut)
	b = putI(b, m.Total)
	b = putBool(b, m.Hello != nil)
	if m.Hello != nil {
		b = putU(b, uint64(len(m.Hello.Peers)))
		prev := -1
		for _, p := range m.Hello.Peers {
			// Delta-encoded: peers are sorted and distinct, so a 2-D
			// neighbourhood costs a few bytes whatever the world size.
			b = putU(b, uint64(p-prev-1))
			prev = p
		}
	}
	return b
}

func appendCounts(b []byte, c Counts) []byte {
	b = putU(b, uint64(len(c.Out)))
	for _, o := range c.Out {
		b = putRank(b, o.To)
		b = putU(b, o.Sent)
	}
	b = putU(b, uint64(len(c.In)))
	for _, in := range c.In {
		b = putRank(b, in.From)
		b = putU(b, in.Delivered)
		b = putU(b, in.First)
		b = putU(b, in.Recorded)
	}
	return b
}

func readCounts(r *reader) Counts {
	var c Counts
	n := r.count("counts.out", MaxWorld, 2)
	if n > 0 {
		c.Out = make([]OutCount, n)
		for i := range c.Out {
			c.Out[i] = OutCount{To: r.rank("counts.out.to"), Sent: r.uvarint("counts.out.sent")}
			if i > 0 && r.err == nil && c.Out[i].To <= c.Out[i-1].To {
				r.fail(ErrMalformed, "counts.out", "not sorted and distinct at %d", i)
			}
		}
	}
	n = r.count("counts.in", MaxWorld, 4)
	if n > 0 {
		c.In = make([]InCount, n)
		for i := range c.In {
			c.In[i] = InCount{
				From:      r.rank("counts.in.from"),
				Delivered: r.uvarint("counts.in.delivered"),
				First:     r.uvarint("counts.in.first"),
				Recorded:  r.uvarint("counts.in.recorded"),
			}
			if i > 0 && r.err == nil && c.In[i].From <= c.In[i-1].From {
				r.fail(ErrMalformed, "counts.in", "not sorted and distinct at %d", i)
			}
		}
	}
	return c
}

// Append implements RankMsg.
func (m *ShardReport) Append(b []byte) []byte {
	b = appendRankHeader(b, KindShardReport, m.RankHeader)
	b = putU(b, m.Epoch)
	b = putI(b, m.Step)
	b = putBytes(b, m.Ref)
	b = putU(b, m.Bytes)
	b = putU(b, m.Stored)
	return appendCounts(b, m.Counts)
}

// Append implements RankMsg.
func (m *EpochAbort) Append(b []byte) []byte {
	b = appendRankHeader(b, KindEpochAbort, m.RankHeader)
	b = putU(b, m.Epoch)
	b = append(b, byte(m.Reason))
	b = putOptRank(b, m.Peer)
	b = putI(b, m.Step)
	return putText(b, m.Detail)
}

// Append implements RankMsg.
func (m *Alarm) Append(b []byte) []byte {
	b = appendRankHeader(b, KindAlarm, m.RankHeader)
	b = append(b, byte(m.Kind))
	b = putOptRank(b, m.Peer)
	b = putI(b, m.SendStep)
	b = putI(b, m.RecvStep)
	b = putText(b, m.Detail)
	if m.Kind.restore() {
		b = putU(b, m.Cut)
	}
	return b
}

// EncodeRank returns the bytes of a rank-to-coordinator message.
func EncodeRank(m RankMsg) []byte { return m.Append(make([]byte, 0, 64)) }

func readReason(r *reader, field string) AbortReason {
	v := r.byte1(field)
	if r.err == nil && v > maxReason {
		r.fail(ErrMalformed, field, "unknown abort reason %d", v)
	}
	return AbortReason(v)
}

// DecodeRank decodes a rank-to-coordinator message.
func DecodeRank(b []byte) (RankMsg, error) {
	kind, r, err := header(b, MaxControlLen)
	if err != nil {
		return nil, err
	}
	var m RankMsg
	switch kind {
	case KindStatus:
		s := &Status{RankHeader: readRankHeader(r)}
		s.State = RankState(r.byte1("status.state"))
		if r.err == nil && (s.State < StateWaitGo || s.State > StateRollingBack) {
			r.fail(ErrMalformed, "status.state", "unknown state %d", s.State)
		}
		s.Step = r.nonNeg("status.step")
		s.Epoch = r.uvarint("status.epoch")
		s.EStep = r.nonNeg("status.estep")
		s.Phase = EpochPhase(r.byte1("status.phase"))
		if r.err == nil && s.Phase > PhaseCommitted {
			r.fail(ErrMalformed, "status.phase", "unknown phase %d", s.Phase)
		}
		s.Reason = readReason(r, "status.reason")
		s.Peer = r.optRank("status.peer")
		s.Cut = r.uvarint("status.cut")
		s.Total = r.nonNeg("status.total")
		if r.boolean("status.hello") {
			h := &Hello{}
			n := r.count("hello.peers", MaxWorld-1, 1)
			if n > 0 {
				h.Peers = make([]int, n)
				prev := -1
				for i := range h.Peers {
					d := r.uvarint("hello.peers")
					if r.err != nil {
						break
					}
					if d >= MaxWorld || int64(prev)+1+int64(d) >= MaxWorld {
						r.fail(ErrTooLarge, "hello.peers", "peer beyond %d", MaxWorld)
						break
					}
					prev += 1 + int(d)
					h.Peers[i] = prev
				}
			}
			s.Hello = h
		}
		m = s
	case KindShardReport:
		s := &ShardReport{RankHeader: readRankHeader(r)}
		s.Epoch = r.uvarint("report.epoch")
		s.Step = r.nonNeg("report.step")
		s.Ref = r.bytesField("report.ref", MaxRefLen)
		s.Bytes = r.uvarint("report.bytes")
		s.Stored = r.uvarint("report.stored")
		s.Counts = readCounts(r)
		if r.err == nil && s.Epoch == 0 {
			r.fail(ErrMalformed, "report.epoch", "epoch 0")
		}
		m = s
	case KindEpochAbort:
		a := &EpochAbort{RankHeader: readRankHeader(r)}
		a.Epoch = r.uvarint("abort.epoch")
		a.Reason = readReason(r, "abort.reason")
		a.Peer = r.optRank("abort.peer")
		a.Step = r.nonNeg("abort.step")
		a.Detail = r.text("abort.detail")
		if r.err == nil && a.Epoch == 0 {
			r.fail(ErrMalformed, "abort.epoch", "epoch 0")
		}
		m = a
	case KindAlarm:
		a := &Alarm{RankHeader: readRankHeader(r)}
		a.Kind = AlarmKind(r.byte1("alarm.kind"))
		if r.err == nil && (a.Kind < AlarmAlignment || a.Kind > AlarmRestoreFailed) {
			r.fail(ErrMalformed, "alarm.kind", "unknown alarm %d", a.Kind)
		}
		a.Peer = r.optRank("alarm.peer")
		a.SendStep = r.varint("alarm.sendstep")
		a.RecvStep = r.varint("alarm.recvstep")
		a.Detail = r.text("alarm.detail")
		if a.Kind.restore() {
			a.Cut = r.uvarint("alarm.cut")
			if r.err == nil && a.Cut == 0 {
				r.fail(ErrMalformed, "alarm.cut", "restore alarm about cut 0")
			}
		}
		m = a
	default:
		return nil, fmt.Errorf("wire: rank message kind 0x%02x: %w", kind, ErrUnknownKind)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}
