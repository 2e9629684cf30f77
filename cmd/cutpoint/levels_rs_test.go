package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// fragmentsOn says whether the node-local store in dir holds fragment i
// (rs:2+1) of the shard packs of ranks of cut c.
func fragmentsOn(t *testing.T, dir string, c *ckpt.Cut, i int, ranks ...int) bool {
	t.Helper()
	s, err := ckpt.OpenDir(context.Background(), dir, ckpt.Options{})
	if err != nil {
		return false
	}
	defer s.Close()
	for _, r := range ranks {
		if _, err := s.Backend().Stat(context.Background(), ckpt.FragmentName(c.Shards[r].Pack(), i, 2, 1)); err != nil {
			return false
		}
	}
	return true
}

// TestLevelsErasureMoves: rs:2+1, four ranks on hosts a to d (one each),
// spare e, no flush but the last. Host b is lost (its rank SIGKILLed, its
// directory wiped): b's rank comes back on e and rebuilds its shard from
// the fragments; the other ranks, whose fragment to b now fails, write it
// to e instead (a's fragment 0, c's fragment 2, d's fragment 1): the cuts
// after commit at local,rs with no shard in the shared store. Every rank
// process that ran to the end sent nothing to the shared store for want
// of a fragment host (fallback_bytes 0), the survivors moved one fragment
// each (fragment_moves 1, logged), and the job ends with the undisturbed
// digest.
func TestLevelsErasureMoves(t *testing.T) {
	long := longJob()
	wantDigest := runOK(t, nil, append([]string{"run", "--store", filepath.Join(t.TempDir(), "store"), "--interval", "0"}, long...)...).digest(t)
	j := startHostsJob(t, "a:1,b:1,c:1,d:1,e:1", []string{"--redundancy", "rs:2+1", "--flush-every", "1000"}, long)
	store, local, stats, shared := j.store, j.local, j.stats, j.shared
	first := j.latest()
	if !fragmentsOn(t, filepath.Join(local, "b"), first, 0, 0) || !fragmentsOn(t, filepath.Join(local, "b"), first, 2, 2) {
		t.Fatalf("cut %d: a's fragment 0 or c's fragment 2 not on b, the first choice", first.Epoch)
	}

	// Host b is lost.
	j.lose("b")
	moved := j.waitFor("cut with fragments on e", func(c *ckpt.Cut) bool {
		return c.Epoch > first.Epoch && fragmentsOn(t, filepath.Join(local, "e"), c, 0, 0) &&
			fragmentsOn(t, filepath.Join(local, "e"), c, 2, 2) && fragmentsOn(t, filepath.Join(local, "e"), c, 1, 3)
	})
	for _, rk := range []int{0, 2, 3} {
		if err := shared.HasShard(context.Background(), moved.Shards[rk]); !errors.Is(err, ckpt.ErrNotFound) {
			t.Fatalf("cut %d (not a flush epoch): rank %d's shard in the shared store: %v", moved.Epoch, rk, err)
		}
	}
	if lv := moved.Levels(); lv.String() != "local,rs" {
		t.Fatalf("cut %d levels %q, want local,rs", moved.Epoch, lv)
	}
	t.Logf("cut %d: the survivors' fragments for b on e, none of their shards in the shared store", moved.Epoch)

	log := j.end(3*time.Minute, wantDigest)
	moves := grepLines(log, "erasure fragments go to other hosts")
	for _, want := range []string{"rank=0 ", "rank=2 ", "rank=3 "} {
		if !strings.Contains(moves, want) {
			t.Errorf("no fragment move logged by %s\n%s", want, moves)
		}
	}
	all, per := restoreBytes(t, stats)
	if per[1][ckpt.LevelErasure] == 0 || all[ckpt.LevelShared] != 0 {
		t.Fatalf("restore bytes by level %v, per rank %v: want rank 1 rebuilt from fragments, nothing from the shared store", all, per)
	}
	_, ranks, err := jobstats.ReadDir(stats)
	if err != nil {
		t.Fatal(err)
	}
	var fallback []int64
	for _, r := range ranks {
		fallback = append(fallback, r.FallbackBytes)
		if r.FallbackBytes != 0 {
			t.Errorf("rank %d spawn %d: %d bytes to the shared store for want of a fragment host\n%s", r.Rank, r.Spawn, r.FallbackBytes, grepLines(log, "goes to the shared store"))
		}
		// The survivors (their first process) moved one fragment each;
		// rank 1 on e started with b gone: its fragment for b went to d.
		if r.Error == "" && r.FragmentMoves != 1 {
			t.Errorf("rank %d spawn %d: %d fragment moves, want 1", r.Rank, r.Spawn, r.FragmentMoves)
		}
	}
	if strings.Contains(log, "goes to the shared store") {
		t.Errorf("a shard went to the shared store for want of a fragment host\n%s", grepLines(log, "goes to the shared store"))
	}
	t.Logf("restore bytes by level %v, per rank %v; fallback bytes per process %v; moves:\n%s", all, per, fallback, moves)
	out, errs, code := runCLI(t, "verify", "--store", store, "--local", local+"/{host}")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	// inspect names, per rank, where the last cut's shard and fragments
	// are: its own copy, the fragment hosts (b's replaced), the final
	// flush.
	out, errs, code = runCLI(t, "inspect", "--store", store, "--local", local+"/{host}")
	for rk, want := range []string{"a c:rs1 d:rs2 e:rs0", "e a:rs0 c:rs2 d:rs1", "c a:rs1 d:rs0 e:rs2", "d a:rs0 c:rs2 e:rs1"} {
		if row := fmt.Sprintf("\n%d     %s shared\n", rk, want); code != 0 || !strings.Contains(out, row) {
			t.Fatalf("inspect: exit %d, want the row %q\n%s%s", code, row, out, errs)
		}
	}
	t.Logf("inspect:\n%s", out[strings.Index(out, "RANK  COPIES"):])
}
