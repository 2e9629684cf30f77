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

// Local runs rank processes as children of this process.
type Local struct {
	argv   []string
	env    []string
	out    io.Writer // rank output, prefixed per line
	log    *slog.Logger
	exits  chan Exit
	mu     sync.Mutex
	procs  map[int]*proc
	closed bool
	wg     sync.WaitGroup
}

type proc struct {
	cmd    *exec.Cmd
	spawn  uint64
	done   chan struct{}
	killed bool
	ooms   int64 // the cgroup's oom_kill count at the start (-1: unknown)
	lastMu sync.Mutex
	last   string // last output line
}

// NewLocal returns a spawner that runs argv for each rank with the base
// environment env plus the per-rank variables given to Spawn. Each output
// line of a rank goes to out prefixed with "[rank N] ".
func NewLocal(argv []string, env []string, out io.Writer, log *slog.Logger) (*Local, error) {
	if len(argv) == 0 {
		return nil, errors.New("launch: no executable given")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("launch: executable %q: %w", argv[0], err)
	}
	argv = append([]string{path}, argv[1:]...)
	if log == nil {
		log = slog.Default()
	}
	return &Local{
		argv:  argv,
		env:   env,
		out:   &lockedWriter{w: out},
		log:   log,
		exits: make(chan Exit, 1024),
		procs: map[int]*proc{},
	}, nil
}

// Spawn starts rank as process spawn with env added to the base
// environment. A rank that is still running must be killed first.
func (l *Local) Spawn(rank int, spawn uint64, env []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("launch: spawner closed")
	}
	if p, ok := l.procs[rank]; ok {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("launch: rank %d is still running (pid %d)", rank, p.cmd.Process.Pid)
		}
	}
	cmd := exec.Command(l.argv[0], l.argv[1:]...)
	cmd.Env = append(append(os.Environ(), l.env...), env...)
	// Own process group: a kill reaches whatever the rank started. Pdeathsig:
	// if the launcher dies, its ranks do not linger.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	prefix := fmt.Sprintf("[rank %d] ", rank)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("launch: start rank %d: %w", rank, err)
	}
	cg, v2 := memCgroup()
	p := &proc{cmd: cmd, spawn: spawn, done: make(chan struct{}), ooms: oomKills(cg, v2)}
	l.procs[rank] = p
	var copies sync.WaitGroup
	copies.Add(2)
	go l.copyLines(&copies, stdout, prefix, p)
	go l.copyLines(&copies, stderr, prefix, p)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		copies.Wait() // read all output before Wait closes the pipes
		err := cmd.Wait()
		ex := Exit{Rank: rank, Spawn: p.spawn, At: time.Now()}
		l.mu.Lock()
		ex.Killed = p.killed
		l.mu.Unlock()
		ex.Code, ex.Signal = status(cmd, err)
		p.lastMu.Lock()
		ex.Last = p.last
		p.lastMu.Unlock()
		if ex.Signal == "SIGKILL" && !ex.Killed {
			ex.OOM = oomEvidence(cmd, p.ooms, cg, v2)
		}
		close(p.done)
		l.exits <- ex
	}()
	l.log.Debug("rank started", "rank", rank, "pid", cmd.Process.Pid, "spawn", p.spawn)
	return nil
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

func (l *Local) copyLines(wg *sync.WaitGroup, r io.Reader, prefix string, p *proc) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(l.out, "%s%s\n", prefix, sc.Bytes())
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
// replacement can never overlap it. Killing a rank that is not running, or
// a spawn that is not the current one, is not an error.
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
	if !ok {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("launch: kill rank %d (pid %d): %w", rank, pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("launch: rank %d (pid %d) not reaped after SIGKILL: %w", rank, pid, ctx.Err())
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
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Pid returns the pid of rank's current process, or 0.
func (l *Local) Pid(rank int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.procs[rank]; ok {
		select {
		case <-p.done:
			return 0
		default:
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// Exits delivers rank exits.
func (l *Local) Exits() <-chan Exit { return l.exits }

// Close kills every rank still running and waits for all of them.
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
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, l.Kill(ctx, r, 0))
		cancel()
	}
	l.wg.Wait()
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
