// Package jobstats is the file format of the per-process figures a job
// writes when `cutpoint run --stats-dir DIR` asks for them: one
// rank-<R>-spawn-<G>.json per rank process that exits by itself (a killed
// process writes nothing) and one run.json from the launcher. The
// benchmark harness (bench) reads them; people may too.
//
// Times are wall-clock Unix nanoseconds, so that the launcher's and the
// ranks' events (a kill, a rank computing again) compare on one machine.
package jobstats

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvDir is the environment variable through which the launcher tells its
// rank processes where to write their files.
const EnvDir = "CUTPOINT_STATS_DIR"

// Version of the files; readers refuse another.
const Version = 1

// MaxFileSize bounds what Read* accept: the lists below are capped far
// under it.
const MaxFileSize = 16 << 20

// maxEvents caps every list a file holds (a long job keeps the last ones).
const maxEvents = 10000

// ErrFormat: a file is not a stats file of this version.
var ErrFormat = errors.New("not a cutpoint stats file of this version")

// Usage is what getrusage says about a process.
type Usage struct {
	MaxRSSBytes int64 `json:"max_rss_bytes"`
	UserNs      int64 `json:"user_ns"`
	SysNs       int64 `json:"sys_ns"`
}

// SelfUsage returns the calling process's usage; children, that of its
// waited-for descendants (max RSS: the largest one). A process's own peak
// RSS is read from /proc/self/status (VmHWM) where it exists, because
// getrusage's keeps the peak of the process image before exec, i.e. of the
// parent that forked it.
func SelfUsage(children bool) Usage {
	who := syscall.RUSAGE_SELF
	if children {
		who = syscall.RUSAGE_CHILDREN
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return Usage{}
	}
	u := Usage{MaxRSSBytes: int64(ru.Maxrss) * 1024, UserNs: ru.Utime.Nano(), SysNs: ru.Stime.Nano()}
	if !children {
		if hwm, ok := vmHWM(); ok {
			u.MaxRSSBytes = hwm
		}
	}
	return u
}

// vmHWM reads the peak resident set of this process image.
func vmHWM() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, false
			}
			return n * 1024, true
		}
	}
	return 0, false
}

// Capture is one cut as a rank's job saw it: the SafePoint that captured.
type Capture struct {
	Step    int64 `json:"step"`
	AtNs    int64 `json:"at_unix_ns"` // when SafePoint returned
	StallNs int64 `json:"stall_ns"`   // how long that SafePoint blocked the job
}

// Resume is a moment the rank's job started computing from a state: the
// start (Start returned) or a rollback (SafePoint returned an older step).
type Resume struct {
	Step     int64 `json:"step"`
	AtNs     int64 `json:"at_unix_ns"`
	Rollback bool  `json:"rollback"`
}

// Rank is one rank process's file.
type Rank struct {
	Version int    `json:"version"`
	Rank    int    `json:"rank"`
	Spawn   uint64 `json:"spawn"`
	Pid     int    `json:"pid"`
	Device  string `json:"device"`
	// StartNs is when the rank command started (its process, give or take
	// the runtime's start-up).
	StartNs int64 `json:"start_unix_ns"`

	// From the rank runtime (rank.Stats).
	Captures  int   `json:"captures"`
	CaptureNs int64 `json:"capture_ns"` // capture copies alone
	// Holds, HoldNs: the cuts that held the job at its SafePoint until
	// the writer had read the buffers it reads in place (max staging),
	// and how long they held it (part of the capture stalls);
	// InPlaceBytes: the bytes those cuts read in place.
	Holds        int   `json:"holds,omitempty"`
	HoldNs       int64 `json:"hold_ns,omitempty"`
	InPlaceBytes int64 `json:"in_place_bytes,omitempty"`
	// StreamCuts, StreamNs: the shards whose captures the device timed on
	// the job's stream (CUDA) and that time, which the SafePoint does not
	// include.
	StreamCuts    int   `json:"stream_cuts,omitempty"`
	StreamNs      int64 `json:"stream_ns,omitempty"`
	Rollbacks     int   `json:"rollbacks"`
	RestoreNs     int64 `json:"restore_ns"` // reading cuts back, all restores
	ShardsWritten int   `json:"shards_written"`
	ShardBytes    int64 `json:"shard_bytes"`
	ShardStored   int64 `json:"shard_stored_bytes"`
	LastShardNs   int64 `json:"last_shard_ns"`
	// RestoreBytes: stored bytes the restores read, by level ("local",
	// "partner", "shared"; multi-level cuts).
	RestoreBytes map[string]int64 `json:"restore_bytes,omitempty"`
	// DamagedCopies: copies the restores found damaged and passed over
	// for the next level, by the level that held them.
	DamagedCopies map[string]int64 `json:"damaged_copies,omitempty"`
	PartnerBytes  int64            `json:"partner_bytes,omitempty"` // copied to the partner's node-local store
	FlushBytes    int64            `json:"flush_bytes,omitempty"`   // copied from node-local to the shared store
	// FallbackBytes: the part of FlushBytes sent before the shard was
	// reported because no other host took a copy of it.
	FallbackBytes int64 `json:"fallback_bytes,omitempty"`
	// PartnerChanges: times the partner copies moved to another host.
	PartnerChanges int64 `json:"partner_changes,omitempty"`
	// ControlForged: control messages dropped for lacking the
	// coordinator's signature.
	ControlForged int64 `json:"control_forged,omitempty"`
	// FragmentMoves: erasure fragments that went to another host than
	// the shard before's (one per fragment index that changed host).
	FragmentMoves int64 `json:"fragment_moves,omitempty"`

	// From the job's side of the SafePoint calls.
	SafePoints   int64     `json:"safe_points"`
	SafePointNs  int64     `json:"safe_point_ns"` // all SafePoint calls, stalls included
	FirstStep    int64     `json:"first_step"`    // first SafePoint after the last resume
	FirstAtNs    int64     `json:"first_at_unix_ns"`
	LastStep     int64     `json:"last_step"`
	LastAtNs     int64     `json:"last_at_unix_ns"`
	CaptureStall []Capture `json:"capture_stalls"`
	Resumes      []Resume  `json:"resumes"`

	Usage Usage  `json:"usage"`
	Error string `json:"error,omitempty"` // how the job ended, if not cleanly
}

// Recorder builds a Rank from the job's SafePoint calls. SafePoint is
// called from one goroutine, but the recorder is locked anyway so that the
// file may be written from another.
type Recorder struct {
	mu sync.Mutex
	r  Rank
}

// NewRecorder starts the record of rank r's process spawned at g, whose
// command started at start.
func NewRecorder(rank int, spawn uint64, device string, start time.Time) *Recorder {
	return &Recorder{r: Rank{Version: Version, Rank: rank, Spawn: spawn, Pid: os.Getpid(), Device: device, StartNs: start.UnixNano()}}
}

func appendCapped[T any](s []T, v T) []T {
	if len(s) >= maxEvents {
		s = append(s[:0], s[1:]...)
	}
	return append(s, v)
}

// Started records Start returning step at t.
func (c *Recorder) Started(step int64, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Resumes = appendCapped(c.r.Resumes, Resume{Step: step, AtNs: t.UnixNano()})
	c.r.FirstAtNs = 0
}

// SafePoint records a SafePoint(step) call that returned got after d,
// ending at end; captured tells that it took the rank's part of a cut.
func (c *Recorder) SafePoint(step, got int64, d time.Duration, end time.Time, captured bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.SafePoints++
	c.r.SafePointNs += int64(d)
	if captured {
		c.r.CaptureStall = appendCapped(c.r.CaptureStall, Capture{Step: step, AtNs: end.UnixNano(), StallNs: int64(d)})
	}
	if got != step {
		c.r.Resumes = appendCapped(c.r.Resumes, Resume{Step: got, AtNs: end.UnixNano(), Rollback: true})
		c.r.FirstAtNs = 0
		return
	}
	if c.r.FirstAtNs == 0 {
		c.r.FirstStep, c.r.FirstAtNs = step, end.UnixNano()
	}
	c.r.LastStep, c.r.LastAtNs = step, end.UnixNano()
}

// Snapshot returns the record with the runtime's counters filled in by
// fill (under the recorder's lock).
func (c *Recorder) Snapshot(fill func(*Rank)) Rank {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.r
	r.CaptureStall = append([]Capture(nil), c.r.CaptureStall...)
	r.Resumes = append([]Resume(nil), c.r.Resumes...)
	if fill != nil {
		fill(&r)
	}
	return r
}

// RankFileName is the file of rank r's process spawned at g.
func RankFileName(rank int, spawn uint64) string {
	return fmt.Sprintf("rank-%d-spawn-%d.json", rank, spawn)
}

// RunFileName is the launcher's file.
const RunFileName = "run.json"

// Cut is a committed cut as the launcher saw it.
type Cut struct {
	Epoch       uint64 `json:"epoch"`
	Step        int64  `json:"step"`
	RawBytes    uint64 `json:"raw_bytes"`
	NewBytes    uint64 `json:"new_bytes"` // stored bytes the cut wrote
	TookNs      int64  `json:"took_ns"`   // from the cut's start (request) to its commit
	CommittedNs int64  `json:"committed_at_unix_ns"`
}

// Kill is a fault the launcher injected (--kill).
type Kill struct {
	Rank int   `json:"rank"`
	Step int64 `json:"step"`
	AtNs int64 `json:"at_unix_ns"`
}

// Recovery is one recovery: from the coordinator's start of it (a loss
// detected) to all ranks told to run again.
type Recovery struct {
	StartNs int64 `json:"start_unix_ns"`
	EndNs   int64 `json:"end_unix_ns"`
}

// Run is the launcher's file.
type Run struct {
	Version    int        `json:"version"`
	Job        string     `json:"job"`
	Ranks      int        `json:"ranks"`
	StartNs    int64      `json:"start_unix_ns"`   // the command started
	RunningNs  int64      `json:"running_unix_ns"` // all ranks first running
	EndNs      int64      `json:"end_unix_ns"`
	Outcome    string     `json:"outcome"`
	Cuts       []Cut      `json:"cuts"`
	Kills      []Kill     `json:"kills"`
	Recoveries []Recovery `json:"recoveries"`
	// Self is the launcher process (coordinator and embedded NATS);
	// Children the largest rank process it reaped and their CPU time.
	Self     Usage `json:"self_usage"`
	Children Usage `json:"children_usage"`
}

// WriteFile writes v as JSON to dir/name through a temporary file and a
// rename, so a reader never sees half a file.
func WriteFile(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("stats: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("stats: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

// readBounded reads a whole file of at most MaxFileSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, MaxFileSize, ErrFormat)
	}
	return b, nil
}

// DecodeRank parses a rank file's bytes.
func DecodeRank(b []byte) (Rank, error) {
	var r Rank
	if len(b) > MaxFileSize {
		return r, fmt.Errorf("larger than %d bytes: %w", MaxFileSize, ErrFormat)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Rank{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if r.Version != Version {
		return Rank{}, fmt.Errorf("version %d: %w", r.Version, ErrFormat)
	}
	if r.Rank < 0 || len(r.CaptureStall) > maxEvents || len(r.Resumes) > maxEvents {
		return Rank{}, fmt.Errorf("rank %d, %d captures, %d resumes: %w", r.Rank, len(r.CaptureStall), len(r.Resumes), ErrFormat)
	}
	if len(r.RestoreBytes) > 8 {
		return Rank{}, fmt.Errorf("restore bytes of %d levels: %w", len(r.RestoreBytes), ErrFormat)
	}
	if len(r.DamagedCopies) > 8 {
		return Rank{}, fmt.Errorf("damaged copies of %d levels: %w", len(r.DamagedCopies), ErrFormat)
	}
	return r, nil
}

// DecodeRun parses a run file's bytes.
func DecodeRun(b []byte) (Run, error) {
	var r Run
	if len(b) > MaxFileSize {
		return r, fmt.Errorf("larger than %d bytes: %w", MaxFileSize, ErrFormat)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Run{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if r.Version != Version {
		return Run{}, fmt.Errorf("version %d: %w", r.Version, ErrFormat)
	}
	if r.Ranks < 1 || len(r.Cuts) > maxEvents || len(r.Kills) > maxEvents || len(r.Recoveries) > maxEvents {
		return Run{}, fmt.Errorf("%d ranks, %d cuts, %d kills, %d recoveries: %w", r.Ranks, len(r.Cuts), len(r.Kills), len(r.Recoveries), ErrFormat)
	}
	return r, nil
}

// ReadDir reads the launcher's file and every rank file in dir.
func ReadDir(dir string) (Run, []Rank, error) {
	b, err := readBounded(filepath.Join(dir, RunFileName))
	if err != nil {
		return Run{}, nil, err
	}
	run, err := DecodeRun(b)
	if err != nil {
		return Run{}, nil, fmt.Errorf("%s: %w", filepath.Join(dir, RunFileName), err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "rank-*-spawn-*.json"))
	if err != nil {
		return Run{}, nil, err
	}
	var ranks []Rank
	for _, n := range names {
		b, err := readBounded(n)
		if err != nil {
			return Run{}, nil, err
		}
		r, err := DecodeRank(b)
		if err != nil {
			return Run{}, nil, fmt.Errorf("%s: %w", n, err)
		}
		ranks = append(ranks, r)
	}
	return run, ranks, nil
}

// RunRecorder builds the launcher's Run from what the coordinator's driver
// reports; its methods may be called from several goroutines.
type RunRecorder struct {
	mu sync.Mutex
	r  Run
}

// NewRunRecorder starts the record of a job of ranks ranks at start.
func NewRunRecorder(job string, ranks int, start time.Time) *RunRecorder {
	return &RunRecorder{r: Run{Version: Version, Job: job, Ranks: ranks, StartNs: start.UnixNano()}}
}

// Running records that all ranks run; only the first time counts.
func (rr *RunRecorder) Running(t time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.r.RunningNs == 0 {
		rr.r.RunningNs = t.UnixNano()
	}
}

// CutCommitted records a committed cut.
func (rr *RunRecorder) CutCommitted(c Cut) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.r.Cuts = appendCapped(rr.r.Cuts, c)
}

// Killed records an injected SIGKILL.
func (rr *RunRecorder) Killed(rank int, step int64, t time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.r.Kills = appendCapped(rr.r.Kills, Kill{Rank: rank, Step: step, AtNs: t.UnixNano()})
}

// RecoveryStarted and RecoveryFinished bracket a recovery.
func (rr *RunRecorder) RecoveryStarted(t time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.r.Recoveries = appendCapped(rr.r.Recoveries, Recovery{StartNs: t.UnixNano()})
}

// RecoveryFinished closes the latest open recovery.
func (rr *RunRecorder) RecoveryFinished(t time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if n := len(rr.r.Recoveries); n > 0 && rr.r.Recoveries[n-1].EndNs == 0 {
		rr.r.Recoveries[n-1].EndNs = t.UnixNano()
	}
}

// Finish closes the record with the outcome and the processes' usage.
func (rr *RunRecorder) Finish(outcome string, t time.Time) Run {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.r.EndNs = t.UnixNano()
	rr.r.Outcome = outcome
	rr.r.Self = SelfUsage(false)
	rr.r.Children = SelfUsage(true)
	r := rr.r
	r.Cuts = append([]Cut(nil), rr.r.Cuts...)
	r.Kills = append([]Kill(nil), rr.r.Kills...)
	r.Recoveries = append([]Recovery(nil), rr.r.Recoveries...)
	return r
}
