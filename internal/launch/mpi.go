package launch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvMPIWorld marks every process of one MPI world the MPI spawner started
// (a per-spawner nonce and the spawn id): the ranks run in process groups
// of their own (Open MPI puts each in one), so the spawner finds what is
// left of a world by this variable in /proc, not by its process group.
const EnvMPIWorld = "CUTPOINT_MPI_WORLD"

// mpiRankVars are the variables MPI launchers name a process's rank in
// (Open MPI, MPICH's hydra, PMIx); Signal finds a rank's process by them.
var mpiRankVars = []string{"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"}

// MPIConfig configures the MPI spawner.
type MPIConfig struct {
	// Argv is the MPI launcher's command line, program included:
	// mpirun -np 4 ./app ARGS (Open MPI), mpiexec -n 4 ./app (MPICH).
	Argv []string
	// World is the number of ranks the command starts (its -np).
	World int
	// Env is added to this process's environment for the launcher, which
	// passes it on to the ranks.
	Env []string
	// RankVar is the variable that carries the rank in a Proc's Env
	// (default CUTPOINT_RANK); it is dropped: each rank takes its rank
	// from the MPI launcher.
	RankVar string
	// Out receives the launcher's output (the ranks' output passes
	// through it), line by line as rank 0's: the launcher process stands
	// in the world's slot 0.
	Out io.Writer
	Log *slog.Logger
	// TermWait is how long Kill lets the launcher end the world after
	// SIGTERM (it kills its ranks) before it is SIGKILLed (default 3s).
	TermWait time.Duration
	// KillWait bounds how long Kill waits for the world's processes to be
	// gone after SIGKILL (default DefaultKillWait).
	KillWait time.Duration
	// CloseWait is how long Close lets a running world end by itself (a
	// finished job's ranks leave MPI_Finalize) before it ends it
	// (default 5s).
	CloseWait time.Duration
}

// MPI runs a job's ranks as one MPI world: a single launcher process
// (mpirun, mpiexec) of which every rank is a descendant. MPI cannot
// replace one process of a running world, and a world whose process died
// ends (the launcher aborts the others), so the spawner knows no single
// rank: SpawnGroup starts all World ranks at one spawn id, Kill of any rank
// ends the whole world, and when the launcher exits every rank's exit is
// reported (with the launcher's status), once what is left of the world
// is gone. The coordinator is run with WholeWorld, so that every recovery
// respawns all ranks from the cut.
//
// The ranks get the environment through the launcher: on one node both
// Open MPI and MPICH pass their own environment on to the ranks; for other
// nodes MPICH's hydra passes it by default and Open MPI needs it named,
// which the spawner does with OMPI_MCA_mca_base_env_list unless the
// command line has -x options of its own (Open MPI refuses both at once).
//
// Kill sends SIGTERM to the launcher (which kills its ranks), SIGKILL to
// its process group after TermWait, and then SIGKILL to every process on
// this node that still carries the world's EnvMPIWorld (found in /proc),
// and returns once none is left. Ranks on other nodes are the MPI
// launcher's to end; one that lingers is fenced by the coordinator by its
// spawn id.
type MPI struct {
	cfg   MPIConfig
	local *Local
	nonce string
	log   *slog.Logger
	exits chan Exit
	stop  chan struct{}
	fwd   sync.WaitGroup

	mu     sync.Mutex
	spawn  uint64 // the current world's spawn id (0: none yet)
	killed map[uint64]bool
	closed bool
}

var _ Spawner = (*MPI)(nil)

// NewMPI returns a spawner that runs the whole world through cfg.Argv.
func NewMPI(cfg MPIConfig) (*MPI, error) {
	if len(cfg.Argv) == 0 {
		return nil, errors.New("launch: no MPI launcher command given")
	}
	if cfg.World < 1 {
		return nil, fmt.Errorf("launch: MPI world of %d ranks", cfg.World)
	}
	if cfg.RankVar == "" {
		cfg.RankVar = "CUTPOINT_RANK"
	}
	if cfg.TermWait <= 0 {
		cfg.TermWait = 3 * time.Second
	}
	if cfg.KillWait <= 0 {
		cfg.KillWait = DefaultKillWait
	}
	if cfg.CloseWait <= 0 {
		cfg.CloseWait = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	l, err := NewLocal(cfg.Argv, nil, cfg.Out, cfg.Log, WithWaits(cfg.KillWait, cfg.KillWait))
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	m := &MPI{cfg: cfg, local: l, nonce: hex.EncodeToString(b), log: cfg.Log,
		exits: make(chan Exit, max(1024, 2*cfg.World)), stop: make(chan struct{}), killed: map[uint64]bool{}}
	m.fwd.Add(1)
	go m.forward()
	return m, nil
}

// Exits delivers every rank's exit; a world's end is World exits.
func (m *MPI) Exits() <-chan Exit { return m.exits }

// marker is the EnvMPIWorld value of world spawn.
func (m *MPI) marker(spawn uint64) string { return m.nonce + "." + strconv.FormatUint(spawn, 10) }

// forward turns the launcher's exit into one exit per rank, after the
// world's leftovers on this node are gone (a relaunch never overlaps them).
func (m *MPI) forward() {
	defer m.fwd.Done()
	for {
		var ex Exit
		select {
		case <-m.stop:
			return
		case ex = <-m.local.Exits():
		}
		if err := m.sweep(ex.Spawn); err != nil {
			m.log.Error("MPI world not gone", "spawn", ex.Spawn, "err", err)
		}
		m.mu.Lock()
		killed := m.killed[ex.Spawn]
		m.mu.Unlock()
		m.log.Info("MPI world ended", "spawn", ex.Spawn, "how", strings.TrimPrefix(ex.String(), "rank 0 "))
		for r := range m.cfg.World {
			e := ex
			e.Rank, e.Killed, e.World = r, killed, true
			select {
			case m.exits <- e:
			case <-m.stop:
				return
			}
		}
	}
}

// Spawn starts rank alone, which only a world of one rank can.
func (m *MPI) Spawn(rank int, spawn uint64, env []string) error {
	return m.SpawnGroup([]Proc{{Rank: rank, Spawn: spawn, Env: env}})
}

// SpawnGroup starts the world: procs must be ranks 0..World-1 at one spawn
// id, with the same environment apart from RankVar. On error nothing was
// started.
func (m *MPI) SpawnGroup(procs []Proc) error {
	env, err := m.worldEnv(procs)
	if err != nil {
		return err
	}
	spawn := procs[0].Spawn
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("launch: spawner closed")
	}
	m.mu.Unlock()
	// The previous world is gone before the next one starts (R13); its
	// exits may still be on their way.
	if err := m.sweep(0); err != nil {
		return err
	}
	full := append(append(os.Environ(), m.cfg.Env...), env...)
	full = append(full, EnvMPIWorld+"="+m.marker(spawn))
	if fw := m.forwardList(full, env); fw != "" {
		full = append(full, "OMPI_MCA_mca_base_env_list="+fw)
	}
	if err := m.local.start(0, spawn, m.local.argv, full, nil); err != nil {
		return fmt.Errorf("launch: start the MPI world: %w", err)
	}
	m.mu.Lock()
	m.spawn = spawn
	m.mu.Unlock()
	m.log.Debug("MPI world started", "ranks", m.cfg.World, "spawn", spawn, "pid", m.local.Pid(0))
	return nil
}

// worldEnv checks that procs are one whole world and returns their common
// environment without RankVar.
func (m *MPI) worldEnv(procs []Proc) ([]string, error) {
	if len(procs) != m.cfg.World {
		return nil, fmt.Errorf("launch: an MPI world of %d ranks starts whole, not %d of them: a single MPI process cannot be replaced", m.cfg.World, len(procs))
	}
	seen := make([]bool, len(procs))
	var common []string
	for i, p := range procs {
		if p.Rank < 0 || p.Rank >= len(procs) || seen[p.Rank] {
			return nil, fmt.Errorf("launch: MPI world: rank %d twice or out of 0..%d", p.Rank, len(procs)-1)
		}
		seen[p.Rank] = true
		if p.Spawn != procs[0].Spawn {
			return nil, fmt.Errorf("launch: MPI world: ranks at spawn %d and %d", procs[0].Spawn, p.Spawn)
		}
		env := withoutVar(p.Env, m.cfg.RankVar)
		if i == 0 {
			common = env
		} else if !slices.Equal(env, common) {
			return nil, fmt.Errorf("launch: MPI world: rank %d's environment differs from rank %d's", p.Rank, procs[0].Rank)
		}
	}
	return common, nil
}

// forwardList names the variables Open MPI must pass to ranks on other
// nodes: this spawner's, unless the command line forwards with -x (Open
// MPI refuses -x and mca_base_env_list together) or the list is set.
func (m *MPI) forwardList(full, group []string) string {
	for _, a := range m.cfg.Argv[1:] {
		if a == "-x" || a == "--x" {
			return ""
		}
	}
	for _, kv := range full {
		if strings.HasPrefix(kv, "OMPI_MCA_mca_base_env_list=") {
			return ""
		}
	}
	var names []string
	for _, kv := range append(append(slices.Clone(m.cfg.Env), group...), EnvMPIWorld+"=") {
		if k, _, ok := strings.Cut(kv, "="); ok && k != "" && !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	return strings.Join(names, ";")
}

// Kill ends world spawn (0: the current one), whichever rank is named, and
// returns once the launcher is reaped and no process of the world is left
// on this node. Killing a world that already ended is not an error.
func (m *MPI) Kill(ctx context.Context, rank int, spawn uint64) error {
	m.mu.Lock()
	if spawn == 0 {
		spawn = m.spawn
	}
	m.killed[spawn] = true
	current := spawn == m.spawn
	m.mu.Unlock()
	if current {
		if err := m.end(ctx, spawn); err != nil {
			return err
		}
	}
	return m.sweep(spawn)
}

// end stops the launcher of world spawn: SIGTERM, then SIGKILL after
// TermWait.
func (m *MPI) end(ctx context.Context, spawn uint64) error {
	m.local.mu.Lock()
	p, ok := m.local.procs[0]
	m.local.mu.Unlock()
	if !ok || p.spawn != spawn || isDone(p) {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	t := time.NewTimer(m.cfg.TermWait)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	m.log.Warn("MPI launcher still running after SIGTERM; SIGKILL", "pid", p.pid, "wait", m.cfg.TermWait)
	return m.local.Kill(ctx, 0, spawn)
}

// sweep SIGKILLs the processes on this node that carry world spawn's
// marker (0: any world of this spawner) until none is left, within
// KillWait.
func (m *MPI) sweep(spawn uint64) error {
	want := func(v string) bool {
		if spawn == 0 {
			return strings.HasPrefix(v, m.nonce+".")
		}
		return v == m.marker(spawn)
	}
	deadline := time.Now().Add(m.cfg.KillWait)
	for {
		left := worldProcs(want)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("launch: %d processes of the MPI world still run %v after SIGKILL (pids %v): %w", len(left), m.cfg.KillWait, pids(left), ErrStillRunning)
		}
		for _, p := range left {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signal sends sig to rank's process in the current world (fault
// injection: `cutpoint run --kill`), found on this node by the MPI
// launcher's rank variable.
func (m *MPI) Signal(rank int, sig syscall.Signal) error {
	m.mu.Lock()
	spawn := m.spawn
	m.mu.Unlock()
	if spawn == 0 {
		return errors.New("launch: no MPI world started")
	}
	mark := m.marker(spawn)
	procs := worldProcs(func(v string) bool { return v == mark })
	is := map[int]bool{}
	var cands []worldProc
	for _, p := range procs {
		if p.rank == rank {
			is[p.pid] = true
			cands = append(cands, p)
		}
	}
	for _, p := range cands {
		// The topmost process of the rank (a wrapper script's child
		// carries the same variables): the one the MPI launcher watches.
		if !is[p.ppid] {
			return syscall.Kill(p.pid, sig)
		}
	}
	return fmt.Errorf("launch: rank %d of the MPI world has no process on this node", rank)
}

// Close lets the world end by itself within CloseWait, then ends it, and
// stops reporting exits.
func (m *MPI) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	spawn := m.spawn
	m.mu.Unlock()
	var errs []error
	m.local.mu.Lock()
	p, ok := m.local.procs[0]
	m.local.mu.Unlock()
	if ok {
		select {
		case <-p.done:
		case <-time.After(m.cfg.CloseWait):
		}
	}
	if spawn != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TermWait+m.cfg.KillWait)
		errs = append(errs, m.end(ctx, spawn))
		cancel()
	}
	errs = append(errs, m.local.Close(), m.sweep(0))
	close(m.stop)
	m.fwd.Wait()
	return errors.Join(errs...)
}

// worldProc is a process of an MPI world found in /proc.
type worldProc struct {
	pid, ppid, rank int
}

func pids(ps []worldProc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.pid
	}
	return out
}

// maxEnviron bounds how much of a process's environment is read.
const maxEnviron = 1 << 20

// worldProcs lists the live processes whose EnvMPIWorld value want
// accepts (Linux /proc; processes of other users are unreadable and never
// ours). A zombie's environment reads empty: it holds nothing any more.
func worldProcs(want func(string) bool) []worldProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []worldProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := readBounded(filepath.Join("/proc", e.Name(), "environ"), maxEnviron)
		if err != nil || len(env) == 0 {
			continue
		}
		p := worldProc{pid: pid, rank: -1}
		found := false
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			k, v, ok := bytes.Cut(kv, []byte("="))
			if !ok {
				continue
			}
			switch {
			case string(k) == EnvMPIWorld:
				found = want(string(v))
			case slices.Contains(mpiRankVars, string(k)) && p.rank < 0:
				if r, err := strconv.Atoi(string(v)); err == nil {
					p.rank = r
				}
			}
		}
		if !found {
			continue
		}
		p.ppid = parentPid(pid)
		out = append(out, p)
	}
	return out
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// parentPid reads the parent's pid from /proc/PID/stat (0 if unknown);
// the command name in parentheses may hold spaces, so the fields are
// counted after the last ')'.
func parentPid(pid int) int {
	b, err := readBounded(filepath.Join("/proc", strconv.Itoa(pid), "stat"), 4096)
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}
