// Package natsutil owns how cutpoint starts an embedded nats-server and how
// its processes connect to NATS: authentication (token or nkey seed),
// reconnect policy, and turning connection events into log lines and
// counters instead of dropping them.
package natsutil

import (
	"context"
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
	// Users, if set, are the users allowed to connect, each with its
	// publish and subscribe permissions (a job's per-rank users). NATS
	// does not take a token and users together.
	Users []User
	// AuthFile, if set, is a nats-server configuration file whose
	// authorization and accounts blocks (users with permissions, nkeys,
	// accounts) the server takes: a site's per-job accounts. It is read as
	// a secret file (ReadSecretFile): it may hold passwords.
	AuthFile string
	// TLS, if a certificate is given, makes the client listener (and the
	// cluster's routes) TLS; a CA asks clients for certificates.
	TLS ServerTLS
	// Plaintext allows a listener that is not loopback without TLS (an
	// isolated network; the token crosses it in the clear).
	Plaintext bool
	// MaxPayload caps one message (bytes); 0 keeps the server default (1 MiB).
	MaxPayload int32
	// MaxPending caps bytes buffered for one slow client; 0 keeps the default.
	MaxPending int64
	// Logger receives server notices and errors; nil silences the server.
	Logger *slog.Logger
	// Monitor, if set, is host:port of the HTTP monitoring endpoint
	// (/varz, /connz, /routez).
	Monitor string
	// Cluster, if set, makes the server one of a nats-server cluster.
	Cluster *ClusterOptions
	// Advertise is the host or host:port other hosts' clients dial (sent
	// to the cluster and returned by ClientURL); default the listen
	// address, or this host's routable address when listening on all
	// interfaces.
	Advertise string
}

// ClusterOptions join the server to a cluster through nats-server's own
// routes: full mesh, with subscription interest and messages forwarded
// between servers, so a client may connect to any of them.
type ClusterOptions struct {
	// Name must be the same on every server of the cluster.
	Name string
	// Listen is host:port for routes from the other servers.
	Listen string
	// Routes are the other servers' route URLs (nats-route://host:port);
	// the servers gossip the rest, so each needs to name one of them.
	Routes []string
	// Token, if set, is required of every route and presented on every
	// route this server dials (as the password of user "cutpoint"; it is
	// never put on a command line).
	Token string
}

// User is one NATS user of a server and what it may do: Publish and
// Subscribe are subject patterns (NATS wildcards); nil allows nothing.
type User struct {
	Name, Password     string
	Publish, Subscribe []string
	// Responses lets the user answer the requests it receives (one reply
	// each, on the requester's reply subject, whatever Publish says):
	// a rank serving its host's node-local store to other ranks.
	Responses bool
}

// ErrInsecureListener is returned by StartServer for a listener other
// hosts can reach without authentication or without TLS.
var ErrInsecureListener = errors.New("insecure nats listener")

// routeUser is the user name routes authenticate with; the secret is the
// cluster token.
const routeUser = "cutpoint"

// Server is a running embedded nats-server.
type Server struct {
	s         *server.Server
	advertise string
}

// StartServer starts an embedded nats-server and waits until it accepts
// connections.
func StartServer(o ServerOptions) (*Server, error) {
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, port, err := splitListen(listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", listen, err)
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
	for _, u := range o.Users {
		p := &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: nonNil(u.Publish)},
			Subscribe: &server.SubjectPermission{Allow: nonNil(u.Subscribe)},
		}
		if u.Responses {
			p.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: 2 * time.Minute}
		}
		hash, err := passwordHash(u.Name, u.Password)
		if err != nil {
			return nil, err
		}
		opts.Users = append(opts.Users, &server.User{Username: u.Name, Password: hash, Permissions: p})
	}
	if o.AuthFile != "" {
		if err := authFile(opts, o.AuthFile); err != nil {
			return nil, err
		}
	}
	if o.Token != "" && (len(opts.Users) > 0 || len(opts.Nkeys) > 0 || len(opts.Accounts) > 0) {
		return nil, errors.New("nats: a token and users (or nkeys, accounts) exclude each other")
	}
	authed := o.Token != "" || len(opts.Users) > 0 || len(opts.Nkeys) > 0
	if !IsLoopback(listen) {
		switch {
		case !authed:
			return nil, fmt.Errorf("%w: %s is reachable from other hosts and takes clients without authentication: give a token, users or --auth-file (or listen on 127.0.0.1)", ErrInsecureListener, listen)
		case !o.TLS.Enabled() && !o.Plaintext:
			return nil, fmt.Errorf("%w: %s is reachable from other hosts without TLS, so credentials would cross the network in the clear: give a certificate (--tls-cert, --tls-key) or listen on 127.0.0.1", ErrInsecureListener, listen)
		}
	}
	if o.TLS.Enabled() {
		cfg, err := o.TLS.serverConfig()
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = cfg, true, o.TLS.CA != ""
		// The handshake runs on a loaded machine too: nats-server's
		// default of 2s is kept as the floor.
		opts.TLSTimeout = 5
	}
	if o.Monitor != "" {
		mhost, mport, err := splitListen(o.Monitor)
		if err != nil {
			return nil, fmt.Errorf("nats monitor address %q: %w", o.Monitor, err)
		}
		opts.HTTPHost, opts.HTTPPort = mhost, mport
	}
	advertise, err := advertiseAddr(o.Advertise, host, port)
	if err != nil {
		return nil, err
	}
	if advertise != "" {
		opts.ClientAdvertise = advertise
	}
	if c := o.Cluster; c != nil {
		if err := clusterOptions(opts, c, o.Advertise, o.TLS, o.Plaintext); err != nil {
			return nil, err
		}
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
	return &Server{s: s, advertise: o.Advertise}, nil
}

// clusterOptions fills the Cluster and Routes options of opts from c.
func clusterOptions(opts *server.Options, c *ClusterOptions, advertise string, tlsOpts ServerTLS, plaintext bool) error {
	if c.Name == "" {
		return errors.New("nats cluster: no name (every server of the cluster must use the same)")
	}
	chost, cport, err := splitListen(c.Listen)
	if err != nil {
		return fmt.Errorf("nats cluster listen address %q: %w", c.Listen, err)
	}
	if cport == 0 {
		cport = server.RANDOM_PORT
	}
	opts.Cluster = server.ClusterOpts{
		Name: c.Name,
		Host: chost,
		Port: cport,
		// Routes given in Routes are dialed until they answer (nats-server
		// does that for configured routes); a route learned by gossip is
		// retried a few times, then left to the other side, which dials
		// its own configured routes when it comes back.
		ConnectRetries: 5,
		ConnectBackoff: true,
	}
	if c.Token != "" {
		opts.Cluster.Username = routeUser
		opts.Cluster.Password = c.Token
	}
	if !IsLoopback(c.Listen) && !plaintext && !tlsOpts.Enabled() {
		return fmt.Errorf("%w: cluster routes on %s without TLS: give --tls-cert, --tls-key and --tls-ca (the CA of every server's certificate)", ErrInsecureListener, c.Listen)
	}
	if tlsOpts.Enabled() {
		cfg, err := tlsOpts.routeConfig()
		if err != nil {
			return err
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = cfg, 5
		// Route URLs name hosts by address or by name; the certificate
		// must carry what the others dial.
	}
	if isUnspecified(chost) && cport != server.RANDOM_PORT {
		// Other servers must dial a routable address, not 0.0.0.0.
		if ahost, err := hostOf(advertise); err == nil {
			opts.Cluster.Advertise = net.JoinHostPort(ahost, fmt.Sprint(cport))
		}
	}
	for _, r := range c.Routes {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats-route" || u.Host == "" {
			return fmt.Errorf("nats route %q: want nats-route://HOST:PORT", Redact(r))
		}
		if u.User != nil {
			return fmt.Errorf("nats route %s: credentials do not belong in a route URL (give the cluster token instead)", Redact(r))
		}
		if c.Token != "" {
			u.User = url.UserPassword(routeUser, c.Token)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// nonNil turns "no subjects" into an empty allow list, which NATS reads as
// nothing allowed (nil would allow everything).
func nonNil(s []string) []string {
	if len(s) == 0 {
		return []string{"_CUTPOINT_NOTHING"}
	}
	return s
}

// authFile takes the users, nkeys and accounts of a nats-server
// configuration file into opts.
func authFile(opts *server.Options, path string) error {
	b, err := ReadSecretFile(path)
	if err != nil {
		return fmt.Errorf("nats auth file: %w", err)
	}
	var fo server.Options
	if err := fo.ProcessConfigString(string(b)); err != nil {
		return fmt.Errorf("nats auth file %s: %w", path, err)
	}
	if len(fo.Users) == 0 && len(fo.Nkeys) == 0 && len(fo.Accounts) == 0 {
		return fmt.Errorf("nats auth file %s: no users, nkeys or accounts in it (see nats-server's authorization and accounts blocks)", path)
	}
	if fo.Authorization != "" || fo.Username != "" {
		return fmt.Errorf("nats auth file %s: give users (with permissions) or accounts, not a single token or user", path)
	}
	opts.Users = append(opts.Users, fo.Users...)
	opts.Nkeys = append(opts.Nkeys, fo.Nkeys...)
	opts.Accounts = append(opts.Accounts, fo.Accounts...)
	if fo.NoAuthUser != "" {
		return fmt.Errorf("nats auth file %s: no_auth_user lets clients in without credentials: refused", path)
	}
	return nil
}

// hostOf is the host of an --advertise value (host or host:port), or this
// host's routable address when it is empty.
func hostOf(advertise string) (string, error) {
	if advertise == "" {
		return RoutableAddr()
	}
	if h, _, err := net.SplitHostPort(advertise); err == nil {
		return h, nil
	}
	return advertise, nil
}

// splitListen parses host:port; port 0 means a free port.
func splitListen(listen string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, errors.New("bad port")
	}
	return host, port, nil
}

func isUnspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// advertiseAddr is the client host:port announced to the cluster (its
// clients learn the other servers from it): the one given, else this
// host's routable address when the server listens on all interfaces, else
// none (the listen address is dialable as it is, or the port is not known
// before the server listens).
func advertiseAddr(advertise, host string, port int) (string, error) {
	if _, _, err := net.SplitHostPort(advertise); err == nil {
		return advertise, nil
	}
	if port == server.RANDOM_PORT {
		return "", nil
	}
	if advertise != "" {
		return net.JoinHostPort(advertise, fmt.Sprint(port)), nil
	}
	if !isUnspecified(host) {
		return "", nil
	}
	a, err := RoutableAddr()
	if err != nil {
		// Only loopback: nothing better to announce; clients of this
		// host still dial it (ClientURL falls back to 127.0.0.1).
		return "", nil
	}
	return net.JoinHostPort(a, fmt.Sprint(port)), nil
}

// RoutableAddr returns a non-loopback unicast IP address of this host (the
// first IPv4 one, else the first IPv6 one), for URLs other hosts dial.
func RoutableAddr() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("interface addresses: %w", err)
	}
	var v6 string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || !ipn.IP.IsGlobalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
		if v6 == "" {
			v6 = ipn.IP.String()
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", errors.New("this host has no routable address (only loopback): give --advertise")
}

// ClientURL is the URL clients connect to (without credentials): never
// 0.0.0.0. A server listening on all interfaces gives its advertised host,
// else this host's routable address.
func (s *Server) ClientURL() string {
	raw := s.s.ClientURL()
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || !isUnspecified(host) {
		return raw
	}
	if h, p, err := net.SplitHostPort(s.advertise); err == nil {
		host, port = h, p
	} else if h, err := hostOf(s.advertise); err == nil {
		host = h
	} else {
		host = "127.0.0.1"
	}
	u.Host = net.JoinHostPort(host, port)
	return u.String()
}

// ClusterURL is the route URL other servers dial (nats-route://host:port,
// without credentials), or "" when the server is in no cluster.
func (s *Server) ClusterURL() string {
	addr := s.s.ClusterAddr()
	if addr == nil {
		return ""
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		if h, err := hostOf(s.advertise); err == nil {
			host = h
		} else {
			host = "127.0.0.1"
		}
	}
	return "nats-route://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// Routes is the number of routes to other servers this server holds.
func (s *Server) Routes() int { return s.s.NumRoutes() }

// Varz returns the server's monitoring figures (in_bytes, out_bytes, ...).
func (s *Server) Varz() (*server.Varz, error) { return s.s.Varz(nil) }

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// Auth holds client credentials and TLS settings. At most one of Token,
// NkeySeedFile and User is used; a token embedded in the URL
// (nats://TOKEN@host:port) also works. The seed file is read as a secret
// file (ReadSecretFile).
type Auth struct {
	Token        string
	NkeySeedFile string
	User         string
	Password     string
	TLS          ClientTLS
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
	// InboxPrefix, if set, replaces _INBOX for this connection's reply
	// subjects (they must be inside its subscribe permissions).
	InboxPrefix string
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
			log.Info("nats reconnected", "conn", o.Name, "url", Redact(nc.ConnectedUrl()))
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
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	tcfg, err := o.Auth.TLS.config()
	if err != nil {
		return nil, fmt.Errorf("nats tls: %w", err)
	}
	if tcfg != nil {
		opts = append(opts, nats.Secure(tcfg))
	}
	n := 0
	for _, set := range []bool{o.Auth.Token != "", o.Auth.NkeySeedFile != "", o.Auth.User != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, errors.New("nats auth: give one of a token, an nkey seed file and a user, not more")
	case o.Auth.User != "":
		opts = append(opts, nats.UserInfo(o.Auth.User, o.Auth.Password))
	case o.Auth.Token != "":
		opts = append(opts, nats.Token(o.Auth.Token))
	case o.Auth.NkeySeedFile != "":
		opt, err := nkeyOption(o.Auth.NkeySeedFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	// A list: this host's server first, the others as failover in the
	// order given (not shuffled), so that ranks on one host share a server.
	ordered := OrderURLs(rawURL, os.Getenv(EnvLocal))
	if len(ordered) > 1 {
		opts = append(opts, nats.DontRandomize())
	}
	deadline := time.Now().Add(o.Wait)
	pause := 100 * time.Millisecond
	for tries := 1; ; tries++ {
		nc, err := nats.Connect(strings.Join(ordered, ","), opts...)
		if err == nil {
			if tries > 1 {
				log.Info("nats reachable again", "conn", o.Name, "tries", tries)
			}
			log.Debug("nats connected", "conn", o.Name, "url", Redact(nc.ConnectedUrl()))
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) && !isDialError(err) {
			return nil, fmt.Errorf("connect to nats %s: %w", Redact(rawURL), err)
		}
		if time.Now().Add(pause).After(deadline) {
			return nil, fmt.Errorf("%w: %s (%d tries in %v): %v", ErrUnreachable, Redact(rawURL), tries, o.Wait, err)
		}
		if tries == 1 {
			log.Warn("nats unreachable; waiting for it", "conn", o.Name, "url", Redact(rawURL), "for", o.Wait, "err", err)
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
			return fmt.Errorf("nats URL %q: %w", Redact(one), err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("nats URL %q: scheme must be nats://, tls://, ws:// or wss://", Redact(one))
		}
		if u.Host == "" {
			return fmt.Errorf("nats URL %q: no host", Redact(one))
		}
	}
	return nil
}

func nkeyOption(seedFile string) (nats.Option, error) {
	seed, err := ReadSecretFile(seedFile)
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

// Redact hides the user info (a token, a user and password) of every URL
// of a comma-separated list, for log lines and error messages: the
// standard library's url.Redacted keeps a token, which sits where a user
// name would.
func Redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, one := range parts {
		parts[i] = redactOne(strings.TrimSpace(one))
	}
	return strings.Join(parts, ",")
}

func redactOne(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: hide everything up to the last '@' by hand.
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			if i := strings.Index(raw, "://"); i >= 0 && i < at {
				return raw[:i+3] + "***" + raw[at:]
			}
			return "***" + raw[at:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.Scheme + "://***@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
}

// EnvLocal names this host's NATS server when a URL list is given
// (CUTPOINT_NATS_LOCAL=host:port or a URL): it is dialed first.
const EnvLocal = "CUTPOINT_NATS_LOCAL"

// OrderURLs splits a comma-separated URL list and puts this host's servers
// first, keeping the given order otherwise: a URL matching local (a URL
// or host:port, e.g. from CUTPOINT_NATS_LOCAL) if given, else the URLs
// whose host is, or resolves to, an address of one of this host's network
// interfaces. The others stay as failover, in the order given, so that
// ranks on one host exchange their messages through that host's server
// and fail over to the same next one.
func OrderURLs(raw, local string) []string {
	var urls []string
	for _, one := range strings.Split(raw, ",") {
		if one = strings.TrimSpace(one); one != "" {
			urls = append(urls, one)
		}
	}
	if len(urls) < 2 {
		return urls
	}
	isLocal := func(string) bool { return false }
	if local = strings.TrimSpace(local); local != "" {
		want := hostPortOf(local)
		isLocal = func(u string) bool { return hostPortOf(u) == want }
	} else if own := localAddrs(); len(own) > 0 {
		isLocal = func(u string) bool {
			host, _, err := net.SplitHostPort(hostPortOf(u))
			if err != nil {
				return false
			}
			for _, ip := range resolve(host) {
				if own[ip.String()] {
					return true
				}
			}
			return false
		}
	}
	var first, rest []string
	for _, u := range urls {
		if isLocal(u) {
			first = append(first, u)
		} else {
			rest = append(rest, u)
		}
	}
	return append(first, rest...)
}

// hostPortOf is the host:port of a URL or of a bare host:port.
func hostPortOf(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Host
	}
	return s
}

// localAddrs is the set of this host's interface addresses, loopback
// excluded: a loopback URL names the same host for everyone and so says
// nothing about which server is nearer.
func localAddrs() map[string]bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	own := map[string]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
			own[ipn.IP.String()] = true
		}
	}
	return own
}

// resolve looks a host up, bounded: an IP literal is itself; a name that
// does not resolve within a second counts as not local.
func resolve(host string) []net.IP {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips
}

// slogAdapter feeds nats-server's logger interface into slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  {}
