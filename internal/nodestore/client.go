package nodestore

import (
	"errors"
	"fmt"
	"time"
)

// Window is the most pieces an upload has in flight: the driver sends up
// to Window writes before it waits for the first reply, so that a copy
// is not one round trip (request, the serving rank's write, reply) per
// 256 KiB. An upload holds at most Window*MaxData bytes of its file in
// messages not yet acknowledged (2 MiB); a slow receiver still slows the
// sender, a window later. Chosen by measurement (docs/benchmarks.md,
// BenchmarkNodeStoreUploadRTT, docs/bench/2026-12-02/copy-window): with
// a simulated round trip of 2 ms, 8 pieces came within a quarter of what
// the same machine copies on loopback, where the copy is bound by its
// CPUs, not by the round trip (median 210 against 270 MB/s; 4 pieces
// 157, one 66); 16 gained a little more (238) for twice the memory here
// and on every serving rank (which queues every upload's window).
const Window = 8

// MaxSends is how many times a piece is sent at most (once, and twice
// again when no reply comes in the driver's timeout).
const MaxSends = 3

// Upload is the client side of one file's upload: it numbers the writes,
// keeps the running checksum the commit carries and the pieces in flight.
// The driver sends the pieces in order, at most Window unacknowledged at a
// time, collects their replies in any order, and sends a piece again
// (MaxSends times in all) when its reply does not come; the Server answers
// a write of bytes it already has, or a repeated commit, without doing it
// twice, and refuses a write past the file's end (a piece lost on the
// way), which ends the upload.
type Upload struct {
	Session uint64
	sent    int64 // bytes handed out in writes
	sum     uint32
	flight  []span // the writes not all acknowledged, in order of offset
}

// span is one write in flight.
type span struct {
	off   int64
	n     int
	sends int
	ok    bool
}

// ErrRefused wraps a reply's refusal.
var ErrRefused = errors.New("nodestore: refused")

// ErrWindowFull: Write with Window pieces in flight.
var ErrWindowFull = errors.New("nodestore: window full")

// Write returns the request carrying p (1 to MaxData bytes) as the
// upload's next piece, and counts p into the commit's checksum: the
// pieces reach the server in the order of their Writes. The caller must
// not change p until it has encoded the request.
func (u *Upload) Write(p []byte) (Request, error) {
	switch {
	case len(p) == 0 || len(p) > MaxData:
		return Request{}, fmt.Errorf("nodestore: write of %d bytes, want 1 to %d", len(p), MaxData)
	case u.Full():
		return Request{}, fmt.Errorf("%w: %d pieces from the first unacknowledged", ErrWindowFull, len(u.flight))
	}
	req := Request{Op: OpWrite, Session: u.Session, Offset: u.sent, Data: p}
	u.flight = append(u.flight, span{off: u.sent, n: len(p), sends: 1})
	u.sent += int64(len(p))
	u.sum = Checksum(u.sum, p)
	return req, nil
}

func (u *Upload) find(off int64) int {
	for i, s := range u.flight {
		if s.off == off {
			return i
		}
	}
	return -1
}

// Acked records the reply to the write at offset off. A refusal is the
// upload's end (the server aborted it). A reply to a piece acknowledged
// already (the reply to a piece sent twice) changes nothing.
func (u *Upload) Acked(off int64, rep Reply) error {
	i := u.find(off)
	if i < 0 {
		if off >= 0 && off < u.Size() {
			return nil
		}
		return fmt.Errorf("nodestore: reply to a write at %d, none sent there", off)
	}
	if rep.Status != StatusOK {
		return fmt.Errorf("%w: write at %d: %s", ErrRefused, off, rep.Err)
	}
	u.flight[i].ok = true
	k := 0
	for k < len(u.flight) && u.flight[k].ok {
		k++
	}
	u.flight = u.flight[k:]
	return nil
}

// Resent records that the write at off, whose reply did not come, is
// sent again; it fails once the piece was sent MaxSends times (the
// receiver is gone or stalled: the upload ends).
func (u *Upload) Resent(off int64) error {
	i := u.find(off)
	if i < 0 || u.flight[i].ok {
		return fmt.Errorf("nodestore: resend of a write at %d, none in flight there", off)
	}
	if u.flight[i].sends >= MaxSends {
		return fmt.Errorf("nodestore: write at %d sent %d times, no reply", off, u.flight[i].sends)
	}
	u.flight[i].sends++
	return nil
}

// Full: Window pieces from the first one unacknowledged to the last one
// sent; the next Write waits for the first one's reply. (Replies to the
// pieces after it do not make room: the server is never more than a
// window ahead of what the client knows it has.)
func (u *Upload) Full() bool { return len(u.flight) >= Window }

// InFlight is the number of pieces sent and not yet acknowledged.
func (u *Upload) InFlight() int {
	n := 0
	for _, s := range u.flight {
		if !s.ok {
			n++
		}
	}
	return n
}

// Commit returns the request that completes the upload: every piece sent
// must have been acknowledged.
func (u *Upload) Commit() (Request, error) {
	if len(u.flight) > 0 {
		return Request{}, fmt.Errorf("nodestore: commit with %d pieces unacknowledged", u.InFlight())
	}
	return Request{Op: OpCommit, Session: u.Session, Offset: u.sent, Sum: u.sum}, nil
}

// Size is the bytes acknowledged so far: every piece before the first
// one in flight.
func (u *Upload) Size() int64 {
	if len(u.flight) > 0 {
		return u.flight[0].off
	}
	return u.sent
}

// Sent is the bytes handed out in writes so far.
func (u *Upload) Sent() int64 { return u.sent }

// Bucket is a token bucket bounding the bandwidth copies take: Rate bytes
// per second, at most Burst in one go. The zero Rate is no bound.
type Bucket struct {
	Rate   float64
	Burst  float64
	tokens float64
	last   time.Time
}

// NewBucket bounds to mibps MiB/s (0: no bound), with a burst of a quarter
// second's worth (at least one message).
func NewBucket(mibps float64) *Bucket {
	rate := mibps * (1 << 20)
	return &Bucket{Rate: rate, Burst: max(rate/4, MaxData), tokens: max(rate/4, MaxData)}
}

// Take spends n bytes at time now and returns how long to wait before
// sending them.
func (b *Bucket) Take(now time.Time, n int) time.Duration {
	if b == nil || b.Rate <= 0 {
		return 0
	}
	if !b.last.IsZero() {
		b.tokens = min(b.Burst, b.tokens+now.Sub(b.last).Seconds()*b.Rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.Rate * float64(time.Second))
}
