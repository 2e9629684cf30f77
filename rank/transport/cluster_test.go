package transport_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/rank/transport"
)

// TestClusterServerLostMidStream runs three ranks on a cluster of three
// NATS servers, each rank connected to its own server with the other two
// as failover (cutpoint's connect path, natsutil.Connect), and shuts down
// rank 2's server, then rank 0's, while every channel streams: the ranks
// reconnect to another server, the frames in flight on the lost paths are
// retransmitted, and every message arrives exactly once, in order.
func TestClusterServerLostMidStream(t *testing.T) {
	var srvs []*natsutil.Server
	var seed []string
	for i := 0; i < 3; i++ {
		s, err := natsutil.StartServer(natsutil.ServerOptions{MaxPayload: 32 << 10,
			Cluster: &natsutil.ClusterOptions{Name: "tc", Listen: "127.0.0.1:0", Routes: seed, Token: "rt"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		seed = append(seed, s.ClusterURL())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if srvs[0].Routes() >= 2 && srvs[1].Routes() >= 2 && srvs[2].Routes() >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not form")
		}
	}
	dial := func(r int) *nats.Conn {
		urls := []string{srvs[r].ClientURL()}
		for j := range srvs {
			if j != r {
				urls = append(urls, srvs[j].ClientURL())
			}
		}
		nc, err := natsutil.Connect(strings.Join(urls, ","), natsutil.ConnectOptions{Name: "tc", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	w := newWorld(t, nil, 3, worldOpts{n: 3, window: 128 << 10, dial: dial})
	for r, rk := range w.ranks {
		if got, want := rk.nc.ConnectedUrl(), srvs[r].ClientURL(); got != want {
			t.Fatalf("rank %d connected to %s, want its own server %s", r, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	senders := w.stream(ctx, 80, 1)
	for i, victim := range []int{2, 0} {
		if got := w.waitProgress(ctx, 0.25+0.35*float64(i)); got >= 1 {
			t.Fatalf("stream finished before server %d was lost (%.2f): make it longer", victim, got)
		}
		srvs[victim].Shutdown()
	}
	w.await(ctx, senders)
	s := w.totals()
	if want := uint64(3 * 3 * 80); s.MsgsDelivered != want {
		t.Errorf("delivered %d messages, want %d", s.MsgsDelivered, want)
	}
	for _, r := range []int{0, 2} {
		if w.ranks[r].eventCount(transport.EventReconnect) == 0 {
			t.Errorf("rank %d got no reconnect event", r)
		}
		if got := w.ranks[r].nc.ConnectedUrl(); got != srvs[1].ClientURL() {
			t.Errorf("rank %d is on %s, want the surviving server %s", r, got, srvs[1].ClientURL())
		}
	}
	t.Logf("totals: %+v", s)
}
