package natsutil

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuf is a log sink that the NATS client's handler goroutines may
// write while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cluster starts n servers routed to the first one, all with the client
// token tok and the route token rtok.
func cluster(t *testing.T, n int, tok, rtok string) []*Server {
	t.Helper()
	var srvs []*Server
	var seed []string
	for i := 0; i < n; i++ {
		s, err := StartServer(ServerOptions{Token: tok, Cluster: &ClusterOptions{
			Name: "test", Listen: "127.0.0.1:0", Routes: seed, Token: rtok}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		if i == 0 {
			seed = []string{s.ClusterURL()}
		}
	}
	return srvs
}

func waitRoutes(t *testing.T, srvs []*Server, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range srvs {
		for s.Routes() < want {
			if time.Now().After(deadline) {
				t.Fatalf("server %s: %d routes, want %d", s.ClientURL(), s.Routes(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestClusterForwardsBetweenServers(t *testing.T) {
	srvs := cluster(t, 3, "ctok", "rtok")
	waitRoutes(t, srvs, 2)
	a, err := Connect(srvs[0].ClientURL(), ConnectOptions{Auth: Auth{Token: "ctok"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := Connect(srvs[2].ClientURL(), ConnectOptions{Auth: Auth{Token: "ctok"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, _ := c.SubscribeSync("x")
	c.Flush()
	// Interest reaches the other servers asynchronously: publish until
	// one arrives.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.Publish("x", []byte("hi"))
		if m, err := sub.NextMsg(100 * time.Millisecond); err == nil && string(m.Data) == "hi" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a message published on server 0 never reached a subscriber on server 2")
		}
	}
}

func TestClusterRejectsWrongRouteToken(t *testing.T) {
	s1, err := StartServer(ServerOptions{Cluster: &ClusterOptions{Name: "test", Listen: "127.0.0.1:0", Token: "right"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Shutdown()
	s2, err := StartServer(ServerOptions{Cluster: &ClusterOptions{Name: "test", Listen: "127.0.0.1:0", Token: "wrong",
		Routes: []string{s1.ClusterURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown()
	time.Sleep(700 * time.Millisecond)
	if n := s1.Routes() + s2.Routes(); n != 0 {
		t.Fatalf("a route with the wrong cluster token was accepted (%d routes)", n)
	}
	// And the right token routes.
	s3, err := StartServer(ServerOptions{Cluster: &ClusterOptions{Name: "test", Listen: "127.0.0.1:0", Token: "right",
		Routes: []string{s1.ClusterURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Shutdown()
	waitRoutes(t, []*Server{s3}, 1)
}

func TestClusterOptionErrors(t *testing.T) {
	for _, c := range []ClusterOptions{
		{Listen: "127.0.0.1:0"},
		{Name: "x", Listen: "nohostport"},
		{Name: "x", Listen: "127.0.0.1:0", Routes: []string{"nats://127.0.0.1:1"}},
		{Name: "x", Listen: "127.0.0.1:0", Routes: []string{"nats-route://u:secretpw@127.0.0.1:1"}},
	} {
		_, err := StartServer(ServerOptions{Cluster: &c})
		if err == nil {
			t.Errorf("%+v: accepted", c)
			continue
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("the error shows the route password: %v", err)
		}
	}
}

// TestReconnectLogsNoToken loses the server a client is connected to and
// checks that the client fails over to the next server of its URL list and
// that no log line of it (connect, disconnect, reconnect) carries the token.
func TestReconnectLogsNoToken(t *testing.T) {
	const tok = "tok3n5ecret"
	srvs := cluster(t, 2, tok, "rtok")
	waitRoutes(t, srvs, 1)
	var buf syncBuf
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	withTok := func(u string) string { return strings.Replace(u, "nats://", "nats://"+tok+"@", 1) }
	list := withTok(srvs[0].ClientURL()) + "," + withTok(srvs[1].ClientURL())
	var st Stats
	reconnected := make(chan struct{}, 1)
	nc, err := Connect(list, ConnectOptions{Name: "t", Logger: log, Stats: &st, OnReconnect: func() {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); hostPortOf(got) != hostPortOf(srvs[0].ClientURL()) {
		t.Fatalf("connected to %s, want the first of the list (DontRandomize)", Redact(got))
	}
	srvs[0].Shutdown()
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect to the second server")
	}
	if got := nc.ConnectedUrl(); hostPortOf(got) != hostPortOf(srvs[1].ClientURL()) {
		t.Fatalf("reconnected to %s, want the second server", Redact(got))
	}
	out := buf.String()
	if !strings.Contains(out, "nats reconnected") || !strings.Contains(out, "nats disconnected") {
		t.Fatalf("the log lacks the disconnect/reconnect lines:\n%s", out)
	}
	if strings.Contains(out, tok) {
		t.Fatalf("the log shows the token:\n%s", out)
	}
	if st.Reconnects.Load() != 1 {
		t.Fatalf("reconnects = %d, want 1", st.Reconnects.Load())
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://tok@h:1":                  "nats://***@h:1",
		"nats://u:p@h:1,nats://tok@h2:2":  "nats://***@h:1,nats://***@h2:2",
		"nats://h:1":                      "nats://h:1",
		"nats-route://cutpoint:pw@h:6222": "nats-route://***@h:6222",
		"nats://t%zz@h:1":                 "nats://***@h:1",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOrderURLs(t *testing.T) {
	list := "nats://a@10.99.0.1:4222,nats://b@10.99.0.2:4222,nats://c@10.99.0.3:4222"
	got := OrderURLs(list, "10.99.0.2:4222")
	if got[0] != "nats://b@10.99.0.2:4222" || got[1] != "nats://a@10.99.0.1:4222" || got[2] != "nats://c@10.99.0.3:4222" {
		t.Fatalf("local by %s: %v", EnvLocal, got)
	}
	got = OrderURLs(list, "nats://10.99.0.3:4222")
	if got[0] != "nats://c@10.99.0.3:4222" {
		t.Fatalf("local given as a URL: %v", got)
	}
	// Without a hint, a URL on one of this host's interface addresses
	// goes first; loopback says nothing.
	own := ""
	for a := range localAddrs() {
		if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
			own = a
			break
		}
	}
	if own == "" {
		t.Skip("no non-loopback IPv4 address on this host")
	}
	mine := "nats://" + net.JoinHostPort(own, "4222")
	got = OrderURLs("nats://127.0.0.1:4222,nats://192.0.2.7:4222,"+mine, "")
	if got[0] != mine || got[1] != "nats://127.0.0.1:4222" || got[2] != "nats://192.0.2.7:4222" {
		t.Fatalf("interface address first: %v", got)
	}
}

func TestClientURLNeverUnspecified(t *testing.T) {
	s, err := StartServer(ServerOptions{Listen: "0.0.0.0:0", Advertise: "node7.example", Token: "t", Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if u := s.ClientURL(); !strings.HasPrefix(u, "nats://node7.example:") {
		t.Fatalf("ClientURL = %s, want the advertised host", u)
	}
	s2, err := StartServer(ServerOptions{Listen: "0.0.0.0:0", Token: "t", Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown()
	if u := s2.ClientURL(); strings.Contains(u, "0.0.0.0") {
		t.Fatalf("ClientURL = %s", u)
	}
}
