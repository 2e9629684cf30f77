package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/heat2d"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/rank"
)

// natsOptions select the NATS server and credentials.
type natsOptions struct {
	URL       string
	Token     string
	TokenFile string
	Nkey      string
	// TLS: the CA of the server's certificate, and the client's own
	// certificate and key for a server that asks for one (mutual TLS).
	TLSCA, TLSCert, TLSKey string
	// User and PasswordFile (--nats-user, --nats-password-file): a user
	// of the server's own authorization (a site's per-job users); `run`
	// sets User and Password for its embedded server's coordinator user.
	// A password never goes on argv.
	User, PasswordFile, Password string
	// Users (--nats-users): a job's users directory (cutpoint nats
	// users): the coordinator logs in as its user, every rank it spawns
	// as its own (rank.EnvNATSUsers).
	Users string
	// caPEM: the CA's content, for the ranks (read once by check).
	caPEM []byte
}

func (o *natsOptions) AddFlags(f *pflag.FlagSet, help string) {
	f.StringVar(&o.URL, "nats", "", help+"; a comma-separated list of a cluster's servers: this host's first, the others for failover")
	f.StringVar(&o.Token, "nats-token", "", "NATS token (or in the URL: nats://TOKEN@host:port; visible in ps: prefer --nats-token-file or CUTPOINT_NATS_TOKEN)")
	f.StringVar(&o.TokenFile, "nats-token-file", "", "file holding the NATS token")
	f.StringVar(&o.Nkey, "nats-nkey", "", "NATS nkey seed file")
	f.StringVar(&o.User, "nats-user", "", "NATS user (of the server's own authorization, e.g. cutpoint nats --auth-file), with --nats-password-file")
	f.StringVar(&o.PasswordFile, "nats-password-file", "", "file holding the password of --nats-user (a file only this user can read)")
	f.StringVar(&o.Users, "nats-users", "", "a job's users directory (cutpoint nats users): the coordinator logs in as its user and each rank as its own")
	f.StringVar(&o.TLSCA, "nats-tls-ca", "", "CA certificate (PEM) that signed the NATS server's certificate (TLS; the ranks are handed its content)")
	f.StringVar(&o.TLSCert, "nats-tls-cert", "", "client certificate (PEM) for a NATS server that asks for one (mutual TLS)")
	f.StringVar(&o.TLSKey, "nats-tls-key", "", "key of --nats-tls-cert (a file only this user can read)")
}

// readTLS reads the CA for the ranks and checks the client certificate
// pair before anything starts.
func (o *natsOptions) readTLS() error {
	if o.TLSCA != "" {
		b, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return fmt.Errorf("--nats-tls-ca: %w", err)
		}
		o.caPEM = b
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if o.TLSKey != "" {
		if _, err := natsutil.ReadSecretFile(o.TLSKey); err != nil {
			return fmt.Errorf("--nats-tls-key: %w", err)
		}
	}
	return nil
}

// readTokenFile reads --nats-token-file into Token and
// --nats-password-file into Password.
func (o *natsOptions) readTokenFile() error {
	if (o.User == "") != (o.PasswordFile == "") {
		return errors.New("--nats-user and --nats-password-file go together")
	}
	if o.PasswordFile != "" {
		p, err := readSecret("--nats-password-file", o.PasswordFile)
		if err != nil {
			return err
		}
		o.Password = p
	}
	if o.TokenFile == "" {
		return nil
	}
	if o.Token != "" {
		return errors.New("give --nats-token or --nats-token-file, not both")
	}
	t, err := readSecret("--nats-token-file", o.TokenFile)
	if err != nil {
		return err
	}
	o.Token = t
	return nil
}

// coordinatorUsers logs the coordinator in as the user of --nats-users.
func (o *natsOptions) coordinatorUsers() error {
	if o.Users == "" {
		return nil
	}
	if o.Token != "" || o.User != "" || o.Nkey != "" {
		return errors.New("--nats-users: not with --nats-token, --nats-user or --nats-nkey (the directory holds the job's users)")
	}
	if !filepath.IsAbs(o.Users) {
		abs, err := filepath.Abs(o.Users)
		if err != nil {
			return fmt.Errorf("--nats-users: %w", err)
		}
		o.Users = abs
	}
	p, err := natsutil.ReadUserPassword(o.Users, natsutil.CoordinatorUser)
	if err != nil {
		return fmt.Errorf("--nats-users: %w", err)
	}
	o.User, o.Password = natsutil.CoordinatorUser, p
	return nil
}

func (o natsOptions) auth() natsutil.Auth {
	return natsutil.Auth{Token: o.Token, NkeySeedFile: o.Nkey, User: o.User, Password: o.Password,
		TLS: natsutil.ClientTLS{CA: o.TLSCA, CAPEM: o.caPEM, Cert: o.TLSCert, Key: o.TLSKey}}
}

// workloadOptions are the flags of the built-in heat2d workload.
type workloadOptions struct {
	Steps  int64
	Size   int
	Device string
	Frozen float64
	// Params is --params-size: the parameter buffer's bytes per rank
	// ("": as large as the tile); params is it parsed (by check).
	Params string
	params int64
}

func (o *workloadOptions) AddFlags(f *pflag.FlagSet) {
	f.Int64Var(&o.Steps, "steps", 2000, "heat2d: steps to run")
	f.IntVar(&o.Size, "size", 512, "heat2d: grid edge per rank (cells)")
	f.StringVar(&o.Device, "device", "cpu", "device of the ranks: cpu or cuda (cuda needs the cuda build)")
	f.Float64Var(&o.Frozen, "frozen", 0, "heat2d: add a parameter buffer as large as the tile whose first FRACTION is frozen and the rest rewritten every step (0: none), to measure incremental cuts")
	f.StringVar(&o.Params, "params-size", "", "heat2d with --frozen: the parameter buffer's size per rank, e.g. 4GiB (default: as large as the tile), for a state far larger than the heat field")
}

func (o workloadOptions) config() heat2d.Config {
	return heat2d.Config{Size: o.Size, Steps: o.Steps, Alpha: heat2d.DefaultAlpha, Frozen: o.Frozen, ParamsBytes: o.params}
}

func (o *workloadOptions) check() error {
	o.params = 0
	if o.Params != "" {
		n, err := parseSize(o.Params)
		if err != nil {
			return fmt.Errorf("--params-size: %w", err)
		}
		o.params = n
	}
	if err := o.config().Validate(); err != nil {
		return err
	}
	if o.Device != "cpu" && o.Device != "cuda" && !strings.HasPrefix(o.Device, "cuda:") {
		return fmt.Errorf("--device %q: want cpu or cuda", o.Device)
	}
	return nil
}

// args renders the workload flags for a spawned `cutpoint rank`.
func (o workloadOptions) args() []string {
	a := []string{"--steps", strconv.FormatInt(o.Steps, 10), "--size", strconv.Itoa(o.Size), "--device", o.Device}
	if o.Frozen > 0 {
		a = append(a, "--frozen", strconv.FormatFloat(o.Frozen, 'g', -1, 64))
	}
	if o.Params != "" {
		a = append(a, "--params-size", o.Params)
	}
	return a
}

// jobOptions configure the coordinator side of a job (run, coordinator).
type jobOptions struct {
	nats natsOptions
	// wholeWorld: the ranks are one MPI world (run --mpi): the
	// coordinator respawns all of them at every recovery.
	wholeWorld  bool
	Store       string
	Job         string
	Ranks       int
	Restore     bool
	RestoreCut  uint64
	NATSWait    time.Duration
	Interval    time.Duration
	EverySteps  int64
	Keep        int
	Codec       string
	ChunkSize   int
	Hash        string
	Heartbeat   time.Duration
	FailTimeout time.Duration
	// ProgressTimeout: a running rank whose step stays the same this
	// long while it heartbeats is lost (on by default: a rank hung in
	// the job's own code, or held by a peer that never sends).
	ProgressTimeout time.Duration
	Grace           time.Duration
	Metrics         string
	MaxRecover      int
	StopWorld       bool
	// MaxStaging is --max-staging: the staging memory a rank's cut may
	// copy its CPU state into ("0": no bound); maxStaging is it parsed.
	MaxStaging string
	maxStaging int64
	StoreIO    string
	// FrameAuth is --frame-auth: "on" (frames between ranks tagged and
	// checked) or "off" (a trusted fabric; control messages stay signed).
	FrameAuth string

	// RestoreIfAny (--restore=if-any): a restore of a job with no
	// committed cut starts it from step 0 instead of failing.
	RestoreIfAny bool
	// Force starts a job the pre-checks refuse (ranks far past the cores
	// or the process limit, heat2d state past the memory).
	Force    bool
	LeaseTTL time.Duration
	levels   levelOptions
	// JobID (--job-id) fixes the job's id; jobID is the one in use, part
	// of every subject (set by runJob).
	JobID string
	jobID string
	// rankUsers: the embedded server's per-rank credentials (set by
	// runJob); nil: the ranks share the job's credentials.
	rankUsers []natsutil.User
	// sharedRanks: rankUsers is one user all ranks share (an MPI world).
	sharedRanks bool
}

// DefaultProgressTimeout is --progress-timeout's default: long against
// any step of a job that checkpoints, short against a job hung for good.
const DefaultProgressTimeout = 30 * time.Minute

func (o *jobOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Store, "store", "cutpoint-store", "checkpoint store directory (shared storage on a cluster)")
	f.StringVar(&o.Job, "job", "", "job name (default: heat2d, or the executable's name)")
	f.StringVar(&o.JobID, "job-id", "", "the job's id in its NATS subjects, 16 lowercase hex digits (default: a random one; ranks started by someone else (--spawn none) must get the same as CUTPOINT_JOB_ID, or, if neither is given, both use the job's name alone)")
	f.IntVar(&o.Ranks, "ranks", 4, "number of ranks")
	f.Var(&restoreFlag{o}, "restore", "resume the job from its latest intact committed cut in --store (a damaged one is reported and skipped; none is an error); --restore=if-any: resume if there is a cut, else start from step 0")
	f.Lookup("restore").NoOptDefVal = "true"
	f.Uint64Var(&o.RestoreCut, "cut", 0, "with --restore: restore this committed cut (see cutpoint ls) instead of the latest; newer cuts are marked bad for the job")
	f.DurationVar(&o.NATSWait, "nats-wait", 2*time.Minute, "how long a starting rank waits for an unreachable NATS server before it gives up")
	f.DurationVar(&o.Interval, "interval", 10*time.Second, "take a cut this long after the previous one (0: off)")
	f.Int64Var(&o.EverySteps, "every-steps", 0, "take a cut when at least N steps have passed since the previous one (0: off; a warning says when cuts cannot keep up)")
	f.IntVar(&o.Keep, "keep", 2, "committed cuts to keep (older ones are garbage-collected)")
	f.StringVar(&o.Codec, "codec", "s2", "compression: none, s2, s2-better, zstd, zstd-1..zstd-19")
	f.IntVar(&o.ChunkSize, "chunk-size", 0, "chunk size in bytes for a new store (default 4 MiB)")
	f.StringVar(&o.Hash, "hash", "", "chunk content hash for a new store: xxh3 (default) or blake3 (collision resistant, more CPU per cut)")
	f.DurationVar(&o.Heartbeat, "heartbeat-interval", rank.DefaultHeartbeatInterval, "rank heartbeat interval")
	f.DurationVar(&o.FailTimeout, "failure-timeout", 0, "a rank silent this long is lost (default 5 heartbeats)")
	f.DurationVar(&o.ProgressTimeout, "progress-timeout", DefaultProgressTimeout, "a running rank whose step does not advance this long, heartbeats or not, is lost and the job recovers (0: off; set it above the job's longest step)")
	f.DurationVar(&o.Grace, "grace", time.Minute, "after SIGTERM: how long to wait for the final cut before stopping")
	f.StringVar(&o.Metrics, "metrics", "", "serve Prometheus metrics on this address (e.g. :9090)")
	f.IntVar(&o.MaxRecover, "max-recoveries", 10, "recoveries for the same cause without a commit in between before the job fails (4x for mixed causes)")
	f.BoolVar(&o.StopWorld, "stop-the-world", false, "ranks wait at each cut until it is durable (for comparison)")
	f.StringVar(&o.MaxStaging, "max-staging", "0", "bound on the memory a rank's cut copies its CPU state into, e.g. 1GiB (0: none); a buffer beyond it is written from where it lives and the rank waits at the cut until it has been read: less memory, a longer stall (docs/operations.md)")
	f.BoolVar(&o.Force, "force", false, "start the job even when the pre-checks refuse it (ranks far beyond the cores or the process limit, heat2d state beyond the available memory)")
	f.DurationVar(&o.LeaseTTL, "lease-ttl", ckpt.DefaultLeaseTTL, "ttl of the job's owner lease in the store (renewed every ttl/3); a killed coordinator's job can be taken over once it expired")
	f.StringVar(&o.FrameAuth, "frame-auth", "on", "on: every frame between ranks is tagged and checked; off: frames go untagged, for a fabric where nobody else can publish on the job's subjects (control messages, reports and results stay authenticated; see docs/operations.md, Security)")
	f.StringVar(&o.StoreIO, "store-io", "direct", "how ranks write packs: direct (O_DIRECT where the file system takes it) or buffered (page cache)")
	o.levels.AddFlags(f)
}

// restoreFlag is --restore: a boolean, or "if-any".
type restoreFlag struct{ o *jobOptions }

func (f *restoreFlag) String() string {
	if f.o == nil {
		return "false"
	}
	if f.o.RestoreIfAny {
		return "if-any"
	}
	return strconv.FormatBool(f.o.Restore)
}

func (f *restoreFlag) Set(v string) error {
	if v == "if-any" {
		f.o.Restore, f.o.RestoreIfAny = true, true
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("want true, false or if-any")
	}
	f.o.Restore, f.o.RestoreIfAny = b, false
	return nil
}

func (f *restoreFlag) Type() string { return "bool" }

func (o *jobOptions) check() error {
	var errs []error
	if o.Ranks < 1 || o.Ranks > 1<<20 {
		errs = append(errs, fmt.Errorf("--ranks %d: want 1..1048576", o.Ranks))
	}
	if o.Job != "" {
		if err := ckpt.ValidJobName(o.Job); err != nil {
			errs = append(errs, fmt.Errorf("--job: %w", err))
		}
	}
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("--interval %v: must be >= 0", o.Interval))
	}
	if o.EverySteps < 0 {
		errs = append(errs, fmt.Errorf("--every-steps %d: must be >= 0", o.EverySteps))
	}
	if o.Keep < 1 {
		errs = append(errs, fmt.Errorf("--keep %d: must be >= 1", o.Keep))
	}
	if _, err := ckpt.ParseCodec(o.Codec); err != nil {
		errs = append(errs, fmt.Errorf("--codec: %w", err))
	}
	if o.Hash != "" {
		if err := ckpt.CheckHash(o.Hash); err != nil {
			errs = append(errs, fmt.Errorf("--hash: %w", err))
		}
	}
	if err := rank.CheckStoreIO(o.StoreIO); err != nil {
		errs = append(errs, fmt.Errorf("--store-io: %w", err))
	}
	if o.FrameAuth != "on" && o.FrameAuth != "off" {
		errs = append(errs, fmt.Errorf("--frame-auth %q: want on or off", o.FrameAuth))
	}
	if o.Heartbeat < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--heartbeat-interval %v: want >= 10ms", o.Heartbeat))
	}
	if o.ProgressTimeout < 0 {
		errs = append(errs, fmt.Errorf("--progress-timeout %v: want >= 0 (0: off)", o.ProgressTimeout))
	} else if o.ProgressTimeout != 0 && o.ProgressTimeout < 2*o.Heartbeat {
		errs = append(errs, fmt.Errorf("--progress-timeout %v: want >= 2 heartbeats (%v), or 0 for off", o.ProgressTimeout, 2*o.Heartbeat))
	}
	if o.FailTimeout != 0 && o.FailTimeout < 2*o.Heartbeat {
		errs = append(errs, fmt.Errorf("--failure-timeout %v: want >= 2 heartbeats (%v)", o.FailTimeout, 2*o.Heartbeat))
	}
	if o.nats.URL != "" {
		if err := natsutil.CheckURL(o.nats.URL); err != nil {
			errs = append(errs, fmt.Errorf("--nats: %w", err))
		}
	}
	if o.Grace <= 0 {
		errs = append(errs, fmt.Errorf("--grace %v: must be positive", o.Grace))
	}
	if err := o.nats.readTokenFile(); err != nil {
		errs = append(errs, err)
	}
	if err := o.nats.readTLS(); err != nil {
		errs = append(errs, err)
	}
	if err := o.nats.coordinatorUsers(); err != nil {
		errs = append(errs, err)
	}
	if o.JobID != "" {
		if err := subjects.CheckID(o.JobID); err != nil {
			errs = append(errs, fmt.Errorf("--job-id %q: %w", o.JobID, err))
		}
	}
	if o.RestoreCut != 0 && !o.Restore {
		errs = append(errs, fmt.Errorf("--cut %d: only with --restore", o.RestoreCut))
	}
	if o.NATSWait < 0 {
		errs = append(errs, fmt.Errorf("--nats-wait %v: must be >= 0", o.NATSWait))
	}
	if o.LeaseTTL < time.Second/10 || o.LeaseTTL > ckpt.MaxLeaseTTL {
		errs = append(errs, fmt.Errorf("--lease-ttl %v: want 100ms..%v", o.LeaseTTL, ckpt.MaxLeaseTTL))
	}
	if o.Metrics != "" {
		if _, _, err := net.SplitHostPort(o.Metrics); err != nil {
			errs = append(errs, fmt.Errorf("--metrics %q: want HOST:PORT or :PORT: %w", o.Metrics, err))
		}
	}
	o.maxStaging = 0
	if o.MaxStaging != "" {
		if n, err := rank.ParseBytes(o.MaxStaging); err != nil {
			errs = append(errs, fmt.Errorf("--max-staging: %w (0: no bound)", err))
		} else {
			o.maxStaging = n
		}
	}
	if o.MaxRecover < 1 {
		errs = append(errs, fmt.Errorf("--max-recoveries %d: must be >= 1", o.MaxRecover))
	}
	return errors.Join(errs...)
}

func (o *jobOptions) mode() coordinator.Mode {
	if o.Restore {
		return coordinator.ModeRestore
	}
	return coordinator.ModeNew
}

func (o *jobOptions) coordConfig() coordinator.Config {
	return coordinator.Config{
		Job: o.Job, World: o.Ranks, HeartbeatInterval: o.Heartbeat, FailureTimeout: o.FailTimeout, ProgressTimeout: o.ProgressTimeout,
		CutInterval: o.Interval, CutEverySteps: o.EverySteps, Keep: o.Keep, MaxRecoveries: o.MaxRecover,
		WholeWorld: o.wholeWorld,
	}
}

// openStore opens the job's store: a new job may create it, a restore
// needs it to exist (a mistyped --store must not look like an empty job).
func (o *jobOptions) openStore(ctx context.Context, g *GlobalOptions, create bool) (*ckpt.Store, error) {
	if o.Store == "" {
		return nil, usageError(errors.New("--store DIR is required"))
	}
	if create {
		if err := os.MkdirAll(o.Store, 0o700); err != nil { // private: see docs/operations.md, Security
			return nil, usageError(fmt.Errorf("--store %s: %w", o.Store, err))
		}
	}
	s, err := ckpt.OpenDir(ctx, o.Store, ckpt.Options{Codec: o.Codec, ChunkSize: o.ChunkSize, Hash: o.Hash, Create: create, Logger: g.Logger})
	if err != nil {
		return nil, usageError(fmt.Errorf("--store: %w", err))
	}
	if err := checkWritable(o.Store); err != nil {
		s.Close()
		return nil, usageError(err)
	}
	return s, nil
}

// checkWritable fails early, with the directory named, when the store
// cannot take a file (read-only mount, permissions).
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".cutpoint-probe-*")
	if err != nil {
		return fmt.Errorf("store %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// rankEnv is the environment every rank of the job gets.
func (o *jobOptions) rankEnv(natsURL string) []string {
	store, _ := filepath.Abs(o.Store)
	env := []string{
		rank.EnvNATS + "=" + natsURL,
		rank.EnvJob + "=" + o.Job,
		rank.EnvWorld + "=" + strconv.Itoa(o.Ranks),
		rank.EnvStore + "=" + store,
		rank.EnvHeartbeat + "=" + o.Heartbeat.String(),
		rank.EnvCodec + "=" + o.Codec,
		rank.EnvStoreIO + "=" + o.StoreIO,
		rank.EnvNATSWait + "=" + o.NATSWait.String(),
	}
	if o.nats.Token != "" {
		env = append(env, rank.EnvNATSToken+"="+o.nats.Token)
	}
	if o.nats.Nkey != "" {
		nk, _ := filepath.Abs(o.nats.Nkey)
		env = append(env, rank.EnvNATSNkey+"="+nk)
	}
	if o.jobID != "" {
		env = append(env, rank.EnvJobID+"="+o.jobID)
	}
	if o.nats.Users != "" {
		env = append(env, rank.EnvNATSUsers+"="+o.nats.Users)
	}
	if o.sharedRanks && len(o.rankUsers) == 1 {
		env = append(env, rank.EnvNATSUser+"="+o.rankUsers[0].Name, rank.EnvNATSPassword+"="+o.rankUsers[0].Password)
	}
	if len(o.nats.caPEM) > 0 {
		// The content, not the path: ranks on other hosts have no copy.
		env = append(env, rank.EnvNATSTLSCAData+"="+base64.StdEncoding.EncodeToString(o.nats.caPEM))
	}
	if o.nats.TLSCert != "" {
		c, _ := filepath.Abs(o.nats.TLSCert)
		k, _ := filepath.Abs(o.nats.TLSKey)
		env = append(env, rank.EnvNATSTLSCert+"="+c, rank.EnvNATSTLSKey+"="+k)
	}
	if o.StopWorld {
		env = append(env, rank.EnvStopTheWorld+"=1")
	}
	env = append(env, rank.EnvMaxStaging+"="+strconv.FormatInt(o.maxStaging, 10))
	// Always set, so that a rank never inherits another setting from the
	// launcher's environment.
	env = append(env, rank.EnvFrameAuth+"="+o.FrameAuth)
	return env
}

// spawnEnv adds what distinguishes one spawned process.
func spawnEnv(s coordinator.Spawn) []string {
	return []string{
		rank.EnvRank + "=" + strconv.Itoa(s.Rank),
		rank.EnvSpawn + "=" + strconv.FormatUint(s.G, 10),
		rank.EnvRestoreEpoch + "=" + strconv.FormatUint(s.Epoch, 10),
		rank.EnvRestoreStep + "=" + strconv.FormatInt(s.Step, 10),
	}
}

// serveMetrics serves Prometheus metrics on addr until ctx ends.
func serveMetrics(ctx context.Context, g *GlobalOptions, addr, job string) (*driver.Metrics, error) {
	if addr == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	// Every metric carries the job's name (a scraper's own "job" label
	// turns it into "exported_job" unless honor_labels is set).
	m := driver.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"job": job}, reg))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError(fmt.Errorf("--metrics %s: %w", addr, err))
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	g.Logger.Info("serving metrics", "addr", ln.Addr().String())
	return m, nil
}

// signalRequests turns SIGUSR1 into a cut now and SIGTERM/SIGINT into a
// final cut (then, after grace or a second signal, a stop).
func signalRequests(ctx context.Context, g *GlobalOptions, grace time.Duration) <-chan driver.Request {
	out := make(chan driver.Request, 4)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		defer signal.Stop(sigs)
		var deadline <-chan time.Time
		terms := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-deadline:
				g.Logger.Warn("final cut not committed within the grace period; stopping", "grace", grace)
				out <- driver.Request{Stop: true}
				deadline = nil
			case s := <-sigs:
				switch s {
				case syscall.SIGUSR1:
					out <- driver.Request{}
				default:
					terms++
					if terms == 1 {
						g.Logger.Warn("signal: taking a final cut, then stopping", "signal", s.String())
						out <- driver.Request{Final: true}
						deadline = time.After(grace)
					} else {
						g.Logger.Warn("second signal: stopping now", "signal", s.String())
						out <- driver.Request{Stop: true}
					}
				}
			}
		}
	}()
	return out
}

// outcomeError maps how the job ended to the command's error and exit code.
func outcomeError(out coordinator.Outcome) error {
	switch out.Code {
	case coordinator.CodeFinished:
		return nil
	case coordinator.CodeStoppedWithCut:
		return withCode(exitStoppedCut, fmt.Errorf("job stopped after committing cut %d (%s); resume with --restore", out.Epoch, out.Reason))
	case coordinator.CodeStoppedNoCut:
		if out.Epoch == 0 {
			return withCode(exitStoppedNone, fmt.Errorf("job stopped without a final cut (%s); no cut of the job was committed (--restore=if-any starts it again from step 0)", out.Reason))
		}
		return withCode(exitStoppedNone, fmt.Errorf("job stopped without a final cut (%s); the previous cut (%d) is intact", out.Reason, out.Epoch))
	case coordinator.CodeDeterministic:
		return withCode(exitDeterministic, fmt.Errorf("job failed: %s", out.Reason))
	case coordinator.CodeUnprotected:
		return withCode(exitUnprotected, fmt.Errorf("job finished unprotected: %s", out.Reason))
	default:
		return withCode(exitFailure, fmt.Errorf("job failed: %s", out.Reason))
	}
}
