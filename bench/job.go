package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// jobArgs is one `cutpoint run` of heat2d.
type jobArgs struct {
	Ranks        int
	Size         int // heat2d tile edge per rank
	Steps        int64
	Interval     time.Duration
	EverySteps   int64
	StopTheWorld bool
	Kill         string // R@S
	Codec        string
	Device       string
	StoreIO      string // "": cutpoint run's default
	Hash         string // "": cutpoint run's default
	Frozen       float64
	Params       int64 // heat2d --params-size, bytes per rank (with Frozen; 0: the tile's)
	MaxStaging   int64 // --max-staging, bytes (0: no bound)
	Force        bool  // past the pre-checks (more ranks than cores)
}

// jobRun is what one run left: its files and its wall time.
type jobRun struct {
	args  jobArgs
	wall  time.Duration
	run   jobstats.Run
	ranks []jobstats.Rank
	// reused and chunks count the last committed cut's chunks, and of
	// them those referenced from an older cut (0, 0 without cuts).
	reused, chunks int
}

// heatSize is the tile edge that gives about total bytes of state over
// ranks ranks (a tile of n cells per edge holds (n+2)^2 float64 with its
// ghost ring).
func heatSize(total int64, ranks int) int {
	n := int(math.Sqrt(float64(total)/float64(ranks)/8)) - 2
	return max(n, 8)
}

// heatState is the state bytes of ranks tiles of edge size.
func heatState(size, ranks int) int64 { return int64(ranks) * int64(size+2) * int64(size+2) * 8 }

// runJob runs `cutpoint run` and reads its stats files.
func (h *harness) runJob(ctx context.Context, a jobArgs) (jobRun, error) {
	dir := h.scratchDir("job")
	defer os.RemoveAll(dir)
	store, stats := filepath.Join(dir, "store"), filepath.Join(dir, "stats")
	args := []string{"run", "--store", store, "--stats-dir", stats, "--ranks", strconv.Itoa(a.Ranks),
		"--size", strconv.Itoa(a.Size), "--steps", strconv.FormatInt(a.Steps, 10),
		"--interval", a.Interval.String(), "--every-steps", strconv.FormatInt(a.EverySteps, 10),
		"--codec", a.Codec, "--device", a.Device, "--progress", "never", "--log-level", "warn"}
	if a.StopTheWorld {
		args = append(args, "--stop-the-world")
	}
	if a.StoreIO != "" {
		args = append(args, "--store-io", a.StoreIO)
	}
	if a.Hash != "" {
		args = append(args, "--hash", a.Hash)
	}
	if a.Kill != "" {
		args = append(args, "--kill", a.Kill)
	}
	if a.Frozen > 0 {
		args = append(args, "--frozen", strconv.FormatFloat(a.Frozen, 'g', -1, 64))
	}
	if a.Params > 0 {
		args = append(args, "--params-size", strconv.FormatInt(a.Params, 10))
	}
	if a.MaxStaging > 0 {
		args = append(args, "--max-staging", strconv.FormatInt(a.MaxStaging, 10))
	}
	if a.Force {
		args = append(args, "--force")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return jobRun{}, err
	}
	logName := filepath.Join(dir, "run.log")
	logf, err := os.Create(logName)
	if err != nil {
		return jobRun{}, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, h.exe, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// No cutpoint.yaml or CUTPOINT_* of the caller may change the runs.
	cmd.Env = cleanEnv()
	t0 := time.Now()
	err = cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		tail, _ := os.ReadFile(logName)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return jobRun{}, fmt.Errorf("cutpoint %v: %w\n%s", args, err, tail)
	}
	run, ranks, err := jobstats.ReadDir(stats)
	if err != nil {
		return jobRun{}, err
	}
	j := jobRun{args: a, wall: wall, run: run, ranks: ranks}
	if n := len(run.Cuts); n > 0 {
		if j.reused, j.chunks, err = inspectReuse(ctx, store, run.Job, run.Cuts[n-1].Epoch); err != nil {
			return j, fmt.Errorf("inspect the last cut: %w", err)
		}
	}
	return j, nil
}

// inspectReuse counts the chunks of every buffer of a committed cut, and
// of them those its shards reference from older cuts.
func inspectReuse(ctx context.Context, dir, job string, epoch uint64) (reused, chunks int, err error) {
	st, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	d, err := st.Inspect(ctx, job, epoch)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range d.Ranks {
		if r.Err != nil {
			return 0, 0, r.Err
		}
		for _, b := range r.Buffers {
			reused += b.ReusedChunks
			chunks += b.Chunks
		}
	}
	return reused, chunks, nil
}

// reuse is the fraction of the last cut's chunks that were reused; NaN
// without cuts.
func (j jobRun) reuse() float64 {
	if j.chunks == 0 {
		return math.NaN()
	}
	return float64(j.reused) / float64(j.chunks)
}

// period is the mean time between the starts of consecutive cuts (the
// coordinator's cut start is the commit minus the cut's request→commit
// time), seconds; NaN with fewer than two cuts.
func (j jobRun) period() float64 {
	c := j.run.Cuts
	if len(c) < 2 {
		return math.NaN()
	}
	first := c[0].CommittedNs - c[0].TookNs
	last := c[len(c)-1].CommittedNs - c[len(c)-1].TookNs
	return float64(last-first) / 1e9 / float64(len(c)-1)
}

// cpuCores is the launcher's and the reaped ranks' CPU time over the
// run's wall time.
func (j jobRun) cpuCores() (launcher, ranks float64) {
	w := j.wall.Seconds()
	if w <= 0 {
		return math.NaN(), math.NaN()
	}
	return float64(j.run.Self.UserNs+j.run.Self.SysNs) / 1e9 / w, float64(j.run.Children.UserNs+j.run.Children.SysNs) / 1e9 / w
}

// cleanEnv is the environment without CUTPOINT_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) >= 9 && kv[:9] == "CUTPOINT_" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// stepRate is the job's steady rate in steps per second: the slowest
// rank's, from its first to its last SafePoint after its last (re)start.
func (j jobRun) stepRate() float64 {
	rate := math.Inf(1)
	for _, r := range j.ranks {
		if r.LastAtNs <= r.FirstAtNs || r.LastStep <= r.FirstStep {
			continue
		}
		rate = min(rate, float64(r.LastStep-r.FirstStep)/(float64(r.LastAtNs-r.FirstAtNs)/1e9))
	}
	if math.IsInf(rate, 1) {
		return math.NaN()
	}
	return rate
}

// stalls are the app-visible durations of every cut on every rank, ms.
func (j jobRun) stalls() []float64 {
	var out []float64
	for _, r := range j.ranks {
		for _, c := range r.CaptureStall {
			out = append(out, float64(c.StallNs)/1e6)
		}
	}
	return out
}

// captureToCommit is, per committed cut, the time from the last rank's
// capture to the commit, ms.
func (j jobRun) captureToCommit() (afterCapture, afterRequest []float64) {
	for _, c := range j.run.Cuts {
		last := int64(0)
		n := 0
		for _, r := range j.ranks {
			for _, s := range r.CaptureStall {
				if s.Step == c.Step && s.AtNs > last {
					last = s.AtNs
				}
				if s.Step == c.Step {
					n++
				}
			}
		}
		if n == j.args.Ranks && last > 0 && c.CommittedNs > last {
			afterCapture = append(afterCapture, float64(c.CommittedNs-last)/1e6)
		}
		afterRequest = append(afterRequest, float64(c.TookNs)/1e6)
	}
	return afterCapture, afterRequest
}

// captureCopies is every rank's mean capture copy per cut, ms.
func (j jobRun) captureCopies() []float64 {
	var out []float64
	for _, r := range j.ranks {
		if r.Captures > 0 {
			out = append(out, float64(r.CaptureNs)/float64(r.Captures)/1e6)
		}
	}
	return out
}

// streamTimes is every rank's mean time per cut that its captures held
// the device's stream (CUDA, timed by events: the part of the stall the
// SafePoint does not include), ms; empty on the CPU.
func (j jobRun) streamTimes() []float64 {
	var out []float64
	for _, r := range j.ranks {
		if r.StreamCuts > 0 {
			out = append(out, float64(r.StreamNs)/float64(r.StreamCuts)/1e6)
		}
	}
	return out
}

// holds is every rank's mean hold per cut (the runtime's HoldNs / Holds),
// ms.
func (j jobRun) holds() []float64 {
	var out []float64
	for _, r := range j.ranks {
		if r.Holds > 0 {
			out = append(out, float64(r.HoldNs)/float64(r.Holds)/1e6)
		}
	}
	return out
}

// maxRSS is the largest rank process's peak RSS.
func (j jobRun) maxRSS() float64 {
	var m int64
	for _, r := range j.ranks {
		m = max(m, r.Usage.MaxRSSBytes)
	}
	return float64(m)
}

// recovery measures the first kill: from the SIGKILL to the moment every
// rank computed from the restored cut (a survivor's SafePoint returning the
// cut's step, the replacement's Start returning), and the slowest rank's
// read of the cut.
// recoveryTimes are the phases of one recovery, in seconds.
type recoveryTimes struct {
	total   float64 // kill to every rank computing again
	restore float64 // the slowest rank's read of the cut
	coord   float64 // coordinator: loss detected to every rank told to go
	respawn float64 // kill to the replacement's rank command started
	startup float64 // the replacement's command start to its Start returning
}

func (j jobRun) recovery() (recoveryTimes, error) {
	var t recoveryTimes
	if len(j.run.Kills) == 0 {
		return t, errors.New("no kill recorded (the job ended before the kill step?)")
	}
	kill := j.run.Kills[0].AtNs
	resumed := map[int]int64{}
	var respawned, replStart int64
	for _, r := range j.ranks {
		for _, e := range r.Resumes {
			if e.AtNs > kill && (resumed[r.Rank] == 0 || e.AtNs < resumed[r.Rank]) {
				resumed[r.Rank] = e.AtNs
			}
		}
		if r.Spawn > 1 || r.Rollbacks > 0 {
			t.restore = max(t.restore, float64(r.RestoreNs)/1e9)
		}
		if r.Spawn > 1 && r.StartNs > kill && (respawned == 0 || r.StartNs < respawned) {
			respawned = r.StartNs
			replStart = 0
			for _, e := range r.Resumes {
				if !e.Rollback {
					replStart = e.AtNs
					break
				}
			}
		}
	}
	if len(resumed) != j.args.Ranks {
		return t, fmt.Errorf("%d of %d ranks resumed after the kill (stats files: %d)", len(resumed), j.args.Ranks, len(j.ranks))
	}
	t.total = float64(slices.Max(mapValues(resumed))-kill) / 1e9
	if len(j.run.Recoveries) > 0 && j.run.Recoveries[0].EndNs > 0 {
		t.coord = float64(j.run.Recoveries[0].EndNs-j.run.Recoveries[0].StartNs) / 1e9
	}
	if respawned > 0 {
		t.respawn = float64(respawned-kill) / 1e9
		if replStart > respawned {
			t.startup = float64(replStart-respawned) / 1e9
		}
	}
	return t, nil
}

func mapValues(m map[int]int64) []int64 {
	out := make([]int64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
