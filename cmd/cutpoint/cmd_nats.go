package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cutpoint/cutpoint/internal/natsutil"
)

type natsServerOptions struct {
	Listen     string
	Token      string
	URLFile    string
	MaxPayload int32
}

func newNatsCommand(g *GlobalOptions) *cobra.Command {
	var o natsServerOptions
	cmd := &cobra.Command{
		Use:   "nats [--listen HOST:PORT] [--url-file FILE]",
		Short: "Run a NATS server for a job whose coordinator runs on its own",
		Long: `Run an embedded nats-server as its own process, so that a coordinator crash
does not cut the ranks' channels. --url-file writes the client URL (with the
token, if any) once the server accepts connections; the file is readable by
its owner only. The server runs until SIGTERM or SIGINT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNats(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "127.0.0.1:0", "address to listen on (port 0: a free port)")
	f.StringVar(&o.Token, "token", "", "require this token from clients")
	f.StringVar(&o.URLFile, "url-file", "", "write the client URL to this file when ready")
	f.Int32Var(&o.MaxPayload, "max-payload", 0, "largest message in bytes (default: the server's, 1 MiB)")
	return cmd
}

func runNats(ctx context.Context, g *GlobalOptions, o natsServerOptions) error {
	srv, err := natsutil.StartServer(natsutil.ServerOptions{Listen: o.Listen, Token: o.Token, MaxPayload: o.MaxPayload, Logger: g.Logger})
	if err != nil {
		return usageError(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	if o.Token != "" {
		url = withToken(url, o.Token)
	}
	if o.URLFile != "" {
		// The URL may hold the token: 0600, in a place no other user
		// prepared (see writeSecretFile).
		if err := writeSecretFile(o.URLFile, []byte(url+"\n"), os.FileMode(0o600)); err != nil {
			return usageError(fmt.Errorf("--url-file: %w", err))
		}
		abs, _ := filepath.Abs(o.URLFile)
		g.Logger.Info("nats-server ready", "url", srv.ClientURL(), "url_file", abs)
	} else {
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
