package launch

import (
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// alive polls Alive until it says want (the kernel applies a signal
// asynchronously), bounded.
func waitAlive(t *testing.T, what func() (Liveness, bool), want Liveness) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, ok := what()
		if ok && l == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Alive says (%d, %v), want (%d, true)", l, ok, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLocalAlive: a child that runs, is stopped, runs again and is killed
// is seen as running, stopped, running and gone; a rank or a spawn that
// is not this launcher's is one it cannot tell about.
func TestLocalAlive(t *testing.T) {
	l, err := NewLocal([]string{"sleep", "60"}, nil, &buf{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok := l.Alive(0, 1); ok {
		t.Fatal("Alive answers for a rank never started")
	}
	if err := l.Spawn(0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if lv, ok := l.Alive(0, 1); !ok || lv != ProcRunning {
		t.Fatalf("a sleeping child: (%d, %v)", lv, ok)
	}
	if _, ok := l.Alive(0, 2); ok {
		t.Fatal("Alive answers for another spawn")
	}
	alive := func() (Liveness, bool) { return l.Alive(0, 0) }
	if err := l.Signal(0, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, alive, ProcStopped)
	if err := l.Signal(0, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, alive, ProcRunning)
	if err := l.Signal(0, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone as soon as the kernel has it dead (a zombie), before or after
	// the reaper reports it.
	waitAlive(t, alive, ProcGone)
	if ex := nextExit(t, l); ex.Signal != "SIGKILL" {
		t.Fatalf("exit %+v", ex)
	}
	if lv, ok := l.Alive(0, 1); !ok || lv != ProcGone {
		t.Fatalf("a reaped child: (%d, %v)", lv, ok)
	}
}

// TestHostsAliveOnlyGone: the local child of a spawn template is a
// wrapper; while it lives the launcher cannot tell, once it is gone it
// says so.
func TestHostsAliveOnlyGone(t *testing.T) {
	h, err := NewHosts(HostsConfig{Hosts: []Host{{"a", 1}}, Ranks: 1, Template: "{cmd}", Argv: []string{"sleep", "60"}, Out: &buf{}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Spawn(0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if lv, ok := h.Alive(0, 1); ok {
		t.Fatalf("Hosts vouches for the remote process: %d", lv)
	}
	if err := h.Signal(0, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if lv, ok := h.Alive(0, 1); ok {
		t.Fatalf("Hosts answers for a stopped wrapper: %d", lv)
	}
	if err := h.Signal(0, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, func() (Liveness, bool) { return h.Alive(0, 1) }, ProcGone)
}

func TestParseProcState(t *testing.T) {
	for _, c := range []struct {
		in   string
		want byte
		ok   bool
	}{
		{"123 (sleep) S 1 2 3", 'S', true},
		{"123 (a) b) (c) T 1", 'T', true},
		{"123 (x y) Z 0", 'Z', true},
		{"123 (x", 0, false},
		{"123 (x)", 0, false},
		{"123 (x) ", 0, false},
		{"", 0, false},
	} {
		got, err := parseProcState([]byte(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %q, %v", c.in, got, err)
		}
	}
}

// TestSrunAlive: srun's task states confirm a task gone (reported ended,
// its node failed, its step's srun exited) and nothing else.
func TestSrunAlive(t *testing.T) {
	s := &Srun{log: slog.New(slog.NewTextHandler(io.Discard, nil)), queued: make(chan struct{}, 1),
		tasks: map[int]*srunTask{}, failed: map[string]bool{}}
	st := &srunStep{name: "ranks 0-2", done: make(chan struct{})}
	for r, node := range []string{"n1", "n2", "n3"} {
		s.tasks[r] = &srunTask{step: st, index: r, rank: r, spawn: 1, node: node, gone: make(chan struct{})}
	}
	for r := range 3 {
		if lv, ok := s.Alive(r, 1); ok {
			t.Fatalf("rank %d: srun vouches for a task it has no news of: %d", r, lv)
		}
	}
	if _, ok := s.Alive(5, 1); ok {
		t.Fatal("an unknown rank")
	}
	if _, ok := s.Alive(0, 2); ok {
		t.Fatal("another spawn")
	}
	s.report(s.tasks[0], Exit{Code: 1})
	s.nodeLost("n2", "failed")
	for r := range 2 {
		if lv, ok := s.Alive(r, 1); !ok || lv != ProcGone {
			t.Fatalf("rank %d: (%d, %v), want gone", r, lv, ok)
		}
	}
	if _, ok := s.Alive(2, 1); ok {
		t.Fatal("rank 2 still has no news")
	}
	close(st.done)
	if lv, ok := s.Alive(2, 0); !ok || lv != ProcGone {
		t.Fatalf("rank 2 after its step ended: (%d, %v)", lv, ok)
	}
}
