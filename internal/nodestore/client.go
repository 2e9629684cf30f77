package nodestore

import (
	"errors"
	"fmt"
	"time"
)

// Upload is the client side of one file's upload: it numbers the writes
// and keeps the running checksum the commit carries. The driver sends one
// request at a time and waits for its reply (a window of one message of at
// most MaxData bytes: the memory an upload holds is bounded, and a slow
// receiver slows the sender), resending the same request when no reply
// comes; the Server answers a repeated write or commit without doing it
// twice.
type Upload struct {
	Session uint64
	off     int64
	sum     uint32
}

// ErrRefused wraps a reply's refusal.
var ErrRefused = errors.New("nodestore: refused")

// Write returns the request carrying p (at most MaxData bytes) as the
// upload's next piece; the caller must not change p until Acked.
func (u *Upload) Write(p []byte) (Request, error) {
	if len(p) > MaxData {
		return Request{}, fmt.Errorf("nodestore: write of %d bytes, limit %d", len(p), MaxData)
	}
	return Request{Op: OpWrite, Session: u.Session, Offset: u.off, Data: p}, nil
}

// Acked records the reply to a Write: the piece is in the file.
func (u *Upload) Acked(req Request, rep Reply) error {
	if rep.Status != StatusOK {
		return fmt.Errorf("%w: %s: %s", ErrRefused, req.Op, rep.Err)
	}
	u.off += int64(len(req.Data))
	u.sum = Checksum(u.sum, req.Data)
	return nil
}

// Commit returns the request that completes the upload.
func (u *Upload) Commit() Request {
	return Request{Op: OpCommit, Session: u.Session, Offset: u.off, Sum: u.sum}
}

// Size is the bytes acknowledged so far.
func (u *Upload) Size() int64 { return u.off }

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
