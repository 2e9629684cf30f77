package transport

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// Defaults for the zero values of Options.
const (
	// DefaultWindow is the per-channel credit window. With the in-degree of
	// a 2-D halo (4) it keeps a rank's worst-case inbound backlog at 32 MiB,
	// under nats-server's default max_pending of 64 MiB, so a stalled rank
	// is not cut off by the server as a slow consumer.
	DefaultWindow = 8 << 20
	// DefaultMaxMessage bounds a message, and so the reassembly buffer.
	DefaultMaxMessage = 256 << 20
	// MaxMaxMessage is the largest MaxMessage accepted.
	MaxMaxMessage = 16 << 30
	// DefaultAckTimeout is the first retransmission timeout of a channel;
	// it doubles on every timeout without progress up to MaxBackoff.
	DefaultAckTimeout = 200 * time.Millisecond
	// DefaultMaxBackoff caps the retransmission and probe timeout.
	DefaultMaxBackoff = 2 * time.Second
	// DefaultAckDelay is how long a receiver may sit on an ack that is not
	// urgent (no gap, less than 1/16 of the window unacknowledged or
	// uncredited), so that small messages do not cost one ack each.
	DefaultAckDelay = time.Millisecond
	// DefaultFlushTimeout bounds Open's and Reset's Flush when their
	// context has no deadline.
	DefaultFlushTimeout = 10 * time.Second
	// minFrame is the smallest usable frame: the data header plus 8 bytes.
	minFrame = channel.DataHeaderLen + 8
)

// ErrInvalidOptions is wrapped by every error Open returns for bad Options.
var ErrInvalidOptions = errors.New("transport: invalid options")

// Options configure an Endpoint. Window and MaxMessage must be the same on
// every rank of a job: a sender assumes the receiver's window, and a
// receiver rejects messages over its own MaxMessage.
type Options struct {
	// Job names the job; it must match [A-Za-z0-9._-]{1,64}.
	Job string
	// JobID is the job's random id (internal/subjects): it is part of
	// every subject, so jobs of the same name never share one. Empty: the
	// name alone (one job on a private server).
	JobID string
	// Self is this rank.
	Self int
	// Peers are the declared peers: a channel exists in both directions
	// with each. Self may be listed (it is ignored: the self-channel always
	// exists). Enqueue/Acquire to any other rank fail with ErrUnknownPeer,
	// and frames from any other rank are malformed.
	Peers []int
	// G is the incarnation to start in, >= 1.
	G uint64

	// Window is the credit window of each channel in message bytes
	// (default DefaultWindow).
	Window int
	// MaxMessage bounds a message's length (default DefaultMaxMessage, at
	// most MaxMaxMessage).
	MaxMessage int
	// MaxFrame caps a frame's size; 0 or anything above the server's max
	// payload (nc.MaxPayload(), read at Open) means the server's max
	// payload. At least 64 bytes.
	MaxFrame int
	// AckTimeout is the initial retransmission timeout (default
	// DefaultAckTimeout).
	AckTimeout time.Duration
	// MaxBackoff caps the exponential backoff of retransmissions and probes
	// (default DefaultMaxBackoff, at least AckTimeout).
	MaxBackoff time.Duration
	// AckDelay is how long a non-urgent ack may wait (default DefaultAckDelay).
	AckDelay time.Duration
	// PendingBytesLimit overrides the NATS client's pending-bytes limit of
	// the data subscription. 0 derives it: 2 x in-degree x (Window + one
	// frame), at least 8 MiB. The message-count limit is off (the byte limit
	// bounds memory; frames of tiny messages would hit a count limit first).
	PendingBytesLimit int

	// Keys authenticate every frame (a tag under the pair key of the
	// channel's two ranks, TagLen bytes at its end): frames that fail are
	// dropped and counted (Stats.AuthDropped) and warned about, at most
	// once per second per claimed peer, before the machine sees them. nil:
	// frames carry no tag and nothing is checked (tests, benchmarks of the
	// bare transport). Every rank of a job must agree.
	Keys Keys

	// Logger receives warnings (gaps, slow consumers, disconnects) and
	// debug detail; nil discards.
	Logger *slog.Logger
	// Faults intercepts frames for fault-injection tests; nil in production.
	Faults Faults
}

var jobRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// config is Options validated and completed with defaults.
type config struct {
	Options
	peers []int // sorted, unique, without Self
}

func (o Options) normalize() (config, error) {
	bad := func(format string, args ...any) (config, error) {
		return config{}, fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
	}
	if !jobRE.MatchString(o.Job) {
		return bad("Job %q does not match [A-Za-z0-9._-]{1,64}", o.Job)
	}
	if o.JobID != "" && !jobIDRE.MatchString(o.JobID) {
		return bad("JobID %q is not 16 lowercase hex digits", o.JobID)
	}
	// Self, G, Peers (range, duplicates), Window, MaxMessage below 0 and
	// the timeouts are checked by channel.New, which Open calls.
	c := config{Options: o}
	c.peers = slices.DeleteFunc(slices.Clone(o.Peers), func(p int) bool { return p == o.Self })
	slices.Sort(c.peers)
	c.Window = cmp.Or(c.Window, DefaultWindow)
	c.MaxMessage = cmp.Or(c.MaxMessage, DefaultMaxMessage)
	if c.MaxMessage > MaxMaxMessage {
		return bad("MaxMessage %d over %d", o.MaxMessage, MaxMaxMessage)
	}
	if c.MaxFrame != 0 && c.MaxFrame < minFrame {
		return bad("MaxFrame %d < %d", o.MaxFrame, minFrame)
	}
	c.AckTimeout = cmp.Or(c.AckTimeout, DefaultAckTimeout)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, max(DefaultMaxBackoff, c.AckTimeout))
	c.AckDelay = cmp.Or(c.AckDelay, DefaultAckDelay)
	if c.PendingBytesLimit < 0 {
		return bad("PendingBytesLimit %d < 0", o.PendingBytesLimit)
	}
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	return c, nil
}

// jobToken makes a subject token of a job name. Job names may contain '.',
// the NATS token separator; '~' is not in the job alphabet, so replacing
// '.' by '~' keeps distinct jobs on distinct subjects.
func jobToken(job string) string { return strings.ReplaceAll(job, ".", "~") }

// jobIDRE is internal/subjects' job id (kept here: the transport imports
// nothing of the control plane).
var jobIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// space is the job's subject space, as internal/subjects.Space makes it.
func space(job, id string) string {
	if id == "" {
		return jobToken(job)
	}
	return jobToken(job) + "." + id
}

// Subjects of incarnation g (job space J: the job token and its id):
//
//	cp.J.g.d.<to>.<from>   data, probe and gone frames of channel from->to
//	cp.J.g.a.<to>.<from>   acks from rank from to the sender rank to
//
// A rank subscribes to cp.J.g.d.<self>.* and cp.J.g.a.<self>.*: subject
// makes them all, with from "*" for the wildcards.
func subject(job string, g uint64, sub channel.Sub, to int, from string) string {
	kind := ".d."
	if sub == channel.AckSub {
		kind = ".a."
	}
	return "cp." + job + "." + strconv.FormatUint(g, 10) + kind + strconv.Itoa(to) + "." + from
}
