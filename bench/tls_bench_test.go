package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/natsutil"
)

// BenchmarkTransportTLS measures what TLS costs the rank transport: one
// channel's throughput (64 KiB and 1 MiB messages) and the one-way latency
// of a 64-byte message, on an embedded server without and with TLS (a
// certificate made as `run --nats-listen` makes one), raw core NATS beside
// each. Run: go test ./bench/ -run '^$' -bench TransportTLS -benchtime 3x
func BenchmarkTransportTLS(b *testing.B) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	for _, mode := range []string{"plain", "tls"} {
		so := natsutil.ServerOptions{MaxPayload: 8 << 20, MaxPending: 512 << 20}
		var ca []byte
		if mode == "tls" {
			jt, err := natsutil.GenerateTLS(b.TempDir(), nil, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			so.TLS, ca = jt.Server, jt.CAPEM
		}
		srv, err := natsutil.StartServer(so)
		if err != nil {
			b.Fatal(err)
		}
		conn := func(name string) (*nats.Conn, error) {
			var auth natsutil.Auth
			if ca != nil {
				auth.TLS.CAPEM = ca
			}
			return natsutil.Connect(srv.ClientURL(), natsutil.ConnectOptions{Name: name, Logger: quiet, Auth: auth})
		}
		const total = 64 << 20
		for _, size := range []int{64 << 10, 1 << 20} {
			b.Run(mode+"/transport/"+sizeName(int64(size)), func(b *testing.B) {
				b.SetBytes(total)
				var sum float64
				for range b.N {
					g, err := transportThroughput(ctx, conn, size, total, false)
					if err != nil {
						b.Fatal(err)
					}
					sum += g
				}
				b.ReportMetric(sum/float64(b.N), "GB/s")
			})
			b.Run(mode+"/raw-nats/"+sizeName(int64(size)), func(b *testing.B) {
				b.SetBytes(total)
				var sum float64
				for range b.N {
					g, err := rawNATSThroughput(ctx, conn, size, total, 0)
					if err != nil {
						b.Fatal(err)
					}
					sum += g
				}
				b.ReportMetric(sum/float64(b.N), "GB/s")
			})
		}
		b.Run(mode+"/transport/latency-64B", func(b *testing.B) {
			var sum float64
			for range b.N {
				us, err := transportLatency(ctx, conn, 1000)
				if err != nil {
					b.Fatal(err)
				}
				sum += us
			}
			b.ReportMetric(sum/float64(b.N), "us-one-way")
		})
		srv.Shutdown()
	}
}
