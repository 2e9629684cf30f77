// Package natsutil owns how cutpoint starts an embedded nats-server and how
// its processes connect to NATS: authentication (token or nkey seed),
// reconnect policy, and turning connection events into log lines and
// counters instead of dropping them.
package natsutil

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ServerOptions configures an embedded nats-server.
type ServerOptions struct {
	// Listen is host:port; port 0 picks a free port. Default 127.0.0.1:0.
	Listen string
	// Token, if set, is required from every client.
	Token string
	// NkeyUsers, if set, are the public nkeys allowed to connect.
	NkeyUsers []string
	// MaxPayload caps one message (bytes); 0 keeps the server default (1 MiB).
	MaxPayload int32
	// MaxPending caps bytes buffered for one slow client; 0 keeps the default.
	MaxPending int64
	// Logger receives server notices and errors; nil silences the server.
	Logger *slog.Logger
}

// Server is a running embedded nats-server.
type Server struct {
	s *server.Server
}

// StartServer starts an embedded nats-server and waits until it accepts
// connections.
func StartServer(o ServerOptions) (*Server, error) {
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", listen, err)
	}
	var port int
	if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("nats listen address %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		Host:          host,
		Port:          port,
		NoSigs:        true,
		NoLog:         o.Logger == nil,
		Authorization: o.Token,
		MaxPayload:    o.MaxPayload,
		MaxPending:    o.MaxPending,
	}
	for _, pub := range o.NkeyUsers {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub})
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats-server on %s: %w", listen, err)
	}
	if o.Logger != nil {
		s.SetLoggerV2(&slogAdapter{l: o.Logger.With("component", "nats-server")}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server on %s: not ready after 10s", listen)
	}
	return &Server{s: s}, nil
}

// ClientURL is the URL clients connect to (without credentials).
func (s *Server) ClientURL() string { return s.s.ClientURL() }

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// Auth holds client credentials. At most one of Token and NkeySeedFile is
// used; a token embedded in the URL (nats://TOKEN@host:port) also works.
type Auth struct {
	Token        string
	NkeySeedFile string
}

// Stats counts connection events; they are never silently dropped.
type Stats struct {
	Disconnects   atomic.Int64
	Reconnects    atomic.Int64
	AsyncErrors   atomic.Int64
	SlowConsumers atomic.Int64
}

// ConnectOptions configures a client connection.
type ConnectOptions struct {
	Name   string
	Auth   Auth
	Logger *slog.Logger
	Stats  *Stats
	// Timeout bounds the initial connect (default 5s).
	Timeout time.Duration
	// Wait: while no server answers (ErrUnreachable), keep trying the
	// initial connect for this long, backing off from 100ms to 2s; 0:
	// one try. A server that restarts on the same address within Wait is
	// ridden out.
	Wait time.Duration
	// OnReconnect and OnDisconnect let a caller (the transport) react.
	OnReconnect  func()
	OnDisconnect func(error)
	// OnAsyncError is told of asynchronous errors such as slow consumers.
	OnAsyncError func(sub *nats.Subscription, err error)
}

// ErrUnreachable is returned by Connect when no server answers at the URL.
var ErrUnreachable = errors.New("nats server unreachable")

// Connect dials url with cutpoint's reconnect policy: reconnect forever with
// a short wait, buffer publishes during an outage, and report every event.
func Connect(rawURL string, o ConnectOptions) (*nats.Conn, error) {
	if err := CheckURL(rawURL); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	st := o.Stats
	if st == nil {
		st = &Stats{}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(20*time.Millisecond, 50*time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil && nc.IsClosed() {
				return // closed by its owner
			}
			st.Disconnects.Add(1)
			log.Warn("nats disconnected", "conn", o.Name, "err", err)
			if o.OnDisconnect != nil {
				o.OnDisconnect(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			st.Reconnects.Add(1)
			log.Info("nats reconnected", "conn", o.Name, "url", nc.ConnectedUrlRedacted())
			if o.OnReconnect != nil {
				o.OnReconnect()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			st.AsyncErrors.Add(1)
			if errors.Is(err, nats.ErrSlowConsumer) {
				st.SlowConsumers.Add(1)
			}
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "conn", o.Name, "subject", subj, "err", err)
			if o.OnAsyncError != nil {
				o.OnAsyncError(sub, err)
			}
		}),
	}
	switch {
	case o.Auth.Token != "" && o.Auth.NkeySeedFile != "":
		return nil, errors.New("nats auth: give either a token or an nkey seed file, not both")
	case o.Auth.Token != "":
		opts = append(opts, nats.Token(o.Auth.Token))
	case o.Auth.NkeySeedFile != "":
		opt, err := nkeyOption(o.Auth.NkeySeedFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	deadline := time.Now().Add(o.Wait)
	pause := 100 * time.Millisecond
	for tries := 1; ; tries++ {
		nc, err := nats.Connect(rawURL, opts...)
		if err == nil {
			if tries > 1 {
				log.Info("nats reachable again", "conn", o.Name, "tries", tries)
			}
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) && !isDialError(err) {
			return nil, fmt.Errorf("connect to nats %s: %w", redact(rawURL), err)
		}
		if time.Now().Add(pause).After(deadline) {
			return nil, fmt.Errorf("%w: %s (%d tries in %v): %v", ErrUnreachable, redact(rawURL), tries, o.Wait, err)
		}
		if tries == 1 {
			log.Warn("nats unreachable; waiting for it", "conn", o.Name, "url", redact(rawURL), "for", o.Wait, "err", err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Second)
	}
}

// CheckURL rejects a NATS URL that cannot be right before anything dials it.
func CheckURL(rawURL string) error {
	for _, one := range strings.Split(rawURL, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil {
			return fmt.Errorf("nats URL %q: %w", redact(one), err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("nats URL %q: scheme must be nats://, tls://, ws:// or wss://", redact(one))
		}
		if u.Host == "" {
			return fmt.Errorf("nats URL %q: no host", redact(one))
		}
	}
	return nil
}

func nkeyOption(seedFile string) (nats.Option, error) {
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		return nil, fmt.Errorf("nats nkey seed: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return nil, fmt.Errorf("nats nkey seed %s: %w", seedFile, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("nats nkey seed %s: %w", seedFile, err)
	}
	return nats.Nkey(pub, kp.Sign), nil
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// redact hides credentials in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("***")
	return u.String()
}

// slogAdapter feeds nats-server's logger interface into slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  {}
