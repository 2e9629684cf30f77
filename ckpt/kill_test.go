package ckpt

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// The kill tests run a real writer or GC in a child process (this test
// binary, re-executed) on a directory store, SIGKILL it at random moments,
// and check that every committed cut still verifies and restores bit-exactly
// and that a later GC cleans up what the child left.

const (
	childEnv   = "CUTPOINT_CKPT_KILL_CHILD"
	childStore = "CUTPOINT_CKPT_KILL_STORE"
	killJob    = "killed"
	killWorld  = 3
	killSize   = 96 << 10
)

// TestKillChild is the child's body; it does nothing in a normal run.
func TestKillChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("child process of the kill tests")
	}
	opts := testOptions()
	opts.Create = false
	opts.ChunkSize = 0
	s, err := OpenDir(bg, os.Getenv(childStore), opts)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	latest, err := s.latestEpoch(bg, killJob)
	if err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	switch mode {
	case "write":
		say("ready")
		for e := latest + 1; ; e++ {
			writeKillCut(t, s, e, latest)
			say("committed %d", e)
		}
	case "gc":
		for e := latest + 1; e <= latest+12; e++ {
			writeKillCut(t, s, e, 0)
		}
		say("ready")
		if _, err := s.GC(bg, killJob, GCOptions{Keep: 2}); err != nil {
			say("error %v", err)
			os.Exit(1)
		}
		say("done")
		// Stay alive so that the kill, not the exit, ends the run.
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

// writeKillCut writes cut e of the kill job; with base != 0 the shards are
// incremental against it (every other cut), so GC has shared packs to get
// wrong.
func writeKillCut(t testing.TB, s *Store, e, base uint64) {
	var refs []ShardRef
	for r := range killWorld {
		spec := ShardSpec{Job: killJob, Epoch: e, Rank: r, Incarnation: 1, Step: int64(e)}
		if base != 0 && e%2 == 0 && base < e {
			spec.Base = &BaseRef{Epoch: base}
		}
		refs = append(refs, writeShard(t, s, spec, killData(e, r)))
	}
	if _, err := s.Commit(bg, CutSpec{Job: killJob, Epoch: e, Step: int64(e), World: killWorld, Incarnation: 1, Shards: refs}); err != nil {
		panic(err)
	}
}

// killData is cut e's rank r state: mostly unchanged between cuts (the
// first buffer only depends on the rank) so incremental cuts share chunks.
func killData(e uint64, r int) rankData {
	d := makeRank(e, r, killSize)
	d.data[0] = makeRank(1, r, killSize).data[0]
	return d
}

func startChild(t *testing.T, mode, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childStore+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	return cmd, sc
}

// waitFor reads child lines until one starts with prefix.
func waitFor(t *testing.T, sc *bufio.Scanner, prefix string) string {
	t.Helper()
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatalf("child: %s", line)
		}
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("child ended before %q: %v", prefix, sc.Err())
	return ""
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed by the signal: %v", err)
	}
}

// checkKillStore verifies every committed cut and restores each one bit for
// bit; it returns the latest epoch.
func checkKillStore(t *testing.T, s *Store) uint64 {
	t.Helper()
	cuts, err := s.List(bg, killJob)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	rep, err := s.Verify(bg, killJob, 0, nil)
	if err != nil {
		t.Fatalf("Verify after a kill: %v", err)
	}
	if len(rep.Cuts) != len(cuts) {
		t.Fatalf("verified %d cuts, listed %d", len(rep.Cuts), len(cuts))
	}
	for _, c := range cuts {
		var ds []rankData
		for r := range killWorld {
			ds = append(ds, killData(c.Epoch, r))
		}
		checkRestore(t, s, killJob, c.Epoch, ds)
	}
	if len(cuts) == 0 {
		return 0
	}
	return cuts[len(cuts)-1].Epoch
}

func killRounds() int {
	if testing.Short() || raceEnabled {
		return 3
	}
	return 8
}

func TestKillDuringWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenDir(bg, dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeKillCut(t, s, 1, 0)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	latest := uint64(1)
	for round := range killRounds() {
		cmd, sc := startChild(t, "write", dir)
		waitFor(t, sc, "ready")
		// Let it commit a few cuts, then kill it at a random moment of the
		// next one.
		for range 1 + rng.IntN(3) {
			line := waitFor(t, sc, "committed")
			e, _ := strconv.ParseUint(strings.Fields(line)[1], 10, 64)
			if e <= latest {
				t.Fatalf("round %d: committed epoch %d after %d", round, e, latest)
			}
			latest = e
		}
		time.Sleep(time.Duration(rng.IntN(40_000)) * time.Microsecond)
		kill(t, cmd)
		t.Logf("round %d: killed after cut %d; %d temporary files, %d unreferenced packs", round, latest, countTemps(s), countPacks(s)-3*len(mustList(t, s)))
		got := checkKillStore(t, s)
		if got < latest {
			t.Fatalf("round %d: latest cut %d, the child reported %d committed", round, got, latest)
		}
		latest = got
	}
	// A GC after the kills removes the killed writers' leftovers: orphan
	// packs below the latest cut and, past the horizon, temporary files.
	rep, err := s.GC(bg, killJob, GCOptions{Keep: 2, TempHorizon: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GC after the kills: %+v", rep)
	checkKillStore(t, s)
	assertNoTemps(t, s)
}

func TestKillDuringGC(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for round := range max(2, killRounds()-2) {
		dir := filepath.Join(t.TempDir(), "store")
		s, err := OpenDir(bg, dir, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		writeKillCut(t, s, 1, 0)
		cmd, sc := startChild(t, "gc", dir)
		waitFor(t, sc, "ready")
		// The GC of 13 cuts takes a few tens of milliseconds (a directory
		// fsync per removal); kill anywhere in it, or just after.
		time.Sleep(time.Duration(rng.IntN(60_000)) * time.Microsecond)
		kill(t, cmd)
		latest := checkKillStore(t, s)
		if latest != 13 {
			t.Fatalf("round %d: latest cut %d, want 13", round, latest)
		}
		rep, err := s.GC(bg, killJob, GCOptions{Keep: 2, TempHorizon: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		cuts, _ := s.List(bg, killJob)
		if len(cuts) != 2 || cuts[0].Epoch != 12 {
			t.Fatalf("round %d: after a clean GC: %+v (%+v)", round, cuts, rep)
		}
		checkKillStore(t, s)
		assertNoTemps(t, s)
		s.Close()
	}
}

func countTemps(s *Store) (n int) {
	walkStore(s, func(fi backend.FileInfo) {
		if fi.Temp {
			n++
		}
	})
	return n
}

func countPacks(s *Store) (n int) {
	walkStore(s, func(fi backend.FileInfo) {
		if !fi.Temp && strings.HasSuffix(fi.Name, ".pack") {
			n++
		}
	})
	return n
}

func mustList(t *testing.T, s *Store) []CutInfo {
	cuts, err := s.List(bg, killJob)
	if err != nil {
		t.Fatal(err)
	}
	return cuts
}

func walkStore(s *Store, fn func(backend.FileInfo)) {
	var walk func(dir string)
	walk = func(dir string) {
		s.b.List(bg, dir, func(fi backend.FileInfo) error {
			fn(fi)
			if fi.IsDir {
				walk(fi.Name)
			}
			return nil
		})
	}
	walk("")
}

func assertNoTemps(t *testing.T, s *Store) {
	t.Helper()
	var walk func(dir string)
	walk = func(dir string) {
		s.b.List(bg, dir, func(fi backend.FileInfo) error {
			if fi.Temp {
				t.Errorf("temporary file left: %s", fi.Name)
			}
			if fi.IsDir {
				walk(fi.Name)
			}
			return nil
		})
	}
	walk("")
}
