package rank

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvFault injects faults for tests and demos: a comma-separated list of
// RANK:POINT[:N] kills rank RANK with SIGKILL (a real, uncatchable kill of
// its own process) the N-th time (default 1) it passes POINT, in the process
// the launcher started first (spawn 1; a replacement runs clean). Points:
//
//	capture   during a capture: after the first buffer is copied, before the
//	          markers go out
//	write     in the middle of writing a shard (after its first buffer)
//	durable   after a shard is durable, before it is reported
//	reported  after the shard report went out, before the commit is known
//	restore   in the middle of restoring a cut
//	flush     before a flush of a committed cut to the shared store
//	          copies the shard (background or final)
//	flush-write
//	          in the middle of a file written to the shared store by a
//	          flush: after each write (of at most 32 KiB; with N, the N-th
//	          over all the files of the rank's flushes)
//	flush-commit
//	          every byte of such a file written to its temporary file,
//	          before the commit (fsync, rename)
//	flush-rename
//	          after such a file's rename, before the fsync of its
//	          directory (local backends)
//	flush-file
//	          after such a file's commit, before the next file of the
//	          shard (an older pack it reuses chunks from comes first) or
//	          the check of the copy
//	flushed   after the shard is in the shared store and checked there,
//	          before the coordinator records the cut as held there
//	final-flush
//	          before the final flush of the last cut, once the
//	          coordinator said the job is over
const EnvFault = "CUTPOINT_FAULT"

// faults counts passes through fault points (nil: none configured).
type faults struct {
	at    map[string]int // point -> pass that kills
	mu    sync.Mutex     // the flushes pass their points on their own goroutines
	count map[string]int
}

func parseFaults(spec string, rank int, spawn uint64) (*faults, error) {
	if spec == "" || spawn > 1 {
		return nil, nil
	}
	f := &faults{at: map[string]int{}, count: map[string]int{}}
	for _, item := range strings.Split(spec, ",") {
		parts := strings.Split(strings.TrimSpace(item), ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("%s=%q: want RANK:POINT[:N]", EnvFault, spec)
		}
		r, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("%s=%q: rank %q", EnvFault, spec, parts[0])
		}
		switch parts[1] {
		case "capture", "write", "durable", "reported", "restore",
			"flush", "flush-write", "flush-commit", "flush-rename", "flush-file", "flushed", "final-flush":
		default:
			return nil, fmt.Errorf("%s=%q: unknown point %q", EnvFault, spec, parts[1])
		}
		n := 1
		if len(parts) == 3 {
			if n, err = strconv.Atoi(parts[2]); err != nil || n < 1 {
				return nil, fmt.Errorf("%s=%q: count %q", EnvFault, spec, parts[2])
			}
		}
		if r == rank {
			f.at[parts[1]] = n
		}
	}
	if len(f.at) == 0 {
		return nil, nil
	}
	return f, nil
}

// hit kills the process when point is reached for the configured time.
func (f *faults) hit(point string) {
	if f == nil {
		return
	}
	n, ok := f.at[point]
	if !ok {
		return
	}
	f.mu.Lock()
	f.count[point]++
	c := f.count[point]
	f.mu.Unlock()
	if c == n {
		fmt.Fprintf(os.Stderr, "fault injection: SIGKILL at %s #%d\n", point, n)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
