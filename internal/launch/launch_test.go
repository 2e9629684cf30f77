package launch

import (
	"bytes"
	"context"
	"strings"
	"sync"
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
