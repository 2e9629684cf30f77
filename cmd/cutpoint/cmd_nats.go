package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutpoint/cutpoint/internal/natsutil"
)

// Environment variables that carry the secrets of "cutpoint nats", so that
// they need not be on its command line (which ps shows to every user).
const (
	envNatsToken        = "CUTPOINT_NATS_TOKEN"         // the client token (as the ranks read it)
	envNatsClusterToken = "CUTPOINT_NATS_CLUSTER_TOKEN" // the route token of a cluster
)

type natsServerOptions struct {
	Listen           string
	Advertise        string
	Token            string
	TokenFile        string
	URLFile          string
	MaxPayload       int32
	Cluster          string
	Routes           string
	ClusterName      string
	ClusterTokenFile string
	ClusterURLFile   string
	Monitor          string
	TLSCert          string
	TLSKey           string
	TLSCA            string
	AuthFile         string
	Plaintext        bool
}

func newNatsCommand(g *GlobalOptions) *cobra.Command {
	var o natsServerOptions
	cmd := &cobra.Command{
		Use:   "nats [--listen HOST:PORT] [--url-file FILE] [--cluster HOST:PORT --routes URL,...]",
		Short: "Run a NATS server (one per host for a job on many hosts) whose clients outlive the coordinator",
		Long: `Run an embedded nats-server as its own process, so that a coordinator crash
does not cut the ranks' channels. --url-file writes the client URL (with the
token, if any) once the server accepts connections; the file is readable by
its owner only. The URL names a host other hosts can dial: a server
listening on 0.0.0.0 writes --advertise, else this host's first routable
address. The server runs until SIGTERM or SIGINT.

The client token comes from --token-file, else CUTPOINT_NATS_TOKEN, else
--token (which every user can read in ps: avoid it on shared machines).

Many hosts: run one server per host and join them into a cluster with
--cluster (the route listen address) and --routes (the other servers'
nats-route://HOST:PORT URLs; naming one is enough, the servers gossip the
rest). Routes authenticate with the cluster token from --cluster-token-file
or CUTPOINT_NATS_CLUSTER_TOKEN (never a flag); every server must have the
same token and the same --cluster-name (default derived from the token).
--cluster-url-file writes this server's route URL (no credentials in it)
before --url-file, for servers started later to name in --routes when the
cluster port is picked at start (--cluster HOST:0), as slurm/cutpoint.sbatch
does. Give the job the list of all servers' client URLs (--nats URL1,URL2,...):
each process dials its own host's server first and fails over to the others.

Security (docs/operations.md, Security). A listener other hosts can reach
(not 127.0.0.1 or localhost) needs authentication (a token, or --auth-file)
and TLS: --tls-cert and --tls-key (the key a file only this user can
read); --tls-ca asks every client for a certificate signed by that CA
(mutual TLS) and is the CA of the other servers' route certificates, which
a cluster's routes need. Without --tls-cert, a single server (no
--cluster) makes a certificate of its own for this run: its CA certificate
goes to the --url-file with ".ca.pem" appended (clients: --nats-tls-ca), and
the URL is written with tls://. --insecure-plaintext keeps a reachable
listener without TLS (an isolated network only: the token crosses it in the
clear). --auth-file takes users with permissions, nkeys or accounts from a
nats-server configuration file (its authorization and accounts blocks), for
per-job credentials on a site server; it excludes a token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNats(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "127.0.0.1:0", "client address to listen on (port 0: a free port)")
	f.StringVar(&o.Advertise, "advertise", "", "HOST or HOST:PORT that clients on other hosts dial (default: the listen address, or this host's routable address for 0.0.0.0)")
	f.StringVar(&o.Token, "token", "", "require this token from clients (visible in ps: prefer --token-file or "+envNatsToken+")")
	f.StringVar(&o.TokenFile, "token-file", "", "require the token in this file from clients")
	f.StringVar(&o.URLFile, "url-file", "", "write the client URL to this file when ready")
	f.Int32Var(&o.MaxPayload, "max-payload", 0, "largest message in bytes (default: the server's, 1 MiB)")
	f.StringVar(&o.Cluster, "cluster", "", "join a cluster: HOST:PORT to listen on for routes from the other servers")
	f.StringVar(&o.Routes, "routes", "", "the other servers' route URLs, comma-separated (nats-route://HOST:PORT)")
	f.StringVar(&o.ClusterName, "cluster-name", "", "cluster name, the same on every server (default: derived from the cluster token)")
	f.StringVar(&o.ClusterTokenFile, "cluster-token-file", "", "file holding the route token every server of the cluster shares (default: "+envNatsClusterToken+")")
	f.StringVar(&o.ClusterURLFile, "cluster-url-file", "", "write the route URL (nats-route://HOST:PORT) other servers give as --routes to this file when ready, before --url-file")
	f.StringVar(&o.Monitor, "monitor", "", "HOST:PORT of nats-server's HTTP monitoring endpoint (/varz, /connz, /routez; off by default)")
	f.StringVar(&o.TLSCert, "tls-cert", "", "server certificate (PEM) for the client listener and the cluster's routes")
	f.StringVar(&o.TLSKey, "tls-key", "", "its key (a file only this user can read)")
	f.StringVar(&o.TLSCA, "tls-ca", "", "CA (PEM) clients' certificates must be signed by (mutual TLS), and the CA of the other servers' route certificates")
	f.StringVar(&o.AuthFile, "auth-file", "", "nats-server configuration file with users (and their permissions), nkeys or accounts (a file only this user can read)")
	f.BoolVar(&o.Plaintext, "insecure-plaintext", false, "allow a listener other hosts can reach without TLS (isolated networks only)")
	cmd.AddCommand(newNatsCertsCommand(g))
	cmd.AddCommand(newNatsUsersCommand(g))
	return cmd
}

// readSecret reads a token file: the first line, trimmed; empty is an
// error. The file must be this user's, private, regular and no link
// (natsutil.ReadSecretFile).
func readSecret(flag, path string) (string, error) {
	b, err := natsutil.ReadSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	s := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if s == "" {
		return "", fmt.Errorf("%s %s: the file is empty", flag, path)
	}
	return s, nil
}

// onCommandLine says whether flag was given on the command line (not from
// the environment or the config file, which fill flags too).
func onCommandLine(flag string) bool {
	for _, a := range os.Args[1:] {
		if a == "--" {
			return false
		}
		if a == "--"+flag || strings.HasPrefix(a, "--"+flag+"=") {
			return true
		}
	}
	return false
}

// clusterName derives the cluster's name from its token, so servers that
// share the token agree on the name without another flag. The name is sent
// in the clear; a hash prefix reveals nothing usable of the token.
func clusterName(token string) string {
	if token == "" {
		return "cutpoint"
	}
	h := sha256.Sum256([]byte("cutpoint nats cluster name\x00" + token))
	return "cutpoint-" + hex.EncodeToString(h[:6])
}

func runNats(ctx context.Context, g *GlobalOptions, o natsServerOptions) error {
	token := o.Token
	switch {
	case o.TokenFile != "":
		if o.Token != "" {
			return usageError(errors.New("give --token or --token-file, not both"))
		}
		t, err := readSecret("--token-file", o.TokenFile)
		if err != nil {
			return usageError(err)
		}
		token = t
	case token == "":
		token = os.Getenv(envNatsToken)
	case onCommandLine("token"):
		g.Logger.Warn("--token is visible to every user of this host (ps); use --token-file or " + envNatsToken)
	}
	so := natsutil.ServerOptions{Listen: o.Listen, Advertise: o.Advertise, Token: token, MaxPayload: o.MaxPayload,
		Monitor: o.Monitor, Logger: g.Logger, AuthFile: o.AuthFile, Plaintext: o.Plaintext,
		TLS: natsutil.ServerTLS{Cert: o.TLSCert, Key: o.TLSKey, CA: o.TLSCA}}
	if token != "" && o.AuthFile != "" {
		return usageError(errors.New("give a token or --auth-file, not both (NATS takes one way to authenticate)"))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return usageError(errors.New("--tls-cert and --tls-key go together"))
	}
	if o.TLSCA != "" && o.TLSCert == "" {
		return usageError(errors.New("--tls-ca needs --tls-cert and --tls-key (the server's own certificate)"))
	}
	if token == "" && o.AuthFile == "" {
		if natsutil.IsLoopback(o.Listen) {
			g.Logger.Warn("no token: every process of this host can use this server (and every job's subjects on it); set --token-file or " + envNatsToken)
		}
	}
	var generated *natsutil.JobTLS
	if !natsutil.IsLoopback(o.Listen) && o.TLSCert == "" && !o.Plaintext && o.Cluster == "" && (token != "" || o.AuthFile != "") {
		// A certificate of this run's own; its CA goes next to the URL.
		hosts := certHosts(o.Listen)
		if o.Advertise != "" {
			if h, _, err := net.SplitHostPort(o.Advertise); err == nil {
				hosts = append(hosts, h)
			} else {
				hosts = append(hosts, o.Advertise)
			}
		}
		jt, err := natsutil.GenerateTLS("", hosts, 400*24*time.Hour)
		if err != nil {
			return err
		}
		defer jt.Remove()
		generated, so.TLS = jt, jt.Server
	}
	if o.Cluster == "" && (o.Routes != "" || o.ClusterTokenFile != "" || o.ClusterName != "" || o.ClusterURLFile != "") {
		return usageError(errors.New("--routes, --cluster-name, --cluster-token-file and --cluster-url-file need --cluster HOST:PORT"))
	}
	if o.Cluster != "" {
		ctok := os.Getenv(envNatsClusterToken)
		if o.ClusterTokenFile != "" {
			t, err := readSecret("--cluster-token-file", o.ClusterTokenFile)
			if err != nil {
				return usageError(err)
			}
			ctok = t
		}
		if ctok == "" {
			g.Logger.Warn("the cluster's routes take no token: any host that reaches --cluster can join it; set --cluster-token-file or " + envNatsClusterToken)
		}
		name := o.ClusterName
		if name == "" {
			name = clusterName(ctok)
		}
		var routes []string
		if o.Routes != "" {
			routes = strings.Split(o.Routes, ",")
		}
		so.Cluster = &natsutil.ClusterOptions{Name: name, Listen: o.Cluster, Routes: routes, Token: ctok}
	}
	srv, err := natsutil.StartServer(so)
	if err != nil {
		return usageError(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	if rest, ok := strings.CutPrefix(url, "nats://"); ok && generated != nil {
		url = "tls://" + rest
	}
	if token != "" {
		url = withToken(url, token)
	}
	attrs := []any{"url", natsutil.Redact(url), "tls", so.TLS.Enabled(), "mtls", so.TLS.CA != ""}
	if cu := srv.ClusterURL(); cu != "" {
		attrs = append(attrs, "cluster", cu, "cluster_name", so.Cluster.Name)
	}
	if o.ClusterURLFile != "" {
		// No secret in it, but the same care: a file another user placed
		// could send the servers started after this one elsewhere.
		if err := writeSecretFile(o.ClusterURLFile, []byte(srv.ClusterURL()+"\n"), os.FileMode(0o600)); err != nil {
			return usageError(fmt.Errorf("--cluster-url-file: %w", err))
		}
	}
	if o.URLFile != "" {
		if generated != nil {
			// Before the URL: whoever waits for the URL file finds the CA.
			if err := writeSecretFile(o.URLFile+".ca.pem", generated.CAPEM, os.FileMode(0o600)); err != nil {
				return usageError(fmt.Errorf("--url-file (its CA): %w", err))
			}
			attrs = append(attrs, "ca_file", o.URLFile+".ca.pem")
		}
		// The URL may hold the token: 0600, in a place no other user
		// prepared (see writeSecretFile).
		if err := writeSecretFile(o.URLFile, []byte(url+"\n"), os.FileMode(0o600)); err != nil {
			return usageError(fmt.Errorf("--url-file: %w", err))
		}
		abs, _ := filepath.Abs(o.URLFile)
		g.Logger.Info("nats-server ready", append(attrs, "url_file", abs)...)
	} else {
		if generated != nil {
			attrs = append(attrs, "ca_file", generated.CAFile)
		}
		g.Logger.Info("nats-server ready", attrs...)
		fmt.Fprintln(g.Stdout, url)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}

// withToken puts a token into a nats:// or tls:// URL.
func withToken(url, token string) string {
	for _, scheme := range []string{"nats://", "tls://"} {
		if len(url) > len(scheme) && url[:len(scheme)] == scheme {
			return scheme + token + "@" + url[len(scheme):]
		}
	}
	return url
}
