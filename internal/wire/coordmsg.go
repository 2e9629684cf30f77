package wire

import "fmt"

// Coordinator-to-rank message kinds.
const (
	KindGo       byte = 0x20
	KindCut      byte = 0x21
	KindAbort    byte = 0x22
	KindCommit   byte = 0x23
	KindRollback byte = 0x24
	KindBeat     byte = 0x25
	KindFence    byte = 0x26
	KindStop     byte = 0x27
)

// CoordHeader is in every coordinator-to-rank message: the coordinator's
// generation (a rank ignores a lower one than it has seen: a previous
// coordinator process, R15) and the incarnation the message belongs to.
type CoordHeader struct {
	CGen uint64
	G    uint64
}

// CoordMsg is one of *Go, *Cut, *Abort, *Commit, *Rollback, *Beat, *Fence,
// *Stop.
type CoordMsg interface {
	Header() CoordHeader
	Append(dst []byte) []byte
}

// Go starts (or resumes) the job at incarnation G: every rank is Ready(G)
// (R12). Broadcast.
type Go struct{ CoordHeader }

// Cut asks for epoch Epoch at step Step. Broadcast. Final marks the
// final cut of a preemption (a rank of a multi-level job writes it to the
// shared store too); it is an optional trailing byte, absent when false,
// so older peers decode the message unchanged.
type Cut struct {
	CoordHeader
	Epoch uint64
	Step  int64
	Final bool
}

// Abort drops epoch Epoch. Broadcast.
type Abort struct {
	CoordHeader
	Epoch uint64
}

// Commit says epoch Epoch (at Step) is durable in the store. Broadcast.
type Commit struct {
	CoordHeader
	Epoch uint64
	Step  int64
}

// Rollback orders one survivor (Rank, running as process Spawn) to roll
// back in place to incarnation G from committed cut Epoch at Step.
type Rollback struct {
	CoordHeader
	Rank  int
	Spawn uint64
	Epoch uint64
	Step  int64
}

// Beat is the coordinator's periodic broadcast: it proves the coordinator
// alive (R15) and repeats the current state, so a rank that lost a Go, Cut,
// Abort or Commit catches up.
type Beat struct {
	CoordHeader
	Phase         JobPhase
	Epoch         uint64 // the latest epoch issued at this incarnation, 0 if none
	Step          int64
	State         EpochState // of Epoch
	LastCommitted uint64
}

// Fence tells one process (Rank, Spawn) to exit: it was replaced, or it
// spoke with a stale incarnation (R13).
type Fence struct {
	CoordHeader
	Rank   int
	Spawn  uint64
	Reason string
}

// Stop ends the job: every rank exits with Code.
type Stop struct {
	CoordHeader
	Code   int
	Reason string
}

func (m *Go) Header() CoordHeader       { return m.CoordHeader }
func (m *Cut) Header() CoordHeader      { return m.CoordHeader }
func (m *Abort) Header() CoordHeader    { return m.CoordHeader }
func (m *Commit) Header() CoordHeader   { return m.CoordHeader }
func (m *Rollback) Header() CoordHeader { return m.CoordHeader }
func (m *Beat) Header() CoordHeader     { return m.CoordHeader }
func (m *Fence) Header() CoordHeader    { return m.CoordHeader }
func (m *Stop) Header() CoordHeader     { return m.CoordHeader }

func appendCoordHeader(b []byte, kind byte, h CoordHeader) []byte {
	b = append(b, Version, kind)
	b = putU(b, h.CGen)
	return putU(b, h.G)
}

// Append implements CoordMsg.
func (m *Go) Append(b []byte) []byte { return appendCoordHeader(b, KindGo, m.CoordHeader) }

// Append implements CoordMsg.
func (m *Cut) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindCut, m.CoordHeader)
	b = putU(b, m.Epoch)
	b = putI(b, m.Step)
	if m.Final {
		b = append(b, 1)
	}
	return b
}

// Append implements CoordMsg.
func (m *Abort) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindAbort, m.CoordHeader)
	return putU(b, m.Epoch)
}

// Append implements CoordMsg.
func (m *Commit) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindCommit, m.CoordHeader)
	b = putU(b, m.Epoch)
	return putI(b, m.Step)
}

// Append implements CoordMsg.
func (m *Rollback) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindRollback, m.CoordHeader)
	b = putRank(b, m.Rank)
	b = putU(b, m.Spawn)
	b = putU(b, m.Epoch)
	return putI(b, m.Step)
}

// Append implements CoordMsg.
func (m *Beat) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindBeat, m.CoordHeader)
	b = append(b, byte(m.Phase))
	b = putU(b, m.Epoch)
	b = putI(b, m.Step)
	b = append(b, byte(m.State))
	return putU(b, m.LastCommitted)
}

// Append implements CoordMsg.
func (m *Fence) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindFence, m.CoordHeader)
	b = putRank(b, m.Rank)
	b = putU(b, m.Spawn)
	return putText(b, m.Reason)
}

// Append implements CoordMsg.
func (m *Stop) Append(b []byte) []byte {
	b = appendCoordHeader(b, KindStop, m.CoordHeader)
	b = putU(b, uint64(m.Code))
	return putText(b, m.Reason)
}

// EncodeCoord returns the bytes of a coordinator-to-rank message.
func EncodeCoord(m CoordMsg) []byte { return m.Append(make([]byte, 0, 32)) }

// DecodeCoord decodes a coordinator-to-rank message.
func DecodeCoord(b []byte) (CoordMsg, error) {
	kind, r, err := header(b, 4096)
	if err != nil {
		return nil, err
	}
	h := CoordHeader{CGen: r.uvarint("cgen"), G: r.uvarint("g")}
	var m CoordMsg
	switch kind {
	case KindGo:
		m = &Go{CoordHeader: h}
	case KindCut:
		c := &Cut{CoordHeader: h, Epoch: r.uvarint("cut.epoch"), Step: r.nonNeg("cut.step")}
		if r.err == nil && c.Epoch == 0 {
			r.fail(ErrMalformed, "cut.epoch", "epoch 0")
		}
		if r.err == nil && r.remaining() > 0 {
			if f := r.byte1("cut.final"); f != 1 {
				r.fail(ErrMalformed, "cut.final", "flag %d (want 1, or absent)", f)
			}
			c.Final = true
		}
		m = c
	case KindAbort:
		a := &Abort{CoordHeader: h, Epoch: r.uvarint("abort.epoch")}
		if r.err == nil && a.Epoch == 0 {
			r.fail(ErrMalformed, "abort.epoch", "epoch 0")
		}
		m = a
	case KindCommit:
		c := &Commit{CoordHeader: h, Epoch: r.uvarint("commit.epoch"), Step: r.nonNeg("commit.step")}
		if r.err == nil && c.Epoch == 0 {
			r.fail(ErrMalformed, "commit.epoch", "epoch 0")
		}
		m = c
	case KindRollback:
		m = &Rollback{CoordHeader: h, Rank: r.rank("rollback.rank"), Spawn: r.uvarint("rollback.spawn"),
			Epoch: r.uvarint("rollback.epoch"), Step: r.nonNeg("rollback.step")}
	case KindBeat:
		bt := &Beat{CoordHeader: h}
		bt.Phase = JobPhase(r.byte1("beat.phase"))
		if r.err == nil && (bt.Phase < JobStarting || bt.Phase > JobStopping) {
			r.fail(ErrMalformed, "beat.phase", "unknown phase %d", bt.Phase)
		}
		bt.Epoch = r.uvarint("beat.epoch")
		bt.Step = r.nonNeg("beat.step")
		bt.State = EpochState(r.byte1("beat.state"))
		if r.err == nil && bt.State > EpochCommitted {
			r.fail(ErrMalformed, "beat.state", "unknown epoch state %d", bt.State)
		}
		bt.LastCommitted = r.uvarint("beat.committed")
		m = bt
	case KindFence:
		m = &Fence{CoordHeader: h, Rank: r.rank("fence.rank"), Spawn: r.uvarint("fence.spawn"), Reason: r.text("fence.reason")}
	case KindStop:
		code := r.uvarint("stop.code")
		if r.err == nil && code > 255 {
			r.fail(ErrMalformed, "stop.code", "exit code %d > 255", code)
		}
		m = &Stop{CoordHeader: h, Code: int(code), Reason: r.text("stop.reason")}
	default:
		return nil, fmt.Errorf("wire: coordinator message kind 0x%02x: %w", kind, ErrUnknownKind)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}
