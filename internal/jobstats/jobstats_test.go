package jobstats

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecorder(t *testing.T) {
	rec := NewRecorder(1, 2, "cpu", time.Unix(99, 0))
	t0 := time.Unix(100, 0)
	rec.Started(10, t0)
	rec.SafePoint(11, 11, time.Millisecond, t0.Add(time.Second), false)
	rec.SafePoint(12, 12, 5*time.Millisecond, t0.Add(2*time.Second), true)
	rec.SafePoint(13, 13, time.Millisecond, t0.Add(3*time.Second), false)
	r := rec.Snapshot(func(r *Rank) { r.Captures = 1 })
	if r.FirstStep != 11 || r.LastStep != 13 || r.LastAtNs-r.FirstAtNs != int64(2*time.Second) {
		t.Fatalf("steady window %d..%d over %d ns", r.FirstStep, r.LastStep, r.LastAtNs-r.FirstAtNs)
	}
	if len(r.CaptureStall) != 1 || r.CaptureStall[0].Step != 12 || r.CaptureStall[0].StallNs != int64(5*time.Millisecond) {
		t.Fatalf("captures %+v", r.CaptureStall)
	}
	if r.SafePoints != 3 || r.SafePointNs != int64(7*time.Millisecond) || r.Captures != 1 {
		t.Fatalf("counters %+v", r)
	}
	// A rollback: SafePoint returns an older step; the steady window
	// starts again after it.
	rec.SafePoint(14, 12, time.Second, t0.Add(5*time.Second), false)
	rec.SafePoint(13, 13, time.Millisecond, t0.Add(6*time.Second), false)
	r = rec.Snapshot(nil)
	if len(r.Resumes) != 2 || !r.Resumes[1].Rollback || r.Resumes[1].Step != 12 || r.Resumes[0].Rollback {
		t.Fatalf("resumes %+v", r.Resumes)
	}
	if r.FirstStep != 13 || r.FirstAtNs != t0.Add(6*time.Second).UnixNano() {
		t.Fatalf("window after the rollback starts at step %d", r.FirstStep)
	}
}

func TestRecorderCapsLists(t *testing.T) {
	rec := NewRecorder(0, 1, "cpu", time.Now())
	for i := range maxEvents + 10 {
		rec.SafePoint(int64(i), int64(i), 0, time.Unix(0, int64(i)+1), true)
	}
	r := rec.Snapshot(nil)
	if len(r.CaptureStall) != maxEvents || r.CaptureStall[0].Step != 10 {
		t.Fatalf("%d captures kept, first step %d", len(r.CaptureStall), r.CaptureStall[0].Step)
	}
}

func TestRunRecorderAndReadDir(t *testing.T) {
	dir := t.TempDir()
	rr := NewRunRecorder("job", 2, time.Unix(1, 0))
	rr.Running(time.Unix(2, 0))
	rr.Running(time.Unix(3, 0)) // only the first counts
	rr.CutCommitted(Cut{Epoch: 1, Step: 5, RawBytes: 10, NewBytes: 5, TookNs: 7, CommittedNs: 9})
	rr.Killed(1, 6, time.Unix(4, 0))
	rr.RecoveryStarted(time.Unix(5, 0))
	rr.RecoveryFinished(time.Unix(6, 0))
	rr.RecoveryFinished(time.Unix(7, 0)) // nothing open: ignored
	if err := WriteFile(dir, RunFileName, rr.Finish("finished", time.Unix(8, 0))); err != nil {
		t.Fatal(err)
	}
	for r := range 2 {
		rec := NewRecorder(r, 1, "cpu", time.Now())
		if err := WriteFile(dir, RankFileName(r, 1), rec.Snapshot(nil)); err != nil {
			t.Fatal(err)
		}
	}
	run, ranks, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if run.RunningNs != time.Unix(2, 0).UnixNano() || len(run.Cuts) != 1 || len(run.Kills) != 1 || run.Outcome != "finished" {
		t.Fatalf("run %+v", run)
	}
	if len(run.Recoveries) != 1 || run.Recoveries[0].EndNs != time.Unix(6, 0).UnixNano() {
		t.Fatalf("recoveries %+v", run.Recoveries)
	}
	if len(ranks) != 2 || run.Self.MaxRSSBytes <= 0 {
		t.Fatalf("%d rank files, launcher RSS %d", len(ranks), run.Self.MaxRSSBytes)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestReadDirErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ReadDir(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty folder: %v", err)
	}
	os.WriteFile(filepath.Join(dir, RunFileName), []byte(`{"version": 1, "ranks": 1}`), 0o644)
	os.WriteFile(filepath.Join(dir, RankFileName(0, 1)), []byte(`{"version": 7}`), 0o644)
	_, _, err := ReadDir(dir)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "rank-0-spawn-1.json") {
		t.Fatalf("bad rank file: %v", err)
	}
	big := make([]byte, MaxFileSize+1)
	os.WriteFile(filepath.Join(dir, RunFileName), big, 0o644)
	if _, _, err := ReadDir(dir); !errors.Is(err, ErrFormat) {
		t.Fatalf("oversized run file: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, b := range []string{"", "null", "{", `{"version": 2, "ranks": 1}`, `{"version": 1, "ranks": 0}`, `{"version": 1, "ranks": -3}`, `[1]`} {
		if _, err := DecodeRun([]byte(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("DecodeRun(%q) = %v", b, err)
		}
	}
	for _, b := range []string{"", `{"version": 1, "rank": -1}`, `{"version": 0}`, `"x"`} {
		if _, err := DecodeRank([]byte(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("DecodeRank(%q) = %v", b, err)
		}
	}
}

// FuzzDecode feeds both decoders hostile bytes: an error or a value within
// the bounds, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version": 1, "ranks": 2, "cuts": [{"epoch": 1}], "kills": [], "recoveries": [{"start_unix_ns": 1}]}`))
	f.Add([]byte(`{"version": 1, "rank": 3, "capture_stalls": [{"step": 4, "stall_ns": 5}], "resumes": [{"rollback": true}]}`))
	f.Add([]byte(`{"version": 1, "ranks": 1e99}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeRun(b); err == nil && (r.Ranks < 1 || len(r.Cuts) > maxEvents) {
			t.Fatalf("accepted %+v", r)
		}
		if r, err := DecodeRank(b); err == nil && (r.Rank < 0 || len(r.Resumes) > maxEvents) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
