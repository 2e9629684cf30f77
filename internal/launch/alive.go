package launch

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
)

// Liveness is what a launcher can tell of one of its rank processes
// without waiting (Alive).
type Liveness uint8

const (
	// ProcGone: the process has exited (a zombie not reaped yet, or
	// reaped; a srun task that ended, a node Slurm reports failed). Its
	// Exit may still be on its way.
	ProcGone Liveness = iota + 1
	// ProcStopped: it exists but does not run (SIGSTOP, a debugger).
	ProcStopped
	// ProcRunning: it exists and runs or sleeps.
	ProcRunning
)

// Alive tells, without blocking, whether rank's process spawn (0: the
// current one) still exists and runs; ok is false when this launcher
// cannot tell (it never started that process). The process is its own
// child, so the answer is the kernel's: the reaper's state, else the
// state letter in /proc/PID/stat (Z or X: gone; T or t: stopped).
func (l *Local) Alive(rank int, spawn uint64) (Liveness, bool) {
	l.mu.Lock()
	p, ok := l.procs[rank]
	l.mu.Unlock()
	if !ok || (spawn != 0 && p.spawn != spawn) {
		return 0, false
	}
	if isDone(p) {
		return ProcGone, true
	}
	st, err := procState(p.pid)
	if isDone(p) {
		// Reaped meanwhile: the pid may already name another process.
		return ProcGone, true
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ProcGone, true
	case err != nil:
		return 0, false
	}
	switch st {
	case 'Z', 'X', 'x':
		return ProcGone, true
	case 'T', 't':
		return ProcStopped, true
	}
	return ProcRunning, true
}

// procState returns the state letter of process pid (proc(5): the field
// after the command name, which may itself hold spaces and parentheses).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcState(b)
}

var errProcStat = errors.New("launch: unreadable /proc/PID/stat")

func parseProcState(b []byte) (byte, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) || b[i+1] != ' ' {
		return 0, errProcStat
	}
	return b[i+2], nil
}

// Alive tells what the local child of rank's process spawn says: only
// that it is gone. That child is the spawn template's command (ssh, ip
// netns exec), a wrapper in front of the remote process: while it lives
// the remote process may be hung, stopped, or running behind a
// partition, and a grace given on the wrapper's word would delay the
// detection of every lost host.
func (h *Hosts) Alive(rank int, spawn uint64) (Liveness, bool) {
	if l, ok := h.Local.Alive(rank, spawn); ok && l == ProcGone {
		return ProcGone, true
	}
	return 0, false
}

// Alive tells, without blocking, what Slurm told of rank's task spawn: gone
// once srun reported it ended, its node failed, or its step's srun exited.
// A task not reported ended may still have died on a node that Slurm has
// not yet found unresponsive (SlurmdTimeout: minutes), so srun's silence
// cannot confirm it running: ok is false.
func (s *Srun) Alive(rank int, spawn uint64) (Liveness, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[rank]
	if !ok || (spawn != 0 && t.spawn != spawn) {
		return 0, false
	}
	if t.exited || (t.node != "" && s.failed[t.node]) {
		return ProcGone, true
	}
	select {
	case <-t.step.done:
		return ProcGone, true
	default:
	}
	return 0, false
}
