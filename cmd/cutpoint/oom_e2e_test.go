package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memoryCgroup makes a child of this process's memory cgroup limited to
// limit bytes and returns its cgroup.procs file; skips where that cannot be
// done (not root, no memory controller, v2 without memory delegated).
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a memory cgroup of the test's own needs root")
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	defer f.Close()
	var parent, limitFile string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if strings.Contains(","+parts[1]+",", ",memory,") {
			parent, limitFile = filepath.Join("/sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes"
			break
		}
		if parts[0] == "0" && parts[1] == "" {
			d := filepath.Join("/sys/fs/cgroup", parts[2])
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.subtree_control")); err == nil && strings.Contains(" "+string(b)+" ", " memory") {
				parent, limitFile = d, "memory.max"
			}
		}
	}
	if parent == "" {
		t.Skip("no memory cgroup this test can make a child of")
	}
	dir := filepath.Join(parent, "cutpoint-oom-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The processes in it are gone once the job ended; the kernel
		// takes a moment to let go of the group.
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("cgroup %s not removed", dir)
	})
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Skipf("cannot set the cgroup's memory limit: %v", err)
	}
	// No swap to escape to (v1 with swap accounting, v2): absent files are fine.
	os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644)
	os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
	return filepath.Join(dir, "cgroup.procs")
}

// inCgroup runs cmd as its own process inside the cgroup of procs from
// its first instruction (a shell enters it, then execs the command), so
// that the launcher's pre-checks and every rank it starts see the limit.
func inCgroup(cmd *exec.Cmd, procs string) *exec.Cmd {
	c := exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, procs, cmd.Path}, cmd.Args[1:]...)...)
	c.Env, c.Dir, c.SysProcAttr = cmd.Env, cmd.Dir, cmd.SysProcAttr
	return c
}

// TestOOMKillStopsNamingMemory: a heat2d job too large for its memory
// cgroup is refused by the pre-check (exit 2, naming the memory the
// cgroup leaves); forced, its ranks are OOM-killed, the first kill is
// respawned and the second from the same cut stops the job with exit 7,
// naming memory as the cause.
func TestOOMKillStopsNamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs real jobs")
	}
	procs := memoryCgroup(t, 128<<20)
	// 4096x4096 doubles over 2 ranks: 64 MiB a tile, two tiles and the
	// start-up grid per rank, far past 128 MiB.
	args := []string{"run", "--store", filepath.Join(t.TempDir(), "s"), "--ranks", "2", "--size", "4096", "--steps", "100",
		"--heartbeat-interval", "100ms"}
	r := runCmd(t, inCgroup(cutpoint(t, nil, args...), procs))
	if r.code != exitUsage || !strings.Contains(r.stderr, "of memory available") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("pre-check: exit %d, want %d naming the memory\n%s", r.code, exitUsage, tail(r.stderr, 20))
	}
	r = runCmd(t, inCgroup(cutpoint(t, nil, append(args, "--force")...), procs))
	if r.code != exitDeterministic || !strings.Contains(r.stderr, "likely out of memory), the second time in a row") {
		t.Fatalf("forced: exit %d, want %d naming memory\n%s", r.code, exitDeterministic, tail(r.stderr, 30))
	}
	if n := strings.Count(r.stderr, "msg=recovery-started") + strings.Count(r.stderr, `msg="recovery-started`); n != 1 {
		t.Fatalf("%d recoveries, want the one respawn before the verdict\n%s", n, tail(r.stderr, 30))
	}
}
