//go:build soak

package transport_test

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

var soakSeed = flag.Uint64("soakseed", 0, "first seed of TestSoakTransport's rounds (0: CUTPOINT_SOAK_SEED, else 1)")

// TestSoakTransport runs rounds of random worlds (3 to 6 ranks, random
// windows) under all faults at once: dropped, duplicated and delayed frames,
// a slow consumer and server restarts at random points, checking exactly
// once and in order every round. CUTPOINT_SOAK_DURATION sets how long
// (default 2m): make soak, or
//
//	go test -tags soak -run Soak -timeout 2h ./rank/transport/
//
// Round k draws its world from seed S+k, where S is -soakseed (or
// CUTPOINT_SOAK_SEED, default 1); a failing round prints the command that
// runs it first. The network's timing is real, so a replay repeats the
// world and the faults' probabilities, not every interleaving (the channel
// machine's own simulation, package channel, replays exactly).
func TestSoakTransport(t *testing.T) {
	d := 2 * time.Minute
	if s := os.Getenv("CUTPOINT_SOAK_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	first := *soakSeed
	if first == 0 {
		first = 1
		if s := os.Getenv("CUTPOINT_SOAK_SEED"); s != "" {
			var err error
			if first, err = strconv.ParseUint(s, 10, 64); err != nil {
				t.Fatalf("CUTPOINT_SOAK_SEED: %v", err)
			}
		}
	}
	end := time.Now().Add(d)
	for round := 0; time.Now().Before(end); round++ {
		seed := first + uint64(round)
		t.Run("", func(t *testing.T) {
			t.Logf("round %d, seed %d", round, seed)
			defer func() {
				if t.Failed() {
					t.Logf("replay: go test -tags soak -run Soak ./rank/transport/ -soakseed=%d", seed)
				}
			}()
			rnd := rand.New(rand.NewPCG(seed, 2))
			srv := natstest.Run(t, smallPayload)
			n := 3 + rnd.IntN(4)
			slow := &slowIncoming{}
			w := newWorld(t, srv, seed, worldOpts{n: n, window: (32 + rnd.IntN(512)) << 10,
				options: func(r int, o *transport.Options) {
					if r == 0 {
						o.Faults = slow
						o.PendingBytesLimit = 96 << 10
						return
					}
					o.Faults = newChaos(seed+uint64(r), rnd.Float64()*0.15, rnd.Float64()*0.15, rnd.Float64()*0.15)
					o.AckTimeout = 20 * time.Millisecond
					o.MaxBackoff = 200 * time.Millisecond
				}})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			senders := w.stream(ctx, 50+rnd.IntN(150), 1)
			for _, frac := range []float64{0.2, 0.5, 0.8} {
				if w.waitProgress(ctx, frac) >= 1 {
					break
				}
				switch rnd.IntN(3) {
				case 0:
					srv.Restart()
				case 1:
					slow.on.Store(!slow.on.Load())
				}
			}
			slow.on.Store(false)
			w.await(ctx, senders)
			t.Logf("totals: %+v", w.totals())
		})
		if t.Failed() {
			return
		}
	}
}
