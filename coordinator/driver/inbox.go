package driver

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// Why the driver dropped a message at its boundary, before it reached the
// coordinator or any map keyed by a rank's claim.
const (
	dropMalformed  = iota // does not decode
	dropRank              // claims a rank outside the world
	dropFull              // not a status, and the share of the inbox other messages may use is full
	dropStatusFull        // a status, and the whole inbox is full
	dropResult            // a result from a rank other than 0, or malformed
	dropAuth              // fails authentication under the key of the rank it claims (Config.Keys)
	dropKinds
)

var dropNames = [dropKinds]string{"malformed", "rank outside the world", "inbox full", "inbox full (status)", "result not from rank 0", "fails authentication"}

// inbox is the bounded path from the NATS callback to the loop. Messages
// that claim a rank outside the world are dropped here, so no flood of
// fake ranks grows anything; and a share of the inbox is kept for rank
// statuses (the heartbeats), so that a flood of other messages cannot make
// real ranks look silent. One FIFO keeps each rank's messages in order.
type inbox struct {
	world   int
	ch      chan []byte
	reserve int // slots only statuses may take

	drops   [dropKinds]atomic.Uint64
	mu      sync.Mutex
	warned  [dropKinds]time.Time
	reports [dropKinds]uint64 // drops as of the last warning

	// keys: nil, or the job key, under which every rank message must
	// carry the tag of the rank it claims (macs: one per rank seen,
	// bounded by the world; used by offer's goroutine only).
	keys *wire.JobKey
	macs map[int]*wire.MAC
	// claimed is the rank the last message that failed authentication
	// claimed, for the warning.
	claimed atomic.Int64
}

func newInbox(world, others int) *inbox {
	reserve := max(4*world, 1024)
	return &inbox{world: world, ch: make(chan []byte, others+reserve), reserve: reserve, macs: map[int]*wire.MAC{}}
}

// offer queues b for the loop, or drops it and returns why (-1: queued).
// It is called from one goroutine (the subscription's callback).
func (in *inbox) offer(b []byte) int { return in.offerFrom(-1, b) }

// offerFrom is offer for a message that came on rank from's own subject
// (internal/subjects.ToCoordinator; -1: not known): a message claiming
// another rank is dropped, so that NATS's per-rank publish permissions
// also bind the rank a message speaks for.
func (in *inbox) offerFrom(from int, b []byte) int {
	if in.keys != nil {
		// The claim selects the key; a claim outside the world, or
		// another rank's than the subject's, is dropped before any key
		// or map.
		r, ok := wire.ClaimedRank(b)
		if !ok {
			return in.drop(dropMalformed)
		}
		if r >= in.world || (from >= 0 && r != from) {
			return in.drop(dropRank)
		}
		mac := in.macs[r]
		if mac == nil {
			mac = wire.NewMAC(in.keys.ReportKey(r))
			in.macs[r] = mac
		}
		msg, err := mac.Open(wire.DomainReport, b)
		if err != nil {
			in.claimed.Store(int64(r))
			return in.drop(dropAuth)
		}
		b = msg
	}
	m, err := wire.DecodeRank(b)
	if err != nil {
		return in.drop(dropMalformed)
	}
	if r := m.Header().Rank; r < 0 || r >= in.world || (from >= 0 && r != from) {
		return in.drop(dropRank)
	}
	if _, status := m.(*wire.Status); !status && len(in.ch) >= cap(in.ch)-in.reserve {
		return in.drop(dropFull)
	}
	select {
	case in.ch <- b:
		return -1
	default:
		return in.drop(dropStatusFull)
	}
}

// admitResult says whether a decoded result may be kept: only rank 0's
// result is the job's, so no other rank's claim takes memory (250,000
// results for distinct ranks grew the coordinator to 1.4 GB before).
func (in *inbox) admitResult(r wire.Result, err error) bool {
	if errors.Is(err, wire.ErrAuth) {
		in.drop(dropAuth)
		return false
	}
	if err != nil || r.Rank != 0 {
		in.drop(dropResult)
		return false
	}
	return true
}

func (in *inbox) drop(kind int) int {
	in.drops[kind].Add(1)
	return kind
}

// Dropped is how many messages were dropped for each reason.
func (in *inbox) dropped(kind int) uint64 { return in.drops[kind].Load() }

// warn logs a drop of kind at most once per 10 s, with the count since
// the last warning: a flood makes one line, not one per message.
func (in *inbox) warn(log *slog.Logger, kind int, now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.warned[kind].IsZero() && now.Sub(in.warned[kind]) < 10*time.Second {
		return
	}
	n := in.drops[kind].Load()
	attrs := []any{"reason", dropNames[kind], "dropped", n - in.reports[kind], "dropped_total", n}
	if kind == dropAuth {
		attrs = append(attrs, "claimed_rank", in.claimed.Load())
	}
	log.Warn("rank messages dropped at the coordinator's boundary (repeats within 10s are counted, not logged)", attrs...)
	in.warned[kind], in.reports[kind] = now, n
}
