package rank

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt/backend/local"
	"github.com/cutpoint/cutpoint/internal/nodestore"
	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// pongHandler hands each delivered message to a channel and gives its
// credit back at once (the job took it).
type pongHandler struct {
	ep  func() *transport.Endpoint
	got chan []byte
}

func (h *pongHandler) Deliver(from int, _ uint64, msg []byte) {
	h.ep().Credit(from, len(msg))
	h.got <- msg
}

func (h *pongHandler) Event(transport.Event) {}

// BenchmarkCopyCostOnMessages: what a partner copy costs the job's own
// messages. Two ranks ping-pong a 16 KiB halo over their channels, each
// on its own NATS connection, as a job's ranks do; under "copying", rank 0
// uploads 16 MiB shards to rank 1's node-local store without pause over
// the same connections (the partner copy travels on the job's
// connection, served by the partner's rank), as at every cut of a job
// with --redundancy partner: unbounded (the default), and bounded to
// 50 MiB/s (--redundancy-bandwidth 50). It reports the round trip's
// median and 99th percentile.
//
//	go test ./rank -run XXX -bench CopyCostOnMessages -benchtime 2000x -count 3
func BenchmarkCopyCostOnMessages(b *testing.B) {
	for _, v := range []struct {
		name    string
		copying bool
		mibps   float64
	}{{"idle", false, 0}, {"copying", true, 0}, {"copying-50MiBps", true, 50}} {
		b.Run(v.name, func(b *testing.B) { benchCopyCost(b, v.copying, v.mibps) })
	}
}

func benchCopyCost(b *testing.B, copying bool, mibps float64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := natstest.Run(b)
	var eps [2]*transport.Endpoint
	hs := [2]*pongHandler{}
	for i := range eps {
		hs[i] = &pongHandler{ep: func() *transport.Endpoint { return eps[i] }, got: make(chan []byte, 16)}
	}
	var ncs [2]*nats.Conn
	for i := range eps {
		nc := natstest.Connect(b, ns.URL())
		ncs[i] = nc
		ep, err := transport.Open(ctx, nc, transport.Options{Job: "bench", Self: i, Peers: []int{0, 1}, G: 1}, hs[i])
		if err != nil {
			b.Fatal(err)
		}
		defer ep.Close()
		eps[i] = ep
	}
	var wg sync.WaitGroup
	var copied atomic.Int64 // bytes the copy wrote while the round trips ran
	if copying {
		be, err := local.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		srv, err := serveStore(ncs[1], "bench", "", "h1", be, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		defer srv.close()
		rb := &remoteBackend{nc: ncs[0], host: "h1", subj: storeSubject("bench", "", "h1"), timeout: 10 * time.Second}
		if mibps > 0 {
			rb.limit = &sharedBucket{b: nodestore.NewBucket(mibps)}
		}
		data := make([]byte, 16<<20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				w, err := rb.Create(ctx, "jobs/bench/packs/1/x.pack")
				if err != nil {
					continue
				}
				for off := 0; off < len(data) && ctx.Err() == nil; off += 1 << 20 {
					if _, err := w.Write(data[off : off+1<<20]); err != nil {
						break
					}
					copied.Add(1 << 20)
				}
				_ = w.Commit()
			}
		}()
		time.Sleep(200 * time.Millisecond) // the copy under way
	}
	halo := make([]byte, 16<<10)
	send := func(from int) {
		if err := eps[from].Acquire(ctx, 1-from, len(halo)); err != nil {
			b.Fatal(err)
		}
		if err := eps[from].Enqueue(1-from, halo); err != nil {
			b.Fatal(err)
		}
	}
	rtt := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	copied.Store(0)
	t0 := time.Now()
	for range b.N {
		t := time.Now()
		send(0)
		<-hs[1].got
		send(1)
		<-hs[0].got
		rtt = append(rtt, time.Since(t))
	}
	b.StopTimer()
	b.ReportMetric(float64(copied.Load())/1e6/time.Since(t0).Seconds(), "copy-MB/s")
	cancel()
	wg.Wait()
	slices.Sort(rtt)
	b.ReportMetric(float64(rtt[len(rtt)/2].Microseconds()), "p50-rtt-us")
	b.ReportMetric(float64(rtt[len(rtt)*99/100].Microseconds()), "p99-rtt-us")
}
