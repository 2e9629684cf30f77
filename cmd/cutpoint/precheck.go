package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cutpoint/cutpoint/internal/heat2d"
	"github.com/cutpoint/cutpoint/internal/launch"
)

// Bounds of the pre-checks. A job past a warning bound runs, slower than it
// could; one past a refusal bound is refused unless --force says otherwise,
// because it would crawl (ranks far beyond the cores), fail to fork
// (RLIMIT_NPROC) or be killed by the OOM killer.
const (
	// ranksPerCoreRefused: more ranks than this per core is refused.
	ranksPerCoreRefused = 16
	// minRanksRefused: below this many ranks, never refused for cores.
	minRanksRefused = 64
	// threadsPerRank is a floor for the threads of one rank process (the
	// Go runtime alone starts several); RLIMIT_NPROC counts threads.
	threadsPerRank = 8
	// heat2dMemFactor: a heat2d rank holds two tiles, the initial grid
	// while it starts and a cut's captured copy: about 4 tiles.
	heat2dMemFactor = 4
)

// resources is what the machine offers; tests fill it by hand.
type resources struct {
	cores    int
	nproc    uint64 // RLIMIT_NPROC soft limit; 0: unlimited or not enforced (root)
	memAvail uint64 // bytes; 0: unknown
}

func machineResources() resources {
	r := resources{cores: runtime.NumCPU()}
	var lim unix.Rlimit
	if os.Geteuid() != 0 && unix.Getrlimit(unix.RLIMIT_NPROC, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
		r.nproc = lim.Cur
	}
	r.memAvail = memAvailable()
	return r
}

// memAvailable is MemAvailable from /proc/meminfo, or less when the
// memory cgroup's limit leaves less; 0 when unknown.
func memAvailable() uint64 {
	var avail uint64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err == nil {
					avail = kb << 10
				}
			}
		}
		f.Close()
	}
	// The launcher's own memory cgroup (v1 or v2, wherever it sits in the
	// hierarchy), which the ranks inherit: its limit is what the OOM
	// killer enforces.
	if lim, used := launch.MemoryLimit(); lim > 0 && lim > used {
		if left := uint64(lim - used); avail == 0 || left < avail {
			avail = left
		}
	}
	return avail
}

// precheck holds what was found: warnings to log, and refusals that
// --force overrides.
type precheck struct {
	warnings []string
	refusals []string
}

// checkResources compares a job of ranks local processes (heat2d tiles of
// edge size when heat2d is true) with the machine.
func checkResources(ranks int, heat2dSize int, res resources) precheck {
	var p precheck
	if res.cores > 0 && ranks > res.cores {
		msg := fmt.Sprintf("--ranks %d on %d cores: %d ranks per core, the ranks take turns on the cores", ranks, res.cores, (ranks+res.cores-1)/res.cores)
		if ranks > max(minRanksRefused, ranksPerCoreRefused*res.cores) {
			p.refusals = append(p.refusals, fmt.Sprintf("%s (more than %d per core)", msg, ranksPerCoreRefused))
		} else {
			p.warnings = append(p.warnings, msg)
		}
	}
	if res.nproc > 0 {
		switch need := uint64(ranks) * threadsPerRank; {
		case uint64(ranks) >= res.nproc:
			p.refusals = append(p.refusals, fmt.Sprintf("--ranks %d: the process limit (RLIMIT_NPROC, ulimit -u) is %d processes and threads", ranks, res.nproc))
		case need > res.nproc:
			p.warnings = append(p.warnings, fmt.Sprintf("--ranks %d need about %d threads (%d per rank); the process limit (RLIMIT_NPROC, ulimit -u) is %d: starting ranks may fail", ranks, need, threadsPerRank, res.nproc))
		}
	}
	if heat2dSize > 0 && res.memAvail > 0 {
		tile := uint64(heat2d.NewLayout(0, 1, heat2dSize).Tile.Bytes())
		total := tile * heat2dMemFactor * uint64(ranks)
		msg := fmt.Sprintf("heat2d --size %d: %s of state per rank, about %s in all for %d ranks (tiles, start-up grid, a cut's copy); %s of memory available",
			heat2dSize, humanBytes(int64(tile)), humanBytes(int64(total)), ranks, humanBytes(int64(res.memAvail)))
		switch {
		case total > res.memAvail:
			p.refusals = append(p.refusals, msg)
		case total > res.memAvail/2:
			p.warnings = append(p.warnings, msg)
		}
	}
	return p
}

// errResources is what a refused pre-check wraps (a usage error, exit 2).
var errResources = errors.New("the job does not fit this machine")

// apply logs the warnings and returns the refusals as one error, or logs
// them as warnings under --force.
func (p precheck) apply(g *GlobalOptions, force bool) error {
	for _, w := range p.warnings {
		g.Logger.Warn("pre-check: " + w)
	}
	if len(p.refusals) == 0 {
		return nil
	}
	if force {
		for _, r := range p.refusals {
			g.Logger.Warn("pre-check (overridden by --force): " + r)
		}
		return nil
	}
	return fmt.Errorf("%w: %s; --force starts it anyway", errResources, strings.Join(p.refusals, "; "))
}
