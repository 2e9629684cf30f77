package transport_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// Benchmarks of the transport next to raw core NATS (same server, same
// connections setup) and a raw TCP loopback socket, in one run:
//
//	go test -run '^$' -bench . -benchtime 1s ./rank/transport/
//
// The server allows 8 MiB payloads (so raw NATS can carry 4 MiB messages
// unfragmented) and 256 MiB of pending bytes per client (so raw NATS, which
// has no flow control of its own, is not cut off as a slow consumer). Raw
// NATS is paced by a window of the same size as the transport's, fed back
// through shared memory: its feedback is free, the transport's goes over
// the network.

var benchSizes = []int{4 << 10, 64 << 10, 1 << 20, 4 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func benchServer(b *testing.B) *natstest.Server {
	return natstest.Run(b, func(o *server.Options) {
		o.MaxPayload = 8 << 20
		o.MaxPending = 256 << 20
	})
}

// net is one of the three implementations under test: it connects n ranks
// with channels between the given pairs and delivers every message to
// onMsg(to, from, msg) on a goroutine of its own.
type benchNet interface {
	send(from, to int, msg []byte) // blocks for flow control as the implementation must
	close()
}

type onMsg func(to, from int, msg []byte)

// --- the transport ---

type trNet struct {
	eps []*transport.Endpoint
	ctx context.Context
}

type trHandler struct {
	self int
	ep   **transport.Endpoint
	f    onMsg
}

func (h *trHandler) Deliver(from int, _ uint64, msg []byte) {
	(*h.ep).Credit(from, len(msg))
	h.f(h.self, from, msg)
}
func (h *trHandler) Event(ev transport.Event) {}

func newTrNet(b *testing.B, srv *natstest.Server, n int, peers func(int) []int, f onMsg, window int, auth bool) *trNet {
	t := &trNet{eps: make([]*transport.Endpoint, n), ctx: context.Background()}
	for r := 0; r < n; r++ {
		h := &trHandler{self: r, ep: &t.eps[r], f: f}
		o := transport.Options{Job: "bench", Self: r, Peers: peers(r), G: 1, Window: window, MaxFrame: benchMaxFrame()}
		if auth {
			o.Keys = pairKeys{self: r, world: n}
		}
		ep, err := transport.Open(context.Background(), natstest.Connect(b, srv.URL()), o, h)
		if err != nil {
			b.Fatal(err)
		}
		t.eps[r] = ep
	}
	return t
}

func (t *trNet) send(from, to int, msg []byte) {
	if err := t.eps[from].Acquire(t.ctx, to, len(msg)); err != nil {
		panic(err)
	}
	if err := t.eps[from].Enqueue(to, msg); err != nil {
		panic(err)
	}
}

func (t *trNet) close() {
	if os.Getenv("BENCH_STATS") != "" {
		var rt, to, dup uint64
		for _, ep := range t.eps {
			s := ep.Stats()
			rt, to, dup = rt+s.Retransmits, to+s.Timeouts, dup+s.Duplicates
		}
		fmt.Fprintf(os.Stderr, "retransmits %d timeouts %d duplicates %d\n", rt, to, dup)
	}
	for _, ep := range t.eps {
		ep.Close()
	}
}

// --- raw core NATS ---

type natsNet struct {
	ncs  []*nats.Conn
	subs []*nats.Subscription
	// window: per channel, bytes published and not yet received.
	mu       sync.Mutex
	cond     *sync.Cond
	inflight map[[2]int]int
	window   int
}

func newNatsNet(b *testing.B, srv *natstest.Server, n int, f onMsg, window int) *natsNet {
	t := &natsNet{inflight: map[[2]int]int{}, window: window}
	t.cond = sync.NewCond(&t.mu)
	for r := 0; r < n; r++ {
		nc := natstest.Connect(b, srv.URL())
		sub, err := nc.Subscribe(fmt.Sprintf("raw.%d.*", r), func(m *nats.Msg) {
			from, _ := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
			t.mu.Lock()
			k := [2]int{from, r}
			t.inflight[k] -= len(m.Data)
			t.cond.Broadcast()
			t.mu.Unlock()
			f(r, from, m.Data)
		})
		if err != nil {
			b.Fatal(err)
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
		t.ncs = append(t.ncs, nc)
		t.subs = append(t.subs, sub)
	}
	return t
}

func (t *natsNet) send(from, to int, msg []byte) {
	k := [2]int{from, to}
	t.mu.Lock()
	for t.inflight[k] > 0 && t.inflight[k]+len(msg) > t.window {
		t.cond.Wait()
	}
	t.inflight[k] += len(msg)
	t.mu.Unlock()
	if err := t.ncs[from].Publish("raw."+strconv.Itoa(to)+"."+strconv.Itoa(from), msg); err != nil {
		panic(err)
	}
}

func (t *natsNet) close() {
	for _, s := range t.subs {
		_ = s.Unsubscribe()
	}
}

// --- raw TCP loopback ---

type tcpNet struct {
	conns map[[2]int]net.Conn // from, to
	wmu   map[[2]int]*sync.Mutex
	all   []net.Conn
}

// newTCPNet opens one TCP connection per ordered pair from->to, with a
// reader goroutine at the receiving end. Frames are a 4-byte length and
// the payload; the reader reuses its buffer (the best case for TCP).
func newTCPNet(b *testing.B, n int, peers func(int) []int, f onMsg) *tcpNet {
	t := &tcpNet{conns: map[[2]int]net.Conn{}, wmu: map[[2]int]*sync.Mutex{}}
	for to := 0; to < n; to++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		for _, from := range peers(to) {
			if from == to {
				continue
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			s, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			t.conns[[2]int{from, to}] = c
			t.wmu[[2]int{from, to}] = &sync.Mutex{}
			t.all = append(t.all, c, s)
			go func() {
				r := bufio.NewReaderSize(s, 256<<10)
				var hdr [4]byte
				var buf []byte
				for {
					if _, err := io.ReadFull(r, hdr[:]); err != nil {
						return
					}
					m := int(binary.LittleEndian.Uint32(hdr[:]))
					if cap(buf) < m {
						buf = make([]byte, m)
					}
					if _, err := io.ReadFull(r, buf[:m]); err != nil {
						return
					}
					f(to, from, buf[:m])
				}
			}()
		}
		ln.Close()
	}
	return t
}

func (t *tcpNet) send(from, to int, msg []byte) {
	k := [2]int{from, to}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(msg)))
	t.wmu[k].Lock()
	bufs := net.Buffers{hdr[:], msg}
	_, err := bufs.WriteTo(t.conns[k])
	t.wmu[k].Unlock()
	if err != nil {
		panic(err)
	}
}

func (t *tcpNet) close() {
	for _, c := range t.all {
		c.Close()
	}
}

// transport-auth is the transport with Options.Keys: every frame tagged
// and checked (the cost of authentication against the bare transport).
var impls = []string{"tcp", "nats", "transport", "transport-auth"}

func makeNet(b *testing.B, impl string, n int, peers func(int) []int, f onMsg) benchNet {
	switch impl {
	case "tcp":
		return newTCPNet(b, n, peers, f)
	case "nats":
		return newNatsNet(b, benchServer(b), n, f, benchWindow())
	default:
		return newTrNet(b, benchServer(b), n, peers, f, benchWindow(), impl == "transport-auth")
	}
}

func pairPeers(int) []int { return []int{0, 1} }

// BenchmarkChannel: one channel 0->1, messages streamed back to back.
func BenchmarkChannel(b *testing.B) {
	for _, impl := range impls {
		for _, size := range benchSizes {
			b.Run(impl+"/"+sizeName(size), func(b *testing.B) {
				var got atomic.Int64
				done := make(chan struct{})
				var want atomic.Int64
				nt := makeNet(b, impl, 2, pairPeers, func(to, from int, msg []byte) {
					if got.Add(1) == want.Load() {
						close(done)
					}
				})
				defer nt.close()
				msg := make([]byte, size)
				want.Store(int64(b.N))
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					nt.send(0, 1, msg)
				}
				<-done
			})
		}
	}
}

// BenchmarkLatency: ping-pong of one small message; ns/op is a round trip,
// one-way-us half of it.
func BenchmarkLatency(b *testing.B) {
	for _, impl := range impls {
		for _, size := range []int{64, 4 << 10} {
			b.Run(impl+"/"+sizeName(size), func(b *testing.B) {
				pong := make(chan struct{}, 1)
				var nt benchNet
				var ready sync.WaitGroup
				ready.Add(1)
				echo := make([]byte, size)
				nt = makeNet(b, impl, 2, pairPeers, func(to, from int, msg []byte) {
					if to == 1 {
						ready.Wait()
						nt.send(1, 0, echo)
						return
					}
					pong <- struct{}{}
				})
				ready.Done()
				defer nt.close()
				msg := make([]byte, size)
				for i := 0; i < 100; i++ { // warm up
					nt.send(0, 1, msg)
					<-pong
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					nt.send(0, 1, msg)
					<-pong
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N)/2, "one-way-us")
			})
		}
	}
}

// halo is a 2-D periodic grid of rows x cols ranks; each rank sends one
// message per step to each of its 4 neighbours (in a grid 2 wide, the
// neighbours both ways along that dimension are the same rank: two
// messages on one channel) and waits for the 4 it is sent.
type halo struct {
	rows, cols int
}

func (h halo) n() int { return h.rows * h.cols }

func (h halo) nbrs(r int) []int {
	i, j := r/h.cols, r%h.cols
	at := func(i, j int) int { return ((i+h.rows)%h.rows)*h.cols + (j+h.cols)%h.cols }
	return []int{at(i-1, j), at(i+1, j), at(i, j-1), at(i, j+1)}
}

func (h halo) peers(r int) []int {
	seen := map[int]bool{r: true}
	p := []int{r}
	for _, q := range h.nbrs(r) {
		if !seen[q] {
			seen[q] = true
			p = append(p, q)
		}
	}
	return p
}

// BenchmarkHalo: b.N steps of a 2-D halo exchange; the byte rate is the
// aggregate payload of all ranks.
func BenchmarkHalo(b *testing.B) {
	for _, g := range []halo{{2, 2}, {2, 4}} {
		for _, impl := range impls {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("ranks=%d/%s/%s", g.n(), impl, sizeName(size)), func(b *testing.B) {
					n := g.n()
					// arrived[to][from]: messages in, woken through cond.
					var mu sync.Mutex
					cond := sync.NewCond(&mu)
					arrived := make([]map[int]int, n)
					for r := range arrived {
						arrived[r] = map[int]int{}
					}
					nt := makeNet(b, impl, n, g.peers, func(to, from int, msg []byte) {
						mu.Lock()
						arrived[to][from]++
						cond.Broadcast()
						mu.Unlock()
					})
					defer nt.close()
					msg := make([]byte, size)
					b.SetBytes(int64(n * 4 * size))
					b.ResetTimer()
					var wg sync.WaitGroup
					for r := 0; r < n; r++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							per := map[int]int{} // messages per step from each neighbour
							for _, q := range g.nbrs(r) {
								per[q]++
							}
							for step := 1; step <= b.N; step++ {
								for _, q := range g.nbrs(r) {
									nt.send(r, q, msg)
								}
								mu.Lock()
								for {
									ok := true
									for q, m := range per {
										if arrived[r][q] < step*m {
											ok = false
										}
									}
									if ok {
										break
									}
									cond.Wait()
								}
								mu.Unlock()
							}
						}()
					}
					wg.Wait()
				})
			}
		}
	}
}

// BENCH_WINDOW sets the window (bytes) of the transport and of the raw
// NATS pacing; default transport.DefaultWindow.
func benchWindow() int {
	if n, _ := strconv.Atoi(os.Getenv("BENCH_WINDOW")); n > 0 {
		return n
	}
	return transport.DefaultWindow
}

// BENCH_MAXFRAME caps the transport's frames (Options.MaxFrame).
func benchMaxFrame() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_MAXFRAME"))
	return n
}
