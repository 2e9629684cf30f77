// Package natstest runs an embedded nats-server on a random loopback TCP
// port for tests and benchmarks, restartable on the same port so that
// clients really lose their sockets and reconnect, and offers a dialer that
// can make a client read slowly (to make the server drop it as a slow
// consumer).
package natstest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is an embedded nats-server listening on 127.0.0.1.
type Server struct {
	tb   testing.TB
	mu   sync.Mutex
	opts server.Options
	srv  *server.Server
	port int
}

// Run starts a server on a random loopback port; configure may change the
// options (MaxPayload, MaxPending, WriteDeadline...). It is shut down when
// the test ends.
func Run(tb testing.TB, configure ...func(*server.Options)) *Server {
	tb.Helper()
	s := &Server{tb: tb, opts: server.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		NoLog:  true,
		NoSigs: true,
	}}
	for _, f := range configure {
		f(&s.opts)
	}
	if err := s.start(10 * time.Second); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start(wait time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(wait)
	for {
		o := s.opts
		srv, err := server.NewServer(&o)
		if err != nil {
			return fmt.Errorf("natstest: new server: %w", err)
		}
		go srv.Start()
		if srv.ReadyForConnections(2 * time.Second) {
			s.srv = srv
			s.port = srv.Addr().(*net.TCPAddr).Port
			s.opts.Port = s.port // restarts reuse it
			return nil
		}
		srv.Shutdown()
		if time.Now().After(deadline) {
			return fmt.Errorf("natstest: server not ready on port %d", s.opts.Port)
		}
		time.Sleep(50 * time.Millisecond) // the port may still be held by the previous server
	}
}

// URL is the client URL (stable across restarts).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", s.port)
}

// Shutdown shuts the server down and waits until it is gone; clients
// start reconnecting (idempotent; Restart starts it again).
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart stops the server and starts a new one on the same port: every
// client loses its socket, with whatever was in it, and reconnects.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Shutdown()
	if err := s.start(10 * time.Second); err != nil {
		s.tb.Fatal(err)
	}
}

// SlowConsumers is the number of clients the running server dropped as
// slow consumers (it restarts at 0 with the server).
func (s *Server) SlowConsumers() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return s.srv.NumSlowConsumers()
	}
	return 0
}

// Connect dials url with reconnection forever (10 ms apart, no jitter) and
// closes the connection when the test ends. More options may be added.
func Connect(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(10 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.Timeout(5 * time.Second),
		// The default handler prints every async error (slow consumers
		// included) to stderr; the transport reports them itself.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		tb.Fatalf("natstest: connect %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// SlowDialer is a nats.CustomDialer whose connections, while a read delay
// is set, sleep before each read and read at most 4 KiB at a time, with a
// small socket receive buffer: the server's outbound queue for that client
// then grows until the server cuts it off as a slow consumer.
type SlowDialer struct {
	delay atomic.Int64 // ns
}

// SetReadDelay sets the delay before each read (0: full speed).
func (d *SlowDialer) SetReadDelay(delay time.Duration) { d.delay.Store(int64(delay)) }

// Dial implements nats.CustomDialer.
func (d *SlowDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(16 << 10)
	}
	return &slowConn{Conn: c, d: d}, nil
}

type slowConn struct {
	net.Conn
	d *SlowDialer
}

func (c *slowConn) Read(b []byte) (int, error) {
	if delay := time.Duration(c.d.delay.Load()); delay > 0 {
		time.Sleep(delay)
		if len(b) > 4<<10 {
			b = b[:4<<10]
		}
	}
	return c.Conn.Read(b)
}

// LatencyDialer is a nats.CustomDialer whose connections deliver what the
// client writes Delay late, in order: a one-way network latency, with no
// bound on the bandwidth. A requester and a responder both dialled
// through it see a round trip of about twice Delay on top of the
// loopback's (a sleep's precision: tens of microseconds on an idle
// machine, more under load).
type LatencyDialer struct {
	Delay time.Duration
}

// Dial implements nats.CustomDialer.
func (d *LatencyDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, 5*time.Second)
	if err != nil {
		return nil, err
	}
	lc := &latencyConn{Conn: c, delay: d.Delay, q: make(chan delayed, 1024), done: make(chan struct{})}
	go lc.pump()
	return lc, nil
}

type delayed struct {
	at time.Time
	b  []byte
}

type latencyConn struct {
	net.Conn
	delay time.Duration
	q     chan delayed
	done  chan struct{}
	once  sync.Once
}

func (c *latencyConn) Write(b []byte) (int, error) {
	select {
	case c.q <- delayed{at: time.Now().Add(c.delay), b: append([]byte(nil), b...)}:
		return len(b), nil
	case <-c.done:
		return 0, net.ErrClosed
	}
}

func (c *latencyConn) pump() {
	for {
		select {
		case <-c.done:
			return
		case m := <-c.q:
			if d := time.Until(m.at); d > 0 {
				time.Sleep(d)
			}
			if _, err := c.Conn.Write(m.b); err != nil {
				_ = c.Close() // the reader sees it and the client reconnects
				return
			}
		}
	}
}

func (c *latencyConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}
