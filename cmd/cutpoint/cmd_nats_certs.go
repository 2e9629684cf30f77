package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutpoint/cutpoint/internal/natsutil"
)

// newNatsCertsCommand is `cutpoint nats certs`: one CA and one
// certificate for every server of a job's cluster. A certificate that
// `cutpoint nats` makes for itself has a CA of its own, which the other
// servers' routes cannot check; a cluster (slurm/cutpoint.sbatch's one
// server per node) needs one CA for all, made once by the batch script.
func newNatsCertsCommand(g *GlobalOptions) *cobra.Command {
	var (
		dir   string
		hosts []string
		valid time.Duration
	)
	cmd := &cobra.Command{
		Use:   "certs --dir PARENT --host NAME|IP [--host ...]",
		Short: "Make one CA and one certificate for every server of a cluster, for this run",
		Long: `Make a fresh CA and one certificate signed by it, valid for every --host
(names or IP addresses; loopback is always included) for --valid, in a new
private directory below --dir (0700, every file 0600, created with
O_EXCL|O_NOFOLLOW), and print that directory. It holds ca.pem,
server.pem and server-key.pem: give every server of the cluster
--tls-cert server.pem --tls-key server-key.pem --tls-ca ca.pem, and the
clients CUTPOINT_NATS_TLS_CA=ca.pem and, since --tls-ca makes the servers
ask clients for a certificate of that CA, CUTPOINT_NATS_TLS_CERT=server.pem
and CUTPOINT_NATS_TLS_KEY=server-key.pem (the certificate is made for
client use too). The CA's key is never written: nothing else can be signed
with it. --dir must be on storage every server and client reads (the job's
store); remove the directory when the job ends.

Exit codes: 0 made; 1 the files could not be written; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError(errors.New("--dir: give the parent of the certificates' directory"))
			}
			if len(hosts) == 0 {
				return usageError(errors.New("--host: give every address and name the servers are dialled at"))
			}
			if valid <= 0 {
				return usageError(fmt.Errorf("--valid %v: must be positive", valid))
			}
			jt, err := natsutil.GenerateTLS(dir, hosts, valid)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, jt.Dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "parent directory of the new private certificate directory")
	f.StringSliceVar(&hosts, "host", nil, "a name or IP address the servers are dialled at (repeat, or comma-separated)")
	f.DurationVar(&valid, "valid", 400*24*time.Hour, "how long the certificates are valid")
	return cmd
}
