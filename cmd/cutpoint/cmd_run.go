package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/heat2d"
	"github.com/cutpoint/cutpoint/internal/jobname"
	"github.com/cutpoint/cutpoint/internal/jobstats"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/rank"
)

type runOptions struct {
	jobOptions
	workloadOptions
	hosts    hostsOptions
	Kill     []string // RANK@STEP: SIGKILL rank when the job reaches step
	Progress string
	StatsDir string
	MPI      bool
	// NATSListen is the embedded server's address.
	NATSListen string
}

// defaultNATSListen: the embedded server takes only this host's clients.
const defaultNATSListen = "127.0.0.1:0"

func newRunCommand(g *GlobalOptions) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] [-- EXECUTABLE ARGS...]",
		Short: "Launch a job of N ranks with consistent cuts and automatic recovery",
		Long: `Launch a job: start NATS (an embedded server on a random loopback port, or
--nats URL), the coordinator, and --ranks rank processes. Without an
executable each rank runs the built-in heat2d workload (--steps, --size,
--device); any executable that links the rank library can be given after --.

--mpi (the default when the executable is mpirun, mpiexec or orterun) runs
the ranks as one MPI world: "cutpoint run [flags] -- mpirun -np 4 ./app".
The code keeps its own MPI communication and calls cutpoint's checkpoint
call after a barrier; the number of ranks is mpirun's -np. MPI cannot
replace one process of a world, so a lost rank ends the world and the
whole world is relaunched from the latest committed cut (up to
--max-recoveries times without a commit in between).

While the job runs, cuts are taken every --interval or --every-steps and
committed to --store. A rank that exits or goes silent is killed and
respawned from the latest committed cut while the others roll back in place.
SIGUSR1 takes a cut now. SIGTERM or SIGINT takes a final cut and stops the
job (a second signal, or --grace running out, stops it at once). --restore
resumes a job from its latest committed cut (--cut E: from cut E). A restore
that finds the cut damaged reports it, marks the cut bad for the job and
falls back to the newest older intact cut.

--hosts h1:4,h2:4 runs the ranks on those hosts through --spawn-cmd (default
"ssh {host} -- {cmd}"); a host whose ranks are all lost is taken for dead
and its ranks restart on free slots of the others (see docs/operations.md,
"Many hosts"). The embedded server listens on loopback: for real hosts give
--nats.

One coordinator owns a job at a time (a lease in the store, renewed every
--lease-ttl/3): a --restore, or a run of an existing job, while another
coordinator runs it is refused with exit 2 naming that one's host and pid.
After a SIGKILL the lease is taken over once it expired.

The last line on stdout is "result <hex digest>" when rank 0 reported a
result (heat2d: SHA-256 of the final global grid).

Exit codes: 0 finished; 1 failed (also: the coordinator lost its lease);
2 usage or configuration error, or the job has a live owner;
4 --device cuda without the cuda build; 5 stopped by a signal after a final
cut (resume with --restore); 6 stopped without a final cut; 7 a rank failed
deterministically (before its first step, the same way twice from the same
cut, or a restore that does not fit the job: the message is the rank's);
8 finished, but cutting had stopped (cutting-stopped) and the job ran
unprotected to its end.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.mpiWorld(args, cmd.Flags().Changed("ranks")); err != nil {
				return usageError(err)
			}
			return runRun(cmd.Context(), g, o, args)
		},
	}
	o.nats.AddFlags(cmd.Flags(), "external NATS URL (default: an embedded server on a random loopback port)")
	o.jobOptions.AddFlags(cmd.Flags())
	o.workloadOptions.AddFlags(cmd.Flags())
	o.hosts.AddFlags(cmd.Flags())
	cmd.Flags().StringSliceVar(&o.Kill, "kill", nil, "fault injection: SIGKILL rank R when the job reaches step S (R@S, repeatable)")
	cmd.Flags().StringVar(&o.Progress, "progress", "auto", "live progress line on stderr: auto (on a terminal), always, never")
	cmd.Flags().BoolVar(&o.MPI, "mpi", false, "the command after -- is an MPI launcher (mpirun -np N ./app) that starts the whole world; on by default for mpirun, mpiexec and orterun")
	cmd.Flags().StringVar(&o.NATSListen, "nats-listen", defaultNATSListen, "address of the embedded NATS server; one other hosts can reach (0.0.0.0:0, for --hosts) gets TLS with a certificate made for the job, whose CA the ranks are handed")
	cmd.Flags().StringVar(&o.StatsDir, "stats-dir", "", "write run.json (cuts, kills, recoveries, usage) and one JSON file per rank process (cut stalls, restores, step times, peak RSS) into this directory")
	return cmd
}

type killPlan struct {
	rank int
	step int64
	done bool
}

func parseKills(specs []string, ranks int) ([]*killPlan, error) {
	var out []*killPlan
	for _, s := range specs {
		r, st, ok := strings.Cut(s, "@")
		rk, err1 := strconv.Atoi(r)
		step, err2 := strconv.ParseInt(st, 10, 64)
		if !ok || err1 != nil || err2 != nil || rk < 0 || rk >= ranks || step < 1 {
			return nil, fmt.Errorf("--kill %q: want RANK@STEP with 0 <= RANK < %d and STEP >= 1", s, ranks)
		}
		out = append(out, &killPlan{rank: rk, step: step})
	}
	return out, nil
}

func runRun(ctx context.Context, g *GlobalOptions, o runOptions, args []string) error {
	if o.Job == "" {
		o.Job = defaultJobName(args)
	}
	if o.nats.URL != "" && o.NATSListen != defaultNATSListen {
		return usageError(errNoListen)
	}
	hosts, err := o.hosts.parse(o.Ranks)
	if err != nil {
		return usageError(err)
	}
	return runJob(ctx, g, jobRun{
		job: o.jobOptions, workload: o.workloadOptions, args: args, kills: o.Kill,
		progress: o.Progress, embedded: o.nats.URL == "", spawn: "local", statsDir: o.StatsDir,
		hosts: hosts, spawnCmd: o.hosts.SpawnCmd, mpi: o.MPI, natsListen: o.NATSListen,
	})
}

func defaultJobName(args []string) string {
	if len(args) > 0 {
		return sanitizeJob(filepath.Base(args[0]))
	}
	return "heat2d"
}

// jobRun is what `run` and `coordinator` have in common: a coordinator for
// one job, on an embedded or external NATS, with a spawner.
type jobRun struct {
	job      jobOptions
	workload workloadOptions
	args     []string // the ranks' executable; empty: `cutpoint rank`
	kills    []string
	progress string
	embedded bool   // start an embedded nats-server
	spawn    string // local | srun | none
	srunArgs []string
	rejoin   bool
	statsDir string // --stats-dir: run.json here, and the ranks' files
	// hosts (--hosts): ranks run through spawnCmd on these hosts.
	hosts    []launch.Host
	spawnCmd string
	// natsListen is the embedded server's address (run --nats-listen).
	natsListen string
	// mpi: args is an MPI launcher that starts the whole world (--mpi).
	mpi bool
	// detached: the ranks outlive this process (coordinator --spawn
	// local: a coordinator --rejoin finds them computing); `run` is the
	// job, its ranks die with it.
	detached bool
}

func runJob(ctx context.Context, g *GlobalOptions, j jobRun) error {
	// SIGTERM and SIGINT are this command's own (signalRequests: a final
	// cut, then a stop); the root context, which the same signals cancel,
	// must not stop the job before that cut.
	ctx = context.WithoutCancel(ctx)
	o := &j.job
	if err := o.check(); err != nil {
		return usageError(err)
	}
	if len(j.args) == 0 && j.spawn != "none" {
		if err := j.workload.check(); err != nil {
			return usageError(err)
		}
		if err := checkDevice(j.workload.Device); err != nil {
			return err
		}
	}
	if j.spawn == "local" {
		// The ranks run on this machine: check that they fit it before
		// anything is created or started.
		var h heat2dMem
		if len(j.args) == 0 {
			h = heat2dMem{size: j.workload.Size, maxStaging: o.maxStaging}
			if j.workload.Frozen > 0 {
				h.params = heat2d.NewLayout(0, 1, j.workload.Size).Tile.Bytes()
				if j.workload.params > 0 {
					h.params = j.workload.params / 8 * 8
				}
			}
		}
		if err := checkResources(o.Ranks, h, machineResources()).apply(g, o.Force); err != nil {
			return usageError(err)
		}
	}
	kills, err := parseKills(j.kills, o.Ranks)
	if err != nil {
		return usageError(err)
	}
	progress, err := newProgressPrinter(g, j.progress)
	if err != nil {
		return usageError(err)
	}
	// Every check that can fail without the store runs before the store
	// is touched, so that a typo leaves no store or job behind.
	if len(j.args) > 0 && (j.spawn == "local" || j.spawn == "srun") {
		if _, err := exec.LookPath(j.args[0]); err != nil {
			return usageError(fmt.Errorf("executable %q: %w", j.args[0], err))
		}
	}
	if j.statsDir != "" {
		if _, err := filepath.Abs(j.statsDir); err != nil {
			return usageError(fmt.Errorf("--stats-dir: %w", err))
		}
	}
	// Before the store is touched: a missing key leaves nothing behind.
	key, err := jobKey(&j)
	if err != nil {
		return err
	}
	rankEnv := func(s coordinator.Spawn) []string { return append(o.rankSpawnEnv(s), rankKeyEnv(key, o.Ranks, s)) }
	if sharedEnvKeys(&j) {
		rankEnv = o.rankSpawnEnv
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	metrics, err := serveMetrics(ctx, g, o.Metrics, o.Job)
	if err != nil {
		return err
	}
	if progress.on {
		// Every log line of this process and its ranks goes through the
		// live line, which steps aside for it.
		g = g.withStderr(progress)
	}

	// The levels' host ring: --hosts, or under srun the allocation's
	// nodes with their tasks (srun's block placement of the ranks).
	levelHosts, err := j.levelHosts(os.Getenv)
	if err != nil {
		return usageError(err)
	}
	if err := o.precheckLevels(levelHosts); err != nil {
		return usageError(err)
	}
	store, err := o.openStore(ctx, g, (!o.Restore || o.RestoreIfAny) && !j.rejoin)
	if err != nil {
		return err
	}
	defer store.Close()
	lv, err := o.levelConfig(ctx, store, levelHosts, o.Restore || j.rejoin)
	if err != nil {
		return usageError(err)
	}
	mode := o.mode()
	if j.rejoin {
		mode = coordinator.ModeRejoin
	}

	if o.jobID, err = jobID(ctx, store, o.Job, o.JobID, j.rejoin, j.spawn == "none"); err != nil {
		return err
	}
	natsURL := o.nats.URL
	if j.embedded && o.nats.Users != "" {
		return usageError(errors.New("--nats-users: only with --nats (the embedded server makes the job's users itself)"))
	}
	if j.embedded {
		// The embedded server has a user for the coordinator and one
		// per rank, with random passwords and permissions for this
		// job's subjects alone (startEmbedded).
		en, err := startEmbedded(o, j.natsListen, j.mpi)
		if err != nil {
			return usageError(fmt.Errorf("embedded nats-server: %w", err))
		}
		defer en.close()
		natsURL = en.url
		g.Logger.Debug("embedded nats-server", "url", natsURL, "tls", en.tls != nil)
	}
	g.Logger.Debug("job subjects", "space", subjects.Space(o.Job, o.jobID))
	nc, err := natsutil.Connect(natsURL, natsutil.ConnectOptions{Name: "cutpoint coordinator " + o.Job, Auth: o.nats.auth(), Logger: g.Logger,
		InboxPrefix: subjects.Inbox(subjects.Space(o.Job, o.jobID)) + ".c"})
	if err != nil {
		return usageError(fmt.Errorf("--nats: %w", err))
	}
	defer nc.Close()

	var spawner *launch.Local
	var drvSpawner driver.Spawner
	var signaler func(rank int, sig syscall.Signal) error // --kill
	if j.spawn == "local" || j.spawn == "srun" {
		argv := j.args
		if len(argv) == 0 {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			argv = append([]string{self, "rank"}, j.workload.args()...)
		}
		env := append(append(o.rankEnv(natsURL), g.rankLogEnv()...), lv.Env()...)
		if sharedEnvKeys(&j) {
			env = append(env, rank.EnvJobKey+"="+key.Hex())
		}
		relay := g.relay()
		if j.statsDir != "" {
			abs, err := filepath.Abs(j.statsDir)
			if err != nil {
				return usageError(fmt.Errorf("--stats-dir: %w", err))
			}
			env = append(env, jobstats.EnvDir+"="+abs)
		}
		var opts []launch.Option
		if j.detached {
			opts = append(opts, launch.Detached())
		}
		switch {
		case j.mpi:
			mp, err := launch.NewMPI(launch.MPIConfig{Argv: argv, World: o.Ranks, Env: env, RankVar: rank.EnvRank,
				Out: g.Stderr, Log: g.Logger})
			if err != nil {
				return usageError(fmt.Errorf("--mpi: %w", err))
			}
			defer mp.Close()
			drvSpawner, signaler = mp, mp.Signal
			o.wholeWorld = true
		case len(j.hosts) > 0:
			if j.embedded && natsutil.IsLoopback(j.natsListen) {
				g.Logger.Warn("the embedded NATS server listens on loopback: only ranks this machine starts can reach it (give --nats-listen 0.0.0.0:0, or --nats for other hosts)")
			}
			hs, err := launch.NewHosts(launch.HostsConfig{
				Hosts: j.hosts, Ranks: o.Ranks, Template: j.spawnCmd, Argv: argv, Env: env,
				Secret: append(secretVars(natsURL, o.nats.Token, len(o.rankUsers) > 0), rank.EnvRankKeys), SecretsVar: rank.EnvSecrets, HostVar: rank.EnvHost,
				Verdicts: []int{exitDamaged}, Out: g.Stderr, Log: g.Logger, Options: opts,
			})
			if err != nil {
				return usageError(fmt.Errorf("--hosts/--spawn-cmd: %w", err))
			}
			hs.Local.SetRelay(relay)
			defer hs.Close()
			spawner, drvSpawner = hs.Local, hs
		case j.spawn == "srun":
			sp, err := launch.NewSrun(launch.SrunConfig{Argv: argv, Env: env, RankVar: rank.EnvRank,
				Args: j.srunArgs, Out: g.Stderr, Relay: &relay, Log: g.Logger})
			if err != nil {
				return usageError(err)
			}
			defer sp.Close()
			drvSpawner = sp
		default:
			if host, err := os.Hostname(); err == nil {
				env = append(env, rank.EnvHost+"="+host)
			}
			spawner, err = launch.NewLocal(argv, env, g.Stderr, g.Logger, opts...)
			if err != nil {
				return usageError(err)
			}
			spawner.SetRelay(relay)
			defer spawner.Close()
			drvSpawner = spawner
		}
	}

	var stats *runStats
	if j.statsDir != "" {
		if stats, err = newRunStats(j.statsDir, o.Job, o.Ranks); err != nil {
			return err
		}
	}
	if signaler == nil && spawner != nil {
		signaler = spawner.Signal
	}
	var killMu sync.Mutex
	onProgress := func(p driver.Progress) {
		progress.update(p)
		if stats != nil {
			stats.progress(p)
		}
		killMu.Lock()
		defer killMu.Unlock()
		for _, k := range kills {
			if !k.done && p.Step >= k.step && signaler != nil {
				k.done = true
				g.Logger.Warn("fault injection: SIGKILL", "rank", k.rank, "step", p.Step)
				if err := signaler(k.rank, syscall.SIGKILL); err != nil {
					g.Logger.Error("fault injection failed", "rank", k.rank, "err", err)
				} else if stats != nil {
					stats.rec.Killed(k.rank, p.Step, time.Now())
				}
			}
		}
	}
	cutMeta := map[string]string{"device": j.workload.Device}
	if o.FrameAuth == "off" {
		// Loud, and in every cut's record (cutpoint inspect): whoever
		// looks at the job later sees that its frames went untagged.
		cutMeta["frame_auth"] = "off"
		g.Logger.Warn("frame tags are off (--frame-auth off): frames between ranks are neither tagged nor checked, so anyone who can publish on the job's NATS subjects can forge or alter the job's messages; control messages, reports and results stay authenticated")
	}
	res, err := driver.Run(ctx, driver.Config{
		Coord: o.coordConfig(), Mode: mode, RestoreIfAny: o.RestoreIfAny, Store: store, NC: nc, Spawner: drvSpawner,
		RankEnv: rankEnv, Keys: &key, JobID: o.jobID, CutMeta: cutMeta, Levels: lv,
		Requests: signalRequests(ctx, g, o.Grace), OnProgress: onProgress, Metrics: metrics, Logger: g.Logger,
		RestoreCut: o.RestoreCut,
		LeaseTTL:   o.LeaseTTL,
	})
	progress.done()
	if err != nil {
		return jobSetupError(err)
	}
	outErr := outcomeError(res.Outcome)
	if res.Outcome.Code == coordinator.CodeFinished && res.Outcome.Epoch == 0 && mode == coordinator.ModeNew &&
		(o.Interval > 0 || o.EverySteps > 0) {
		// A job shorter than its first cut: nothing was ever protected,
		// which a user who asked for cuts must hear.
		g.Logger.Warn("the job finished before any cut committed: it ran unprotected from start to end",
			"interval", o.Interval, "every_steps", o.EverySteps)
	}
	if stats != nil {
		// The ranks write their files as they exit: give them a moment
		// before the spawner's Close kills whatever still runs.
		waitExited(spawner, o.Ranks, 10*time.Second)
		if err := stats.finish(errOutcome(outErr)); err != nil {
			g.Logger.Error("stats file not written", "err", err)
		}
	}
	if res.JobResult != nil {
		// Also when the job finished unprotected: the result is right.
		fmt.Fprintf(g.Stdout, "result %s\n", hex.EncodeToString(res.JobResult))
	}
	return outErr
}

// jobSetupError marks the errors a user can fix (wrong store, job, ranks)
// as usage errors.
func jobSetupError(err error) error {
	switch {
	case errors.Is(err, driver.ErrJobExists), errors.Is(err, driver.ErrNoJob), errors.Is(err, driver.ErrNoCut), errors.Is(err, driver.ErrWorldMismatch),
		errors.Is(err, coordinator.ErrConfig), errors.Is(err, driver.ErrJobOwned):
		return usageError(err)
	}
	return err
}

// mpiLaunchers are the executables --mpi is the default for.
var mpiLaunchers = []string{"mpirun", "mpiexec", "orterun", "mpirun.openmpi", "mpiexec.openmpi", "mpirun.mpich", "mpiexec.mpich", "mpiexec.hydra"}

// mpiWorld turns MPI mode on for an MPI launcher and takes the number of
// ranks from its -np (or -n, --np, -c, srun's --ntasks); --ranks, when
// given, must agree. Options after the program are the program's: the first
// count given is taken, so a launcher without one needs --ranks.
func (o *runOptions) mpiWorld(args []string, ranksGiven bool) error {
	if len(args) > 0 && slices.Contains(mpiLaunchers, filepath.Base(args[0])) {
		o.MPI = true
	}
	if !o.MPI {
		return nil
	}
	if len(args) == 0 {
		return errors.New("--mpi: give the MPI launcher's command after --, e.g. -- mpirun -np 4 ./app")
	}
	if len(o.hosts.Hosts) > 0 {
		return errors.New("--mpi and --hosts: the MPI launcher places the ranks (give it a hostfile)")
	}
	np := 0
	for i, a := range args[1:] {
		v, ok := "", false
		switch {
		case a == "-np" || a == "-n" || a == "--np" || a == "-c" || a == "--n" || a == "--ntasks":
			if i+2 < len(args) {
				v, ok = args[i+2], true
			}
		case strings.HasPrefix(a, "-np=") || strings.HasPrefix(a, "--np=") || strings.HasPrefix(a, "-n=") || strings.HasPrefix(a, "--ntasks="):
			_, v, ok = strings.Cut(a, "=")
		}
		if ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("--mpi: %s %q is not a number of ranks", a, v)
			}
			np = n
			break
		}
	}
	switch {
	case np == 0 && !ranksGiven:
		return errors.New("--mpi: the number of ranks is unknown: give the MPI launcher -np N (or --ranks N)")
	case np != 0 && ranksGiven && np != o.Ranks:
		return fmt.Errorf("--ranks %d but the MPI launcher starts %d (-np)", o.Ranks, np)
	case np != 0:
		o.Ranks = np
	}
	if len(o.Kill) > 0 && runtime.GOOS != "linux" {
		return errors.New("--kill with --mpi finds the rank's process in /proc (Linux only)")
	}
	return nil
}

// sanitizeJob turns an executable name into a valid job name
// (internal/jobname's rule; a leading '.' or '-' becomes '_').
func sanitizeJob(s string) string { return jobname.Sanitize(s) }
