package rank

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cutpoint/cutpoint/internal/jobname"
	"github.com/cutpoint/cutpoint/internal/levels"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// Environment variables the launcher (cutpoint run, the coordinator's
// spawner, the Slurm script) sets for every rank process. OptionsFromEnv
// reads them. When CUTPOINT_RANK is unset, the rank and the world size come
// from the MPI launcher (Open MPI's OMPI_COMM_WORLD_RANK and
// OMPI_COMM_WORLD_SIZE, MPICH's PMI_RANK and PMI_SIZE, PMIx's PMIX_RANK) or
// from srun (SLURM_PROCID and SLURM_NTASKS), in that order: an mpirun
// inside a Slurm allocation inherits the batch script's SLURM_PROCID, which
// is not the rank.
const (
	EnvNATS          = "CUTPOINT_NATS"             // NATS URL
	EnvNATSToken     = "CUTPOINT_NATS_TOKEN"       // NATS token (optional)
	EnvNATSNkey      = "CUTPOINT_NATS_NKEY"        // NATS nkey seed file (optional)
	EnvJob           = "CUTPOINT_JOB"              // job name
	EnvJobID         = "CUTPOINT_JOB_ID"           // the job's random id, part of every subject (internal/subjects)
	EnvNATSUser      = "CUTPOINT_NATS_USER"        // NATS user (per-rank credentials of the embedded server)
	EnvNATSPassword  = "CUTPOINT_NATS_PASSWORD"    // its password (a secret: on stdin with EnvSecrets)
	EnvNATSUsers     = "CUTPOINT_NATS_USERS"       // a job's users directory (cutpoint nats users): the rank logs in as its own user
	EnvNATSTLSCA     = "CUTPOINT_NATS_TLS_CA"      // CA file (PEM) that signed the NATS server's certificate
	EnvNATSTLSCAData = "CUTPOINT_NATS_TLS_CA_DATA" // the same CA as base64 of its PEM (launchers of remote ranks)
	EnvNATSTLSCert   = "CUTPOINT_NATS_TLS_CERT"    // client certificate (mTLS)
	EnvNATSTLSKey    = "CUTPOINT_NATS_TLS_KEY"     // its key file (checked like a secret file)
	EnvRank          = "CUTPOINT_RANK"             // this rank, 0..world-1
	EnvWorld         = "CUTPOINT_WORLD"            // number of ranks
	EnvStore         = "CUTPOINT_STORE"            // store directory
	EnvSpawn         = "CUTPOINT_SPAWN"            // incarnation this process is spawned at
	EnvRestoreEpoch  = "CUTPOINT_RESTORE_EPOCH"    // committed cut to restore at start (0: none)
	EnvRestoreStep   = "CUTPOINT_RESTORE_STEP"     // its step
	EnvHeartbeat     = "CUTPOINT_HEARTBEAT_INTERVAL"
	EnvCodec         = "CUTPOINT_CODEC"          // store codec for this rank's shards
	EnvWorkers       = "CUTPOINT_WRITER_WORKERS" // shard writer goroutines (default GOMAXPROCS)
	EnvHoldBudget    = "CUTPOINT_HOLD_BUDGET"    // bytes of held+recorded messages per epoch
	EnvWindow        = "CUTPOINT_WINDOW"         // per-channel credit window in bytes
	EnvStopTheWorld  = "CUTPOINT_STOP_THE_WORLD" // "1": SafePoint waits until the shard is durable
	EnvMaxStaging    = "CUTPOINT_MAX_STAGING"    // staging a cut may copy the state into: bytes, or with KiB, MiB, GiB (0 or unset: no bound)
	EnvStoreIO       = "CUTPOINT_STORE_IO"       // "direct" (default) or "buffered": how packs are written
	EnvHost          = "CUTPOINT_HOST"           // host the launcher placed this rank on (--hosts), for node-local storage
	EnvLogLevel      = "CUTPOINT_LOG_LEVEL"      // the launcher's --log-level: debug, info, warn, error
	EnvLogFormat     = "CUTPOINT_LOG_FORMAT"     // the launcher's --log-format: text or json
	EnvNATSWait      = "CUTPOINT_NATS_WAIT"      // how long to wait for an unreachable NATS server at start (default 2m)
	// EnvRankKeys holds this rank's keys (wire.RankKeys.Encode: the
	// coordinator's public key, the rank's report key, its pair keys);
	// EnvJobKey the job key itself, for worlds that share one environment
	// (an MPI world, one srun step), where every rank derives its keys
	// from it. Secrets: on standard input under EnvSecrets=stdin, or in
	// the environment, never on a command line. Without either the rank
	// neither signs nor checks anything (tests that start ranks by hand).
	EnvRankKeys = "CUTPOINT_RANK_KEYS"
	EnvJobKey   = "CUTPOINT_JOB_KEY"
	// EnvFrameAuth "off" turns frame tags off (the launcher's --frame-auth
	// off, for a trusted fabric); "on" or unset: frames are tagged
	// whenever the rank holds keys.
	EnvFrameAuth     = "CUTPOINT_FRAME_AUTH"
	envSlurmProcID   = "SLURM_PROCID"
	envSlurmNTasks   = "SLURM_NTASKS"
	envSlurmRestarts = "SLURM_RESTART_COUNT"
)

// The rank and world variables of MPI launchers, in the order they are
// looked for (see OptionsFromEnv). PMIx sets no world size: under
// `srun --mpi=pmix` SLURM_NTASKS gives it.
var (
	mpiRankVars  = []string{"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"}
	mpiWorldVars = []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}
)

// Options configure a rank. Zero values take the defaults.
type Options struct {
	NATS string        // NATS URL (required)
	Auth natsutil.Auth // NATS credentials
	Job  string        // job name (required)
	// JobID is the job's random id (EnvJobID), part of every subject;
	// empty: the job's name alone (one job on a private server).
	JobID string
	Rank  int
	// World is the number of ranks (required).
	World int
	// Store is the store directory (required).
	Store string
	// Peers are the ranks this one exchanges messages with, in both
	// directions; nil means all other ranks (warned about above 64). An
	// empty, non-nil slice means none: the MPI mode, where the job's own
	// MPI messages are quiescent at every SafePoint (after a barrier), so
	// a cut needs no markers and holds no channel state.
	Peers []int
	// TotalSteps is the job's last step if known; the coordinator never
	// cuts past it.
	TotalSteps int64
	// Spawn is the incarnation the launcher started this process at;
	// RestoreEpoch and RestoreStep the committed cut it must restore
	// (0: a fresh start at step 0).
	Spawn        uint64
	RestoreEpoch uint64
	RestoreStep  int64
	// HeartbeatInterval between the rank's status messages; default 500ms.
	// It must match the coordinator's.
	HeartbeatInterval time.Duration
	// NATSWait is how long Join keeps trying an unreachable NATS server
	// (an outage, a server restarting) before it gives up with
	// natsutil.ErrUnreachable. Default 2 minutes; negative: no wait.
	NATSWait time.Duration
	// Codec of this rank's shards ("" keeps the store's).
	Codec string
	// StoreIO is how packs are written: "direct" (O_DIRECT where the file
	// system takes it; "" means the same) or "buffered" (page cache).
	StoreIO string
	// WriterWorkers run the shard writer's shuffle, hash and compression;
	// default GOMAXPROCS.
	WriterWorkers int
	// HoldBudget bounds held plus recorded message bytes per epoch.
	HoldBudget int64
	// Window is the per-channel credit window in bytes.
	Window int
	// StopTheWorld makes SafePoint wait, after a capture, until the shard
	// is durable: the classic blocking coordinated checkpoint, for
	// comparison in benchmarks.
	StopTheWorld bool
	// MaxStaging bounds the host memory (bytes) a cut copies CPU buffers
	// into (0: no bound, every buffer is copied and the job goes on at
	// once). Buffers are staged in the order they were protected while
	// they fit; a buffer that does not is read in place by the shard
	// writer (zero-copy), and SafePoint holds the job until the writer
	// has read every one of its chunks: the state may then be as large as
	// the memory left beside one copy of it, for a stall about as long as
	// the write of the buffers read in place (Stats.HoldTime). Buffers of
	// other devices are captured as always (a CUDA capture copies into
	// device memory and a bounded set of pinned host slots).
	MaxStaging int64
	// Host is the host the launcher placed this rank on (EnvHost; empty
	// when it did not say), for node-local storage.
	Host string
	// Levels are the job's multi-level settings (node-local directory,
	// partner copy, flush interval; the levels.Env* variables); the zero
	// value keeps every cut in Store alone.
	Levels levels.Config
	// Fault is a fault-injection spec (see EnvFault); empty in production.
	Fault string
	// Keys authenticate the rank's messages to the coordinator and its
	// frames to peers, and check the coordinator's control messages and
	// the peers' frames (see wire.RankKeys); nil: nothing is authenticated,
	// so the coordinator must have no keys either.
	Keys *wire.RankKeys
	// FrameAuthOff sends and accepts frames between ranks without tags
	// even with Keys (EnvFrameAuth=off; docs/operations.md, Security):
	// control messages, reports and results stay authenticated.
	FrameAuthOff bool
	// Logger receives the rank's logs. OptionsFromEnv sets one that writes
	// to stderr in the launcher's level and format (EnvLogLevel,
	// EnvLogFormat), which the launcher relays into its own log stream:
	// a job should log through it too. nil: slog.Default().
	Logger *slog.Logger
	// BeforeAlarm, if set, runs when a restore fails, before the rank
	// tells the coordinator (which then replaces the process at once):
	// the last chance to make its own records (a stats file) durable.
	BeforeAlarm func(err error)
}

// DefaultHeartbeatInterval is the rank's and the coordinator's default.
const DefaultHeartbeatInterval = 500 * time.Millisecond

// OptionsFromEnv reads the rank's options from the environment the launcher
// set. Every malformed value is an error naming the variable; Logger is set
// even then.
func OptionsFromEnv() (Options, error) {
	var o Options
	var errs []error
	str := func(name string) string { return os.Getenv(name) }
	num := func(name string, dst *int64) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not an integer", name, v))
				return
			}
			*dst = n
		}
	}
	o.NATS = str(EnvNATS)
	o.Auth = natsutil.Auth{Token: str(EnvNATSToken), NkeySeedFile: str(EnvNATSNkey), User: str(EnvNATSUser),
		Password: str(EnvNATSPassword),
		TLS:      natsutil.ClientTLS{CA: str(EnvNATSTLSCA), Cert: str(EnvNATSTLSCert), Key: str(EnvNATSTLSKey)}}
	caData := str(EnvNATSTLSCAData)
	o.Host = str(EnvHost)
	rankKeys, jobKey := str(EnvRankKeys), str(EnvJobKey)
	if v := str(EnvSecrets); v != "" {
		if v != "stdin" {
			errs = append(errs, fmt.Errorf("%s=%q: want stdin", EnvSecrets, v))
		} else if sec, err := stdinSecrets(); err != nil {
			errs = append(errs, err)
		} else {
			if u, ok := sec[EnvNATS]; ok {
				o.NATS = u
			}
			if t, ok := sec[EnvNATSToken]; ok {
				o.Auth.Token = t
			}
			if k, ok := sec[EnvRankKeys]; ok {
				rankKeys = k
			}
			if k, ok := sec[EnvJobKey]; ok {
				jobKey = k
			}
			if t, ok := sec[EnvNATSPassword]; ok {
				o.Auth.Password = t
			}
		}
	}
	if caData != "" {
		b, err := base64.StdEncoding.DecodeString(caData)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not base64: %w", EnvNATSTLSCAData, err))
		}
		o.Auth.TLS.CAPEM = b
	}
	o.Job = str(EnvJob)
	o.JobID = str(EnvJobID)
	o.Store = str(EnvStore)
	o.Codec = str(EnvCodec)
	o.StoreIO = str(EnvStoreIO)
	if err := CheckStoreIO(o.StoreIO); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvStoreIO, err))
	}
	var rank, world, spawn, epoch, hold, window, workers int64 = -1, 0, 0, 0, 0, 0, 0
	rankVar := firstSet(append(append([]string{EnvRank}, mpiRankVars...), envSlurmProcID))
	if rankVar != "" {
		num(rankVar, &rank)
	}
	if v := firstSet(append(append([]string{EnvWorld}, mpiWorldVars...), envSlurmNTasks)); v != "" {
		num(v, &world)
	}
	// A rank named by the MPI launcher must agree with the world the
	// cutpoint launcher planned (--ranks against mpirun's -np).
	if rankVar != EnvRank {
		if v := firstSet(mpiWorldVars); v != "" && world > 0 {
			var mw int64
			num(v, &mw)
			if mw > 0 && mw != world {
				errs = append(errs, fmt.Errorf("%s=%d but %s=%d: the launcher's number of ranks and the MPI world differ", EnvWorld, world, v, mw))
			}
		}
	}
	num(EnvSpawn, &spawn)
	num(EnvRestoreEpoch, &epoch)
	num(EnvRestoreStep, &o.RestoreStep)
	num(EnvHoldBudget, &hold)
	num(EnvWindow, &window)
	num(EnvWorkers, &workers)
	if v := str(EnvMaxStaging); v != "" {
		n, err := ParseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvMaxStaging, err))
		}
		o.MaxStaging = n
	}
	o.Rank, o.World, o.Spawn, o.RestoreEpoch = int(rank), int(world), uint64(spawn), uint64(epoch)
	// A users directory names no secret itself: the rank reads its own
	// password from it. Credentials the launcher handed over win.
	if dir := str(EnvNATSUsers); dir != "" && o.Auth.User == "" && o.Auth.Token == "" && o.Auth.NkeySeedFile == "" {
		u, p, err := natsutil.RankLogin(dir, o.Rank)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvNATSUsers, err))
		}
		o.Auth.User, o.Auth.Password = u, p
	}
	o.HoldBudget, o.Window, o.WriterWorkers = hold, int(window), int(workers)
	if v := str(EnvHeartbeat); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", EnvHeartbeat, v, err))
		}
		o.HeartbeatInterval = d
	}
	if v := str(EnvNATSWait); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", EnvNATSWait, v, err))
		}
		o.NATSWait = d
	}
	o.StopTheWorld = str(EnvStopTheWorld) == "1"
	switch v := str(EnvFrameAuth); v {
	case "", "on":
	case "off":
		o.FrameAuthOff = true
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want on or off", EnvFrameAuth, v))
	}
	switch {
	case rankKeys != "":
		// The value is a secret: errors name the variable, never show it.
		if k, err := wire.DecodeRankKeys(rankKeys, o.Rank, o.World); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvRankKeys, err))
		} else {
			o.Keys = k
		}
	case jobKey != "":
		if k, err := wire.ParseJobKey(jobKey); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvJobKey, err))
		} else if o.Rank >= 0 && o.World >= 1 && o.Rank < o.World && o.World <= wire.MaxWorld {
			o.Keys = k.RankKeys(o.Rank, o.World)
		}
	}
	lg, err := NewLogger(os.Stderr, str(EnvLogLevel), str(EnvLogFormat))
	if err != nil {
		errs = append(errs, fmt.Errorf("%s/%s: %w", EnvLogLevel, EnvLogFormat, err))
		lg, _ = NewLogger(os.Stderr, "", "") // the job can still say what is wrong
	}
	o.Logger = lg
	o.Fault = str(EnvFault)
	if str(levels.EnvLocal) != "" {
		lv, err := levels.FromEnv(os.Getenv, o.World)
		if err != nil {
			errs = append(errs, err)
		}
		o.Levels = lv
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	return o, nil
}

func (o *Options) check() error {
	var errs []error
	if o.NATS == "" {
		errs = append(errs, fmt.Errorf("no NATS URL (%s)", EnvNATS))
	}
	if o.Job == "" {
		errs = append(errs, fmt.Errorf("no job name (%s)", EnvJob))
	} else if err := jobname.Check(o.Job); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvJob, err))
	}
	if o.JobID != "" {
		if err := subjects.CheckID(o.JobID); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvJobID, o.JobID, err))
		}
	}
	if o.Store == "" {
		errs = append(errs, fmt.Errorf("no store directory (%s)", EnvStore))
	}
	if o.World < 1 {
		errs = append(errs, fmt.Errorf("world size %d (%s, OMPI_COMM_WORLD_SIZE, PMI_SIZE or %s)", o.World, EnvWorld, envSlurmNTasks))
	}
	if o.Rank < 0 || (o.World >= 1 && o.Rank >= o.World) {
		errs = append(errs, fmt.Errorf("rank %d out of 0..%d (%s, OMPI_COMM_WORLD_RANK, PMI_RANK, PMIX_RANK or %s)", o.Rank, o.World-1, EnvRank, envSlurmProcID))
	}
	if o.MaxStaging < 0 {
		errs = append(errs, fmt.Errorf("max staging %d bytes < 0 (%s)", o.MaxStaging, EnvMaxStaging))
	}
	if o.RestoreEpoch > 0 && o.RestoreStep < 0 {
		errs = append(errs, fmt.Errorf("restore step %d < 0", o.RestoreStep))
	}
	if o.Keys != nil && (o.Keys.Rank != o.Rank || o.Keys.World != o.World) {
		errs = append(errs, fmt.Errorf("keys of rank %d of %d given to rank %d of %d", o.Keys.Rank, o.Keys.World, o.Rank, o.World))
	}
	for _, p := range o.Peers {
		if p < 0 || p >= o.World {
			errs = append(errs, fmt.Errorf("peer %d out of 0..%d", p, o.World-1))
		}
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("heartbeat interval %v < 1ms", o.HeartbeatInterval))
	}
	if o.Spawn == 0 {
		o.Spawn = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rank options: %w", err)
	}
	return nil
}

// NewLogger returns the logger of cutpoint's log stream: level debug, info
// (""), warn or error; format text ("") or json. The launcher, the
// coordinator and the ranks all log through one, so their lines share a
// format.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// CheckStoreIO accepts the values of Options.StoreIO.
func CheckStoreIO(v string) error {
	switch v {
	case "", "direct", "buffered":
		return nil
	}
	return fmt.Errorf("%q: want direct or buffered", v)
}

// firstSet returns the first of names that is set and not empty ("" if
// none).
func firstSet(names []string) string {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			return n
		}
	}
	return ""
}

// ParseBytes reads a byte count: a non-negative integer, optionally with
// KiB, MiB or GiB (the way the command line writes sizes).
func ParseBytes(v string) (int64, error) {
	mult := int64(1)
	num := v
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n, ok := strings.CutSuffix(v, u.suf); ok {
			num, mult = n, u.m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q: want a byte count, optionally with KiB, MiB or GiB", v)
	}
	return n * mult, nil
}
