package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/rank"
)

// jobID returns the id of this run of the job: the one given
// (--job-id); for rejoin, the one the running ranks use (from the store);
// none when someone else starts the ranks (spawnNone), who would not know
// a random one; else a new random one (the driver writes it to the store
// once it holds the lease).
func jobID(ctx context.Context, store *ckpt.Store, job, given string, rejoin, spawnNone bool) (string, error) {
	switch {
	case given != "":
		return given, nil
	case spawnNone && !rejoin:
		return "", nil
	case !rejoin:
		return subjects.NewID(), nil
	}
	b, err := store.GetJobFile(ctx, job, driver.JobIDFile)
	if errors.Is(err, ckpt.ErrNotFound) {
		return "", nil // a job that ran on its name alone
	}
	if err != nil {
		return "", fmt.Errorf("job %q: the job id its ranks use (%s): %w", job, driver.JobIDFile, err)
	}
	id := strings.TrimSpace(string(b))
	if err := subjects.CheckID(id); err != nil {
		return "", fmt.Errorf("job %q: %s: %w", job, driver.JobIDFile, err)
	}
	return id, nil
}

// newPassword is a random NATS password.
func newPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// embeddedNATS is `run`'s own nats-server, with users and permissions for
// this job alone: the coordinator, and each rank (or, for an MPI world,
// whose ranks share one environment, the ranks together), so that a rank's
// credentials cannot speak for another rank or for the coordinator.
type embeddedNATS struct {
	srv *natsutil.Server
	tls *natsutil.JobTLS
	url string
}

// maxRankUsers bounds the embedded server's per-rank users.
const maxRankUsers = 4096

// coordinatorUser and rankUser name the job's users (natsutil.RankUser:
// -1 is the ranks of an MPI world together).
const coordinatorUser = natsutil.CoordinatorUser

var rankUser = natsutil.RankUser

// jobUsers are the NATS users of a job in subject space space, each with
// a fresh password: the coordinator first, then one user per rank or,
// shared (an MPI world, whose ranks share one environment), one for all
// ranks. Past maxRankUsers the server's users would cost more than they
// protect at start: the ranks share one user (no control, nothing outside
// the job), as an MPI world does.
func jobUsers(space string, ranks int, shared bool) []natsutil.User {
	cp := subjects.CoordinatorPermissions(space)
	users := []natsutil.User{{Name: coordinatorUser, Password: newPassword(), Publish: cp.Publish, Subscribe: cp.Subscribe}}
	if shared || ranks > maxRankUsers {
		p := subjects.WorldPermissions(space)
		return append(users, natsutil.User{Name: rankUser(-1), Password: newPassword(), Publish: p.Publish, Subscribe: p.Subscribe, Responses: true})
	}
	for r := range ranks {
		p := subjects.RankPermissions(space, r)
		users = append(users, natsutil.User{Name: rankUser(r), Password: newPassword(), Publish: p.Publish, Subscribe: p.Subscribe, Responses: true})
	}
	return users
}

// startEmbedded starts the job's server on listen and sets o's NATS
// credentials (the coordinator's) and the ranks'. A listener other hosts
// can reach gets a certificate made for this job, in a private directory,
// whose CA the ranks are handed.
func startEmbedded(o *jobOptions, listen string, shared bool) (*embeddedNATS, error) {
	// Credentials given for an external server (the environment fills
	// --nats-token too) mean nothing here: the server makes its own.
	users := jobUsers(subjects.Space(o.Job, o.jobID), o.Ranks, shared)
	o.nats.Token, o.nats.Nkey, o.nats.User, o.nats.Password = "", "", coordinatorUser, users[0].Password
	o.rankUsers, o.sharedRanks = users[1:], len(users) == 2 && users[1].Name == rankUser(-1)
	so := natsutil.ServerOptions{Listen: listen, Users: users}
	e := &embeddedNATS{}
	if !natsutil.IsLoopback(listen) {
		jt, err := natsutil.GenerateTLS("", certHosts(listen), 400*24*time.Hour)
		if err != nil {
			return nil, err
		}
		e.tls = jt
		so.TLS = jt.Server
		o.nats.TLSCA, o.nats.caPEM = jt.CAFile, jt.CAPEM
	}
	srv, err := natsutil.StartServer(so)
	if err != nil {
		e.close()
		return nil, err
	}
	e.srv, e.url = srv, srv.ClientURL()
	return e, nil
}

func (e *embeddedNATS) close() {
	if e.srv != nil {
		e.srv.Shutdown()
	}
	if e.tls != nil {
		_ = e.tls.Remove()
	}
}

// certHosts are the names and addresses a generated certificate is made
// for: the listen host, this host's name and every interface address.
func certHosts(listen string) []string {
	var hosts []string
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	return hosts
}

// rankCredentials is the RankEnv of a job on the embedded server: each
// spawned rank gets its own user and password.
func (o *jobOptions) rankCredentials(s coordinator.Spawn) []string {
	if o.sharedRanks || s.Rank < 0 || s.Rank >= len(o.rankUsers) {
		return nil
	}
	u := o.rankUsers[s.Rank]
	return []string{rank.EnvNATSUser + "=" + u.Name, rank.EnvNATSPassword + "=" + u.Password}
}

// rankSpawnEnv is the RankEnv of the driver: the spawn's identity and,
// on the embedded server, the rank's credentials.
func (o *jobOptions) rankSpawnEnv(s coordinator.Spawn) []string {
	return append(spawnEnv(s), o.rankCredentials(s)...)
}

// errNoListen is returned for --nats-listen with --nats.
var errNoListen = errors.New("--nats-listen is the embedded server's address: not with --nats")
