package launch

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *buf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func nextExit(t *testing.T, l *Local) Exit {
	t.Helper()
	select {
	case e := <-l.Exits():
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no exit reported")
	}
	return Exit{}
}

func TestExitCodesAndOutput(t *testing.T) {
	var out buf
	l, err := NewLocal([]string{"sh", "-c", `echo "hello $CUTPOINT_RANK"; echo oops >&2; exit $CUTPOINT_RANK`}, nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for r := 0; r < 3; r++ {
		if err := l.Spawn(r, 1, []string{"CUTPOINT_RANK=" + string(rune('0'+r))}); err != nil {
			t.Fatal(err)
		}
	}
	codes := map[int]int{}
	for i := 0; i < 3; i++ {
		e := nextExit(t, l)
		codes[e.Rank] = e.Code
		if e.Spawn != 1 || e.Killed || e.Signal != "" {
			t.Errorf("unexpected exit %+v", e)
		}
	}
	for r := 0; r < 3; r++ {
		if codes[r] != r {
			t.Errorf("rank %d: exit code %d", r, codes[r])
		}
		if !strings.Contains(out.String(), "[rank "+string(rune('0'+r))+"] hello "+string(rune('0'+r))+"\n") {
			t.Errorf("missing prefixed output of rank %d in %q", r, out.String())
		}
	}
	if !strings.Contains(out.String(), "[rank 1] oops\n") {
		t.Errorf("stderr not captured: %q", out.String())
	}
}

func TestKillReapsBeforeRespawn(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal([]string{"sleep", "60"}, nil, &buf{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Spawn(2, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Spawn(2, 2, nil); err == nil {
		t.Fatal("second spawn of a running rank succeeded")
	}
	pid := l.Pid(2)
	if pid == 0 {
		t.Fatal("no pid")
	}
	if err := l.Kill(ctx, 2, 7); err != nil {
		t.Fatal(err)
	}
	if l.Pid(2) != pid {
		t.Fatal("Kill of another spawn id killed the current process")
	}
	if err := l.Kill(ctx, 2, 1); err != nil {
		t.Fatal(err)
	}
	if l.Pid(2) != 0 {
		t.Fatal("rank still running after Kill returned")
	}
	e := nextExit(t, l)
	if e.Rank != 2 || !e.Killed || e.Signal != "SIGKILL" {
		t.Fatalf("exit after kill: %+v", e)
	}
	if err := l.Spawn(2, 2, nil); err != nil {
		t.Fatalf("respawn after kill: %v", err)
	}
	if got := l.Pid(2); got == 0 || got == pid {
		t.Fatalf("respawned pid %d (old %d)", got, pid)
	}
	if err := l.Kill(ctx, 2, 0); err != nil {
		t.Fatal(err)
	}
	if e := nextExit(t, l); e.Spawn != 2 {
		t.Fatalf("want spawn 2, got %+v", e)
	}
	if err := l.Kill(ctx, 7, 0); err != nil {
		t.Fatalf("kill of a never-started rank: %v", err)
	}
}

func TestMissingExecutable(t *testing.T) {
	if _, err := NewLocal([]string{"/nonexistent/job"}, nil, &buf{}, nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/job") {
		t.Fatalf("want an error naming the executable, got %v", err)
	}
}

// TestKillWithGrandchildHoldingStdout: a rank whose grandchild left the
// rank's process group (as the remote side of ssh does) and holds its
// stdout open. Kill returns at once, the exit is reported within the drain
// bound, and the rank respawns right away.
func TestKillWithGrandchildHoldingStdout(t *testing.T) {
	dir := t.TempDir()
	pidFile := dir + "/grandchild.pid"
	var out buf
	l, err := NewLocal([]string{"sh", "-c", `setsid sh -c 'echo $$ > ` + pidFile + `; exec sleep 30' & echo started; exec sleep 60`}, nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Spawn(2, 1, nil); err != nil {
		t.Fatal(err)
	}
	var gpid int
	for deadline := time.Now().Add(10 * time.Second); gpid == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		gpid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("grandchild did not start")
		}
	}
	defer syscall.Kill(gpid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "[rank 2] started"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no output: %q", out.String())
		}
	}
	t0 := time.Now()
	if err := l.Kill(context.Background(), 2, 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Kill took %v", d)
	}
	if err := syscall.Kill(gpid, 0); err != nil {
		t.Fatalf("the grandchild outside the group should still run (the test's premise): %v", err)
	}
	if err := l.Spawn(2, 2, nil); err != nil {
		t.Fatalf("respawn while the old output is held: %v", err)
	}
	e := nextExit(t, l)
	if e.Rank != 2 || e.Spawn != 1 || !e.Killed || e.Signal != "SIGKILL" {
		t.Fatalf("exit %+v", e)
	}
	if d := time.Since(t0); d > drainWait+2*time.Second {
		t.Fatalf("exit reported after %v", d)
	}
	if err := l.Kill(context.Background(), 2, 2); err != nil {
		t.Fatal(err)
	}
	if e := nextExit(t, l); e.Spawn != 2 {
		t.Fatalf("exit %+v", e)
	}
}

// TestGroupKilledOnExit: a rank that exits on its own takes the processes
// of its group with it, and its exit is reported although a child of it
// held its stdout.
func TestGroupKilledOnExit(t *testing.T) {
	dir := t.TempDir()
	pidFile := dir + "/child.pid"
	l, err := NewLocal([]string{"sh", "-c", `sleep 30 & echo $! > ` + pidFile + `; exit 3`}, nil, &buf{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Spawn(0, 1, nil); err != nil {
		t.Fatal(err)
	}
	e := nextExit(t, l)
	if e.Code != 3 || e.Killed {
		t.Fatalf("exit %+v", e)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		// A zombie until init reaps it: look at its state.
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the exited rank still runs", pid)
		}
	}
}

// TestSpawnWaitsForReaping: a Kill that gave up (its context was over)
// before the process was reaped does not make the next Spawn fail: Spawn
// waits for the reaping.
func TestSpawnWaitsForReaping(t *testing.T) {
	l, err := NewLocal([]string{"sleep", "60"}, nil, &buf{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := uint64(1); i <= 20; i++ {
		if err := l.Spawn(1, i, nil); err != nil {
			t.Fatalf("spawn %d: %v", i, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = l.Kill(ctx, 1, i) // may return before the reaping
	}
	for i := 0; i < 20; i++ {
		e := nextExit(t, l)
		if !e.Killed {
			t.Fatalf("exit %+v", e)
		}
	}
}
