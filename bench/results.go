package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ResultsVersion is the version of results.json.
const ResultsVersion = 1

// Stat summarizes repeated measurements of one figure: the median with the
// smallest and largest value and how many there were. A single
// measurement has Min == Median == Max and N == 1.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// statOf summarizes xs, ignoring NaNs; nil when nothing is left.
func statOf(xs ...float64) *Stat {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return nil
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return &Stat{Median: med, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// one is a single measurement.
func one(x float64) *Stat { return statOf(x) }

// med is the median of s, NaN when s is nil.
func (s *Stat) med() float64 {
	if s == nil {
		return math.NaN()
	}
	return s.Median
}

// Roles of records.
const (
	RoleScenario = "scenario" // cutpoint itself
	RoleLimit    = "limit"    // what the machine can do at best (memcpy, disk)
	RoleBaseline = "baseline" // what a user would otherwise do, or cutpoint in a classic mode
)

// Families of records.
const (
	FamilyStore = "store" // in-process: capture, shard writers, commit, restore
	FamilyJob   = "job"   // real `cutpoint run` processes running heat2d
)

// Record is one row of results.json: a scenario or a reference row. The
// unit of every figure is in its name; a figure that does not apply is
// absent.
type Record struct {
	Name   string `json:"name"`
	Family string `json:"family"`
	Role   string `json:"role"`
	// What the row measures, e.g. "memcpy", "write+fsync", "zstd CLI",
	// "single-threaded", "stop-the-world", "cut", "incremental cut",
	// "overhead", "recovery".
	What string `json:"what"`

	// Parameters.
	Kind            string  `json:"kind,omitempty"` // data kind
	StateBytes      int64   `json:"state_bytes"`    // total over ranks
	Ranks           int     `json:"ranks,omitempty"`
	Codec           string  `json:"codec,omitempty"`
	Shuffle         *bool   `json:"shuffle,omitempty"`
	ChangedFraction float64 `json:"changed_fraction,omitempty"` // of chunks, between two cuts (incremental)
	Device          string  `json:"device,omitempty"`
	Workers         int     `json:"workers,omitempty"`
	IntervalS       float64 `json:"interval_s,omitempty"` // between cuts (job); 0: no cuts
	StopTheWorld    bool    `json:"stop_the_world,omitempty"`
	StoreIO         string  `json:"store_io,omitempty"` // job: "buffered" when packs went through the page cache
	Hash            string  `json:"hash,omitempty"`     // job: the store's chunk hash when not the default
	Reps            int     `json:"reps,omitempty"`

	// Cuts.
	BlockingMs           *Stat `json:"blocking_per_cut_ms,omitempty"`      // app-visible, per rank and cut (max over ranks in the store family)
	CaptureCopyMs        *Stat `json:"capture_copy_ms,omitempty"`          // job: the capture's copy alone (the runtime's CaptureTime / Captures), per rank and run
	StreamMs             *Stat `json:"stream_per_cut_ms,omitempty"`        // job on a GPU: the captures' time on the job's stream per cut (CUDA events), per rank and run
	MemcpyMs             *Stat `json:"memcpy_ms,omitempty"`                // the same state copied the same way (store family), or the limit row
	BlockingVsMemcpy     *Stat `json:"blocking_vs_memcpy,omitempty"`       // ratio
	DurableMs            *Stat `json:"durable_ms,omitempty"`               // capture start to every shard durable
	CommittedMs          *Stat `json:"committed_ms,omitempty"`             // capture start (store) or the last rank's capture (job) to the manifest renamed
	CutRequestToCommitMs *Stat `json:"cut_request_to_commit_ms,omitempty"` // job: coordinator's cut start to commit
	RawGBps              *Stat `json:"raw_gb_per_s,omitempty"`             // raw state bytes / durable time (1 GB = 1e9 bytes)
	StoredGBps           *Stat `json:"stored_gb_per_s,omitempty"`          // bytes written / durable time
	Ratio                *Stat `json:"ratio,omitempty"`                    // raw / stored
	WriteMBPerCPUs       *Stat `json:"write_mb_per_cpu_s,omitempty"`       // raw MB per CPU-second of the writing process(es)
	FullCutDurableMs     *Stat `json:"full_cut_durable_ms,omitempty"`      // incremental rows: the full cut before it
	SpeedupVsFull        *Stat `json:"speedup_vs_full,omitempty"`          // incremental rows: full durable / incremental durable
	RestoreGBps          *Stat `json:"restore_gb_per_s,omitempty"`         // raw bytes / restore time (page cache dropped for the packs)
	PeakInflightBytes    *Stat `json:"peak_inflight_bytes,omitempty"`      // writer pipeline, max over ranks
	PeakRSSExtraBytes    *Stat `json:"peak_rss_extra_bytes,omitempty"`     // store: process peak RSS during the cut above its RSS before
	PeakRSSBytes         *Stat `json:"peak_rss_bytes,omitempty"`           // job: largest rank process; store: the process
	LauncherRSSBytes     *Stat `json:"launcher_peak_rss_bytes,omitempty"`  // job: cutpoint run (coordinator, NATS)

	// Comparisons with the reference rows of the same state.
	VsDiskLimit         *Stat `json:"raw_vs_disk_limit,omitempty"`          // raw GB/s / min(disk write+fsync x ratio, engine on all cores without storage)
	VsZstdCLI           *Stat `json:"raw_vs_zstd_cli,omitempty"`            // raw GB/s / the zstd CLI's
	RestoreVsWrite      *Stat `json:"restore_vs_write,omitempty"`           // restore GB/s / raw GB/s
	StopWorldBlockingMs *Stat `json:"stop_the_world_blocking_ms,omitempty"` // store: what a rank would wait if it waited until durable

	// Job runs.
	StepsPerS             *Stat `json:"steps_per_s,omitempty"`            // slowest rank, steady window
	OverheadPct           *Stat `json:"overhead_pct,omitempty"`           // step time vs the run without cuts, paired by repetition
	WallOverheadPct       *Stat `json:"wall_overhead_pct,omitempty"`      // whole `cutpoint run` wall time vs without cuts
	Cuts                  *Stat `json:"cuts,omitempty"`                   // committed per run
	RecoveryS             *Stat `json:"recovery_s,omitempty"`             // SIGKILL to every rank computing again
	CoordRecoveryS        *Stat `json:"coordinator_recovery_s,omitempty"` // coordinator: loss detected to all told to run
	RestoreS              *Stat `json:"restore_s,omitempty"`              // slowest rank's read of the cut during the recovery
	RecoveryMinusRestoreS *Stat `json:"recovery_minus_restore_s,omitempty"`
	RespawnS              *Stat `json:"respawn_s,omitempty"`             // kill to the replacement rank's command started
	ReplacementStartS     *Stat `json:"replacement_startup_s,omitempty"` // the replacement's command start to computing (set-up, restore, waiting for the others)
	WallS                 *Stat `json:"wall_s,omitempty"`

	// Rank transport (RawGBps is the transport's).
	RawNATSGBps     *Stat `json:"raw_nats_gb_per_s,omitempty"`
	VsRawNATS       *Stat `json:"vs_raw_nats,omitempty"`
	OneWayUs        *Stat `json:"one_way_latency_us,omitempty"`
	RawNATSOneWayUs *Stat `json:"raw_nats_one_way_latency_us,omitempty"`
	AddedLatencyUs  *Stat `json:"added_latency_us,omitempty"`
	// VsRawNATSCI is the interval of the mean of the per-sample ratios
	// (transport and raw NATS measured in turn, same pacing).
	VsRawNATSCI *Interval `json:"vs_raw_nats_ci,omitempty"`

	// Statistics of a paired comparison: the per-pair values themselves
	// (overhead %, transport ratio) so that anyone can recompute the
	// interval, and the interval of their mean.
	Samples    []float64 `json:"samples,omitempty"`
	OverheadCI *Interval `json:"overhead_ci_pct,omitempty"`
	// PeriodS is the real time between the starts of consecutive cuts
	// (the coordinator counts --interval from the previous commit).
	PeriodS *Stat `json:"cut_period_s,omitempty"`
	// IntervalArgS is the --interval the runs were given to get a period
	// of IntervalS (the harness subtracts the request→commit time).
	IntervalArgS *Stat `json:"interval_arg_s,omitempty"`
	// Memory: the largest rank's peak RSS with cuts minus without, per
	// byte of one rank's state, paired by repetition.
	RSSAddedPerStateByte *Stat `json:"rss_added_per_state_byte,omitempty"`
	// Memory runs (What "memory"): the staging bound the runs had
	// (--max-staging), the largest rank's peak RSS of their no-cut runs,
	// and per rank and cut the time the job was held at its SafePoint
	// until the writer had read the buffers it reads in place.
	MaxStagingBytes int64 `json:"max_staging_bytes,omitempty"`
	NoCutRSSBytes   *Stat `json:"no_cut_peak_rss_bytes,omitempty"`
	HoldMs          *Stat `json:"hold_per_cut_ms,omitempty"`
	// ReusedFraction: chunks of the last cut's shards referenced from an
	// older cut instead of written (incremental reuse), per run.
	ReusedFraction *Stat `json:"reused_chunk_fraction,omitempty"`
	// Scale: CPU of the launcher (coordinator and its embedded NATS
	// server) and of all rank processes, in cores (CPU-seconds per second
	// of the run).
	LauncherCPUCores *Stat `json:"launcher_cpu_cores,omitempty"`
	RanksCPUCores    *Stat `json:"ranks_cpu_cores,omitempty"`
	// LimitExceeded: a scenario measured above this limit row, or (on a
	// scenario) above the limit it is compared with: the limit is not a
	// ceiling, and ratios against it are wrong.
	LimitExceeded bool `json:"limit_exceeded,omitempty"`

	Note string `json:"note,omitempty"`
}

// Skip is something the run did not measure, and why.
type Skip struct {
	What string `json:"what"`
	Why  string `json:"why"`
}

// Goal is one of the issues' speed goals, compared with what this run
// measured. Met is nil when this run cannot tell.
type Goal struct {
	Issue    int    `json:"issue"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"`
	// Verdict: met, not met, inconclusive (the measurement cannot settle
	// it) or not measured.
	Verdict string `json:"verdict,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Hostname   string     `json:"hostname"`
	CPUs       int        `json:"cpus"`
	CPUModel   string     `json:"cpu_model"`
	MemBytes   int64      `json:"mem_bytes"`
	Kernel     string     `json:"kernel"`
	OS         string     `json:"os"`
	Go         string     `json:"go"`
	GOMAXPROCS int        `json:"gomaxprocs"`
	ScratchDir string     `json:"scratch_dir"`
	ScratchFS  string     `json:"scratch_fs"`
	ZstdCLI    string     `json:"zstd_cli,omitempty"`
	Devices    []string   `json:"devices"`
	LoadStart  [3]float64 `json:"load_avg_start"`
	LoadEnd    [3]float64 `json:"load_avg_end"`
	LoadMax    float64    `json:"load_avg_1m_max"`
}

// Results is results.json.
type Results struct {
	Version int    `json:"version"`
	Command string `json:"command"`
	Mode    string `json:"mode"` // quick | full
	// Seed orders the job variants within each repetition and seeds the
	// bootstrap intervals; the same seed gives the same order.
	Seed uint64 `json:"seed"`
	// Commit is the VCS revision the binary was built from ("" unknown;
	// "+dirty" when the tree had changes).
	Commit    string    `json:"commit,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	DurationS float64   `json:"duration_s"`
	Machine   Machine   `json:"machine"`
	Records   []Record  `json:"records"`
	Goals     []Goal    `json:"goals"`
	Skipped   []Skip    `json:"skipped"`
	Plots     []string  `json:"plots"` // file names in the output folder
}

// ErrResults: a results.json that is not one of this version.
var ErrResults = errors.New("not a cutpoint bench results file of this version")

// maxResultsSize bounds ReadResults.
const maxResultsSize = 64 << 20

// ReadResults reads a results.json written by Run.
func ReadResults(path string) (*Results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxResultsSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return DecodeResults(b)
}

// DecodeResults parses results.json bytes.
func DecodeResults(b []byte) (*Results, error) {
	if len(b) > maxResultsSize {
		return nil, fmt.Errorf("larger than %d bytes: %w", maxResultsSize, ErrResults)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResults, err)
	}
	if r.Version != ResultsVersion {
		return nil, fmt.Errorf("version %d: %w", r.Version, ErrResults)
	}
	return &r, nil
}

func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
}

func boolp(b bool) *bool { return &b }
