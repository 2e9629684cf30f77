package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// TestLevelsBackgroundFlush: partner copies over NATS between ranks on
// hosts a and b, every second epoch flushed to the shared store in the
// background, the copies and flushes paced (CUTPOINT_REDUNDANCY_BANDWIDTH,
// the flag's environment variable). Rank 1 is SIGKILLed in the middle of a
// flush (a file of the shared store half written); the job recovers from
// the node-local levels (no byte read from the shared store), ends with
// the undisturbed digest, every committed cut verifies, a flushed cut's
// manifest says it is in the shared store too, and so does the job's last
// cut.
func TestLevelsBackgroundFlush(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	local := filepath.Join(dir, "local")
	stats := filepath.Join(dir, "stats")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100", "--keep", "100",
		"--hosts", "a:2,b:2", "--spawn-cmd", "{cmd}", "--stats-dir", stats,
		"--local", local + "/{host}", "--redundancy", "partner", "--flush-every", "2"}, job...)
	r := runOK(t, []string{"CUTPOINT_FAULT=1:flush-write:2", "CUTPOINT_REDUNDANCY_BANDWIDTH=64"}, args...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(r.stderr, "recovery-finished") {
		t.Fatalf("rank 1 was not killed in its flush (no recovery)\n%s", tail(r.stderr, 60))
	}
	all, _ := restoreBytes(t, stats)
	if all[ckpt.LevelShared] != 0 || all[ckpt.LevelLocal] == 0 {
		t.Fatalf("restore bytes by level %v: want all from the node-local levels", all)
	}
	cuts := committed(t, store, "heat2d")
	if len(cuts) < 3 {
		t.Fatalf("%d cuts committed", len(cuts))
	}
	flushed := 0
	for _, c := range cuts[:len(cuts)-1] {
		lv := c.Levels()
		if !lv.Local || !lv.Partner {
			t.Errorf("cut %d: levels %q, want local and partner", c.Epoch, lv)
		}
		if lv.Shared {
			flushed++
			if c.Epoch%2 != 0 {
				t.Errorf("cut %d (not a flush epoch) in the shared store: %q", c.Epoch, lv)
			}
		}
	}
	if flushed == 0 {
		t.Errorf("no flush epoch recorded as in the shared store: %v", levelsOf(cuts))
	}
	if last := cuts[len(cuts)-1]; !last.Levels().Shared {
		t.Errorf("the last cut %d of the finished job: levels %q, want shared among them", last.Epoch, last.Levels())
	}
	out, errs, code := runCLI(t, "verify", "--store", store, "--local", local+"/{host}")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	_, ranks, err := jobstats.ReadDir(stats)
	if err != nil {
		t.Fatal(err)
	}
	var fb, pb int64
	for _, rk := range ranks {
		fb += rk.FlushBytes
		pb += rk.PartnerBytes
	}
	if fb == 0 || pb == 0 {
		t.Errorf("%d bytes flushed, %d copied to partners: want both", fb, pb)
	}
	t.Logf("levels %v; restore bytes %v; %d bytes flushed, %d copied to partners", levelsOf(cuts), all, fb, pb)
}

func levelsOf(cuts []ckpt.CutInfo) []string {
	var out []string
	for _, c := range cuts {
		out = append(out, c.Levels().String())
	}
	return out
}
