package main

import (
	"context"
	"os"
	"time"

	"github.com/cutpoint/cutpoint/internal/jobstats"
	"github.com/cutpoint/cutpoint/rank"
)

// loaded is when the library was loaded: the process's start as far as
// the stats file is concerned (a C program has no earlier hook).
var loaded = time.Now()

// newRecorder returns a recorder of the job's side of the safe points when
// the launcher asked for stats files (`cutpoint run --stats-dir`, passed
// down as CUTPOINT_STATS_DIR), so that a C, Fortran or Python job's cut
// stalls are measured exactly as the Go job's are (cmd/cutpoint's
// statsComm); nil otherwise, and then nothing is timed.
func newRecorder(r *rank.Rank) (*jobstats.Recorder, string) {
	dir := os.Getenv(jobstats.EnvDir)
	if dir == "" {
		return nil, ""
	}
	return jobstats.NewRecorder(r.ID(), r.Options().Spawn, "cpu", loaded), dir
}

// start is rank.Start, recorded.
func (h *handle) start() (int64, error) {
	s, err := h.r.Start(context.Background())
	if err == nil && h.rec != nil {
		h.rec.Started(s, time.Now())
	}
	return s, err
}

// safePoint is rank.SafePoint, timed for the stats file when one is kept:
// the stall of a safe point that captured is what the job waited.
func (h *handle) safePoint(step int64) (int64, error) {
	if h.rec == nil {
		return h.r.SafePoint(context.Background(), step)
	}
	before := h.r.Stats().Captures
	t := time.Now()
	got, err := h.r.SafePoint(context.Background(), step)
	end := time.Now()
	if err == nil {
		h.rec.SafePoint(step, got, end.Sub(t), end, h.r.Stats().Captures > before)
	}
	return got, err
}

// writeStats writes the process's stats file (the same fields as the Go
// rank command's, cmd/cutpoint writeRankStats), before the rank closes.
func (h *handle) writeStats() error {
	if h.rec == nil {
		return nil
	}
	st := h.r.Stats()
	f := h.rec.Snapshot(func(f *jobstats.Rank) {
		f.Captures, f.CaptureNs = st.Captures, int64(st.CaptureTime)
		f.Holds, f.HoldNs, f.InPlaceBytes = st.Holds, int64(st.HoldTime), st.InPlaceBytes
		f.Rollbacks, f.RestoreNs = st.Rollbacks, int64(st.RestoreTime)
		f.ShardsWritten, f.ShardBytes, f.ShardStored = st.ShardsWritten, st.ShardBytes, st.ShardStored
		f.LastShardNs = int64(st.LastShardTime)
		f.RestoreBytes, f.PartnerBytes, f.FlushBytes = st.RestoreBytes, st.PartnerBytes, st.FlushBytes
		f.DamagedCopies = st.DamagedCopies
		f.Usage = jobstats.SelfUsage(false)
	})
	return jobstats.WriteFile(h.statsDir, jobstats.RankFileName(f.Rank, f.Spawn), f)
}
