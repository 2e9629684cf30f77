package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// flushKillCase is one step of a flush at which a rank is SIGKILLed.
type flushKillCase struct {
	name  string
	fault string // CUTPOINT_FAULT point[:N] for rank 1
	// final: the job flushes no cut in the background (--flush-every
	// beyond its last epoch): the only flush, and so the kill, is the
	// final one, after the coordinator said the job is over.
	final bool
	// flushed (final only): the shard is in the shared store when the
	// rank dies, so nothing replaces it (the job is over, its shard is
	// there) and the job may end before the coordinator or the rank's
	// shell see the death: the kill shows in the fault's message and in
	// the stats file the process never wrote.
	flushed bool
	short   bool // in the subset `go test -short` (make test) runs
}

// flushKillCases are the steps of a flush in the order a flush takes
// them (rank/flush.go, ckpt CopyShard, the shared store's writer), each
// a fault point of rank/fault.go: in a background flush, and in the final
// flush of the finished job.
var flushKillCases = []flushKillCase{
	{name: "before-copy", fault: "flush"},
	{name: "mid-pack", fault: "flush-write", short: true},
	{name: "pack-written-before-rename", fault: "flush-commit"},
	{name: "renamed-before-dir-fsync", fault: "flush-rename", short: true},
	{name: "pack-in-place", fault: "flush-file"},
	{name: "shard-flushed-before-mark", fault: "flushed", short: true},
	// The second flush: the first one was recorded (MarkShared) by then.
	{name: "next-flush-after-mark", fault: "flush:2"},
	{name: "final/before-start", fault: "final-flush", final: true, short: true},
	{name: "final/before-copy", fault: "flush", final: true},
	{name: "final/mid-pack", fault: "flush-write", final: true, short: true},
	{name: "final/pack-written-before-rename", fault: "flush-commit", final: true},
	{name: "final/renamed-before-dir-fsync", fault: "flush-rename", final: true, flushed: true},
	{name: "final/pack-in-place", fault: "flush-file", final: true, flushed: true},
	{name: "final/shard-flushed-before-mark", fault: "flushed", final: true, flushed: true, short: true},
}

// TestLevelsFlushKill SIGKILLs rank 1 of a job with node-local levels,
// partner copies and a flush to the shared store at every step of a
// flush in turn (flushKillCases: before the copy, after each write of a
// pack, with the pack written but not renamed, renamed but its directory
// not synced, in place, the shard flushed but the cut not yet recorded as
// shared, after a flush was recorded; and each step of the final flush
// of the finished job). Each case is a real `cutpoint run`; each must
// really kill (the fault's message, no stats file from rank 1's first
// process, the SIGKILL its shell reports; and where the shard was not
// yet whole in the shared store, the coordinator
// saw the process end and replaced it: a recovery's respawn, or after
// the final flush a flush-only process), end with the undisturbed digest, leave every
// committed cut verifying at every level, the job's last cut in the
// shared store (manifest and every chunk of every shard there), and no
// half-written file taken for a shard: a stopped-job gc removes every
// temporary file and unreferenced pack, and the store verifies after it.
//
// make test runs the cases marked short (6 jobs, about a minute on two
// cores); CUTPOINT_FLUSHKILL=all runs the whole table (14 jobs, 1.5 to 4
// minutes on two cores): make flushkill-test.
func TestLevelsFlushKill(t *testing.T) {
	// longJob: a cut takes about half a second here; job's 6,000 steps
	// left too little after a recovery for the cut after it (seen in CI:
	// "1 cuts committed").
	want := runOK(t, nil, append([]string{"run", "--store", filepath.Join(t.TempDir(), "store"), "--interval", "0"}, longJob()...)...).digest(t)
	all := os.Getenv("CUTPOINT_FLUSHKILL") == "all"
	for _, c := range flushKillCases {
		t.Run(c.name, func(t *testing.T) {
			if !all && !c.short {
				t.Skip("not in the subset make test runs (CUTPOINT_FLUSHKILL=all runs it)")
			}
			flushKill(t, c, want)
		})
	}
}

// respawned is the launcher's line for a later process of rank 1; ended
// the coordinator's for the end of its first (under --spawn-cmd a shell's
// child: its SIGKILL reads as exit code 137).
var (
	respawned = regexp.MustCompile(`msg="rank started" rank=1 host=\S+ spawn=([2-9]|\d\d)`)
	ended     = regexp.MustCompile(`msg="rank process ended(?: during the final flush)?" component=coordinator rank=1 spawn=1 how="rank 1 (killed by SIGKILL|exited with code 137)"`)
)

func flushKill(t *testing.T, c flushKillCase, want string) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	local := filepath.Join(dir, "local")
	stats := filepath.Join(dir, "stats")
	// Every cut a flush epoch: the N-th flush of a background case is
	// one well before the final flush, however few cuts a loaded machine
	// makes.
	every := "1"
	if c.final {
		every = "100000"
	}
	point, n, _ := strings.Cut(c.fault, ":")
	if n == "" {
		n = "1"
	}
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100", "--keep", "100",
		"--hosts", "a:2,b:2", "--spawn-cmd", "{cmd}", "--stats-dir", stats,
		"--local", local + "/{host}", "--redundancy", "partner", "--flush-every", every}, longJob()...)
	// Slower heartbeats and a longer lease than job's: a rank replaced
	// for a silence of a loaded machine before it reaches the point runs
	// without the fault (only spawn 1 has it), and the case proves
	// nothing.
	args = append(args, "--heartbeat-interval", "300ms", "--lease-ttl", "10s")
	fault := "CUTPOINT_FAULT=1:" + point + ":" + n
	msg := fmt.Sprintf("fault injection: SIGKILL at %s #%s", point, n)
	var r result
	for attempt := 1; ; attempt++ {
		os.RemoveAll(store)
		os.RemoveAll(local)
		os.RemoveAll(stats)
		r = runCmd(t, cutpoint(t, []string{fault}, args...))
		// What the test did not cause (a machine too loaded to keep a
		// rank's heartbeat or the lease) voids the attempt; a fault that
		// does not fire for any other reason fails the case.
		void := (r.code != 0 && strings.Contains(r.stderr, "job lease lost")) ||
			(!strings.Contains(r.stderr, msg) && strings.Contains(r.stderr, "recovery-started"))
		if !void || attempt == 3 {
			break
		}
		t.Logf("attempt %d void (a recovery or lease loss the fault did not cause): again", attempt)
	}
	if r.code != 0 {
		t.Fatalf("cutpoint %s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, tail(r.stderr, 80))
	}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s\n%s", got, want, tail(r.stderr, 40))
	}
	// The kill happened there.
	if !strings.Contains(r.stderr, msg) {
		t.Fatalf("no %q: rank 1 was not killed there\n%s", msg, tail(r.stderr, 60))
	}
	// Its first process never returned from its job: a rank writes its
	// stats file when it does.
	if _, err := os.Stat(filepath.Join(stats, jobstats.RankFileName(1, 1))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rank 1's first process wrote its stats (%v): it was not killed", err)
	}
	if !c.final && strings.Contains(r.stderr, "during the final flush") {
		t.Fatalf("a kill in a background flush taken for one in the final flush\n%s", tail(r.stderr, 60))
	}
	if !c.flushed {
		// The shell --spawn-cmd runs the rank in says its child was
		// killed; the coordinator saw the process end and replaced it:
		// by a recovery's process, or after the final flush by a
		// flush-only one.
		if !strings.Contains(r.stderr, "[rank 1] Killed") {
			t.Fatalf("no SIGKILL of rank 1 reported by its shell\n%s", tail(r.stderr, 60))
		}
		if !ended.MatchString(r.stderr) {
			t.Fatalf("the coordinator did not see rank 1's first process killed\n%s", tail(r.stderr, 60))
		}
		if !respawned.MatchString(r.stderr) {
			t.Fatalf("rank 1 was not replaced after its kill\n%s", tail(r.stderr, 60))
		}
	}
	if c.final && !c.flushed && !strings.Contains(r.stderr, "flushed the last cut in place of a rank that died during its final flush") {
		t.Fatalf("no flush-only process flushed rank 1's shard\n%s", tail(r.stderr, 60))
	}

	cuts := committed(t, store, "heat2d")
	if len(cuts) < 2 {
		t.Fatalf("%d cuts committed\n%s", len(cuts), tail(r.stderr, 80))
	}
	if c.final {
		for _, cut := range cuts[:len(cuts)-1] {
			if lv := cut.Levels(); lv.Shared {
				t.Errorf("cut %d (not a flush epoch) recorded in the shared store: %q", cut.Epoch, lv)
			}
		}
	}
	out, errs, code := runCLI(t, "verify", "--store", store, "--local", local+"/{host}")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	last := cuts[len(cuts)-1]
	if !last.Levels().Shared {
		t.Fatalf("the last cut %d of the finished job: levels %q, want shared among them (levels %v)\n%s",
			last.Epoch, last.Levels(), levelsOf(cuts), tail(r.stderr, 40))
	}
	verifyShared(t, store, last.Epoch)

	// Half-written files are no shards: whatever the kill left is a
	// temporary file or a pack no kept cut names, and a gc of the stopped
	// job removes it all, the store intact after it.
	temps := tempFiles(t, store)
	out, errs, code = runCLI(t, "gc", "--store", store, "--job", "heat2d", "--keep", "100", "--local", local+"/{host}")
	if code != 0 {
		t.Fatalf("gc: exit %d\n%s%s", code, out, errs)
	}
	if left := tempFiles(t, store); len(left) != 0 {
		t.Errorf("temporary files left after gc: %v", left)
	}
	if got := committed(t, store, "heat2d"); len(got) != len(cuts) {
		t.Errorf("gc with --keep 100: %d cuts, was %d", len(got), len(cuts))
	}
	if out, errs, code := runCLI(t, "verify", "--store", store, "--local", local+"/{host}"); code != 0 {
		t.Fatalf("verify after gc: exit %d\n%s%s", code, out, errs)
	}
	verifyShared(t, store, last.Epoch)
	t.Logf("levels %v; temporary files before gc %d", levelsOf(cuts), len(temps))
}

// verifyShared reads every chunk of every shard of cut epoch from the
// shared store alone.
func verifyShared(t *testing.T, store string, epoch uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := ckpt.OpenDir(ctx, store, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cut, err := s.LoadCut(ctx, "heat2d", epoch)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range cut.Shards {
		if _, err := s.VerifyShard(ctx, ref); err != nil {
			t.Fatalf("cut %d rank %d in the shared store: %v", epoch, ref.Rank, err)
		}
	}
}

// tempFiles lists the temporary files (of a Create not committed) under
// a store directory.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".tmp-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
