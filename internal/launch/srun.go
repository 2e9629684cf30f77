package launch

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SrunConfig configures the Slurm spawner.
type SrunConfig struct {
	// Argv is the rank program and its arguments. It runs on the
	// allocation's nodes: the path must exist there.
	Argv []string
	// Env is added to this process's environment for every rank.
	Env []string
	// RankVar is the variable that carries the rank in a Proc's Env
	// (default CUTPOINT_RANK). A step of the whole world drops it: each of
	// its tasks takes the rank from SLURM_PROCID.
	RankVar string
	// Args are extra srun options for every step (a site's needs, e.g.
	// --gpus-per-task=1 or --mpi=none).
	Args []string
	// Srun, Scancel and Sinfo name the Slurm commands (default: looked up
	// on PATH).
	Srun, Scancel, Sinfo string
	// JobID and Nodes are the allocation (default SLURM_JOB_ID and
	// SLURM_JOB_NODELIST).
	JobID, Nodes string
	// Out receives the ranks' output, one "[rank N] " prefixed line at a
	// time, and srun's own messages.
	Out io.Writer
	// Relay sets the format and level filter of the ranks' log lines on
	// Out (nil: every line, text).
	Relay *Relay
	Log   *slog.Logger
	// KillWait bounds how long a task of a multi-task step, killed by its
	// pid, may take to be reported gone before the whole step is
	// cancelled instead (default 10s).
	KillWait time.Duration
	// CloseWait is how long Close lets running steps end by themselves
	// before it cancels them (default 5s).
	CloseWait time.Duration
}

// Srun runs rank processes as job steps of the Slurm allocation it runs in.
//
// A group of Procs for ranks 0..n-1 with the same environment (a job's
// start, a restore, a recovery without a committed cut) becomes one step
// `srun --ntasks=n`; any other Proc gets a step of its own
// (`srun --ntasks=1 --nodes=1`) with its rank in RankVar. Steps use
// --overlap, so a replacement can start beside the tasks that still run,
// and --kill-on-bad-exit=0 --wait=0, so one task's death does not take the
// others down. Nodes that Slurm reports down or not responding, or that
// srun reported a node failure on, are excluded from new steps.
//
// Each task first prints a start line (its node, pid and step) through a
// small sh wrapper that then execs the rank program, so the spawner knows
// where every rank runs. A task's exit is reported from srun's own
// "task K: ..." message, which srun prints as soon as the task ends (a
// task ending with 0 only when the step ends); the tasks a step's end left
// unreported exited 0 if they started and srun succeeded.
//
// Kill of a rank that has a step of its own cancels that step
// (scancel --signal=KILL JOB.STEP). Kill of one task of a multi-task step
// runs `kill -9` on its node in a one-task --overlap step, after checking
// in /proc that the pid still is that task, and waits for srun to report
// it; if srun does not within KillWait, or the pid is unknown, the whole
// step is cancelled and its other ranks are reported lost (the coordinator
// then respawns them too). A rank on a node that Slurm reports down is
// taken as gone. When the kill step cannot run on the rank's node (the
// node died before Slurm noticed), the node is left out of later steps,
// the rank is reported lost and Kill returns an error: its death is not
// confirmed, and should it still run behind a partition, the coordinator
// fences it by its spawn id. A node left out this way, or reported down or
// failed, takes every rank still running there with it: all are reported
// gone at once. Steps run with --no-kill, so a lost node does
// not end the world step on the other nodes.
type Srun struct {
	cfg   SrunConfig
	log   *slog.Logger
	out   io.Writer
	nonce string

	exits    chan Exit
	queueMu  sync.Mutex
	queue    []Exit
	queued   chan struct{}
	stopQ    chan struct{}
	stopOnce sync.Once

	mu     sync.Mutex
	steps  map[*srunStep]bool // steps whose srun runs
	tasks  map[int]*srunTask  // latest task of each rank
	failed map[string]bool    // nodes srun reported a failure on
	closed bool
	wg     sync.WaitGroup
	qwg    sync.WaitGroup
}

type srunStep struct {
	name  string
	cmd   *exec.Cmd
	tasks []*srunTask // by task id within the step
	id    string      // JOBID.STEPID once a task announced it
	done  chan struct{}
}

type srunTask struct {
	step   *srunStep
	index  int
	rank   int
	spawn  uint64
	node   string
	pid    int
	gone   chan struct{} // closed when its exit is reported
	exited bool
	killed bool
}

var _ Spawner = (*Srun)(nil)

// NewSrun returns a spawner that runs ranks as job steps of the current
// Slurm allocation. It fails when there is no allocation or srun is missing.
func NewSrun(cfg SrunConfig) (*Srun, error) {
	if len(cfg.Argv) == 0 {
		return nil, errors.New("launch: no executable given")
	}
	if cfg.RankVar == "" {
		cfg.RankVar = "CUTPOINT_RANK"
	}
	if cfg.JobID == "" {
		cfg.JobID = os.Getenv("SLURM_JOB_ID")
	}
	if cfg.JobID == "" {
		return nil, errors.New("launch: srun spawner: not inside a Slurm allocation (SLURM_JOB_ID is unset); run under sbatch or salloc")
	}
	if cfg.Nodes == "" {
		cfg.Nodes = os.Getenv("SLURM_JOB_NODELIST")
	}
	for _, c := range []*string{&cfg.Srun, &cfg.Scancel, &cfg.Sinfo} {
		if *c == "" {
			switch c {
			case &cfg.Srun:
				*c = "srun"
			case &cfg.Scancel:
				*c = "scancel"
			default:
				*c = "sinfo"
			}
		}
		p, err := exec.LookPath(*c)
		if err != nil {
			return nil, fmt.Errorf("launch: srun spawner: %w", err)
		}
		*c = p
	}
	if cfg.KillWait == 0 {
		cfg.KillWait = 10 * time.Second
	}
	if cfg.CloseWait == 0 {
		cfg.CloseWait = 5 * time.Second
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	s := &Srun{
		cfg: cfg, log: log.With("component", "srun"), out: &lockedWriter{w: cfg.Out}, nonce: hex.EncodeToString(nonce),
		exits: make(chan Exit, 1024), queued: make(chan struct{}, 1), stopQ: make(chan struct{}),
		steps: map[*srunStep]bool{}, tasks: map[int]*srunTask{}, failed: map[string]bool{},
	}
	s.qwg.Add(1)
	go s.forward()
	return s, nil
}

// Exits delivers rank exits.
func (s *Srun) Exits() <-chan Exit { return s.exits }

// forward moves queued exits to the channel, so that reporting an exit
// never blocks a step's reader however many ranks end at once (the driver
// may be waiting in Kill for a later line of the same reader).
func (s *Srun) forward() {
	defer s.qwg.Done()
	for {
		s.queueMu.Lock()
		q := s.queue
		s.queue = nil
		s.queueMu.Unlock()
		for _, e := range q {
			select {
			case s.exits <- e:
			case <-s.stopQ:
				return
			}
		}
		select {
		case <-s.queued:
		case <-s.stopQ:
			return
		}
	}
}

// Spawn starts rank as process spawn in a step of its own.
func (s *Srun) Spawn(rank int, spawn uint64, env []string) error {
	return s.SpawnGroup([]Proc{{Rank: rank, Spawn: spawn, Env: env}})
}

// SpawnGroup starts procs: as one step when they are ranks 0..n-1 with one
// spawn id and the same environment apart from RankVar, else one step
// each. On error none of them was started.
func (s *Srun) SpawnGroup(procs []Proc) error {
	if len(procs) == 0 {
		return nil
	}
	exclude := s.excluded()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("launch: spawner closed")
	}
	for _, p := range procs {
		if t, ok := s.tasks[p.Rank]; ok && !t.exited {
			return fmt.Errorf("launch: rank %d is still running (step %s)", p.Rank, t.step.label())
		}
	}
	if env, ok := s.oneStep(procs); ok {
		return s.startStep(procs, env, true, exclude)
	}
	for i, p := range procs {
		if err := s.startStep([]Proc{p}, p.Env, false, exclude); err != nil {
			if i == 0 {
				return err
			}
			// Steps already run: report the rest as failed launches,
			// which the coordinator treats as lost ranks.
			for _, q := range procs[i:] {
				s.enqueue(Exit{Rank: q.Rank, Spawn: q.Spawn, Code: 127, At: time.Now()})
			}
			s.log.Error("srun failed", "rank", p.Rank, "err", err)
			return nil
		}
	}
	return nil
}

// oneStep says whether procs can run as one step and returns the
// environment they share (RankVar removed).
func (s *Srun) oneStep(procs []Proc) ([]string, bool) {
	if len(procs) < 2 {
		return nil, false
	}
	seen := make([]bool, len(procs))
	var common []string
	for i, p := range procs {
		if p.Rank < 0 || p.Rank >= len(procs) || seen[p.Rank] || p.Spawn != procs[0].Spawn {
			return nil, false
		}
		seen[p.Rank] = true
		env := withoutVar(p.Env, s.cfg.RankVar)
		if i == 0 {
			common = env
		} else if !slices.Equal(env, common) {
			return nil, false
		}
	}
	return common, true
}

func withoutVar(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// wrapper prints the task's start line, then becomes the rank program, so
// the pid it prints is the rank's.
const wrapper = `echo "@cutpoint-task $0 ${SLURMD_NODENAME:-$(hostname -s)} $$ ${SLURM_JOB_ID}.${SLURM_STEP_ID}"; exec "$@"`

// startStep runs srun for procs (mu held). group: the procs are ranks
// 0..n-1 and take their rank from SLURM_PROCID.
func (s *Srun) startStep(procs []Proc, env []string, group bool, exclude []string) error {
	n := len(procs)
	name := fmt.Sprintf("rank %d", procs[0].Rank)
	// --no-kill: the loss of one node does not end the step on the others.
	args := []string{"--ntasks=" + strconv.Itoa(n), "--kill-on-bad-exit=0", "--wait=0", "--no-kill", "--overlap", "--label", "--export=ALL"}
	if group {
		name = fmt.Sprintf("ranks 0-%d", n-1)
		args = append(args, "--job-name=cutpoint-ranks")
	} else {
		args = append(args, "--nodes=1", fmt.Sprintf("--job-name=cutpoint-rank-%d", procs[0].Rank))
	}
	if len(exclude) > 0 {
		// Fewer nodes than the allocation was sized for: let the tasks
		// share the remaining CPUs.
		args = append(args, "--exclude="+strings.Join(exclude, ","), "--overcommit")
	}
	args = append(args, s.cfg.Args...)
	args = append(args, "sh", "-c", wrapper, s.nonce)
	args = append(args, s.cfg.Argv...)
	cmd := exec.Command(s.cfg.Srun, args...)
	base := os.Environ()
	if group {
		base = withoutVar(base, s.cfg.RankVar)
	}
	cmd.Env = append(append(base, s.cfg.Env...), env...)
	if group {
		cmd.Env = withoutVar(cmd.Env, s.cfg.RankVar)
	}
	// One pipe for srun's stdout and stderr keeps a task's start line
	// ahead of srun's report of its exit.
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("launch: srun pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("launch: start srun for %s: %w", name, err)
	}
	w.Close()
	st := &srunStep{name: name, cmd: cmd, done: make(chan struct{})}
	for i, p := range procs {
		t := &srunTask{step: st, index: i, rank: p.Rank, spawn: p.Spawn, gone: make(chan struct{})}
		if group {
			t.index = p.Rank
		}
		st.tasks = append(st.tasks, t)
		s.tasks[p.Rank] = t
	}
	sort.Slice(st.tasks, func(i, j int) bool { return st.tasks[i].index < st.tasks[j].index })
	s.steps[st] = true
	s.wg.Add(1)
	go s.watch(st, r)
	s.log.Debug("srun started", "step", name, "spawn", procs[0].Spawn, "pid", cmd.Process.Pid, "exclude", exclude)
	return nil
}

func (st *srunStep) label() string {
	if st.id != "" {
		return st.id + " (" + st.name + ")"
	}
	return st.name
}

// watch reads a step's output until srun exits, then reports every task
// that was not reported yet.
func (s *Srun) watch(st *srunStep, r *os.File) {
	defer s.wg.Done()
	defer r.Close()
	readLines(r, maxLine, func(l string) { s.line(st, l) })
	err := st.cmd.Wait()
	code, sig := status(st.cmd, err)
	s.mu.Lock()
	delete(s.steps, st)
	var rest []*srunTask
	for _, t := range st.tasks {
		if !t.exited {
			rest = append(rest, t)
		}
	}
	s.mu.Unlock()
	if len(rest) > 0 && sig != "" && st.id != "" {
		// srun itself was killed: the step may still run. Cancel it, so
		// that the ranks reported gone below really are (in the
		// background: with a node that does not answer, scancel waits).
		go s.scancel(st.id)
	}
	for _, t := range rest {
		ex := Exit{Code: 0}
		s.mu.Lock()
		started, lostNode := t.node != "", s.failed[t.node]
		s.mu.Unlock()
		switch {
		case lostNode:
			// srun reports no task of a failed node; it did not finish.
			ex.Code, ex.Signal = -1, "node "+t.node+" failed"
		case sig != "":
			ex.Code, ex.Signal = -1, "srun "+sig
		case code != 0 && !started:
			// The step never ran (srun could not create it).
			ex.Code = code
		case code != 0 && len(st.tasks) == 1:
			ex.Code = code
		}
		s.report(t, ex)
	}
	if code != 0 || sig != "" {
		s.log.Debug("srun ended", "step", st.label(), "code", code, "signal", sig)
	}
	close(st.done)
}

// maxLine bounds one line of srun's output; a longer one (a rank printing
// a huge line) is cut, and the lines after it are still read.
const maxLine = 64 << 10

// readLines calls fn for each line of r (without its newline), cutting
// lines longer than limit, until EOF or a read error.
func readLines(r io.Reader, limit int, fn func(string)) {
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	for {
		frag, isPrefix, err := br.ReadLine()
		if len(line)+len(frag) <= limit {
			line = append(line, frag...)
		} else if len(line) < limit {
			line = append(line, frag[:limit-len(line)]...)
		}
		if err != nil {
			if len(line) > 0 {
				fn(string(line))
			}
			return
		}
		if !isPrefix {
			fn(string(line))
			line = line[:0]
		}
	}
}

// line handles one line of srun's output.
func (s *Srun) line(st *srunStep, l string) {
	if idx, text, ok := parseLabel(l); ok {
		t := st.task(idx)
		if t == nil {
			fmt.Fprintf(s.out, "[%s task %d] %s\n", st.name, idx, text)
			return
		}
		if node, pid, id, ok := parseStart(text, s.nonce); ok {
			s.mu.Lock()
			t.node, t.pid = node, pid
			if st.id == "" {
				st.id = id
			}
			s.mu.Unlock()
			s.log.Debug("rank started", "rank", t.rank, "spawn", t.spawn, "node", node, "pid", pid, "step", id)
			return
		}
		relayTo(s.out, s.cfg.Relay, t.rank, "stderr", []byte(text))
		return
	}
	fmt.Fprintf(s.out, "[%s] %s\n", st.label(), l)
	if te, ok := parseTaskExit(l); ok {
		for _, idx := range te.tasks {
			if t := st.task(idx); t != nil {
				s.report(t, Exit{Code: te.code, Signal: te.signal})
			}
		}
		return
	}
	if node := parseNodeFailure(l); node != "" {
		s.log.Warn("srun reports a node failure; new steps avoid the node", "node", node)
		s.nodeLost(node, "failed")
	}
}

func (st *srunStep) task(idx int) *srunTask {
	if idx < 0 || idx >= len(st.tasks) {
		return nil
	}
	return st.tasks[idx]
}

// report delivers a task's exit once.
func (s *Srun) report(t *srunTask, ex Exit) {
	s.mu.Lock()
	if t.exited {
		s.mu.Unlock()
		return
	}
	t.exited = true
	ex.Rank, ex.Spawn, ex.Killed, ex.At = t.rank, t.spawn, t.killed, time.Now()
	close(t.gone)
	s.mu.Unlock()
	s.enqueue(ex)
}

func (s *Srun) enqueue(ex Exit) {
	s.queueMu.Lock()
	s.queue = append(s.queue, ex)
	s.queueMu.Unlock()
	select {
	case s.queued <- struct{}{}:
	default:
	}
}

// Kill kills rank's process spawn (0: whatever process of rank runs) and
// returns once Slurm reports it gone. Killing a rank that is not running,
// or a spawn that is not the current one, is not an error.
func (s *Srun) Kill(ctx context.Context, rank int, spawn uint64) error {
	s.mu.Lock()
	t, ok := s.tasks[rank]
	if !ok || t.exited || (spawn != 0 && t.spawn != spawn) {
		s.mu.Unlock()
		return nil
	}
	t.killed = true
	st := t.step
	node, pid, stepID, single := t.node, t.pid, st.id, len(st.tasks) == 1
	failed := s.failed[node]
	s.mu.Unlock()

	if node != "" && (failed || s.nodeDown(ctx, node)) {
		// The node is gone and its processes with it; Slurm does not
		// bring a down node's steps back.
		s.log.Warn("rank's node is down: taken as gone", "rank", rank, "node", node)
		s.report(t, Exit{Code: -1, Signal: "node " + node + " down"})
		s.nodeLost(node, "down")
		return nil
	}
	if !single && pid > 0 && stepID != "" {
		if err := s.killPid(ctx, t, node, pid, stepID); err != nil {
			// The kill could not run on the node: it is unreachable
			// (a node lost before Slurm noticed). Waiting for the
			// world step would take as long as Slurm's node timeout
			// and cancelling it would take the healthy ranks down.
			return s.unreachable(t, node, err)
		}
		wait, cancel := context.WithTimeout(ctx, s.cfg.KillWait)
		select {
		case <-t.gone:
			cancel()
			return nil
		case <-wait.Done():
		}
		cancel()
		s.log.Warn("killed task not reported gone: cancelling the whole step", "rank", rank, "step", st.label(), "wait", s.cfg.KillWait)
	}
	return s.cancelStep(ctx, st, t)
}

// unreachable gives up on confirming that t is gone: its node is left
// out of new steps and t reported lost, so the replacement can start
// elsewhere. Should the process still run behind a partition, the
// coordinator fences it by its spawn id when it speaks.
func (s *Srun) unreachable(t *srunTask, node string, err error) error {
	s.log.Warn("rank's node unreachable: excluded from new steps, the rank taken as lost", "rank", t.rank, "node", node, "err", err)
	s.report(t, Exit{Code: -1, Signal: "node " + node + " unreachable"})
	if node != "" {
		s.nodeLost(node, "unreachable")
	}
	return fmt.Errorf("launch: rank %d on node %s not confirmed gone: %w", t.rank, node, err)
}

// nodeLost leaves node out of new steps and reports every task still
// running there gone: a node that failed, is down or that a kill cannot
// reach takes all its ranks with it. Without this, a rank of that node the
// coordinator has not found silent yet would be waited for as a survivor:
// during the recovery of its neighbour it is expected to roll back in
// place, and it would be declared lost only when the recovery's ready
// timeout ran out (a minute by default). Should such a rank still run
// behind a partition, the coordinator fences it by its spawn id (R13).
func (s *Srun) nodeLost(node, why string) {
	s.mu.Lock()
	s.failed[node] = true
	var gone []*srunTask
	for _, t := range s.tasks {
		if !t.exited && t.node == node {
			gone = append(gone, t)
		}
	}
	s.mu.Unlock()
	sort.Slice(gone, func(i, j int) bool { return gone[i].rank < gone[j].rank })
	for _, t := range gone {
		s.log.Warn("rank's node lost: the rank taken as gone", "rank", t.rank, "node", node, "why", why)
		s.report(t, Exit{Code: -1, Signal: "node " + node + " " + why})
	}
}

// killPid kills one task of a multi-task step on its node, from a
// one-task step of the same job; /proc tells that pid still is that task.
func (s *Srun) killPid(ctx context.Context, t *srunTask, node string, pid int, stepID string) error {
	job, step, _ := strings.Cut(stepID, ".")
	const script = `e=/proc/$1/environ; ` +
		`grep -qzx "SLURM_JOB_ID=$2" "$e" && grep -qzx "SLURM_STEP_ID=$3" "$e" && grep -qzx "SLURM_PROCID=$4" "$e" || exit 0; ` +
		`kill -9 "$1"`
	args := []string{"--ntasks=1", "--nodes=1", "--overlap", "--quiet", "--export=ALL", "--job-name=cutpoint-kill",
		"--nodelist=" + node, "sh", "-c", script, "cutpoint-kill",
		strconv.Itoa(pid), job, step, strconv.Itoa(t.index)}
	kctx, cancel := context.WithTimeout(ctx, s.cfg.KillWait)
	defer cancel()
	out, err := exec.CommandContext(kctx, s.cfg.Srun, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("srun kill on %s: %w: %s", node, err, strings.TrimSpace(string(out)))
	}
	s.log.Info("killed rank", "rank", t.rank, "spawn", t.spawn, "node", node, "pid", pid, "step", stepID)
	return nil
}

// stopStep asks a step to end without waiting: scancel when the step's id
// is known, in the background (scancel may wait for slurmctld to reach the
// step's nodes; callers wait for the step themselves). Before any task
// announced itself the step may not exist yet: SIGTERM makes srun give up
// a pending step or forward the signal to the tasks it started.
func (s *Srun) stopStep(st *srunStep) {
	s.mu.Lock()
	id := st.id
	s.mu.Unlock()
	if id != "" {
		go s.scancel(id)
		return
	}
	_ = st.cmd.Process.Signal(syscall.SIGTERM)
}

// cancelStep kills a whole step and waits until srun has ended and t is
// reported gone. srun waits for every node of the step, so a step with a
// task on a node that does not answer may not end; after 2 x KillWait
// srun is killed and the error says the step was not confirmed gone.
func (s *Srun) cancelStep(ctx context.Context, st *srunStep, t *srunTask) error {
	s.stopStep(st)
	wait, cancel := context.WithTimeout(ctx, 2*s.cfg.KillWait)
	defer cancel()
	select {
	case <-st.done:
		<-t.gone
		return nil
	case <-wait.Done():
	}
	_ = st.cmd.Process.Kill()
	<-st.done
	s.mu.Lock()
	node := t.node
	if len(st.tasks) == 1 && node != "" {
		// t is the step's only task: its node is the one not answering.
		s.failed[node] = true
	}
	s.mu.Unlock()
	return fmt.Errorf("launch: rank %d (node %s): step %s not gone %v after scancel; srun killed", t.rank, node, st.label(), 2*s.cfg.KillWait)
}

func (s *Srun) scancel(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.KillWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.cfg.Scancel, "--signal=KILL", id).CombinedOutput()
	if err != nil {
		s.log.Warn("scancel failed", "step", id, "err", err, "output", strings.TrimSpace(string(out)))
	}
}

// excluded lists the allocation's nodes new steps must avoid:
// those srun reported failed and those Slurm reports down or not
// responding. Never all of them: with no node left srun's own error says
// more than an empty node list would.
func (s *Srun) excluded() []string {
	states, err := s.nodeStates(context.Background())
	if err != nil {
		s.log.Warn("sinfo failed; node states unknown", "err", err)
	}
	bad := map[string]bool{}
	s.mu.Lock()
	for n := range s.failed {
		bad[n] = true
	}
	s.mu.Unlock()
	for n, st := range states {
		if nodeUnusable(st) {
			bad[n] = true
		}
	}
	if len(bad) == 0 || (len(states) > 0 && len(bad) >= len(states)) {
		return nil
	}
	var out []string
	for n := range bad {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// nodeDown asks Slurm whether node is down or not responding.
func (s *Srun) nodeDown(ctx context.Context, node string) bool {
	states, err := s.nodeStates(ctx)
	if err != nil {
		return false
	}
	st, ok := states[node]
	return ok && nodeUnusable(st)
}

// nodeStates maps each node of the allocation to its compact Slurm state.
func (s *Srun) nodeStates(ctx context.Context) (map[string]string, error) {
	if s.cfg.Nodes == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.cfg.Sinfo, "--noheader", "--Node", "--nodes="+s.cfg.Nodes, "--format=%N %t").Output()
	if err != nil {
		return nil, err
	}
	return parseNodeStates(string(out)), nil
}

// Close lets running steps end by themselves for CloseWait (the ranks were
// told to stop), then cancels the rest, gives them KillWait, kills the
// srun of any still waiting (for a node that does not answer: srun reports
// no exit 0, so the spawner cannot tell which of its tasks still run) and
// waits for every srun. Exits not yet received may be dropped. A second
// Close does nothing more.
func (s *Srun) Close() error {
	s.mu.Lock()
	s.closed = true
	var steps []*srunStep
	for st := range s.steps {
		steps = append(steps, st)
	}
	s.mu.Unlock()
	grace, stop := context.WithTimeout(context.Background(), s.cfg.CloseWait)
	defer stop()
	var left []*srunStep
	for _, st := range steps {
		select {
		case <-st.done:
		case <-grace.Done():
			left = append(left, st)
		}
	}
	for _, st := range left {
		s.stopStep(st)
	}
	wait := time.After(s.cfg.KillWait)
	var errs []error
	for _, st := range left {
		select {
		case <-st.done:
			continue
		case <-wait:
			wait = closedTime
		}
		_ = st.cmd.Process.Kill()
		<-st.done
		errs = append(errs, fmt.Errorf("launch: step %s not gone %v after scancel; srun killed", st.label(), s.cfg.KillWait))
	}
	s.wg.Wait()
	s.stopOnce.Do(func() { close(s.stopQ) })
	s.qwg.Wait()
	return errors.Join(errs...)
}

// closedTime is a channel that is always ready.
var closedTime = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// parseLabel splits a line that srun --label prefixed with a task id.
func parseLabel(l string) (int, string, bool) {
	head, text, ok := strings.Cut(l, ": ")
	if !ok {
		// An empty line of a task: "3: " with the space trimmed.
		if h, found := strings.CutSuffix(l, ":"); found {
			head, ok = h, true
		}
	}
	if !ok {
		return 0, "", false
	}
	head = strings.TrimLeft(head, " ")
	if head == "" || len(head) > 9 {
		return 0, "", false
	}
	n, err := strconv.Atoi(head)
	if err != nil || n < 0 {
		return 0, "", false
	}
	return n, text, true
}

// parseStart reads the wrapper's start line.
func parseStart(text, nonce string) (node string, pid int, step string, ok bool) {
	f := strings.Fields(text)
	if len(f) != 5 || f[0] != "@cutpoint-task" || f[1] != nonce {
		return "", 0, "", false
	}
	pid, err := strconv.Atoi(f[3])
	if err != nil || pid <= 0 {
		return "", 0, "", false
	}
	job, st, found := strings.Cut(f[4], ".")
	if !found || job == "" || st == "" {
		return "", 0, "", false
	}
	return f[2], pid, f[4], true
}

type taskExit struct {
	node   string
	tasks  []int
	code   int
	signal string
}

// parseTaskExit reads srun's report of tasks that ended badly:
//
//	srun: error: NODE: task 1: Killed
//	srun: error: NODE: tasks 0-2,5: Exited with exit code 3
func parseTaskExit(l string) (taskExit, bool) {
	rest, ok := strings.CutPrefix(l, "srun: error: ")
	if !ok {
		return taskExit{}, false
	}
	node, rest, ok := strings.Cut(rest, ": ")
	if !ok || strings.ContainsAny(node, " \t") {
		return taskExit{}, false
	}
	var list string
	if r, found := strings.CutPrefix(rest, "tasks "); found {
		rest = r
	} else if r, found := strings.CutPrefix(rest, "task "); found {
		rest = r
	} else {
		return taskExit{}, false
	}
	list, msg, ok := strings.Cut(rest, ": ")
	if !ok {
		return taskExit{}, false
	}
	tasks, err := parseTaskList(list)
	if err != nil {
		return taskExit{}, false
	}
	te := taskExit{node: node, tasks: tasks}
	if c, found := strings.CutPrefix(msg, "Exited with exit code "); found {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil {
			return taskExit{}, false
		}
		te.code = n
		return te, true
	}
	te.code = -1
	te.signal = signalFromText(msg)
	return te, true
}

// parseTaskList expands "0-2,5" (srun's task ranges); at most 1<<20 ids.
func parseTaskList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("task list %q: bad id %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("task list %q: bad range %q", s, part)
			}
		}
		if len(out)+(b-a+1) > 1<<20 {
			return nil, fmt.Errorf("task list %q: too many ids", s)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// signalFromText maps srun's strsignal text to a signal name.
func signalFromText(msg string) string {
	msg = strings.TrimSuffix(strings.TrimSpace(msg), " (core dumped)")
	names := map[string]string{
		"Killed": "SIGKILL", "Terminated": "SIGTERM", "Interrupt": "SIGINT", "Hangup": "SIGHUP",
		"Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT", "Bus error": "SIGBUS",
		"Floating point exception": "SIGFPE", "Illegal instruction": "SIGILL", "Quit": "SIGQUIT",
		"User defined signal 1": "SIGUSR1", "User defined signal 2": "SIGUSR2",
	}
	if n, ok := names[msg]; ok {
		return n
	}
	return msg
}

// parseNodeFailure returns the node srun reports failed, or "".
func parseNodeFailure(l string) string {
	for _, marker := range []string{"Node failure on ", "failed on node "} {
		if i := strings.Index(l, marker); i >= 0 && strings.HasPrefix(l, "srun: ") {
			f := strings.FieldsFunc(l[i+len(marker):], func(r rune) bool { return r == ' ' || r == ':' || r == ',' })
			if len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// parseNodeStates reads `sinfo --Node --format="%N %t"` lines (a node in
// several partitions appears once per partition).
func parseNodeStates(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// nodeUnusable: down, failing, not responding ("*") or powered off ("~",
// "%"). A draining node still runs its jobs' steps.
func nodeUnusable(state string) bool {
	if strings.HasSuffix(state, "*") || strings.HasSuffix(state, "~") || strings.HasSuffix(state, "%") {
		return true
	}
	for _, p := range []string{"down", "fail"} {
		if strings.HasPrefix(state, p) {
			return true
		}
	}
	return false
}
