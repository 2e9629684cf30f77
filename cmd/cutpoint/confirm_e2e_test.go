package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// confirmJob is `job` with a failure timeout long enough that a loss
// seen by the launcher is clearly quicker than one found by silence, on
// a loaded machine too.
func confirmJob(store string) []string {
	return append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100", "--failure-timeout", "3s"}, job...)
}

// logLine waits (bounded) for a line of b holding every one of parts and
// returns when it was first seen.
func logLine(t *testing.T, b *syncBuf, limit time.Duration, parts ...string) (string, time.Time) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, l := range strings.Split(b.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				return l, time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q after %v:\n%s", parts, limit, tail(b.String(), 40))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startConfirmJob starts the job and waits for its first cut; it returns
// the launcher and its log.
func startConfirmJob(t *testing.T) (*syncBuf, func() result, int) {
	t.Helper()
	store := filepath.Join(t.TempDir(), "store")
	cmd := cutpoint(t, nil, confirmJob(store)...)
	var out, errb syncBuf
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	wait := func() result {
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			t.Fatalf("the job did not finish in 3 minutes\n%s", tail(errb.String(), 60))
		}
		return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	}
	return &errb, wait, cmd.Process.Pid
}

// TestStoppedRankConfirmed: a rank stopped (SIGSTOP) for longer than the
// failure timeout is replaced: its launcher sees it stopped, so it gets
// no grace; the job ends with the undisturbed digest.
func TestStoppedRankConfirmed(t *testing.T) {
	want := reference(t)
	errb, wait, launcher := startConfirmJob(t)
	pid := rankPid(t, launcher, 2)
	if pid == 0 {
		t.Fatal("rank 2's process not found")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	line, at := logLine(t, errb, time.Minute, "rank-lost g=", "rank=2", "launcher: process stopped")
	t.Logf("stopped rank declared lost %v after the SIGSTOP: %s", at.Sub(stopped).Round(time.Millisecond), line)
	// Its silence began at its last heartbeat, up to one interval
	// (100ms) before the stop.
	if d := at.Sub(stopped); d < 3*time.Second-200*time.Millisecond {
		t.Fatalf("a stopped rank lost %v after the stop, before the 3s failure timeout", d)
	}
	r := wait()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	if strings.Contains(r.stderr, "rank-silent-running") {
		t.Fatalf("a stopped rank was given the grace of a running one:\n%s", tail(r.stderr, 40))
	}
}

// TestKilledRankFoundByLauncher: a rank killed (SIGKILL, not by the
// launcher) is declared lost from its exit, well before the failure
// timeout; the job ends with the undisturbed digest.
func TestKilledRankFoundByLauncher(t *testing.T) {
	want := reference(t)
	errb, wait, launcher := startConfirmJob(t)
	pid := rankPid(t, launcher, 1)
	if pid == 0 {
		t.Fatal("rank 1's process not found")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	line, at := logLine(t, errb, time.Minute, "rank-lost g=", "rank=1")
	d := at.Sub(killed)
	t.Logf("killed rank declared lost %v after the SIGKILL: %s", d.Round(time.Millisecond), line)
	fmt.Printf("detection after SIGKILL: %v\n", d.Round(time.Millisecond))
	if d >= 3*time.Second {
		t.Fatalf("a killed rank lost %v after the kill: not before the 3s failure timeout", d)
	}
	r := wait()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
}

// freezer puts pid into a new freezer cgroup (cgroup v1's freezer
// hierarchy, else a child of this process's cgroup v2) and returns
// functions that freeze and thaw it; skips where neither can be made.
// A frozen process exists and is not stopped (its state is D or S, not
// T): to its launcher it runs, as one hung in the kernel on a dead file
// system does.
func freezer(t *testing.T, pid int) (freeze, thaw func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a freezer cgroup of the test's own needs root")
	}
	name := fmt.Sprintf("cutpoint-test-freeze-%d", os.Getpid())
	var dir, procs, stateFile, frozen, thawed string
	if st, err := os.Stat("/sys/fs/cgroup/freezer"); err == nil && st.IsDir() {
		dir = filepath.Join("/sys/fs/cgroup/freezer", name)
		procs, stateFile, frozen, thawed = "cgroup.procs", "freezer.state", "FROZEN", "THAWED"
	} else if b, err := os.ReadFile("/proc/self/cgroup"); err == nil && strings.HasPrefix(string(b), "0::") {
		dir = filepath.Join("/sys/fs/cgroup", strings.TrimSpace(strings.TrimPrefix(string(b), "0::")), name)
		procs, stateFile, frozen, thawed = "cgroup.procs", "cgroup.freeze", "1", "0"
	} else {
		t.Skip("no freezer cgroup on this machine")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a freezer cgroup: %v", err)
	}
	write := func(file, v string) error { return os.WriteFile(filepath.Join(dir, file), []byte(v), 0) }
	thaw = func() { _ = write(stateFile, thawed) }
	t.Cleanup(func() {
		thaw()
		for deadline := time.Now().Add(10 * time.Second); os.Remove(dir) != nil && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err := write(procs, strconv.Itoa(pid)); err != nil {
		t.Skipf("cannot move the rank into the freezer cgroup: %v", err)
	}
	return func() {
		if err := write(stateFile, frozen); err != nil {
			t.Fatalf("freeze: %v", err)
		}
	}, thaw
}

// TestFrozenRankGetsGrace: a rank whose process still exists and is not
// stopped but does nothing (frozen in a cgroup: state D, as a process
// hung on a dead file system) goes silent; asked, its launcher says it
// runs, so it gets one more failure timeout before it is declared lost
// ("launcher: process running, still silent"), and is then replaced; the
// job ends with the undisturbed digest. TestStoppedRankConfirmed is the
// case without grace.
func TestFrozenRankGetsGrace(t *testing.T) {
	want := reference(t)
	errb, wait, launcher := startConfirmJob(t)
	pid := rankPid(t, launcher, 1)
	if pid == 0 {
		t.Fatal("rank 1's process not found")
	}
	freeze, thaw := freezer(t, pid)
	freeze()
	frozenAt := time.Now()
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		t.Logf("frozen rank's /proc stat: %s", st)
	}
	_, asked := logLine(t, errb, time.Minute, "silent rank: asked the launcher", "rank=1", "process=running")
	_, grace := logLine(t, errb, time.Minute, "rank-silent-running", "rank=1")
	line, lost := logLine(t, errb, time.Minute, "rank-lost g=", "rank=1", "launcher: process running, still silent")
	t.Logf("frozen at 0; launcher asked at %v, grace at %v, lost at %v: %s", asked.Sub(frozenAt).Round(time.Millisecond),
		grace.Sub(frozenAt).Round(time.Millisecond), lost.Sub(frozenAt).Round(time.Millisecond), line)
	// The grace is one more failure timeout (3s) from the question.
	if d := lost.Sub(asked); d < 3*time.Second-200*time.Millisecond {
		t.Fatalf("lost %v after the launcher said it runs: no grace of a failure timeout", d)
	}
	// The frozen process cannot act on its SIGKILL until it thaws (cgroup
	// v1); thawed, it dies or, fenced, has no effect on the job.
	thaw()
	r := wait()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
}
