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
	// heat2dFieldTiles: a heat2d rank holds two tiles of its field and
	// the initial grid while it starts; cutpoint adds a cut's staging
	// copy and the copy of the initial state kept until the first commit
	// (heat2dMem.bytes).
	heat2dFieldTiles = 3
)

// heat2dMem is what a heat2d rank keeps in memory: its tile edge, the
// parameter buffer (--frozen, --params-size) and the staging bound
// (--max-staging, 0: none).
type heat2dMem struct {
	size       int
	params     int64
	maxStaging int64
}

// bytes estimates one rank's memory: its field's tiles, the parameters,
// and for every buffer that fits in the staging bound (protected in that
// order, as the rank runtime stages them) a staging copy and an initial
// copy.
func (h heat2dMem) bytes() (state, total int64) {
	tile := heat2d.NewLayout(0, 1, h.size).Tile.Bytes()
	var staged int64
	for _, b := range []int64{tile, h.params} {
		if h.maxStaging == 0 || staged+b <= h.maxStaging {
			staged += b
		}
	}
	return tile + h.params, heat2dFieldTiles*tile + h.params + 2*staged
}

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

// checkResources compares a job of ranks local processes (heat2d ranks
// as h says when h.size > 0) with the machine.
func checkResources(ranks int, h heat2dMem, res resources) precheck {
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
	if h.size > 0 && res.memAvail > 0 {
		state, rankMem := h.bytes()
		total := uint64(rankMem) * uint64(ranks)
		msg := fmt.Sprintf("heat2d --size %d: %s of state per rank, about %s in all for %d ranks (tiles, start-up grid, parameters, a cut's staging copy and the initial copy kept until the first commit, of what fits in --max-staging); %s of memory available",
			h.size, humanBytes(state), humanBytes(int64(total)), ranks, humanBytes(int64(res.memAvail)))
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
