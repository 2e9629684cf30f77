package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// longJob is job with more steps: room for two host losses and the cuts
// between them.
func longJob() []string {
	j := slices.Clone(job)
	j[slices.Index(j, "--steps")+1] = "15000"
	return j
}

// holds says whether the node-local store in dir holds the shards of
// ranks of cut c (false when the store is not there).
func holds(t *testing.T, dir string, c *ckpt.Cut, ranks ...int) bool {
	t.Helper()
	s, err := ckpt.OpenDir(context.Background(), dir, ckpt.Options{})
	if err != nil {
		return false
	}
	defer s.Close()
	for _, r := range ranks {
		if s.HasShard(context.Background(), c.Shards[r]) != nil {
			return false
		}
	}
	return true
}

// TestLevelsNewPartner: four ranks on hosts a and b, spares c and d,
// partner copies (a's on b, b's on a), no flush but the last. Host b is
// lost (its ranks SIGKILLed, its directory wiped): b's ranks come back on
// c, and a's ranks, whose copies to b now fail, copy to c instead: the
// cuts after commit with a's shards on c and none in the shared store.
// Then host a is lost as well: a's ranks come back on d and restore from
// the copies on c, nothing read from the shared store. Every rank
// process that saw its partner go moved once, logged it, counted it, and
// sent no shard to the shared store before its report; the job ends with
// the undisturbed digest; ls shows where the last cut lives, verify
// checks it, and c's ranks collected the copies a left there.
func TestLevelsNewPartner(t *testing.T) {
	long := longJob()
	wantDigest := runOK(t, nil, append([]string{"run", "--store", filepath.Join(t.TempDir(), "store"), "--interval", "0"}, long...)...).digest(t)
	j := startHostsJob(t, "a:2,b:2,c:2,d:2", []string{"--redundancy", "partner", "--flush-every", "1000"}, long)
	store, local, stats, shared := j.store, j.local, j.stats, j.shared
	first := j.latest()
	if !holds(t, filepath.Join(local, "b"), first, 0, 1) {
		t.Fatalf("cut %d: a's shards not on b, the first choice", first.Epoch)
	}

	// Host b is lost.
	j.lose("b")
	moved := j.waitFor("cut with a's copies on c", func(c *ckpt.Cut) bool {
		return c.Epoch > first.Epoch && holds(t, filepath.Join(local, "c"), c, 0, 1)
	})
	for _, rk := range []int{0, 1} {
		if err := shared.HasShard(context.Background(), moved.Shards[rk]); !errors.Is(err, ckpt.ErrNotFound) {
			t.Fatalf("cut %d (not a flush epoch): rank %d's shard in the shared store: %v", moved.Epoch, rk, err)
		}
	}
	if holds(t, filepath.Join(local, "b"), moved, 0) {
		t.Fatalf("cut %d: a copy on b, whose ranks are gone", moved.Epoch)
	}
	if lv := moved.Levels(); lv.String() != "local,partner" {
		t.Fatalf("cut %d levels %q, want local,partner", moved.Epoch, lv)
	}
	t.Logf("cut %d: a's shards on c, none in the shared store", moved.Epoch)

	// Host a is lost too: its ranks come back on d and find their shards
	// on c.
	j.lose("a")
	log := j.end(4*time.Minute, wantDigest)
	if strings.Contains(log, "goes to the shared store") {
		t.Fatalf("a shard went to the shared store for want of a copy on another host\n%s", grepLines(log, "goes to the shared store"))
	}
	// a's ranks moved to c once each (their log; those processes were
	// killed with their stats).
	for _, rk := range []int{0, 1} {
		if n := strings.Count(grepLines(log, fmt.Sprintf("rank=%d ", rk)), "partner copies go to another host"); n < 2 {
			t.Errorf("rank %d logged %d partner moves, want 2 (its process on a: b to c; on d: a to c)\n%s", rk, n, grepLines(log, "partner copies go to another host"))
		}
	}
	if !strings.Contains(grepLines(log, "partner copies go to another host"), "from=b to=c") {
		t.Errorf("no move from b to c logged\n%s", grepLines(log, "partner copies go to another host"))
	}

	all, per := restoreBytes(t, stats)
	if all[ckpt.LevelShared] != 0 {
		t.Fatalf("the recoveries read %d bytes from the shared store (by level %v, per rank %v)", all[ckpt.LevelShared], all, per)
	}
	_, ranks, err := jobstats.ReadDir(stats)
	if err != nil {
		t.Fatal(err)
	}
	spawns := map[int]int{}
	for _, r := range ranks {
		spawns[r.Rank]++
		if r.FallbackBytes != 0 {
			t.Errorf("rank %d spawn %d: %d bytes to the shared store for want of a copy", r.Rank, r.Spawn, r.FallbackBytes)
		}
		// Every process that ran to the end saw a partner go: ranks 2
		// and 3 on c (partner a), ranks 0 and 1 on d (partner a).
		if r.Error == "" && r.PartnerChanges != 1 {
			t.Errorf("rank %d spawn %d: %d partner changes, want 1", r.Rank, r.Spawn, r.PartnerChanges)
		}
		if (r.Rank == 0 || r.Rank == 1) && r.Error == "" && r.RestoreBytes[ckpt.LevelPartner] == 0 {
			t.Errorf("rank %d spawn %d (on d): read nothing from the copy on c: %v", r.Rank, r.Spawn, r.RestoreBytes)
		}
	}
	t.Logf("restore bytes by level %v, per rank %v; stats files per rank %v", all, per, spawns)

	// Where the last cut lives: ranks 2 and 3 on c, 0 and 1 on d, each
	// host holding the other's copies.
	tmpl := local + "/{host}"
	out, errs, code := runCLI(t, "ls", "--store", store, "--local", tmpl)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.Contains(lines[len(lines)-1], "c=4 d=4") {
		t.Fatalf("ls: exit %d, want the last cut on c and d (4 shards each)\n%s%s", code, out, errs)
	}
	lsOut := out
	// inspect names, per rank, the hosts holding its shard of the last
	// cut: the own copy and the new partner's, c and d, plus the final
	// flush.
	out, errs, code = runCLI(t, "inspect", "--store", store, "--local", tmpl)
	for rk := range 4 {
		if code != 0 || !strings.Contains(out, fmt.Sprintf("\n%d     c d shared\n", rk)) {
			t.Fatalf("inspect: exit %d, want rank %d's copies on c, d and shared\n%s%s", code, rk, out, errs)
		}
	}
	out, errs, code = runCLI(t, "verify", "--store", store, "--local", tmpl)
	if code != 0 || !strings.Contains(out, "node-local c: ") || strings.Contains(out, "node-local c: 0 shard") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	// c's ranks collected the copies a's ranks put there: packs of a few
	// epochs are left of the many cuts the job made.
	epochs := map[string]bool{}
	filepath.WalkDir(filepath.Join(local, "c", "jobs", "heat2d", "packs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".pack") {
			epochs[filepath.Base(filepath.Dir(p))] = true
		}
		return nil
	})
	cut := j.latest()
	if cut == nil || cut.Epoch < moved.Epoch+6 || len(epochs) > 5 {
		t.Fatalf("c holds packs of %d epochs %v at the end (cut %d moved a's copies there, the last cut is %v)\n%s", len(epochs), epochs, moved.Epoch, cut, tail(j.errb.String(), 80))
	}
	t.Logf("ls:\n%s\nverify:\n%s\nc holds packs of %d epochs; the job's last cut %d", lsOut, out, len(epochs), cut.Epoch)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
