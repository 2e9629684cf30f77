package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

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
each process dials its own host's server first and fails over to the others.`,
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
	return cmd
}

// readSecret reads a token file: the first line, trimmed; empty is an error.
func readSecret(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
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
		Monitor: o.Monitor, Logger: g.Logger}
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
	if token != "" {
		url = withToken(url, token)
	}
	attrs := []any{"url", srv.ClientURL()}
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
		// The URL may hold the token: 0600, in a place no other user
		// prepared (see writeSecretFile).
		if err := writeSecretFile(o.URLFile, []byte(url+"\n"), os.FileMode(0o600)); err != nil {
			return usageError(fmt.Errorf("--url-file: %w", err))
		}
		abs, _ := filepath.Abs(o.URLFile)
		g.Logger.Info("nats-server ready", append(attrs, "url_file", abs)...)
	} else {
		g.Logger.Info("nats-server ready", attrs...)
		fmt.Fprintln(g.Stdout, url)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}

// withToken puts a token into a nats:// URL.
func withToken(url, token string) string {
	const scheme = "nats://"
	if len(url) > len(scheme) && url[:len(scheme)] == scheme {
		return scheme + token + "@" + url[len(scheme):]
	}
	return url
}
