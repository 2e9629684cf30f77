package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/jobstats"
	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/rank"
)

// statsComm is the rank runtime as heat2d sees it, with the job's side of
// every SafePoint timed for the stats file (--stats-dir): how long each cut
// blocked the job, when it computed again after a start or a rollback, and
// the steady step rate.
type statsComm struct {
	*rank.Rank
	rec *jobstats.Recorder
}

func (c *statsComm) Start(ctx context.Context) (int64, error) {
	step, err := c.Rank.Start(ctx)
	if err == nil {
		c.rec.Started(step, time.Now())
	}
	return step, err
}

func (c *statsComm) SafePoint(ctx context.Context, step int64) (int64, error) {
	before := c.Rank.Stats().Captures
	t := time.Now()
	got, err := c.Rank.SafePoint(ctx, step)
	end := time.Now()
	if err == nil {
		c.rec.SafePoint(step, got, end.Sub(t), end, c.Rank.Stats().Captures > before)
	}
	return got, err
}

// writeRankStats writes the rank process's file into dir.
func writeRankStats(dir string, r *rank.Rank, rec *jobstats.Recorder, jobErr error) error {
	st := r.Stats()
	f := rec.Snapshot(func(f *jobstats.Rank) {
		f.Captures, f.CaptureNs = st.Captures, int64(st.CaptureTime)
		f.Holds, f.HoldNs, f.InPlaceBytes = st.Holds, int64(st.HoldTime), st.InPlaceBytes
		f.Rollbacks, f.RestoreNs = st.Rollbacks, int64(st.RestoreTime)
		f.ShardsWritten, f.ShardBytes, f.ShardStored = st.ShardsWritten, st.ShardBytes, st.ShardStored
		f.LastShardNs = int64(st.LastShardTime)
		f.RestoreBytes, f.PartnerBytes, f.FlushBytes = st.RestoreBytes, st.PartnerBytes, st.FlushBytes
		f.DamagedCopies = st.DamagedCopies
		f.FallbackBytes, f.PartnerChanges = st.FallbackBytes, st.PartnerChanges
		f.Usage = jobstats.SelfUsage(false)
		if jobErr != nil {
			f.Error = jobErr.Error()
		}
	})
	return jobstats.WriteFile(dir, jobstats.RankFileName(f.Rank, f.Spawn), f)
}

// runStats turns the driver's progress reports into the launcher's file.
type runStats struct {
	dir        string
	rec        *jobstats.RunRecorder
	cuts       int
	recovering bool
}

func newRunStats(dir, job string, ranks int) (*runStats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, usageError(fmt.Errorf("--stats-dir %s: %w", dir, err))
	}
	return &runStats{dir: dir, rec: jobstats.NewRunRecorder(job, ranks, time.Now())}, nil
}

// progress is called on the driver's goroutine.
func (s *runStats) progress(p driver.Progress) {
	now := time.Now()
	if p.Running {
		s.rec.Running(now)
	}
	if p.Cuts > s.cuts {
		s.cuts = p.Cuts
		s.rec.CutCommitted(jobstats.Cut{
			Epoch: p.LastCut, Step: p.LastCutStep, RawBytes: p.LastCutBytes, NewBytes: p.LastCutStored,
			TookNs: int64(p.LastCutTime), CommittedNs: now.UnixNano(),
		})
	}
	switch rec := !p.RecoveringSince.IsZero(); {
	case rec && !s.recovering:
		s.rec.RecoveryStarted(p.RecoveringSince)
	case !rec && s.recovering:
		s.rec.RecoveryFinished(now)
	}
	s.recovering = !p.RecoveringSince.IsZero()
}

func (s *runStats) finish(outcome string) error {
	return jobstats.WriteFile(s.dir, jobstats.RunFileName, s.rec.Finish(outcome, time.Now()))
}

// errOutcome names how a job ended for the stats file.
func errOutcome(err error) string {
	if err == nil {
		return "finished"
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("exit %d: %v", ee.code, ee.err)
	}
	return err.Error()
}

// waitExited waits until every rank process of l has exited, or timeout.
func waitExited(l *launch.Local, ranks int, timeout time.Duration) {
	if l == nil {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		running := false
		for r := range ranks {
			if l.Pid(r) != 0 {
				running = true
				break
			}
		}
		if !running {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
