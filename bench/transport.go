package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/rank/transport"
)

// transportSamples is how many times each size is measured, transport
// and raw NATS in turn, so that the ratio has an interval.
const transportSamples = 5

// transportWindow is the raw NATS publisher's pacing: the transport's
// default window per channel, so that both sides keep as many bytes in
// flight.
const transportWindow = 8 << 20

// transportRates measures one rank transport channel against raw core NATS
// on the same embedded server, in the same run: throughput for 64 KiB and
// 1 MiB messages and the one-way latency of a 64-byte message (issue 8).
// Raw NATS is paced by the transport's window (its publisher waits while
// more than the window is unreceived), with the feedback taken from
// shared memory the instant a message arrives: the same pacing and load,
// with a feedback path the transport, whose credit travels back through
// the server, cannot have. Each size is measured transportSamples times,
// the two in turn, and the verdict read from the interval of the
// per-sample ratios.
func (h *harness) transportRates(ctx context.Context) ([]Record, error) {
	srv, err := natsutil.StartServer(natsutil.ServerOptions{MaxPayload: 8 << 20, MaxPending: 512 << 20})
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	conn := func(name string) (*nats.Conn, error) {
		return natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{Name: name, Logger: h.quiet})
	}
	total := int64(128 << 20)
	rtts := 2000
	if h.cfg.Quick {
		total, rtts = 16<<20, 300
	}
	var out []Record
	for _, size := range []int{64 << 10, 1 << 20} {
		var raws, trs, aus, ratios, auRatios []float64
		for i := range transportSamples {
			var raw, tr, au float64
			// Rotate which goes first, so that none always gets the
			// warmer (or the quieter) slot.
			for k := range 3 {
				var err error
				switch (i + k) % 3 {
				case 0:
					if raw, err = rawNATSThroughput(ctx, conn, size, total, transportWindow); err != nil {
						return out, fmt.Errorf("raw nats %s: %w", sizeName(int64(size)), err)
					}
				case 1:
					if tr, err = transportThroughput(ctx, conn, size, total, false); err != nil {
						return out, fmt.Errorf("transport %s: %w", sizeName(int64(size)), err)
					}
				default:
					// Every frame tagged and checked, as a job's ranks
					// run (Options.Keys): the cost of authentication.
					if au, err = transportThroughput(ctx, conn, size, total, true); err != nil {
						return out, fmt.Errorf("transport with keys %s: %w", sizeName(int64(size)), err)
					}
				}
			}
			raws, trs, aus = append(raws, raw), append(trs, tr), append(aus, au)
			ratios, auRatios = append(ratios, tr/raw), append(auRatios, au/raw)
		}
		out = append(out, Record{
			Name: "transport/channel/" + sizeName(int64(size)), Family: "transport", Role: RoleScenario, What: "one channel",
			StateBytes: total, Reps: transportSamples, RawGBps: statOf(trs...), RawNATSGBps: statOf(raws...), VsRawNATS: statOf(ratios...),
			Samples: ratios, VsRawNATSCI: bootstrapCI(ratios, 0.95, h.res.Seed),
			Note: fmt.Sprintf("%s messages back to back, %s per sample; raw NATS paced by the same %s window", sizeName(int64(size)), sizeName(total), sizeName(transportWindow)),
		})
		out = append(out, Record{
			Name: "transport/channel-auth/" + sizeName(int64(size)), Family: "transport", Role: RoleScenario, What: "one channel, frames authenticated",
			StateBytes: total, Reps: transportSamples, RawGBps: statOf(aus...), RawNATSGBps: statOf(raws...), VsRawNATS: statOf(auRatios...),
			Samples: auRatios, VsRawNATSCI: bootstrapCI(auRatios, 0.95, h.res.Seed),
			Note: fmt.Sprintf("%s messages back to back, every frame tagged (GMAC) and checked; raw NATS paced by the same %s window; median %.0f%% of the same run's transport without keys", sizeName(int64(size)), sizeName(transportWindow), 100*statOf(aus...).Median/statOf(trs...).Median),
		})
	}
	rawLat, err := rawNATSLatency(ctx, conn, rtts)
	if err != nil {
		return out, fmt.Errorf("raw nats latency: %w", err)
	}
	trLat, err := transportLatency(ctx, conn, rtts)
	if err != nil {
		return out, fmt.Errorf("transport latency: %w", err)
	}
	out = append(out, Record{
		Name: "transport/latency/64B", Family: "transport", Role: RoleScenario, What: "one-way latency",
		StateBytes: 64, Reps: rtts, OneWayUs: one(trLat), RawNATSOneWayUs: one(rawLat), AddedLatencyUs: one(trLat - rawLat),
		Note: "half the round trip of a ping-pong, median over the round trips",
	})
	return out, nil
}

type connFunc func(name string) (*nats.Conn, error)

// rawNATSThroughput publishes total bytes in size messages; the
// publisher waits while more than window bytes are sent and not yet
// received (0: unpaced).
func rawNATSThroughput(ctx context.Context, conn connFunc, size int, total, window int64) (float64, error) {
	pub, err := conn("bench-pub")
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	subc, err := conn("bench-sub")
	if err != nil {
		return 0, err
	}
	defer subc.Close()
	var got atomic.Int64
	done := make(chan struct{})
	arrived := make(chan struct{}, 1)
	sub, err := subc.Subscribe("bench.raw", func(m *nats.Msg) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		if got.Add(int64(len(m.Data))) >= total {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	})
	if err != nil {
		return 0, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := subc.Flush(); err != nil {
		return 0, err
	}
	msg := make([]byte, size)
	t0 := time.Now()
	for sent := int64(0); sent < total; sent += int64(size) {
		for window > 0 && sent-got.Load() > window {
			select {
			case <-arrived:
			case <-time.After(time.Second):
				// A lost wake-up costs at most a second; a stall this
				// long is the slow-consumer failure below.
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if err := pub.Publish("bench.raw", msg); err != nil {
			return 0, err
		}
	}
	if err := pub.Flush(); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("only %d of %d bytes arrived (dropped by a slow consumer?)", got.Load(), total)
	}
	return gbps(total, time.Since(t0)), nil
}

// sink counts what a transport endpoint delivers, crediting it at once,
// and optionally echoes each message back.
type sink struct {
	ep    atomic.Pointer[transport.Endpoint]
	got   atomic.Int64
	want  int64
	done  chan struct{}
	echo  bool
	pongs chan struct{}
}

func (s *sink) Deliver(from int, g uint64, msg []byte) {
	ep := s.ep.Load()
	if ep == nil {
		return
	}
	ep.Credit(from, len(msg))
	if s.echo {
		_ = ep.Enqueue(from, msg)
		return
	}
	if s.pongs != nil {
		s.pongs <- struct{}{}
		return
	}
	if s.got.Add(int64(len(msg))) >= s.want && s.done != nil {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
}

func (s *sink) Event(transport.Event) {}

// benchKeys is one pair key for the two ranks of a benchmark (a job's
// ranks get theirs from the launcher: internal/wire.JobKey.RankKeys).
type benchKeys [32]byte

func (k benchKeys) PairKey(int) ([32]byte, bool) { return k, true }

// pair opens ranks 0 and 1 of a job on their own connections; with auth
// their frames are tagged and checked.
func pair(ctx context.Context, conn connFunc, h0, h1 *sink, auth bool) (e0, e1 *transport.Endpoint, closeAll func(), err error) {
	c0, err := conn("bench-rank0")
	if err != nil {
		return nil, nil, nil, err
	}
	c1, err := conn("bench-rank1")
	if err != nil {
		c0.Close()
		return nil, nil, nil, err
	}
	job := fmt.Sprintf("bench%d", time.Now().UnixNano())
	var keys transport.Keys
	if auth {
		keys = benchKeys{1, 2, 3}
	}
	e0, err = transport.Open(ctx, c0, transport.Options{Job: job, Self: 0, Peers: []int{1}, G: 1, Keys: keys}, h0)
	if err == nil {
		h0.ep.Store(e0)
		e1, err = transport.Open(ctx, c1, transport.Options{Job: job, Self: 1, Peers: []int{0}, G: 1, Keys: keys}, h1)
	}
	closeAll = func() {
		if e0 != nil {
			e0.Close()
		}
		if e1 != nil {
			e1.Close()
		}
		c0.Close()
		c1.Close()
	}
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	h1.ep.Store(e1)
	return e0, e1, closeAll, nil
}

func transportThroughput(ctx context.Context, conn connFunc, size int, total int64, auth bool) (float64, error) {
	recv := &sink{want: total, done: make(chan struct{})}
	e0, _, closeAll, err := pair(ctx, conn, &sink{}, recv, auth)
	if err != nil {
		return 0, err
	}
	defer closeAll()
	msg := make([]byte, size)
	t0 := time.Now()
	for sent := int64(0); sent < total; sent += int64(size) {
		if err := e0.Acquire(ctx, 1, size); err != nil {
			return 0, err
		}
		if err := e0.Enqueue(1, msg); err != nil {
			return 0, err
		}
	}
	select {
	case <-recv.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("only %d of %d bytes delivered", recv.got.Load(), total)
	}
	return gbps(total, time.Since(t0)), nil
}

func rawNATSLatency(ctx context.Context, conn connFunc, n int) (float64, error) {
	a, err := conn("bench-ping")
	if err != nil {
		return 0, err
	}
	defer a.Close()
	b, err := conn("bench-pong")
	if err != nil {
		return 0, err
	}
	defer b.Close()
	if _, err := b.Subscribe("bench.ping", func(m *nats.Msg) { _ = b.Publish("bench.pong", m.Data) }); err != nil {
		return 0, err
	}
	pongs := make(chan struct{}, 1)
	if _, err := a.Subscribe("bench.pong", func(*nats.Msg) { pongs <- struct{}{} }); err != nil {
		return 0, err
	}
	if err := a.Flush(); err != nil {
		return 0, err
	}
	if err := b.Flush(); err != nil {
		return 0, err
	}
	msg := make([]byte, 64)
	return pingPong(ctx, n, func() error { return a.Publish("bench.ping", msg) }, pongs)
}

func transportLatency(ctx context.Context, conn connFunc, n int) (float64, error) {
	pongs := make(chan struct{}, 1)
	e0, _, closeAll, err := pair(ctx, conn, &sink{pongs: pongs}, &sink{echo: true}, false)
	if err != nil {
		return 0, err
	}
	defer closeAll()
	return pingPong(ctx, n, func() error { return e0.Enqueue(1, make([]byte, 64)) }, pongs)
}

// pingPong sends n pings one after the other, each after the previous
// pong, and returns half the median round trip in microseconds (the first
// tenth warms up and is not counted).
func pingPong(ctx context.Context, n int, ping func() error, pongs <-chan struct{}) (float64, error) {
	var rtts []float64
	for i := range n {
		t0 := time.Now()
		if err := ping(); err != nil {
			return 0, err
		}
		select {
		case <-pongs:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Second):
			return 0, errors.New("no answer within 10s")
		}
		if i >= n/10 {
			rtts = append(rtts, float64(time.Since(t0).Nanoseconds())/1e3)
		}
	}
	return statOf(rtts...).Median / 2, nil
}
