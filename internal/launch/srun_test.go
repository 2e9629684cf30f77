package launch

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTaskExit(t *testing.T) {
	cases := []struct {
		line   string
		ok     bool
		node   string
		tasks  []int
		code   int
		signal string
	}{
		{"srun: error: vm: task 1: Killed", true, "vm", []int{1}, -1, "SIGKILL"},
		{"srun: error: vm: tasks 2-3: Exited with exit code 5", true, "vm", []int{2, 3}, 5, ""},
		{"srun: error: node-07: tasks 0,2-4,9: Exited with exit code 137", true, "node-07", []int{0, 2, 3, 4, 9}, 137, ""},
		{"srun: error: vm: task 0: Segmentation fault (core dumped)", true, "vm", []int{0}, -1, "SIGSEGV"},
		{"srun: error: vm: task 0: Something new", true, "vm", []int{0}, -1, "Something new"},
		{"srun: Force Terminated StepId=5.0", false, "", nil, 0, ""},
		{"srun: error: Unable to create step for job 7: Requested node configuration is not available", false, "", nil, 0, ""},
		{"srun: error: vm: task x: Killed", false, "", nil, 0, ""},
		{"srun: error: vm: tasks 3-1: Killed", false, "", nil, 0, ""},
		{"srun: error: vm: task 1: Exited with exit code nine", false, "", nil, 0, ""},
		{"1: srun: error: vm: task 1: Killed", false, "", nil, 0, ""},
		{"srun: error: vm: tasks 0-99999999: Killed", false, "", nil, 0, ""},
	}
	for _, c := range cases {
		te, ok := parseTaskExit(c.line)
		if ok != c.ok {
			t.Errorf("%q: ok=%v, want %v", c.line, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if te.node != c.node || !slices.Equal(te.tasks, c.tasks) || te.code != c.code || te.signal != c.signal {
			t.Errorf("%q: got %+v", c.line, te)
		}
	}
}

func TestParseLabelAndStart(t *testing.T) {
	for _, c := range []struct {
		line string
		idx  int
		text string
		ok   bool
	}{
		{"0: hello", 0, "hello", true},
		{" 3: a: b", 3, "a: b", true},
		{"12: ", 12, "", true},
		{"7:", 7, "", true},
		{"srun: error: vm: task 1: Killed", 0, "", false},
		{"hello", 0, "", false},
		{"-1: x", 0, "", false},
		{"1234567890: x", 0, "", false},
	} {
		idx, text, ok := parseLabel(c.line)
		if ok != c.ok || (ok && (idx != c.idx || text != c.text)) {
			t.Errorf("parseLabel(%q) = %d %q %v", c.line, idx, text, ok)
		}
	}
	node, pid, step, ok := parseStart("@cutpoint-task abc vm 4242 17.3", "abc")
	if !ok || node != "vm" || pid != 4242 || step != "17.3" {
		t.Errorf("parseStart = %q %d %q %v", node, pid, step, ok)
	}
	for _, bad := range []string{
		"@cutpoint-task other vm 4242 17.3", // another spawner's nonce
		"@cutpoint-task abc vm 0 17.3",
		"@cutpoint-task abc vm x 17.3",
		"@cutpoint-task abc vm 42 17",
		"@cutpoint-task abc vm 42 .3",
		"@cutpoint-task abc vm 42",
	} {
		if _, _, _, ok := parseStart(bad, "abc"); ok {
			t.Errorf("parseStart(%q) accepted", bad)
		}
	}
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 10000)
	in := "a\n" + long + "\n\nsrun: error: vm: task 1: Killed\n" + long + "tail"
	var got []string
	readLines(strings.NewReader(in), 100, func(l string) { got = append(got, l) })
	want := []string{"a", long[:100], "", "srun: error: vm: task 1: Killed", long[:100]}
	if !slices.Equal(got, want) {
		t.Errorf("got %d lines %q", len(got), got)
	}
}

func TestNodeStates(t *testing.T) {
	m := parseNodeStates("n1 idle\nn2 down*\nn3 alloc\nn3 alloc\nn4 drain\nn5 mix*\nn6 idle~\n\nbroken\n")
	want := map[string]bool{"n1": false, "n2": true, "n3": false, "n4": false, "n5": true, "n6": true}
	if len(m) != len(want) {
		t.Fatalf("parsed %v", m)
	}
	for n, down := range want {
		if nodeUnusable(m[n]) != down {
			t.Errorf("%s (%s): unusable=%v", n, m[n], !down)
		}
	}
	if nodeUnusable("fail") != true || nodeUnusable("drng") != false {
		t.Error("fail must be unusable, a draining node usable")
	}
	if got := parseNodeFailure("srun: error: Node failure on n7"); got != "n7" {
		t.Errorf("node failure: %q", got)
	}
	if got := parseNodeFailure("srun: error: Task launch for StepId=4.2 failed on node n8: Communication error"); got != "n8" {
		t.Errorf("launch failure: %q", got)
	}
	if got := parseNodeFailure("0: Node failure on n9"); got != "" {
		t.Errorf("task output taken for a node failure: %q", got)
	}
}

func TestOneStep(t *testing.T) {
	s := &Srun{cfg: SrunConfig{RankVar: "R"}}
	env := func(r string) []string { return []string{"A=1", "R=" + r, "S=2"} }
	group := []Proc{{Rank: 1, Spawn: 3, Env: env("1")}, {Rank: 0, Spawn: 3, Env: env("0")}}
	got, ok := s.oneStep(group)
	if !ok || !slices.Equal(got, []string{"A=1", "S=2"}) {
		t.Errorf("oneStep(0,1) = %v %v", got, ok)
	}
	for name, procs := range map[string][]Proc{
		"one":       {{Rank: 0, Spawn: 3, Env: env("0")}},
		"gap":       {{Rank: 0, Spawn: 3, Env: env("0")}, {Rank: 2, Spawn: 3, Env: env("2")}},
		"twice":     {{Rank: 0, Spawn: 3, Env: env("0")}, {Rank: 0, Spawn: 3, Env: env("0")}},
		"spawn ids": {{Rank: 0, Spawn: 3, Env: env("0")}, {Rank: 1, Spawn: 4, Env: env("1")}},
		"env":       {{Rank: 0, Spawn: 3, Env: env("0")}, {Rank: 1, Spawn: 3, Env: []string{"A=2", "R=1", "S=2"}}},
	} {
		if _, ok := s.oneStep(procs); ok {
			t.Errorf("%s: taken as one step", name)
		}
	}
}

// TestSrunInAllocation runs the spawner against real Slurm. It needs an
// allocation of at least 3 tasks: `make slurm-test` runs it as a batch job
// with CUTPOINT_SLURM_TEST=1.
func TestSrunInAllocation(t *testing.T) {
	if os.Getenv("CUTPOINT_SLURM_TEST") != "1" || os.Getenv("SLURM_JOB_ID") == "" {
		t.Skip("needs a Slurm allocation and CUTPOINT_SLURM_TEST=1 (make slurm-test)")
	}
	if _, err := exec.LookPath("srun"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var out buf
	prog := `echo "r=${CUTPOINT_RANK:-none} p=$SLURM_PROCID b=$BASE x=$X"; if [ "$MODE" = sleep ]; then exec sleep 300; fi; exit "${CODE:-$SLURM_PROCID}"`
	s, err := NewSrun(SrunConfig{Argv: []string{"sh", "-c", prog}, Env: []string{"BASE=b"}, RankVar: "CUTPOINT_RANK",
		Out: &out, KillWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := func() Exit {
		t.Helper()
		select {
		case e := <-s.Exits():
			return e
		case <-time.After(60 * time.Second):
			t.Fatalf("no exit reported; output:\n%s", out.String())
		}
		return Exit{}
	}
	rankEnv := func(r string, extra ...string) []string {
		return append([]string{"CUTPOINT_RANK=" + r, "X=x"}, extra...)
	}

	// The whole world as one step: the rank comes from SLURM_PROCID, exit
	// codes per task.
	if err := s.SpawnGroup([]Proc{{0, 1, rankEnv("0")}, {1, 1, rankEnv("1")}, {2, 1, rankEnv("2")}}); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for range 3 {
		e := next()
		codes[e.Rank] = e.Code
		if e.Spawn != 1 || e.Killed || e.Signal != "" {
			t.Errorf("exit %+v", e)
		}
	}
	if codes[0] != 0 || codes[1] != 1 || codes[2] != 2 {
		t.Errorf("exit codes %v, want rank = code", codes)
	}
	for r := range 3 {
		if want := "[rank " + string(rune('0'+r)) + "] r=none p=" + string(rune('0'+r)) + " b=b x=x\n"; !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in output:\n%s", want, out.String())
		}
	}

	// One rank on its own: CUTPOINT_RANK set, its exit code.
	if err := s.Spawn(1, 2, rankEnv("1", "CODE=7")); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Rank != 1 || e.Spawn != 2 || e.Code != 7 {
		t.Errorf("single step exit %+v", e)
	}
	// srun may report a task's exit before it forwarded the task's last
	// output lines.
	waitOutput(t, &out, "[rank 1] r=1 p=0 b=b x=x\n")

	// Kill one task of a running world step (by pid on its node), then a
	// rank running as its own step (scancel of the step).
	if err := s.SpawnGroup([]Proc{{0, 3, rankEnv("0", "MODE=sleep")}, {1, 3, rankEnv("1", "MODE=sleep")}, {2, 3, rankEnv("2", "MODE=sleep")}}); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, s, 0, 1, 2)
	if err := s.Spawn(1, 4, rankEnv("1")); err == nil {
		t.Error("a second process of a running rank was started")
	}
	if err := s.Kill(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Rank != 1 || e.Spawn != 3 || !e.Killed || e.Signal != "SIGKILL" {
		t.Errorf("killed task: %+v", e)
	}
	if err := s.Spawn(1, 4, rankEnv("1", "MODE=sleep")); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, s, 1)
	if err := s.Kill(ctx, 1, 3); err != nil { // an old spawn id: nothing to do
		t.Fatal(err)
	}
	if err := s.Kill(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Rank != 1 || e.Spawn != 4 || !e.Killed || e.Code != -1 {
		t.Errorf("killed single step: %+v", e)
	}
	// The other tasks of the world step still run.
	s.mu.Lock()
	alive := !s.tasks[0].exited && !s.tasks[2].exited
	s.mu.Unlock()
	if !alive {
		t.Error("killing one rank took others down")
	}
	if err := s.Kill(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Rank != 0 || !e.Killed {
		t.Errorf("kill with spawn 0: %+v", e)
	}
	// Close cancels what is left (rank 2) and reports it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	done := s.tasks[2].exited
	s.mu.Unlock()
	if !done {
		t.Error("Close left rank 2 running")
	}
}

func waitStarted(t *testing.T, s *Srun, ranks ...int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := 0
		for _, r := range ranks {
			if tk := s.tasks[r]; tk != nil && tk.pid > 0 {
				n++
			}
		}
		s.mu.Unlock()
		if n == len(ranks) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ranks %v did not start", ranks)
}

func waitOutput(t *testing.T, out *buf, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(out.String(), want) {
			return
		}
	}
	t.Errorf("no %q in the output:\n%s", want, out.String())
}

// FuzzSrunOutput feeds arbitrary lines (a rank's output passes through
// srun) to every parser of srun's output: none may panic or return more
// than it may.
func FuzzSrunOutput(f *testing.F) {
	for _, s := range []string{
		"srun: error: vm: task 1: Killed",
		"srun: error: n-7: tasks 0,2-4: Exited with exit code 3",
		"srun: error: Node failure on n2",
		"3: @cutpoint-task abc vm 42 7.1",
		"n1 down*\nn2 idle",
		"srun: error: vm: tasks 0-1048575: Killed",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if te, ok := parseTaskExit(s); ok {
			if len(te.tasks) == 0 || len(te.tasks) > 1<<20 {
				t.Fatalf("%q: %d tasks", s, len(te.tasks))
			}
			for _, i := range te.tasks {
				if i < 0 {
					t.Fatalf("%q: negative task id", s)
				}
			}
		}
		if idx, _, ok := parseLabel(s); ok && idx < 0 {
			t.Fatalf("%q: label %d", s, idx)
		}
		if _, pid, _, ok := parseStart(s, "abc"); ok && pid <= 0 {
			t.Fatalf("%q: pid %d", s, pid)
		}
		_ = parseNodeFailure(s)
		_ = parseNodeStates(s)
		n := 0
		readLines(strings.NewReader(s), 16, func(l string) {
			n++
			if len(l) > 16 {
				t.Fatalf("line of %d bytes", len(l))
			}
		})
		if n > strings.Count(s, "\n")+1 {
			t.Fatalf("%d lines from %d newlines", n, strings.Count(s, "\n"))
		}
	})
}

// TestNodeLost: a lost node takes every rank still running there with it,
// reported once each and in rank order; ranks elsewhere and ranks already
// reported are left alone, and the node is excluded from new steps.
func TestNodeLost(t *testing.T) {
	s := &Srun{log: slog.New(slog.NewTextHandler(io.Discard, nil)), queued: make(chan struct{}, 1),
		tasks: map[int]*srunTask{}, failed: map[string]bool{}}
	st := &srunStep{name: "ranks 0-3"}
	for r, node := range []string{"n1", "n2", "n2", "n1"} {
		s.tasks[r] = &srunTask{step: st, index: r, rank: r, spawn: 1, node: node, gone: make(chan struct{})}
	}
	s.report(s.tasks[1], Exit{Code: 0})
	s.queue = nil
	s.nodeLost("n2", "unreachable")
	s.nodeLost("n2", "down") // again: nothing more
	if len(s.queue) != 1 || s.queue[0].Rank != 2 || s.queue[0].Signal != "node n2 unreachable" || s.queue[0].Code != -1 {
		t.Fatalf("exits %+v, want rank 2 gone with node n2 unreachable", s.queue)
	}
	s.nodeLost("n1", "failed")
	if len(s.queue) != 3 || s.queue[1].Rank != 0 || s.queue[2].Rank != 3 {
		t.Fatalf("exits %+v, want ranks 0 and 3 after rank 2", s.queue)
	}
	if !s.failed["n1"] || !s.failed["n2"] {
		t.Fatalf("failed nodes %v, want n1 and n2", s.failed)
	}
}
