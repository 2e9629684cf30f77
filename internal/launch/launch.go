package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit reports that a rank process ended.
type Exit struct {
	Rank   int
	Spawn  uint64 // the spawn id given to Spawn
	Code   int    // exit code; -1 when killed by a signal
	Signal string // signal name when killed by one
	Killed bool   // the launcher killed it on request
	At     time.Time
	// OOM: killed by SIGKILL not requested by the launcher, with evidence
	// of the OOM killer (the cgroup's oom_kill count rose while it ran, or
	// its peak RSS reached 90 % of the cgroup's memory limit).
	OOM bool
	// Last is the process's last line of output (its own error, usually),
	// at most 512 bytes.
	Last string
	// World: the exit is a whole MPI world's (its launcher's, as MPI
	// reports it), delivered once for each rank; which rank failed first
	// is in the launcher's output, not here.
	World bool
}

func (e Exit) String() string {
	if e.OOM {
		return fmt.Sprintf("rank %d killed by %s (likely out of memory)", e.Rank, e.Signal)
	}
	if e.Signal != "" {
		return fmt.Sprintf("rank %d killed by %s", e.Rank, e.Signal)
	}
	return fmt.Sprintf("rank %d exited with code %d", e.Rank, e.Code)
}

// Proc is one rank process to start: its rank, spawn id and the variables
// added to the spawner's base environment.
type Proc struct {
	Rank  int
	Spawn uint64
	Env   []string
}

// Spawner starts and kills rank processes. Exits delivers every exit exactly
// once, in the order the processes were reaped.
type Spawner interface {
	// Spawn starts rank as process spawn (an id the caller chooses, e.g.
	// the incarnation; exits report it).
	Spawn(rank int, spawn uint64, env []string) error
	// Kill kills rank's process spawn (0: whatever process of rank runs)
	// and returns once it is gone.
	Kill(ctx context.Context, rank int, spawn uint64) error
	Exits() <-chan Exit
	Close() error
}

var _ Spawner = (*Local)(nil)

// Errors of the local spawners.
var (
	// ErrStillRunning: a rank's previous process was not reaped in time
	// (after SIGKILL: the kernel has not let it go, e.g. stuck in a
	// device or file system call), so its replacement cannot start yet.
	ErrStillRunning = errors.New("launch: the rank's previous process is still running")
)

// Timing of the local spawners. Every wait is bounded: no rank that
// misbehaves can hold the driver longer than these.
const (
	// DefaultKillWait bounds how long Kill waits for a SIGKILLed process
	// to be reaped.
	DefaultKillWait = 5 * time.Second
	// DefaultReapWait bounds how long Spawn waits for a rank's previous,
	// killed process to be reaped before it gives up with ErrStillRunning.
	DefaultReapWait = 5 * time.Second
	// drainWait bounds how long an exit waits for the rank's output to
	// reach EOF after the process was reaped: a process outside the rank's
	// process group (the remote side of ssh, a daemonized grandchild) may
	// hold the pipe open for ever.
	drainWait = time.Second
)

// Option configures a Local spawner.
type Option func(*Local)

// Detached makes the ranks outlive this process: no parent-death signal,
// and their output goes straight to out when out is a file (a pipe read by
// this process would break when it dies, and a rank writing to it would
// die of SIGPIPE). For the split deployment (cutpoint coordinator --spawn
// local), where a new coordinator (--rejoin) finds the ranks computing.
func Detached() Option { return func(l *Local) { l.detached = true } }

// WithWaits sets the bounds of Kill's and Spawn's waits (tests).
func WithWaits(kill, reap time.Duration) Option {
	return func(l *Local) { l.killWait, l.reapWait = kill, reap }
}

// Local runs rank processes as children of this process.
type Local struct {
	argv     []string
	env      []string
	rawOut   io.Writer
	out      io.Writer // rank output, through relay
	relay    *Relay
	log      *slog.Logger
	exits    chan Exit
	detached bool
	killWait time.Duration
	reapWait time.Duration
	// onExit, when set, sees every exit as soon as the process is reaped,
	// before it is delivered (the placement of the Hosts spawner), on the
	// reaping goroutine.
	onExit func(Exit)
	mu     sync.Mutex
	procs  map[int]*proc
	closed bool
	wg     sync.WaitGroup
}

type proc struct {
	cmd    *exec.Cmd
	pid    int
	spawn  uint64
	done   chan struct{} // closed once the process is reaped
	killed bool
	ooms   int64  // the cgroup's oom_kill count at the start (-1: unknown)
	cg     string // the memory cgroup, for the OOM evidence at the exit
	v2     bool
	lastMu sync.Mutex
	last   string // last output line
}

// NewLocal returns a spawner that runs argv for each rank with the base
// environment env plus the per-rank variables given to Spawn. Each output
// line of a rank goes to out through the Relay set by SetRelay (by default
// every line, "[rank N] " prefixed unless it is a log line).
func NewLocal(argv []string, env []string, out io.Writer, log *slog.Logger, opts ...Option) (*Local, error) {
	if len(argv) == 0 {
		return nil, errors.New("launch: no executable given")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("launch: executable %q: %w", argv[0], err)
	}
	l := newLocal(env, out, log, opts...)
	l.argv = append([]string{path}, argv[1:]...)
	return l, nil
}

func newLocal(env []string, out io.Writer, log *slog.Logger, opts ...Option) *Local {
	if log == nil {
		log = slog.Default()
	}
	l := &Local{
		env:      env,
		rawOut:   out,
		out:      &lockedWriter{w: out},
		log:      log,
		exits:    make(chan Exit, 1024),
		procs:    map[int]*proc{},
		killWait: DefaultKillWait,
		reapWait: DefaultReapWait,
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// SetRelay sets how the ranks' output lines reach out: their format and
// level filter. Call it before the first Spawn.
func (l *Local) SetRelay(r Relay) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.relay = &r
}

// Spawn starts rank as process spawn with env added to the base
// environment. A rank that is still running must be killed first; a killed
// one that is not reaped yet is waited for (bounded), then ErrStillRunning.
func (l *Local) Spawn(rank int, spawn uint64, env []string) error {
	return l.start(rank, spawn, l.argv, append(append(os.Environ(), l.env...), env...), nil)
}

// start runs argv with the full environment env for rank; stdin, if not
// nil, is what the process reads on its standard input (then EOF).
func (l *Local) start(rank int, spawn uint64, argv, env []string, stdin []byte) error {
	if err := l.waitPrevious(rank); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("launch: spawner closed")
	}
	if p, ok := l.procs[rank]; ok && !isDone(p) {
		return fmt.Errorf("launch: rank %d: %w (pid %d)", rank, ErrStillRunning, p.pid)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	// Own process group: a kill reaches whatever the rank started.
	// Pdeathsig (not detached): if the launcher dies, its ranks do not
	// linger.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !l.detached {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	var closeAfter []*os.File
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	if stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		// Small (a few variables): it fits the pipe's buffer, so the
		// write never waits for the child.
		_, werr := w.Write(stdin)
		w.Close()
		if werr != nil {
			r.Close()
			return werr
		}
		cmd.Stdin = r
		closeAfter = append(closeAfter, r)
	}
	var readers []*os.File
	if f, ok := l.rawOut.(*os.File); ok && l.detached {
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		// Pipes of our own, handed to the child as files: Wait then
		// waits for the process only, never for the pipes' EOF, which a
		// process outside the group may hold back for ever.
		for _, dst := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
			r, w, err := os.Pipe()
			if err != nil {
				for _, f := range readers {
					f.Close()
				}
				return err
			}
			*dst = w
			closeAfter = append(closeAfter, w)
			readers = append(readers, r)
		}
	}
	if err := cmd.Start(); err != nil {
		for _, f := range readers {
			f.Close()
		}
		return fmt.Errorf("launch: start rank %d: %w", rank, err)
	}
	cg, v2 := memCgroup()
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, spawn: spawn, done: make(chan struct{}), ooms: oomKills(cg, v2), cg: cg, v2: v2}
	l.procs[rank] = p
	drained := make(chan struct{})
	var copies sync.WaitGroup
	for i, r := range readers {
		copies.Add(1)
		go l.copyLines(&copies, r, rank, [...]string{"stdout", "stderr"}[i], p)
	}
	go func() { copies.Wait(); close(drained) }()
	l.wg.Add(1)
	go l.reap(rank, p, readers, drained)
	l.log.Debug("rank started", "rank", rank, "pid", p.pid, "spawn", p.spawn)
	return nil
}

// reap waits for p to exit, kills what is left of its process group,
// reaps it, lets its output drain (bounded) and reports the exit.
func (l *Local) reap(rank int, p *proc, readers []*os.File, drained <-chan struct{}) {
	defer l.wg.Done()
	// Wait without reaping first: while the exited process is a zombie its
	// pid, and so its process group id, cannot be reused, and the kill
	// below reaches only the rank's own leftovers.
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	err := p.cmd.Wait()
	ex := Exit{Rank: rank, Spawn: p.spawn, At: time.Now()}
	l.mu.Lock()
	ex.Killed = p.killed
	l.mu.Unlock()
	ex.Code, ex.Signal = status(p.cmd, err)
	if ex.Signal == "SIGKILL" && !ex.Killed {
		ex.OOM = oomEvidence(p.cmd, p.ooms, p.cg, p.v2)
	}
	close(p.done)
	if l.onExit != nil {
		l.onExit(ex)
	}
	select {
	case <-drained:
	case <-time.After(drainWait):
		l.log.Warn("rank output still held open after the rank was reaped; no longer reading it",
			"rank", rank, "pid", p.pid)
		for _, r := range readers {
			r.Close()
		}
	}
	p.lastMu.Lock()
	ex.Last = p.last
	p.lastMu.Unlock()
	l.exits <- ex
}

func isDone(p *proc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitPrevious waits (bounded) for a rank's previous process that was
// killed but not reaped yet.
func (l *Local) waitPrevious(rank int) error {
	l.mu.Lock()
	p, ok := l.procs[rank]
	l.mu.Unlock()
	if !ok || isDone(p) || !p.killed {
		return nil
	}
	// It may have been killed by an earlier Kill that gave up: kill it
	// again, it costs nothing.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	t := time.NewTimer(l.reapWait)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("launch: rank %d: %w (pid %d, not reaped %v after SIGKILL)", rank, ErrStillRunning, p.pid, l.reapWait)
	}
}

func status(cmd *exec.Cmd, err error) (int, string) {
	if cmd.ProcessState == nil {
		return -1, ""
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, unix.SignalName(ws.Signal())
	}
	if err != nil && cmd.ProcessState.ExitCode() == 0 {
		return 1, ""
	}
	return cmd.ProcessState.ExitCode(), ""
}

// oomEvidence: the cgroup counted an OOM kill since the start, or the
// process's peak RSS reached 90 % of the cgroup's limit.
func oomEvidence(cmd *exec.Cmd, before int64, cg string, v2 bool) bool {
	if after := oomKills(cg, v2); before >= 0 && after > before {
		return true
	}
	if lim := memLimit(cg, v2); lim > 0 && cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss*1024 >= lim/10*9 {
			return true
		}
	}
	return false
}

func (l *Local) copyLines(wg *sync.WaitGroup, r io.ReadCloser, rank int, stream string, p *proc) {
	defer wg.Done()
	defer r.Close()
	l.mu.Lock()
	relay := l.relay
	l.mu.Unlock()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		relayTo(l.out, relay, rank, stream, sc.Bytes())
		if line := strings.TrimSpace(sc.Text()); line != "" {
			if len(line) > 512 {
				line = line[:512]
			}
			p.lastMu.Lock()
			p.last = line
			p.lastMu.Unlock()
		}
	}
	// Drain whatever a too-long line left, so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// Kill sends SIGKILL to the process group of rank's process spawn (0: the
// current process) and returns once the process has been reaped, so a
// replacement can never overlap it. It waits at most the kill wait
// (DefaultKillWait) or until ctx ends; then the rank's next Spawn waits for
// the reaping in turn. Killing a rank that is not running, or a spawn that
// is not the current one, is not an error.
func (l *Local) Kill(ctx context.Context, rank int, spawn uint64) error {
	l.mu.Lock()
	p, ok := l.procs[rank]
	if ok && spawn != 0 && p.spawn != spawn {
		ok = false
	}
	if ok {
		p.killed = true
	}
	l.mu.Unlock()
	if !ok || isDone(p) {
		return nil
	}
	if err := syscall.Kill(-p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("launch: kill rank %d (pid %d): %w", rank, p.pid, err)
	}
	t := time.NewTimer(l.killWait)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("launch: rank %d (pid %d) not reaped %v after SIGKILL: %w", rank, p.pid, l.killWait, ErrStillRunning)
	case <-ctx.Done():
		return fmt.Errorf("launch: rank %d (pid %d) not reaped after SIGKILL: %w", rank, p.pid, ctx.Err())
	}
}

// Signal sends sig to a running rank's process group.
func (l *Local) Signal(rank int, sig syscall.Signal) error {
	l.mu.Lock()
	p, ok := l.procs[rank]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("launch: rank %d was never started", rank)
	}
	return syscall.Kill(-p.pid, sig)
}

// Pid returns the pid of rank's current process, or 0.
func (l *Local) Pid(rank int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.procs[rank]; ok && !isDone(p) {
		return p.pid
	}
	return 0
}

// Exits delivers rank exits.
func (l *Local) Exits() <-chan Exit { return l.exits }

// Close kills every rank still running and waits for them (bounded: a
// process the kernel does not let go is left behind, with an error).
func (l *Local) Close() error {
	l.mu.Lock()
	l.closed = true
	ranks := make([]int, 0, len(l.procs))
	for r := range l.procs {
		ranks = append(ranks, r)
	}
	l.mu.Unlock()
	var errs []error
	for _, r := range ranks {
		errs = append(errs, l.Kill(context.Background(), r, 0))
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(l.killWait + drainWait):
		errs = append(errs, errors.New("launch: rank processes not reaped at close"))
	}
	return errors.Join(errs...)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
